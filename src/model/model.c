/* Loading a Hugging Face BERT model folder into ae__bert_model.
 *
 * model.safetensors is memory-mapped read-only. F32 tensors are used in place (the
 * header is 8-byte padded in files written by safetensors, so they are aligned;
 * a misaligned one is copied), F16/BF16 tensors are converted into one owned F32
 * buffer. Every tensor the forward pass reads is checked against the config (dtype,
 * shape) and scanned for NaN/Inf, so a corrupt file fails here with the tensor's
 * name instead of producing garbage vectors later. */
#define _GNU_SOURCE
#define XXH_STATIC_LINKING_ONLY
#include "model/model.h"
#include "model/safetensors.h"
#include "common/loadcache.h"

#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* safetensors stores little-endian values; weights are used in place as host floats. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "astembed assumes a little-endian host");

/* One tensor the forward pass needs: where its pointer goes and the shape the
 * config implies (dims[1] == 0 for vectors). */
typedef struct {
  char name[96];
  const float **slot;
  int64_t dims[2];
  const ae__st_tensor *t;
} want;

static void add(want *w, size_t *n, const float **slot, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void add(want *w, size_t *n, const float **slot, int64_t d0, int64_t d1, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(w[*n].name, sizeof w[*n].name, fmt, ap);
  va_end(ap);
  w[*n].slot = slot;
  w[*n].dims[0] = d0;
  w[*n].dims[1] = d1;
  (*n)++;
}

/* The tensors of a BertModel, named as transformers saves them (minus "bert."). */
static size_t list_tensors(ae__bert_model *m, want *w) {
  const ae__bert_config *c = &m->cfg;
  int64_t H = c->hidden, I = c->intermediate;
  size_t n = 0;
  add(w, &n, &m->word_emb, c->vocab, H, "embeddings.word_embeddings.weight");
  add(w, &n, &m->pos_emb, c->max_positions, H, "embeddings.position_embeddings.weight");
  add(w, &n, &m->type_emb, c->type_vocab, H, "embeddings.token_type_embeddings.weight");
  add(w, &n, &m->emb_ln_g, H, 0, "embeddings.LayerNorm.weight");
  add(w, &n, &m->emb_ln_b, H, 0, "embeddings.LayerNorm.bias");
  for (int l = 0; l < c->layers; l++) {
    ae__bert_layer *L = &m->layer[l];
#define P "encoder.layer.%d."
    add(w, &n, &L->q_w, H, H, P "attention.self.query.weight", l);
    add(w, &n, &L->q_b, H, 0, P "attention.self.query.bias", l);
    add(w, &n, &L->k_w, H, H, P "attention.self.key.weight", l);
    add(w, &n, &L->k_b, H, 0, P "attention.self.key.bias", l);
    add(w, &n, &L->v_w, H, H, P "attention.self.value.weight", l);
    add(w, &n, &L->v_b, H, 0, P "attention.self.value.bias", l);
    add(w, &n, &L->o_w, H, H, P "attention.output.dense.weight", l);
    add(w, &n, &L->o_b, H, 0, P "attention.output.dense.bias", l);
    add(w, &n, &L->ln1_g, H, 0, P "attention.output.LayerNorm.weight", l);
    add(w, &n, &L->ln1_b, H, 0, P "attention.output.LayerNorm.bias", l);
    add(w, &n, &L->i_w, I, H, P "intermediate.dense.weight", l);
    add(w, &n, &L->i_b, I, 0, P "intermediate.dense.bias", l);
    add(w, &n, &L->out_w, H, I, P "output.dense.weight", l);
    add(w, &n, &L->out_b, H, 0, P "output.dense.bias", l);
    add(w, &n, &L->ln2_g, H, 0, P "output.LayerNorm.weight", l);
    add(w, &n, &L->ln2_b, H, 0, P "output.LayerNorm.bias", l);
#undef P
  }
  return n;
}

static void fmt_shape(char *buf, size_t cap, int ndim, const int64_t *d) {
  size_t k = (size_t)snprintf(buf, cap, "[");
  for (int i = 0; i < ndim && k < cap; i++)
    k += (size_t)snprintf(buf + k, cap - k, "%s%lld", i ? "," : "", (long long)d[i]);
  if (k < cap) snprintf(buf + k, cap - k, "]");
}

static int needs_copy(const ae__st_tensor *t) {
  return t->dtype != AE__ST_F32 || ((uintptr_t)t->data & 3) != 0;
}

/* Finds w's tensor and checks its dtype and shape against the config. */
static int resolve(const ae__st_file *st, const char *path, const char *prefix, want *w) {
  char full[128], got[128], wanted[128];
  snprintf(full, sizeof full, "%s%s", prefix, w->name);
  if (!(w->t = ae__st_find(st, full)))
    return ae__error(AE_ENOTFOUND, "%s: tensor '%s' is missing", path, full);
  const ae__st_tensor *t = w->t;
  if (t->dtype != AE__ST_F32 && t->dtype != AE__ST_F16 && t->dtype != AE__ST_BF16)
    return ae__error(AE_EMISMATCH, "%s: tensor '%s': dtype %s, want F32, F16 or BF16", path, full,
                     ae__st_dtype_name(t->dtype));
  int ndim = w->dims[1] ? 2 : 1;
  if (t->ndim != ndim || t->shape[0] != w->dims[0] || (ndim == 2 && t->shape[1] != w->dims[1])) {
    fmt_shape(got, sizeof got, t->ndim, t->shape);
    fmt_shape(wanted, sizeof wanted, ndim, w->dims);
    return ae__error(AE_EMISMATCH, "%s: tensor '%s': shape %s, config wants %s", path, full, got,
                     wanted);
  }
  return AE_OK;
}

#if defined(__x86_64__)
/* F16C: eight halves per instruction, exactly; chosen at run time from CPUID, so the
 * portable build uses it wherever the CPU has it. Returns how many were converted. */
__attribute__((target("avx,f16c"))) static size_t f16_to_f32_f16c(const uint8_t *p, float *dst,
                                                                  size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(p + 2 * i))));
  return i;
}
#endif

