/* The compiled tokenizer: a loaded struct ae_tokenizer written out as one binary
 * file, so that the next process loads it with a few memcpys instead of parsing a
 * 700 KB tokenizer.json into a JSON DOM and re-inserting 30k vocabulary entries
 * (~18 ms for MiniLM, most of a short query's start-up).
 *
 * The file is named by its key: XXH3-128 over the format version and the exact
 * bytes of every file the loader reads for that folder, so an edited tokenizer gets
 * a new file and an old one is simply never asked for again. Hashing 700 KB costs
 * ~0.1 ms; it is the only per-load work on a hit besides reading the file.
 *
 * Layout (little-endian, host struct layout pinned by the version and sizes):
 *   header  magic "AETOKC\0\0", u32 version, u32 sizeof(ae__vocab_entry), key[16],
 *           u64 body length, u64 XXH3-64 of the body
 *   body    scalars (u64 each), added_first bitmaps, prefix, pre/post ids, string
 *           pool, entries, hash slots, id -> offset index, added tokens
 * The hash slots are stored too, so nothing is rehashed on load.
 *
 * The reader treats the file as hostile: the checksum only catches accidents, so
 * every count is bounded by the bytes present, every offset and index is checked
 * against what it indexes, and the probe table must keep an empty slot (a full one
 * would make lookups loop forever). Anything off is a miss, never a crash. */
#include "tokenizer/tokenizer.h"

#include <string.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#define TOKC_MAGIC "AETOKC\0\0"
#define TOKC_VERSION 1u
#define TOKC_HEADER 56
#define MAX_ID ((1 << 24) - 1)

/* ---- key ---------------------------------------------------------------------- */

/* Mixes one candidate file into the key: its name, whether it exists, its bytes. */
static int key_file(XXH3_state_t *s, const char *dir, const char *name) {
  char *path = ae__path_join(dir, name);
  if (!path) return AE_ENOMEM;
  char *data = NULL;
  size_t len = 0;
  uint64_t hdr[2] = {0, 0};
  int rc = AE_OK;
  if (ae__file_exists(path)) {
    rc = ae__read_file(path, &data, &len);
    hdr[0] = 1;
    hdr[1] = len;
  }
  if (rc == AE_OK) {
    XXH3_128bits_update(s, name, strlen(name) + 1);
    XXH3_128bits_update(s, hdr, sizeof hdr);
    if (len) XXH3_128bits_update(s, data, len);
  }
  ae__free(data);
  ae__free(path);
  return rc;
}

/* The files ae_tokenizer_load reads: tokenizer.json (+ tokenizer_config.json for
 * model_max_length), or vocab.txt + tokenizer_config.json + special_tokens_map.json. */
int ae__tok_cache_key(const char *model_dir, uint8_t key[16]) {
  XXH3_state_t s;
  XXH3_128bits_reset(&s);
  uint32_t v[2] = {TOKC_VERSION, (uint32_t)sizeof(ae__vocab_entry)};
  XXH3_128bits_update(&s, "astembed-tokenizer", 19);
  XXH3_128bits_update(&s, v, sizeof v);
  char *tj = ae__path_join(model_dir, "tokenizer.json");
  if (!tj) return AE_ENOMEM;
  int json = ae__file_exists(tj), rc;
  ae__free(tj);
  if (json) {
    if (!(rc = key_file(&s, model_dir, "tokenizer.json")))
      rc = key_file(&s, model_dir, "tokenizer_config.json");
  } else if (!(rc = key_file(&s, model_dir, "vocab.txt")) &&
             !(rc = key_file(&s, model_dir, "tokenizer_config.json"))) {
    rc = key_file(&s, model_dir, "special_tokens_map.json");
  }
  if (rc) return rc;
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&s));
  memcpy(key, c.digest, 16);
  return AE_OK;
}

/* ---- writer ------------------------------------------------------------------- */

typedef struct {
  uint8_t *p;
  size_t len, cap;
  int oom;
} wbuf;

static void put(wbuf *b, const void *src, size_t n) {
  if (b->oom || !n) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + n) cap *= 2;
    uint8_t *np = ae__realloc(b->p, cap);
    if (!np) { b->oom = 1; return; }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}

static void put_u64(wbuf *b, uint64_t v) { put(b, &v, sizeof v); }

