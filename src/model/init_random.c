/* Random-weight model folders: the shape of a real model (its config, tokenizer and
 * sentence-transformers files) with deterministic random weights, so tests and
 * benchmarks can run the real code paths without the real weights. Variants
 * (fewer layers, another pooling, no Normalize, "bert."-prefixed names, F16/BF16)
 * exercise the loader's and the forward pass's options. */
#define _GNU_SOURCE
#include "model/model.h"
#include "model/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

void ae_model_random_options_default(ae_model_random_options *o) {
  memset(o, 0, sizeof *o);
  o->dtype = "F32";
  o->pooling = -1;
  o->normalize = -1;
}

int ae_model_init_random(const char *like_dir, const char *out_dir, uint64_t seed, const char *dtype) {
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.seed = seed;
  if (dtype) o.dtype = dtype;
  return ae_model_init_random_opts(like_dir, out_dir, &o);
}

/* ---- files ------------------------------------------------------------------ */

static int mkdir_p(const char *dir) {
  char buf[PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
    return ae__error(AE_EINVAL, "%s: path too long", dir);
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p) continue;
    char c = *p;
    *p = 0;
    if (mkdir(buf, 0777) && errno != EEXIST) return ae__error(AE_EIO, "%s: mkdir: %s", buf, strerror(errno));
    *p = c;
    if (!c) break;
  }
  return AE_OK;
}

/* Temp file + rename: a reader never sees a half-written file. */
static int write_atomic(const char *path, const void *data, size_t len) {
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  FILE *f = fopen(tmp, "wb");
  if (!f) return ae__error(AE_EIO, "%s: %s", tmp, strerror(errno));
  int ok = fwrite(data, 1, len, f) == len && fflush(f) == 0;
  ok = (fclose(f) == 0) && ok;
  if (!ok || rename(tmp, path)) {
    int e = errno;
    unlink(tmp);
    return ae__error(AE_EIO, "%s: write failed: %s", path, strerror(e));
  }
  return AE_OK;
}

static int write_json(const char *dir, const char *name, json_t *v) {
  char *text = v ? json_dumps(v, JSON_INDENT(2)) : NULL;
  char *path = ae__path_join(dir, name);
  int rc = text && path ? write_atomic(path, text, strlen(text))
                        : ae__error(AE_ENOMEM, "%s/%s: out of memory", dir, name);
  free(text);
  ae__free(path);
  return rc;
}

/* Copies like/name to out/name when it exists; otherwise removes a stale out/name
 * so that the folder describes exactly what like has. */
static int copy_or_remove(const char *like, const char *out, const char *name) {
  char *src = ae__path_join(like, name), *dst = ae__path_join(out, name), *data = NULL;
  size_t len;
  int rc = AE_OK;
  if (!src || !dst) rc = ae__error(AE_ENOMEM, "%s: out of memory", name);
  else if (ae__file_exists(src)) {
    if ((rc = ae__read_file(src, &data, &len)) == AE_OK) rc = write_atomic(dst, data, len);
  } else if (unlink(dst) && errno != ENOENT)
    rc = ae__error(AE_EIO, "%s: %s", dst, strerror(errno));
  ae__free(data);
  ae__free(src);
  ae__free(dst);
  return rc;
}

/* ---- config ------------------------------------------------------------------- */

static int config_overridden(const ae_model_random_options *o) {
  return o->layers || o->hidden || o->heads || o->intermediate || o->max_positions || o->hidden_act;
}