/* Converts (or copies) t into dst. Half values are read with memcpy: the mmap gives
 * no alignment guarantee for them. With F16C (f16_to_f32_f16c) eight halves convert
 * per instruction, exactly; the portable loop gives the same floats. */
static void load_values(const ae__st_tensor *t, float *dst) {
  size_t n = (size_t)ae__st_numel(t), i = 0;
  const uint8_t *p = t->data;
  if (t->dtype == AE__ST_F32) {
    memcpy(dst, p, n * 4);
    return;
  }
  if (t->dtype == AE__ST_BF16) {
    for (; i < n; i++) {
      uint16_t h;
      memcpy(&h, p + 2 * i, 2);
      uint32_t b = (uint32_t)h << 16;
      memcpy(dst + i, &b, 4);
    }
    return;
  }
#if defined(__x86_64__)
  if (__builtin_cpu_supports("f16c")) i = f16_to_f32_f16c(p, dst, n);
#endif
  for (; i < n; i++) {
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    dst[i] = ae__f16_to_f32(h);
  }
}

/* Every weight must be finite. The exponent test on the bits vectorises and needs
 * no floating-point compare; the slow search for the culprit runs only on failure. */
static int check_finite(const float *v, size_t n, const char *path, const char *prefix, const char *name) {
  const uint32_t *b = (const uint32_t *)(const void *)v;
  unsigned bad = 0;
  for (size_t i = 0; i < n; i++) bad |= (b[i] & 0x7f800000u) == 0x7f800000u;
  if (!bad) return AE_OK;
  size_t i = 0;
  while ((b[i] & 0x7f800000u) != 0x7f800000u) i++;
  return ae__error(AE_EFORMAT, "%s: tensor '%s%s': element %zu is %s (corrupt weights)", path, prefix,
                   name, i, (b[i] & 0x7fffff) ? "NaN" : "infinite");
}