enum {
  S_NORMALIZE, S_CLEAN, S_CHINESE, S_ACCENTS, S_LOWER, S_UNK, S_MAXCHARS, S_MODEL_MAX,
  S_ANY_NORM_ADDED, S_ONLY_FIRST0, S_ONLY_FIRST1, S_N_PRE, S_N_POST, S_N_ADDED, S_PREFIX_LEN,
  S_POOL_LEN, S_N_ENTRIES, S_N_SLOTS, S_N_IDS, S_COUNT
};

int ae__tok_compiled_encode(const ae_tokenizer *t, const uint8_t key[16], uint8_t **out,
                            size_t *out_len) {
  const ae__vocab *v = &t->vocab;
  wbuf b = {0};
  uint8_t zero[TOKC_HEADER] = {0};
  put(&b, zero, TOKC_HEADER);
  uint64_t sc[S_COUNT] = {
    [S_NORMALIZE] = (uint64_t)t->normalize, [S_CLEAN] = (uint64_t)t->clean_text,
    [S_CHINESE] = (uint64_t)t->handle_chinese, [S_ACCENTS] = (uint64_t)t->strip_accents,
    [S_LOWER] = (uint64_t)t->lowercase, [S_UNK] = (uint64_t)(int64_t)t->unk_id,
    [S_MAXCHARS] = t->max_input_chars_per_word, [S_MODEL_MAX] = (uint64_t)t->model_max_length,
    [S_ANY_NORM_ADDED] = (uint64_t)t->any_normalized_added,
    [S_ONLY_FIRST0] = (uint64_t)(int64_t)t->added_only_first[0],
    [S_ONLY_FIRST1] = (uint64_t)(int64_t)t->added_only_first[1],
    [S_N_PRE] = t->n_pre, [S_N_POST] = t->n_post, [S_N_ADDED] = t->n_added,
    [S_PREFIX_LEN] = t->prefix_len, [S_POOL_LEN] = v->pool_len, [S_N_ENTRIES] = v->n_entries,
    [S_N_SLOTS] = v->slots ? v->mask + 1 : 0, [S_N_IDS] = v->n_ids,
  };
  put(&b, sc, sizeof sc);
  put(&b, t->added_first, sizeof t->added_first);
  put(&b, t->prefix, t->prefix_len);
  put(&b, t->pre_ids, t->n_pre * sizeof(int32_t));
  put(&b, t->post_ids, t->n_post * sizeof(int32_t));
  put(&b, v->pool, v->pool_len);
  /* entries one by one through a zeroed copy: the struct's padding bytes are
   * indeterminate and must not leak into the file (or its checksum) */
  for (size_t i = 0; i < v->n_entries; i++) {
    ae__vocab_entry e;
    memset(&e, 0, sizeof e);
    e.off = v->entries[i].off;
    e.len = v->entries[i].len;
    e.tag = v->entries[i].tag;
    e.id = v->entries[i].id;
    e.cont = v->entries[i].cont;
    put(&b, &e, sizeof e);
  }
  put(&b, v->slots, (size_t)sc[S_N_SLOTS] * sizeof(uint32_t));
  put(&b, v->id_off, v->n_ids * sizeof(uint32_t));
  for (size_t i = 0; i < t->n_added; i++) {
    const ae__added_token *a = &t->added[i];
    size_t tl = strlen(a->text);
    uint8_t flags[8] = {a->single_word, a->lstrip, a->rstrip, a->normalized, a->special, 0, 0, 0};
    int32_t id[2] = {a->id, 0};
    put(&b, id, sizeof id);
    put(&b, flags, sizeof flags);
    put_u64(&b, a->len);
    put_u64(&b, tl);
    put(&b, a->content, a->len);
    put(&b, a->text, tl);
  }
  if (b.oom) { ae__free(b.p); return AE_ENOMEM; }
  uint64_t body_len = b.len - TOKC_HEADER;
  uint64_t sum = XXH3_64bits(b.p + TOKC_HEADER, body_len);
  uint32_t ver[2] = {TOKC_VERSION, (uint32_t)sizeof(ae__vocab_entry)};
  memcpy(b.p, TOKC_MAGIC, 8);
  memcpy(b.p + 8, ver, 8);
  memcpy(b.p + 16, key, 16);
  memcpy(b.p + 32, &body_len, 8);
  memcpy(b.p + 40, &sum, 8);
  *out = b.p;
  *out_len = b.len;
  return AE_OK;
}