/* config.json: copied byte for byte, or like's JSON with the overridden keys. */
static int write_config(const char *like, const char *out, const char *text, size_t len,
                        const ae_model_random_options *o) {
  char *dst = ae__path_join(out, "config.json");
  if (!dst) return ae__error(AE_ENOMEM, "%s: out of memory", out);
  int rc;
  if (!config_overridden(o)) rc = write_atomic(dst, text, len);
  else {
    json_t *root = json_loadb(text, len, 0, NULL);
    if (o->layers) json_object_set_new(root, "num_hidden_layers", json_integer(o->layers));
    if (o->hidden) json_object_set_new(root, "hidden_size", json_integer(o->hidden));
    if (o->heads) json_object_set_new(root, "num_attention_heads", json_integer(o->heads));
    if (o->intermediate) json_object_set_new(root, "intermediate_size", json_integer(o->intermediate));
    if (o->max_positions) json_object_set_new(root, "max_position_embeddings", json_integer(o->max_positions));
    if (o->hidden_act) json_object_set_new(root, "hidden_act", json_string(o->hidden_act));
    rc = write_json(out, "config.json", root);
    json_decref(root);
  }
  ae__free(dst);
  return rc;
}

/* modules.json + 1_Pooling/config.json as sentence-transformers writes them. */
static int write_st_modules(const char *out, int hidden, int pooling, int normalize) {
  json_t *mods = json_pack("[{s:i,s:s,s:s,s:s},{s:i,s:s,s:s,s:s}]",
      "idx", 0, "name", "0", "path", "", "type", "sentence_transformers.models.Transformer",
      "idx", 1, "name", "1", "path", "1_Pooling", "type", "sentence_transformers.models.Pooling");
  if (normalize)
    json_array_append_new(mods, json_pack("{s:i,s:s,s:s,s:s}", "idx", 2, "name", "2", "path",
                                          "2_Normalize", "type", "sentence_transformers.models.Normalize"));
  json_t *pc = json_pack("{s:i,s:b,s:b,s:b,s:b}", "word_embedding_dimension", hidden,
                         "pooling_mode_cls_token", pooling == AE_POOL_CLS,
                         "pooling_mode_mean_tokens", pooling == AE_POOL_MEAN,
                         "pooling_mode_max_tokens", pooling == AE_POOL_MAX,
                         "pooling_mode_mean_sqrt_len_tokens", pooling == AE_POOL_MEAN_SQRT_LEN);
  char *pdir = ae__path_join(out, "1_Pooling");
  int rc = !pdir ? ae__error(AE_ENOMEM, "%s: out of memory", out) : mkdir_p(pdir);
  if (rc == AE_OK) rc = write_json(out, "modules.json", mods);
  if (rc == AE_OK) rc = write_json(out, "1_Pooling/config.json", pc);
  ae__free(pdir);
  json_decref(mods);
  json_decref(pc);
  return rc;
}

/* The Pooling module's folder in like's modules.json ("1_Pooling" by default);
 * ae__st_modules_load has already validated the file. */
static int pooling_path(const char *like, char *out, size_t cap) {
  snprintf(out, cap, "1_Pooling");
  char *path = ae__path_join(like, "modules.json");
  if (!path) return ae__error(AE_ENOMEM, "%s: out of memory", like);
  json_t *mods = ae__file_exists(path) ? json_load_file(path, 0, NULL) : NULL;
  size_t i;
  json_t *m;
  json_array_foreach(mods, i, m) {
    const char *type = json_string_value(json_object_get(m, "type")),
               *p = json_string_value(json_object_get(m, "path"));
    size_t tl = type ? strlen(type) : 0;
    if (p && *p && tl >= 7 && !strcmp(type + tl - 7, "Pooling")) snprintf(out, cap, "%s", p);
  }
  json_decref(mods);
  ae__free(path);
  return AE_OK;
}