static int bind_weights(ae__bert_model *m, const ae__st_file *st, const char *path, int scan) {
  size_t cap = 5 + 16 * (size_t)m->cfg.layers, n;
  want *w = ae__calloc(cap, sizeof *w);
  m->layer = ae__calloc((size_t)m->cfg.layers, sizeof *m->layer);
  if (!w || !m->layer) { ae__free(w); return ae__error(AE_ENOMEM, "%s: out of memory", path); }
  n = list_tensors(m, w);
  m->bert_prefix = !ae__st_find(st, w[0].name) && ae__st_find(st, "bert.embeddings.word_embeddings.weight");
  const char *prefix = m->bert_prefix ? "bert." : "";
  int rc = AE_OK;
  size_t ncopy = 0;
  for (size_t i = 0; i < n && rc == AE_OK; i++)
    if ((rc = resolve(st, path, prefix, &w[i])) == AE_OK && needs_copy(w[i].t))
      ncopy += (size_t)ae__st_numel(w[i].t);
  if (rc == AE_OK && ncopy && !(m->converted = ae__malloc(ncopy * sizeof(float))))
    rc = ae__error(AE_ENOMEM, "%s: out of memory converting %zu weights to F32", path, ncopy);
  /* The file's dtype: the one all tensors share, else "mixed". */
  if (rc == AE_OK) snprintf(m->dtype, sizeof m->dtype, "%s", ae__st_dtype_name(w[0].t->dtype));
  float *dst = m->converted;
  for (size_t i = 0; i < n && rc == AE_OK; i++) {
    const ae__st_tensor *t = w[i].t;
    size_t cnt = (size_t)ae__st_numel(t);
    if (strcmp(ae__st_dtype_name(t->dtype), m->dtype)) snprintf(m->dtype, sizeof m->dtype, "mixed");
    const float *vals = (const float *)(const void *)t->data;
    if (needs_copy(t)) {
      load_values(t, dst);
      vals = dst;
      dst += cnt;
    }
    *w[i].slot = vals;
    m->n_params += (int64_t)cnt;
    if (scan) rc = check_finite(vals, cnt, path, prefix, w[i].name);
  }
  ae__free(w);
  return rc;
}

/* Maps the weights file read-only. Mapping (not reading) keeps F32 weights in the
 * page cache, shared between processes, and costs no copy. */
static int map_weights(ae__bert_model *m, const char *path, struct stat *id) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) {
      char *bin = ae__path_join(m->dir, "pytorch_model.bin");
      int has_bin = bin && ae__file_exists(bin);
      ae__free(bin);
      return ae__error(AE_ENOTFOUND, "%s: not found%s", path,
                       has_bin ? " (pytorch_model.bin is not supported: convert it to safetensors)" : "");
    }
    return ae__error(AE_EIO, "%s: %s", path, strerror(errno));
  }
  struct stat sb;
  int rc = AE_OK;
  if (fstat(fd, &sb)) rc = ae__error(AE_EIO, "%s: %s", path, strerror(errno));
  else if (!S_ISREG(sb.st_mode)) rc = ae__error(AE_EIO, "%s: not a regular file", path);
  else if (sb.st_size < 8)
    rc = ae__error(AE_EFORMAT, "%s: truncated: %lld bytes, too short for the 8-byte header length",
                   path, (long long)sb.st_size);
  else {
    void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) rc = ae__error(AE_EIO, "%s: mmap: %s", path, strerror(errno));
    else { m->map = p; m->map_len = (size_t)sb.st_size; *id = sb; }
  }
  close(fd);
  return rc;
}

/* ---- fingerprint ------------------------------------------------------------ */