/* ---- reader ------------------------------------------------------------------- */

typedef struct {
  const uint8_t *p;
  size_t left;
} rbuf;

/* The next n bytes, or NULL when fewer remain. */
static const uint8_t *take(rbuf *r, size_t n) {
  if (n > r->left) return NULL;
  const uint8_t *q = r->p;
  r->p += n;
  r->left -= n;
  return q;
}

/* n items of size sz copied into a fresh buffer (at least one item allocated, as the
 * loader does). */
static int take_array(rbuf *r, size_t n, size_t sz, void **out) {
  if (n > r->left / sz) return AE_EFORMAT;
  const uint8_t *src = take(r, n * sz);
  void *dst = ae__malloc((n ? n : 1) * sz);
  if (!dst) return AE_ENOMEM;
  if (n) memcpy(dst, src, n * sz);
  *out = dst;
  return AE_OK;
}

static char *take_string(rbuf *r, size_t n) {
  const uint8_t *s = take(r, n);
  if (!s || memchr(s, 0, n)) return NULL;
  char *d = ae__malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, s, n);
  d[n] = 0;
  return d;
}

static int check_vocab(ae__vocab *v, size_t n_slots) {
  if (!v->pool_len || v->pool_len >= UINT32_MAX || v->pool[v->pool_len - 1] != 0) return AE_EFORMAT;
  if (v->n_ids > (size_t)MAX_ID + 1 || v->n_entries >= UINT32_MAX) return AE_EFORMAT;
  /* the table must have a power-of-two size and at least one empty slot */
  if (n_slots < 2 || (n_slots & (n_slots - 1)) || v->n_entries >= n_slots) return AE_EFORMAT;
  size_t empty = 0;
  for (size_t i = 0; i < n_slots; i++) {
    if (v->slots[i] > v->n_entries) return AE_EFORMAT;
    empty += v->slots[i] == 0;
  }
  if (!empty) return AE_EFORMAT;
  v->max_len[0] = v->max_len[1] = 0;
  for (size_t i = 0; i < v->n_entries; i++) {
    const ae__vocab_entry *e = &v->entries[i];
    if (e->cont > 1 || e->id < 0 || (size_t)e->id >= v->n_ids ||
        (uint64_t)e->off + e->len >= v->pool_len || v->pool[e->off + e->len] != 0)
      return AE_EFORMAT;
    if (e->len > v->max_len[e->cont]) v->max_len[e->cont] = e->len;
  }
  for (size_t i = 0; i < v->n_ids; i++)
    if (v->id_off[i] != UINT32_MAX && v->id_off[i] >= v->pool_len) return AE_EFORMAT;
  return AE_OK;
}

static int take_added(rbuf *r, ae_tokenizer *t, size_t n) {
  if (n > r->left / 32) return AE_EFORMAT; /* each takes at least 32 bytes */
  if (!(t->added = ae__calloc(n ? n : 1, sizeof *t->added))) return AE_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const uint8_t *hdr = take(r, 32);
    if (!hdr) return AE_EFORMAT;
    int32_t id;
    uint64_t cl, tl;
    memcpy(&id, hdr, 4);
    memcpy(&cl, hdr + 16, 8);
    memcpy(&tl, hdr + 24, 8);
    const uint8_t *fl = hdr + 8;
    if (id < 0 || id > MAX_ID || !cl || cl > r->left || tl > r->left) return AE_EFORMAT;
    for (int k = 0; k < 5; k++)
      if (fl[k] > 1) return AE_EFORMAT;
    ae__added_token *a = &t->added[i];
    t->n_added = i + 1; /* counted now so that free releases a half-built entry */
    a->id = id;
    a->single_word = fl[0], a->lstrip = fl[1], a->rstrip = fl[2], a->normalized = fl[3];
    a->special = fl[4];
    a->len = (size_t)cl;
    if (!(a->content = take_string(r, (size_t)cl)) || !(a->text = take_string(r, (size_t)tl)))
      return AE_EFORMAT;
  }
  return AE_OK;
}

