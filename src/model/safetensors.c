/* safetensors header parsing/validation and writing. See safetensors.h.
 *
 * The parser is the first code that touches a model file, which may be truncated,
 * corrupt or hostile, so it trusts nothing: every length is checked against the
 * bytes actually present before it is used, every product of dimensions is checked
 * for overflow, and the tensors' byte ranges are checked to lie inside the data
 * region and not to overlap. After a successful parse, t[i].data points at
 * t[i].end - t[i].begin readable bytes and nothing else needs checking. */
#define _GNU_SOURCE
#include "model/safetensors.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *name; size_t size; } dtypes[AE__ST_NDTYPES] = {
  [AE__ST_F64] = {"F64", 8},   [AE__ST_F32] = {"F32", 4},   [AE__ST_F16] = {"F16", 2},
  [AE__ST_BF16] = {"BF16", 2}, [AE__ST_I64] = {"I64", 8},   [AE__ST_I32] = {"I32", 4},
  [AE__ST_I16] = {"I16", 2},   [AE__ST_I8] = {"I8", 1},     [AE__ST_U64] = {"U64", 8},
  [AE__ST_U32] = {"U32", 4},   [AE__ST_U16] = {"U16", 2},   [AE__ST_U8] = {"U8", 1},
  [AE__ST_BOOL] = {"BOOL", 1}, [AE__ST_F8_E4M3] = {"F8_E4M3", 1},
  [AE__ST_F8_E5M2] = {"F8_E5M2", 1},
};

const char *ae__st_dtype_name(int d) { return d >= 0 && d < AE__ST_NDTYPES ? dtypes[d].name : "?"; }
size_t ae__st_dtype_size(int d) { return d >= 0 && d < AE__ST_NDTYPES ? dtypes[d].size : 0; }

int ae__st_dtype_from_name(const char *name) {
  for (int d = 0; d < AE__ST_NDTYPES; d++)
    if (!strcmp(dtypes[d].name, name)) return d;
  return -1;
}