static void hash_chunk(XXH3_state_t *s, const char *tag, const void *p, size_t n) {
  uint64_t len = n;
  XXH3_128bits_update(s, tag, strlen(tag) + 1);
  XXH3_128bits_update(s, &len, sizeof len);
  if (n) XXH3_128bits_update(s, p, n);
}

static int hash_file(XXH3_state_t *s, const char *dir, const char *name) {
  char *path = ae__path_join(dir, name), *text = NULL;
  size_t len = 0;
  if (!path) return ae__error(AE_ENOMEM, "%s/%s: out of memory", dir, name);
  int rc = ae__file_exists(path) ? ae__read_file(path, &text, &len) : AE_OK;
  if (rc == AE_OK) hash_chunk(s, name, text, len);
  ae__free(text);
  ae__free(path);
  return rc;
}

/* What makes two vectors comparable: the network (config + the safetensors header,
 * which pins every tensor's name, dtype, shape and offset, and the weight bytes:
 * fine-tuned or random weights share a header), the tokenizer, the truncation
 * length, pooling, normalisation and the weights' precision. XXH3 runs at tens of
 * GB/s, so hashing the 90 MB of MiniLM costs a few milliseconds per load (none on a
 * load-cache hit, see below). */
static int fingerprint(ae__bert_model *m, const char *cfg, size_t cfg_len, const ae__st_file *st,
                       const uint8_t weights_digest[16]) {
  XXH3_state_t s;
  XXH3_128bits_reset(&s);
  hash_chunk(&s, "config.json", cfg, cfg_len);
  hash_chunk(&s, "safetensors-header", st->header, st->header_len);
  /* the file's bytes enter through their own XXH3-128 digest, which the load cache
   * can remember, instead of being streamed into this state */
  hash_chunk(&s, "safetensors-file-xxh3-128", weights_digest, 16);
  char *tj = ae__path_join(m->dir, "tokenizer.json");
  if (!tj) return ae__error(AE_ENOMEM, "%s: out of memory", m->dir);
  int has_tj = ae__file_exists(tj), rc;
  ae__free(tj);
  if (has_tj) rc = hash_file(&s, m->dir, "tokenizer.json");
  else if ((rc = hash_file(&s, m->dir, "vocab.txt")) == AE_OK)
    rc = hash_file(&s, m->dir, "tokenizer_config.json");
  if (rc) return rc;
  int32_t v[3] = {m->max_length, m->pooling, m->normalize};
  hash_chunk(&s, "max_length,pooling,normalize", v, sizeof v);
  hash_chunk(&s, "dtype", m->dtype, strlen(m->dtype));
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&s));
  memcpy(m->fingerprint, c.digest, 16);
  return AE_OK;
}

/* ---- load / free --------------------------------------------------------------- */

static int load_config(ae__bert_model *m, char **text, size_t *len) {
  char *path = ae__path_join(m->dir, "config.json");
  if (!path) return ae__error(AE_ENOMEM, "%s: out of memory", m->dir);
  int rc = ae__read_file(path, text, len);
  if (rc == AE_ENOTFOUND) ae__error(rc, "%s: not found (not a Hugging Face model folder?)", path);
  if (rc == AE_OK) rc = ae__bert_config_parse(*text, *len, path, &m->cfg);
  ae__free(path);
  return rc;
}

/* ---- the weights entry of the load cache ---------------------------------------
 *
 * Two passes read all 90 MB of weights on every load: the digest for the fingerprint
 * and the NaN/Inf scan. Both depend only on the file's bytes (and, for the scan, on
 * which tensors the config binds), so the cache remembers them per file, keyed by
 * the file's identity as git's index keys its stat data: device, inode, size, mtime
 * and ctime. Any write or replacement changes ctime (the kernel sets it; a user
 * cannot set it back), a rename gives another inode.
 *
 * The race git calls "racily clean": a write landing in the same timestamp tick as
 * the one the entry recorded would leave ctime unchanged. So an entry is written only
 * when the file's mtime and ctime are strictly older than a coarse-clock reading
 * taken before the file was opened: any later write then stamps a newer time. A file
 * written just before a load is simply cached by the next load. Only files that
 * passed the scan get an entry; a NaN file is scanned (and refused) every time. */