static int flag(uint64_t v, int *out) {
  if (v > 1) return AE_EFORMAT;
  *out = (int)v;
  return AE_OK;
}

static int take_body(rbuf *r, ae_tokenizer *t) {
  const uint8_t *scp = take(r, S_COUNT * 8);
  if (!scp) return AE_EFORMAT;
  uint64_t sc[S_COUNT];
  memcpy(sc, scp, sizeof sc);
  int64_t unk = (int64_t)sc[S_UNK], f0 = (int64_t)sc[S_ONLY_FIRST0], f1 = (int64_t)sc[S_ONLY_FIRST1];
  if (flag(sc[S_NORMALIZE], &t->normalize) || flag(sc[S_CLEAN], &t->clean_text) ||
      flag(sc[S_CHINESE], &t->handle_chinese) || flag(sc[S_ACCENTS], &t->strip_accents) ||
      flag(sc[S_LOWER], &t->lowercase) || flag(sc[S_ANY_NORM_ADDED], &t->any_normalized_added) ||
      unk < 0 || (uint64_t)unk >= sc[S_N_IDS] || sc[S_MODEL_MAX] >= 1000000 || f0 < -1 ||
      f0 > 255 || f1 < -1 || f1 > 255 || sc[S_PREFIX_LEN] > 1024 || sc[S_N_SLOTS] > r->left / 4)
    return AE_EFORMAT;
  t->unk_id = (int32_t)unk;
  t->max_input_chars_per_word = (size_t)sc[S_MAXCHARS];
  t->model_max_length = (int)sc[S_MODEL_MAX];
  t->added_only_first[0] = (int)f0;
  t->added_only_first[1] = (int)f1;
  const uint8_t *af = take(r, sizeof t->added_first);
  if (!af) return AE_EFORMAT;
  memcpy(t->added_first, af, sizeof t->added_first);
  t->prefix_len = (size_t)sc[S_PREFIX_LEN];
  if (!(t->prefix = take_string(r, t->prefix_len))) return AE_EFORMAT;
  ae__vocab *v = &t->vocab;
  int rc;
  if ((rc = take_array(r, sc[S_N_PRE], 4, (void **)&t->pre_ids)) ||
      (rc = take_array(r, sc[S_N_POST], 4, (void **)&t->post_ids)) ||
      (rc = take_array(r, sc[S_POOL_LEN], 1, (void **)&v->pool)) ||
      (rc = take_array(r, sc[S_N_ENTRIES], sizeof(ae__vocab_entry), (void **)&v->entries)) ||
      (rc = take_array(r, sc[S_N_SLOTS], 4, (void **)&v->slots)) ||
      (rc = take_array(r, sc[S_N_IDS], 4, (void **)&v->id_off)))
    return rc;
  t->n_pre = (size_t)sc[S_N_PRE];
  t->n_post = (size_t)sc[S_N_POST];
  v->pool_len = v->pool_cap = (size_t)sc[S_POOL_LEN];
  v->n_entries = v->entries_cap = (size_t)sc[S_N_ENTRIES];
  v->mask = (size_t)sc[S_N_SLOTS] - 1;
  v->n_ids = (size_t)sc[S_N_IDS];
  if ((rc = check_vocab(v, (size_t)sc[S_N_SLOTS]))) return rc;
  if ((rc = take_added(r, t, (size_t)sc[S_N_ADDED]))) return rc;
  return r->left ? AE_EFORMAT : AE_OK;
}

int ae__tok_compiled_decode(const uint8_t *data, size_t len, const uint8_t key[16],
                            ae_tokenizer *t) {
  if (len < TOKC_HEADER || memcmp(data, TOKC_MAGIC, 8)) return AE_EFORMAT;
  uint32_t ver[2];
  uint64_t body_len, sum;
  memcpy(ver, data + 8, 8);
  memcpy(&body_len, data + 32, 8);
  memcpy(&sum, data + 40, 8);
  if (ver[0] != TOKC_VERSION || ver[1] != sizeof(ae__vocab_entry) || memcmp(data + 16, key, 16) ||
      body_len != len - TOKC_HEADER || XXH3_64bits(data + TOKC_HEADER, body_len) != sum)
    return AE_EMISMATCH;
  rbuf r = {data + TOKC_HEADER, (size_t)body_len};
  return take_body(&r, t);
}