static int write_side_files(const char *like, const char *out, const ae__bert_config *lc,
                            const ae__bert_config *c, const ae_model_random_options *o) {
  static const char *const copied[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json",
                                       "special_tokens_map.json", "config_sentence_transformers.json"};
  int rc;
  for (size_t i = 0; i < sizeof copied / sizeof *copied; i++)
    if ((rc = copy_or_remove(like, out, copied[i]))) return rc;
  if (o->max_seq_length > 0) {
    json_t *sb = json_pack("{s:i,s:b}", "max_seq_length", o->max_seq_length, "do_lower_case", 0);
    rc = write_json(out, "sentence_bert_config.json", sb);
    json_decref(sb);
  } else rc = copy_or_remove(like, out, "sentence_bert_config.json");
  if (rc) return rc;
  int pooling, normalize;
  if ((rc = ae__st_modules_load(like, lc->hidden, &pooling, &normalize))) return rc;
  if (o->pooling < 0 && o->normalize < 0 && c->hidden == lc->hidden) {
    char pool[512];
    if ((rc = pooling_path(like, pool, sizeof pool))) return rc;
    char *pdir = ae__path_join(out, pool), *pcfg = ae__path_join(pool, "config.json");
    rc = !pdir || !pcfg ? ae__error(AE_ENOMEM, "%s: out of memory", out) : mkdir_p(pdir);
    if (rc == AE_OK) rc = copy_or_remove(like, out, "modules.json");
    if (rc == AE_OK) rc = copy_or_remove(like, out, pcfg);
    ae__free(pdir);
    ae__free(pcfg);
    return rc;
  }
  return write_st_modules(out, c->hidden, o->pooling >= 0 ? o->pooling : pooling,
                          o->normalize >= 0 ? o->normalize : normalize);
}

/* ---- weights ------------------------------------------------------------------ */

/* xoshiro256** seeded by splitmix64 (Vigna): fast, good statistically, and fully
 * specified, so the same seed gives the same model on every machine. Each tensor
 * gets its own stream seeded from (seed, name without "bert."), so its values do
 * not depend on the dtype, the prefix or which other tensors exist: a 2-layer
 * variant shares its embeddings and first layers with the 6-layer model. */
typedef struct { uint64_t s[4]; double spare; int has_spare; } rng;

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng *r) {
  uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
  s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t; s[3] = rotl(s[3], 45);
  return out;
}

static void rng_seed(rng *r, uint64_t seed, const char *stream) {
  uint64_t x = seed ^ XXH3_64bits(stream, strlen(stream));
  for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
  r->has_spare = 0;
}