int64_t ae__st_numel(const ae__st_tensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

void ae__st_file_free(ae__st_file *f) {
  if (!f) return;
  for (size_t i = 0; i < f->n; i++) ae__free(f->t[i].name);
  ae__free(f->t);
  memset(f, 0, sizeof *f);
}

static int by_name(const void *a, const void *b) {
  return strcmp(((const ae__st_tensor *)a)->name, ((const ae__st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b) {
  const ae__st_tensor *x = *(ae__st_tensor *const *)a, *y = *(ae__st_tensor *const *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  return x->end < y->end ? -1 : x->end > y->end;
}

const ae__st_tensor *ae__st_find(const ae__st_file *f, const char *name) {
  size_t lo = 0, hi = f->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(f->t[mid].name, name);
    if (c == 0) return &f->t[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

static int parse_metadata(json_t *v, const char *what) {
  if (!json_is_object(v))
    return ae__error(AE_EFORMAT, "%s: header: '__metadata__' is not an object", what);
  const char *k;
  json_t *s;
  json_object_foreach(v, k, s)
    if (!json_is_string(s))
      return ae__error(AE_EFORMAT, "%s: header: '__metadata__' entry '%.100s' is not a string",
                       what, k);
  return AE_OK;
}

/* Validates one header entry against a data region of data_len bytes and fills t
 * (except name and data). */
static int parse_entry(const char *what, const char *name, json_t *v, size_t data_len,
                       ae__st_tensor *t) {
#define BAD(...) ae__error(AE_EFORMAT, __VA_ARGS__)
  if (!json_is_object(v)) return BAD("%s: tensor '%.200s': header entry is not an object", what, name);
  json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
         *off = json_object_get(v, "data_offsets");
  if (!json_is_string(dt)) return BAD("%s: tensor '%.200s': missing or non-string 'dtype'", what, name);
  t->dtype = ae__st_dtype_from_name(json_string_value(dt));
  if (t->dtype < 0)
    return ae__error(AE_EUNSUPPORTED, "%s: tensor '%.200s': unknown dtype '%.40s'", what, name,
                     json_string_value(dt));
  if (!json_is_array(sh)) return BAD("%s: tensor '%.200s': missing or non-array 'shape'", what, name);
  if (json_array_size(sh) > AE__ST_MAX_DIMS)
    return BAD("%s: tensor '%.200s': %zu dimensions (at most %d supported)", what, name,
               json_array_size(sh), AE__ST_MAX_DIMS);
  t->ndim = (int)json_array_size(sh);
  /* numel * dtype size must fit in size_t: check each multiplication. */
  size_t bytes = ae__st_dtype_size(t->dtype);
  for (int i = 0; i < t->ndim; i++) {
    json_t *d = json_array_get(sh, (size_t)i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return BAD("%s: tensor '%.200s': shape[%d] is not a non-negative integer", what, name, i);
    t->shape[i] = json_integer_value(d);
    uint64_t dim = (uint64_t)t->shape[i];
    if (dim && bytes > SIZE_MAX / dim)
      return BAD("%s: tensor '%.200s': shape is too large", what, name);
    bytes *= (size_t)dim;
  }
  if (!json_is_array(off) || json_array_size(off) != 2 ||
      !json_is_integer(json_array_get(off, 0)) || !json_is_integer(json_array_get(off, 1)))
    return BAD("%s: tensor '%.200s': 'data_offsets' is not [begin, end]", what, name);
  json_int_t b = json_integer_value(json_array_get(off, 0)), e = json_integer_value(json_array_get(off, 1));
  if (b < 0 || e < b)
    return BAD("%s: tensor '%.200s': data_offsets [%lld, %lld] are not 0 <= begin <= end", what,
               name, (long long)b, (long long)e);
  if ((uint64_t)e > data_len)
    return BAD("%s: tensor '%.200s': data_offsets [%lld, %lld] run past the end of the data "
               "(%zu bytes; file truncated?)", what, name, (long long)b, (long long)e, data_len);
  t->begin = (size_t)b;
  t->end = (size_t)e;
  if (t->end - t->begin != bytes)
    return BAD("%s: tensor '%.200s': %zu bytes at data_offsets [%lld, %lld], but dtype %s and "
               "its shape need %zu", what, name, t->end - t->begin, (long long)b, (long long)e,
               ae__st_dtype_name(t->dtype), bytes);
  return AE_OK;
#undef BAD
}

/* Sorting by start offset makes the overlap test linear: a tensor overlaps some
 * earlier one iff it starts before the furthest end seen so far. Empty tensors
 * occupy no bytes and are skipped. */
static int check_overlap(ae__st_file *f, const char *what) {
  if (f->n < 2) return AE_OK;
  ae__st_tensor **order = ae__malloc(f->n * sizeof *order);
  if (!order) return ae__error(AE_ENOMEM, "%s: out of memory", what);
  for (size_t i = 0; i < f->n; i++) order[i] = &f->t[i];
  qsort(order, f->n, sizeof *order, by_begin);
  int rc = AE_OK;
  const ae__st_tensor *far = NULL;
  for (size_t i = 0; i < f->n && rc == AE_OK; i++) {
    const ae__st_tensor *t = order[i];
    if (t->begin == t->end) continue;
    if (far && t->begin < far->end)
      rc = ae__error(AE_EFORMAT, "%s: tensor '%.200s': data_offsets [%zu, %zu] overlap tensor "
                     "'%.200s' [%zu, %zu]", what, t->name, t->begin, t->end, far->name,
                     far->begin, far->end);
    if (!far || t->end > far->end) far = t;
  }
  ae__free(order);
  return rc;
}

static int parse_tensors(json_t *root, const uint8_t *region, size_t data_len, const char *what,
                         ae__st_file *f) {
  size_t cap = json_object_size(root);
  f->t = ae__calloc(cap ? cap : 1, sizeof *f->t);
  if (!f->t) return ae__error(AE_ENOMEM, "%s: out of memory", what);
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    int rc;
    if (!strcmp(key, "__metadata__")) {
      if ((rc = parse_metadata(v, what))) return rc;
      continue;
    }
    ae__st_tensor *t = &f->t[f->n];
    if ((rc = parse_entry(what, key, v, data_len, t))) return rc;
    if (!(t->name = ae__strdup(key))) return ae__error(AE_ENOMEM, "%s: out of memory", what);
    t->data = region + t->begin;
    f->n++;
  }
  qsort(f->t, f->n, sizeof *f->t, by_name);
  /* JSON_REJECT_DUPLICATES catches most; keys with embedded NULs can still collide. */
  for (size_t i = 1; i < f->n; i++)
    if (!strcmp(f->t[i - 1].name, f->t[i].name))
      return ae__error(AE_EFORMAT, "%s: tensor '%.200s' appears twice", what, f->t[i].name);
  return check_overlap(f, what);
}

int ae__safetensors_parse(const uint8_t *data, size_t len, const char *what, ae__st_file *out) {
  memset(out, 0, sizeof *out);
  if (len < 8)
    return ae__error(AE_EFORMAT, "%s: truncated: %zu bytes, too short for the 8-byte header length",
                     what, len);
  uint64_t n = 0;
  for (int i = 7; i >= 0; i--) n = n << 8 | data[i];
  if (n > len - 8)
    return ae__error(AE_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes; "
                     "truncated or not a safetensors file)", what, (unsigned long long)n, len);
  if (n > AE__ST_MAX_HEADER)
    return ae__error(AE_EFORMAT, "%s: header length %llu exceeds the %u-byte limit", what,
                     (unsigned long long)n, AE__ST_MAX_HEADER);
  json_error_t je;
  json_t *root = json_loadb((const char *)data + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return ae__error(AE_EFORMAT, "%s: header JSON is malformed: %s (line %d, column %d)", what,
                     je.text, je.line, je.column);
  int rc;
  if (!json_is_object(root))
    rc = ae__error(AE_EFORMAT, "%s: header JSON is not an object", what);
  else
    rc = parse_tensors(root, data + 8 + n, len - 8 - (size_t)n, what, out);
  json_decref(root);
  if (rc) {
    ae__st_file_free(out);
    return rc;
  }
  out->header = data + 8;
  out->header_len = (size_t)n;
  return AE_OK;
}

/* ---- writer ---------------------------------------------------------------- */

static size_t spec_bytes(const ae__st_spec *s) {
  size_t b = ae__st_dtype_size(s->dtype);
  for (int i = 0; i < s->ndim; i++) b *= (size_t)s->shape[i];
  return b;
}

/* The JSON header: __metadata__ first (as PyTorch's save_file writes it), then the
 * tensors in the order given, stored back to back. */
static char *build_header(const ae__st_spec *specs, size_t n, size_t *max_bytes) {
  json_t *root = json_object(), *meta = json_object();
  json_object_set_new(meta, "format", json_string("pt"));
  json_object_set_new(root, "__metadata__", meta);
  size_t off = 0;
  *max_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    json_t *e = json_object(), *shape = json_array();
    for (int d = 0; d < specs[i].ndim; d++) json_array_append_new(shape, json_integer(specs[i].shape[d]));
    size_t b = spec_bytes(&specs[i]);
    if (b > *max_bytes) *max_bytes = b;
    json_object_set_new(e, "dtype", json_string(ae__st_dtype_name(specs[i].dtype)));
    json_object_set_new(e, "shape", shape);
    json_object_set_new(e, "data_offsets",
                        json_pack("[II]", (json_int_t)off, (json_int_t)(off + b)));
    json_object_set_new(root, specs[i].name, e);
    off += b;
  }
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
}

static int write_all(FILE *f, const void *p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

int ae__safetensors_write(const char *path, const ae__st_spec *specs, size_t n,
                          ae__st_fill_fn fill, void *ud) {
  size_t max_bytes;
  char *hdr = build_header(specs, n, &max_bytes);
  if (!hdr) return ae__error(AE_ENOMEM, "%s: out of memory building the header", path);
  size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7;
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  uint8_t *buf = ae__malloc(max_bytes > padded ? max_bytes : padded);
  FILE *f = buf ? fopen(tmp, "wb") : NULL;
  int rc = AE_OK;
  if (!buf) rc = ae__error(AE_ENOMEM, "%s: out of memory", path);
  else if (!f) rc = ae__error(AE_EIO, "%s: %s", tmp, strerror(errno));
  if (rc == AE_OK) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf, hdr, hlen);
    memset(buf + hlen, ' ', padded - hlen);
    if (write_all(f, le, 8) || write_all(f, buf, padded))
      rc = ae__error(AE_EIO, "%s: write failed: %s", tmp, strerror(errno));
    for (size_t i = 0; i < n && rc == AE_OK; i++) {
      size_t b = spec_bytes(&specs[i]);
      if ((rc = fill(ud, i, buf, b))) break;
      if (write_all(f, buf, b)) rc = ae__error(AE_EIO, "%s: write failed: %s", tmp, strerror(errno));
    }
    if (rc == AE_OK && (fflush(f) || fsync(fileno(f))))
      rc = ae__error(AE_EIO, "%s: write failed: %s", tmp, strerror(errno));
  }
  if (f && fclose(f) && rc == AE_OK) rc = ae__error(AE_EIO, "%s: close failed: %s", tmp, strerror(errno));
  if (rc == AE_OK && rename(tmp, path))
    rc = ae__error(AE_EIO, "%s: rename from %s failed: %s", path, tmp, strerror(errno));
  if (rc != AE_OK && f) unlink(tmp);
  ae__free(buf);
  free(hdr);
  return rc;
}