#define WCACHE_MAGIC "AEWGT\0\0\1"

typedef struct {
  char magic[8];
  uint64_t dev, ino, size;
  int64_t mtime_s, mtime_ns, ctime_s, ctime_ns;
  uint64_t config_hash;   /* XXH3-64 of config.json: which tensors were scanned */
  uint8_t digest[16];     /* XXH3-128 of the whole file, canonical bytes */
  uint64_t sum;           /* XXH3-64 of everything above */
} wcache_entry;
_Static_assert(sizeof(wcache_entry) == 96, "wcache_entry has no padding");

static void wcache_fill(wcache_entry *e, const struct stat *sb, uint64_t config_hash) {
  memset(e, 0, sizeof *e);
  memcpy(e->magic, WCACHE_MAGIC, 8);
  e->dev = (uint64_t)sb->st_dev;
  e->ino = (uint64_t)sb->st_ino;
  e->size = (uint64_t)sb->st_size;
  e->mtime_s = (int64_t)sb->st_mtim.tv_sec;
  e->mtime_ns = (int64_t)sb->st_mtim.tv_nsec;
  e->ctime_s = (int64_t)sb->st_ctim.tv_sec;
  e->ctime_ns = (int64_t)sb->st_ctim.tv_nsec;
  e->config_hash = config_hash;
}

/* One entry per file identity (device, inode): a changed file overwrites its entry. */
static void wcache_name(const struct stat *sb, char name[64]) {
  uint64_t k[2] = {(uint64_t)sb->st_dev, (uint64_t)sb->st_ino};
  XXH64_canonical_t c;
  XXH64_canonicalFromHash(&c, XXH3_64bits(k, sizeof k));
  char hex[17];
  ae__lc_hex(c.digest, 8, hex);
  snprintf(name, 64, "weights-%s.aew", hex);
}

static int wcache_lookup(const char *cache_dir, const struct stat *sb, uint64_t config_hash,
                         uint8_t digest[16]) {
  char name[64];
  wcache_name(sb, name);
  uint8_t *data;
  size_t len;
  if (ae__lc_read(cache_dir, name, sizeof(wcache_entry), &data, &len)) return 0;
  wcache_entry got, want;
  int hit = len == sizeof got;
  if (hit) memcpy(&got, data, sizeof got);
  ae__free(data);
  wcache_fill(&want, sb, config_hash);
  hit = hit && !memcmp(&got, &want, offsetof(wcache_entry, digest)) &&
        got.sum == XXH3_64bits(&got, offsetof(wcache_entry, sum));
  if (hit) memcpy(digest, got.digest, 16);
  return hit;
}

static int older(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static void wcache_store(const char *cache_dir, const struct stat *sb, uint64_t config_hash,
                         const uint8_t digest[16], const struct timespec *opened) {
  if (!older(&sb->st_mtim, opened) || !older(&sb->st_ctim, opened)) return; /* racy */
  wcache_entry e;
  wcache_fill(&e, sb, config_hash);
  memcpy(e.digest, digest, 16);
  e.sum = XXH3_64bits(&e, offsetof(wcache_entry, sum));
  char name[64];
  wcache_name(sb, name);
  ae__lc_write(cache_dir, name, &e, sizeof e);
}

static void digest_of(const void *p, size_t n, uint8_t out[16]) {
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(p, n));
  memcpy(out, c.digest, 16);
}