/* Uniform in (0, 1): 53 random bits, never 0 (log below). */
static double rng_uniform(rng *r) { return ((rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

/* Standard normal by Box-Muller, both outputs used. */
static double rng_normal(rng *r) {
  if (r->has_spare) { r->has_spare = 0; return r->spare; }
  double u = rng_uniform(r), v = rng_uniform(r), m = sqrt(-2.0 * log(u));
  r->spare = m * sin(2 * M_PI * v);
  r->has_spare = 1;
  return m * cos(2 * M_PI * v);
}

enum { K_NORMAL, K_GAMMA, K_POSITION_IDS };

typedef struct {
  ae__st_spec *specs;
  int *kind;
  char (*names)[128];
  size_t n, cap;
  const char *prefix;
  int dtype;
  uint64_t seed;
} plan;

static void plan_add(plan *p, int kind, int64_t d0, int64_t d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void plan_add(plan *p, int kind, int64_t d0, int64_t d1, const char *fmt, ...) {
  char rel[112];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rel, sizeof rel, fmt, ap);
  va_end(ap);
  ae__st_spec *s = &p->specs[p->n];
  snprintf(p->names[p->n], sizeof p->names[p->n], "%s%s", p->prefix, rel);
  s->name = p->names[p->n];
  s->dtype = kind == K_POSITION_IDS ? AE__ST_I64 : p->dtype;
  s->ndim = d1 ? 2 : 1;
  s->shape[0] = d0;
  s->shape[1] = d1;
  p->kind[p->n++] = kind;
}

/* The tensors of a transformers BertModel checkpoint, including the ones the
 * loader must ignore (position_ids buffer, pooler). */
static void plan_tensors(plan *p, const ae__bert_config *c) {
  int64_t H = c->hidden, I = c->intermediate;
  plan_add(p, K_NORMAL, c->vocab, H, "embeddings.word_embeddings.weight");
  plan_add(p, K_NORMAL, c->max_positions, H, "embeddings.position_embeddings.weight");
  plan_add(p, K_NORMAL, c->type_vocab, H, "embeddings.token_type_embeddings.weight");
  plan_add(p, K_GAMMA, H, 0, "embeddings.LayerNorm.weight");
  plan_add(p, K_NORMAL, H, 0, "embeddings.LayerNorm.bias");
  plan_add(p, K_POSITION_IDS, 1, c->max_positions, "embeddings.position_ids");
  static const char *const lin[] = {"attention.self.query", "attention.self.key",
                                    "attention.self.value", "attention.output.dense"};
  for (int l = 0; l < c->layers; l++) {
    for (int k = 0; k < 4; k++) {
      plan_add(p, K_NORMAL, H, H, "encoder.layer.%d.%s.weight", l, lin[k]);
      plan_add(p, K_NORMAL, H, 0, "encoder.layer.%d.%s.bias", l, lin[k]);
    }
    plan_add(p, K_GAMMA, H, 0, "encoder.layer.%d.attention.output.LayerNorm.weight", l);
    plan_add(p, K_NORMAL, H, 0, "encoder.layer.%d.attention.output.LayerNorm.bias", l);
    plan_add(p, K_NORMAL, I, H, "encoder.layer.%d.intermediate.dense.weight", l);
    plan_add(p, K_NORMAL, I, 0, "encoder.layer.%d.intermediate.dense.bias", l);
    plan_add(p, K_NORMAL, H, I, "encoder.layer.%d.output.dense.weight", l);
    plan_add(p, K_NORMAL, H, 0, "encoder.layer.%d.output.dense.bias", l);
    plan_add(p, K_GAMMA, H, 0, "encoder.layer.%d.output.LayerNorm.weight", l);
    plan_add(p, K_NORMAL, H, 0, "encoder.layer.%d.output.LayerNorm.bias", l);
  }
  plan_add(p, K_NORMAL, H, H, "pooler.dense.weight");
  plan_add(p, K_NORMAL, H, 0, "pooler.dense.bias");
}

static void put_le(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Weights ~ N(0, 0.02) like BERT's initializer_range; LayerNorm gains 1 + N(0, 0.05)
 * and all biases N(0, 0.02) rather than exactly 1 and 0, so a forward pass that
 * forgot a bias or a gain would be caught by a reference comparison. */
static int fill(void *ud, size_t i, uint8_t *buf, size_t nbytes) {
  plan *p = ud;
  const ae__st_spec *s = &p->specs[i];
  size_t n = (size_t)(s->shape[0] * (s->ndim == 2 ? s->shape[1] : 1));
  if (p->kind[i] == K_POSITION_IDS) {
    for (size_t j = 0; j < n; j++) put_le(buf + 8 * j, j, 8);
    return AE_OK;
  }
  rng r;
  rng_seed(&r, p->seed, s->name + strlen(p->prefix));
  for (size_t j = 0; j < n; j++) {
    float v = (float)(p->kind[i] == K_GAMMA ? 1.0 + 0.05 * rng_normal(&r) : 0.02 * rng_normal(&r));
    if (s->dtype == AE__ST_F32) {
      uint32_t b;
      memcpy(&b, &v, 4);
      put_le(buf + 4 * j, b, 4);
    } else
      put_le(buf + 2 * j, s->dtype == AE__ST_F16 ? ae__f32_to_f16(v) : ae__f32_to_bf16(v), 2);
  }
  (void)nbytes;
  return AE_OK;
}

static int write_weights(const char *out, const ae__bert_config *c, const ae_model_random_options *o,
                         int dtype) {
  plan p = {.prefix = o->bert_prefix ? "bert." : "", .dtype = dtype, .seed = o->seed};
  p.cap = 8 + 16 * (size_t)c->layers;
  p.specs = ae__calloc(p.cap, sizeof *p.specs);
  p.kind = ae__calloc(p.cap, sizeof *p.kind);
  p.names = ae__calloc(p.cap, sizeof *p.names);
  char *path = ae__path_join(out, "model.safetensors");
  int rc;
  if (!p.specs || !p.kind || !p.names || !path) rc = ae__error(AE_ENOMEM, "%s: out of memory", out);
  else {
    plan_tensors(&p, c);
    rc = ae__safetensors_write(path, p.specs, p.n, fill, &p);
  }
  ae__free(path);
  ae__free(p.specs);
  ae__free(p.kind);
  ae__free(p.names);
  return rc;
}

/* ---- entry point ----------------------------------------------------------------- */

static int same_dir(const char *a, const char *b) {
  char ra[PATH_MAX], rb[PATH_MAX];
  return realpath(a, ra) && realpath(b, rb) && !strcmp(ra, rb);
}

static int apply_overrides(ae__bert_config *c, const ae_model_random_options *o, const char *what) {
  if (o->layers < 0 || o->hidden < 0 || o->heads < 0 || o->intermediate < 0 || o->max_positions < 0 ||
      o->max_seq_length < 0)
    return ae__error(AE_EINVAL, "%s: negative size", what);
  if (o->layers) c->layers = o->layers;
  if (o->hidden) c->hidden = o->hidden;
  if (o->heads) c->heads = o->heads;
  if (o->intermediate) c->intermediate = o->intermediate;
  if (o->max_positions) c->max_positions = o->max_positions;
  if (c->hidden % c->heads)
    return ae__error(AE_EINVAL, "%s: hidden size %d is not a multiple of %d heads", what, c->hidden,
                     c->heads);
  if (o->hidden_act && strcmp(o->hidden_act, "gelu") && strcmp(o->hidden_act, "gelu_new") &&
      strcmp(o->hidden_act, "relu"))
    return ae__error(AE_EUNSUPPORTED, "%s: hidden_act '%s' is not supported (gelu, gelu_new, relu)",
                     what, o->hidden_act);
  if (o->pooling < -1 || o->pooling > AE_POOL_MEAN_SQRT_LEN)
    return ae__error(AE_EINVAL, "%s: unknown pooling %d", what, o->pooling);
  return AE_OK;
}

/* RANDOM-WEIGHTS.txt: how every later reader (query's default mode, embed's note)
 * knows these weights mean nothing. Written last into the temporary folder, which is
 * renamed into place whole. */
#define RANDOM_MARKER "RANDOM-WEIGHTS.txt"
static int write_random_marker(const char *out) {
  static const char text[] = "astembed model init-random wrote this folder: its weights are random,"
                             " not pretrained. Searches rank lexically by default.\n";
  char *p = ae__path_join(out, RANDOM_MARKER);
  int rc = p ? write_atomic(p, text, sizeof text - 1) : ae__error(AE_ENOMEM, "out of memory");
  ae__free(p);
  return rc;
}

int ae_model_is_random(const char *dir) {
  if (!dir || !*dir) return 0;
  char *p = ae__path_join(dir, RANDOM_MARKER);
  int r = p && ae__file_exists(p);
  ae__free(p);
  return r;
}

/* ---- placing the folder -------------------------------------------------------- */

/* The folder is written whole into a temporary folder beside out (same filesystem) and
 * renamed into place at the end: a failure leaves nothing behind, and a reader never
 * sees half a model. out may be missing, an empty folder (rename replaces it), or a
 * model folder (config.json), which is replaced as a whole: exchanged with the new one
 * (renameat2 RENAME_EXCHANGE, or two renames where the filesystem lacks it), then
 * removed. A loader that still maps the old weights keeps its unlinked file. Any other
 * existing path is refused, so no foreign file is ever removed. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)st; (void)flag; (void)f;
  return remove(path) ? -1 : 0;
}
static void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int place_folder(const char *tmp, const char *out) {
  if (rename(tmp, out) == 0) return AE_OK;
  if (errno != ENOTEMPTY && errno != EEXIST)
    return ae__error(AE_EIO, "init-random: %s: cannot put the new folder in place: %s", out, strerror(errno));
  char *cfg = ae__path_join(out, "config.json");
  int is_model = cfg && ae__file_exists(cfg);
  ae__free(cfg);
  if (!is_model)
    return ae__error(AE_EINVAL, "init-random: %s exists and holds no model (no config.json): not replaced", out);
  if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE) == 0) {
    remove_tree(tmp); /* the old folder, now at tmp */
    return AE_OK;
  }
  char old[PATH_MAX + 8];
  snprintf(old, sizeof old, "%s.old", tmp);
  if (rename(out, old) != 0)
    return ae__error(AE_EIO, "init-random: %s: cannot move the old folder aside: %s", out, strerror(errno));
  if (rename(tmp, out) != 0) {
    int e = errno;
    if (rename(old, out)) {}
    return ae__error(AE_EIO, "init-random: %s: cannot put the new folder in place: %s", out, strerror(e));
  }
  remove_tree(old);
  return AE_OK;
}

static int write_folder(const char *like, const char *out, const char *text, size_t len,
                        const ae__bert_config *lc, const ae__bert_config *c,
                        const ae_model_random_options *o, int dtype) {
  int rc = write_config(like, out, text, len, o);
  if (rc == AE_OK) rc = write_side_files(like, out, lc, c, o);
  if (rc == AE_OK) rc = write_weights(out, c, o, dtype);
  if (rc == AE_OK) rc = write_random_marker(out);
  return rc;
}

int ae_model_init_random_opts(const char *like, const char *out, const ae_model_random_options *o) {
  if (!like || !*like || !out || !*out) return ae__error(AE_EINVAL, "init-random: empty folder path");
  const char *dt = o->dtype ? o->dtype : "F32";
  int dtype = ae__st_dtype_from_name(dt);
  if (dtype != AE__ST_F32 && dtype != AE__ST_F16 && dtype != AE__ST_BF16)
    return ae__error(AE_EINVAL, "init-random: dtype '%s' (want F32, F16 or BF16)", dt);
  char *cfg_path = ae__path_join(like, "config.json"), *text = NULL;
  size_t len = 0;
  ae__bert_config lc, c;
  memset(&lc, 0, sizeof lc);
  int rc = cfg_path ? ae__read_file(cfg_path, &text, &len) : ae__error(AE_ENOMEM, "out of memory");
  if (rc == AE_OK) rc = ae__bert_config_parse(text, len, cfg_path, &lc);
  c = lc;
  if (rc == AE_OK) rc = apply_overrides(&c, o, out);
  if (rc == AE_OK && same_dir(like, out))
    rc = ae__error(AE_EINVAL, "init-random: output folder %s is the --like folder", out);
  /* the temporary folder: "<out>.tmp.<pid>.<n>" beside out; out's parents are made first */
  char tmp[PATH_MAX], parent[PATH_MAX];
  size_t ol = strlen(out);
  while (ol > 1 && out[ol - 1] == '/') ol--;
  if (rc == AE_OK && ol + 16 >= sizeof tmp) rc = ae__error(AE_EINVAL, "init-random: %s: path too long", out);
  if (rc == AE_OK) {
    snprintf(parent, sizeof parent, "%.*s", (int)ol, out);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
      *slash = 0;
      rc = mkdir_p(parent);
    }
  }
  if (rc == AE_OK) {
    static atomic_uint seq;
    int made = 0;
    for (int i = 0; i < 100 && !made; i++) {
      snprintf(tmp, sizeof tmp, "%.*s.tmp.%ld.%u", (int)ol, out, (long)getpid(), atomic_fetch_add(&seq, 1));
      made = mkdir(tmp, 0777) == 0; /* the umask applies, as to any folder the user makes */
      if (!made && errno != EEXIST) break;
    }
    if (!made) rc = ae__error(AE_EIO, "init-random: %s: mkdir: %s", tmp, strerror(errno));
    else {
      rc = write_folder(like, tmp, text, len, &lc, &c, o, dtype);
      if (rc == AE_OK) {
        snprintf(parent, sizeof parent, "%.*s", (int)ol, out);
        rc = place_folder(tmp, parent);
      }
      if (rc != AE_OK) remove_tree(tmp);
    }
  }
  ae__free(cfg_path);
  ae__free(text);
  return rc;
}