static int load_parts(ae__bert_model *m, int max_length_override, const char *cache_dir,
                      char **cfg_text, ae__st_file *st) {
  size_t cfg_len = 0;
  int rc = load_config(m, cfg_text, &cfg_len);
  if (rc) return rc;
  char *path = ae__path_join(m->dir, "model.safetensors");
  if (!path) return ae__error(AE_ENOMEM, "%s: out of memory", m->dir);
  /* the kernel stamps files from the coarse realtime clock */
  struct timespec opened;
  clock_gettime(CLOCK_REALTIME_COARSE, &opened);
  struct stat id;
  memset(&id, 0, sizeof id);
  uint8_t digest[16];
  uint64_t config_hash = XXH3_64bits(*cfg_text, cfg_len);
  int hit = 0;
  if ((rc = map_weights(m, path, &id)) == AE_OK &&
      (rc = ae__safetensors_parse(m->map, m->map_len, path, st)) == AE_OK) {
    hit = cache_dir && *cache_dir && wcache_lookup(cache_dir, &id, config_hash, digest);
    rc = bind_weights(m, st, path, !hit);
  }
  if (rc == AE_OK &&
      (rc = ae__st_modules_load(m->dir, m->cfg.hidden, &m->pooling, &m->normalize)) == AE_OK &&
      (rc = ae__max_length_load(m->dir, m->cfg.max_positions, max_length_override, &m->max_length)) == AE_OK) {
    if (!hit) digest_of(m->map, m->map_len, digest);
    rc = fingerprint(m, *cfg_text, cfg_len, st, digest);
  }
  if (rc == AE_OK && !hit && cache_dir && *cache_dir)
    wcache_store(cache_dir, &id, config_hash, digest, &opened);
  m->weights_cached = hit;
  ae__free(path);
  return rc;
}

int ae__bert_load(const char *dir, int max_length_override, ae__bert_model **out) {
  return ae__bert_load_ex(dir, max_length_override, NULL, out);
}

int ae__bert_load_ex(const char *dir, int max_length_override, const char *cache_dir,
                     ae__bert_model **out) {
  *out = NULL;
  if (!dir || !*dir) return ae__error(AE_EINVAL, "model folder: empty path");
  ae__bert_model *m = ae__calloc(1, sizeof *m);
  if (!m) return ae__error(AE_ENOMEM, "%s: out of memory", dir);
  char *cfg_text = NULL;
  ae__st_file st;
  memset(&st, 0, sizeof st);
  int rc = (m->dir = ae__strdup(dir)) ? load_parts(m, max_length_override, cache_dir, &cfg_text, &st)
                                      : ae__error(AE_ENOMEM, "%s: out of memory", dir);
  ae__st_file_free(&st);
  ae__free(cfg_text);
  if (rc) {
    ae__bert_free(m);
    return rc;
  }
  *out = m;
  return AE_OK;
}

int ae_model_info_load(const char *dir, int max_length, ae_model_info *info) {
  ae__bert_model *m;
  int rc = ae__bert_load(dir, max_length, &m);
  if (rc) return rc;
  const ae__bert_config *c = &m->cfg;
  *info = (ae_model_info){
      .hidden_size = c->hidden, .num_hidden_layers = c->layers, .num_attention_heads = c->heads,
      .intermediate_size = c->intermediate, .vocab_size = c->vocab,
      .max_position_embeddings = c->max_positions, .type_vocab_size = c->type_vocab,
      .pad_token_id = c->pad_id, .layer_norm_eps = c->ln_eps, .pooling = m->pooling,
      .normalize = m->normalize, .max_length = m->max_length, .parameters = m->n_params,
      .bert_prefix = m->bert_prefix};
  snprintf(info->hidden_act, sizeof info->hidden_act, "%s", ae__act_name(c->act));
  snprintf(info->dtype, sizeof info->dtype, "%s", m->dtype);
  memcpy(info->fingerprint, m->fingerprint, 16);
  ae__bert_free(m);
  return AE_OK;
}

void ae__bert_free(ae__bert_model *m) {
  if (!m) return;
  if (m->map) munmap(m->map, m->map_len);
  ae__free(m->converted);
  ae__free(m->layer);
  ae__free(m->dir);
  ae__free(m);
}
