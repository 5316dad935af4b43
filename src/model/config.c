/* config.json and the sentence-transformers files of a model folder, plus the
 * half/bfloat16 conversions the loader and the random-model writer share. */
#include "model/model.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- config.json ----------------------------------------------------------- */

/* Reads an integer key into *out, checking lo <= value <= hi. A missing or null
 * key is an error when required, else *out = def. */
static int get_int(json_t *root, const char *what, const char *key, int required, int def,
                   long long lo, long long hi, int *out) {
  json_t *v = json_object_get(root, key);
  if (!v || json_is_null(v)) {
    if (required) return ae__error(AE_ENOTFOUND, "%s: key '%s' is missing", what, key);
    *out = def;
    return AE_OK;
  }
  if (!json_is_integer(v)) return ae__error(AE_EFORMAT, "%s: key '%s' must be an integer", what, key);
  long long x = json_integer_value(v);
  if (x < lo || x > hi)
    return ae__error(x < 1 ? AE_EINVAL : AE_ERANGE, "%s: key '%s' is %lld, must be in [%lld, %lld]",
                     what, key, x, lo, hi);
  *out = (int)x;
  return AE_OK;
}

/* Which checkpoints the BERT forward pass computes correctly. RoBERTa-style models
 * (roberta, xlm-roberta, camembert) share the layer layout but number positions
 * from pad_token_id + 1 and have no token types; loading them as BERT would give
 * plausible-looking wrong vectors, so they are refused by name. */
static int check_architecture(json_t *root, const char *what) {
  json_t *mt = json_object_get(root, "model_type"), *arch = json_object_get(root, "architectures");
  if (mt && !json_is_string(mt)) return ae__error(AE_EFORMAT, "%s: key 'model_type' must be a string", what);
  if (mt) {
    const char *t = json_string_value(mt);
    if (strcmp(t, "bert") == 0) return AE_OK;
    if (strstr(t, "roberta") || strcmp(t, "camembert") == 0)
      return ae__error(AE_EUNSUPPORTED, "%s: model_type '%s' is not supported: RoBERTa-family "
                       "models offset positions by pad_token_id+1 (only BERT is supported)", what, t);
    return ae__error(AE_EUNSUPPORTED, "%s: model_type '%.60s' is not supported (only 'bert')", what, t);
  }
  /* Old configs without model_type: accept a Bert* architecture. */
  size_t i;
  json_t *a;
  if (json_is_array(arch))
    json_array_foreach(arch, i, a)
      if (json_is_string(a) && strncmp(json_string_value(a), "Bert", 4) == 0) return AE_OK;
  return ae__error(AE_EUNSUPPORTED, "%s: neither model_type 'bert' nor a Bert* architecture: "
                   "not a BERT model", what);
}

static int parse_act(json_t *root, const char *what, int *act) {
  json_t *v = json_object_get(root, "hidden_act");
  if (!v) { *act = AE__ACT_GELU; return AE_OK; } /* BertConfig's default */
  if (!json_is_string(v)) return ae__error(AE_EFORMAT, "%s: key 'hidden_act' must be a string", what);
  const char *s = json_string_value(v);
  if (!strcmp(s, "gelu")) *act = AE__ACT_GELU;
  else if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh")) *act = AE__ACT_GELU_NEW;
  else if (!strcmp(s, "relu")) *act = AE__ACT_RELU;
  else return ae__error(AE_EUNSUPPORTED, "%s: hidden_act '%.40s' is not supported (gelu, gelu_new, "
                        "relu)", what, s);
  return AE_OK;
}

static int parse_fields(json_t *root, const char *what, ae__bert_config *c) {
  int rc;
  if ((rc = check_architecture(root, what))) return rc;
  json_t *pe = json_object_get(root, "position_embedding_type");
  if (pe && !(json_is_string(pe) && !strcmp(json_string_value(pe), "absolute")))
    return ae__error(AE_EUNSUPPORTED, "%s: position_embedding_type '%.40s' is not supported "
                     "(only 'absolute')", what, json_is_string(pe) ? json_string_value(pe) : "?");
  if ((rc = get_int(root, what, "hidden_size", 1, 0, 1, 65536, &c->hidden)) ||
      (rc = get_int(root, what, "num_hidden_layers", 1, 0, 1, 1024, &c->layers)) ||
      (rc = get_int(root, what, "num_attention_heads", 1, 0, 1, 4096, &c->heads)) ||
      (rc = get_int(root, what, "intermediate_size", 1, 0, 1, 1 << 20, &c->intermediate)) ||
      (rc = get_int(root, what, "vocab_size", 1, 0, 1, 1 << 24, &c->vocab)) ||
      (rc = get_int(root, what, "max_position_embeddings", 1, 0, 1, 1 << 20, &c->max_positions)) ||
      (rc = get_int(root, what, "type_vocab_size", 0, 2, 1, 1 << 16, &c->type_vocab)) ||
      (rc = get_int(root, what, "pad_token_id", 0, 0, 0, c->vocab - 1, &c->pad_id)))
    return rc;
  if (c->hidden % c->heads)
    return ae__error(AE_EINVAL, "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                     what, c->hidden, c->heads);
  json_t *eps = json_object_get(root, "layer_norm_eps");
  c->ln_eps = 1e-12f;
  if (eps) {
    if (!json_is_number(eps)) return ae__error(AE_EFORMAT, "%s: key 'layer_norm_eps' must be a number", what);
    double e = json_number_value(eps);
    if (!(e > 0 && e < 1)) return ae__error(AE_EINVAL, "%s: layer_norm_eps %g must be in (0, 1)", what, e);
    c->ln_eps = (float)e;
  }
  return parse_act(root, what, &c->act);
}

int ae__bert_config_parse(const char *text, size_t len, const char *what, ae__bert_config *c) {
  memset(c, 0, sizeof *c);
  json_error_t je;
  json_t *root = json_loadb(text, len, 0, &je);
  if (!root)
    return ae__error(AE_EFORMAT, "%s: malformed JSON: %s (line %d, column %d)", what, je.text,
                     je.line, je.column);
  int rc = json_is_object(root) ? parse_fields(root, what, c)
                                : ae__error(AE_EFORMAT, "%s: not a JSON object", what);
  json_decref(root);
  return rc;
}

int64_t ae__bert_param_count(const ae__bert_config *c) {
  int64_t H = c->hidden, I = c->intermediate;
  int64_t emb = ((int64_t)c->vocab + c->max_positions + c->type_vocab) * H + 2 * H;
  int64_t layer = 4 * (H * H + H) + 2 * H + (I * H + I) + (H * I + H) + 2 * H;
  return emb + c->layers * layer;
}

const char *ae__act_name(int act) {
  return act == AE__ACT_GELU ? "gelu" : act == AE__ACT_GELU_NEW ? "gelu_new"
       : act == AE__ACT_RELU ? "relu" : "?";
}

static const char *const pool_names[] = {"mean", "cls", "max", "mean_sqrt_len"};

const char *ae_pooling_name(int p) { return p >= 0 && p < 4 ? pool_names[p] : "?"; }

int ae_pooling_parse(const char *name) {
  for (int p = 0; p < 4; p++)
    if (!strcmp(pool_names[p], name)) return p;
  return -1;
}

/* ---- sentence-transformers files -------------------------------------------- */

/* Loads dir/name as JSON. *root = NULL (and AE_OK) when the file does not exist. */
static int load_json_opt(const char *dir, const char *name, size_t flags, json_t **root) {
  *root = NULL;
  char *path = ae__path_join(dir, name), *text = NULL;
  size_t len;
  if (!path) return ae__error(AE_ENOMEM, "%s/%s: out of memory", dir, name);
  int rc = AE_OK;
  if (ae__file_exists(path) && (rc = ae__read_file(path, &text, &len)) == AE_OK) {
    json_error_t je;
    if (!(*root = json_loadb(text, len, flags, &je)))
      rc = ae__error(AE_EFORMAT, "%s: malformed JSON: %s (line %d, column %d)", path, je.text,
                     je.line, je.column);
  }
  ae__free(text);
  ae__free(path);
  return rc;
}

static const char *module_kind(const char *type) {
  const char *dot = strrchr(type, '.');
  return dot ? dot + 1 : type;
}

/* modules.json lists the pipeline: Transformer, then Pooling, then optionally
 * Normalize. Anything else (Dense, LayerNorm, CNN, ...) changes the vectors in a way
 * the encoder does not implement, so it is refused rather than silently skipped. */
static int parse_modules(json_t *mods, const char *what, char *pool_path, size_t cap, int *normalize) {
  if (!json_is_array(mods)) return ae__error(AE_EFORMAT, "%s: not a JSON array", what);
  size_t i;
  json_t *m;
  json_array_foreach(mods, i, m) {
    json_t *type = json_object_get(m, "type"), *path = json_object_get(m, "path");
    if (!json_is_string(type))
      return ae__error(AE_EFORMAT, "%s: module %zu has no 'type' string", what, i);
    if (path && !json_is_string(path))
      return ae__error(AE_EFORMAT, "%s: module %zu: 'path' is not a string", what, i);
    const char *kind = module_kind(json_string_value(type)), *p = path ? json_string_value(path) : "";
    if (!strcmp(kind, "Transformer")) continue;
    if (!strcmp(kind, "Normalize")) { *normalize = 1; continue; }
    if (strcmp(kind, "Pooling"))
      return ae__error(AE_EUNSUPPORTED, "%s: module %zu '%.80s' is not supported (only Transformer, "
                       "Pooling and Normalize)", what, i, json_string_value(type));
    if (p[0] == '/' || strstr(p, "..") || strlen(p) >= cap)
      return ae__error(AE_EFORMAT, "%s: Pooling path '%.80s' must be a folder inside the model",
                       what, p);
    strcpy(pool_path, p);
  }
  return AE_OK;
}

static int parse_pooling(json_t *pc, const char *what, int hidden, int *pooling) {
  static const struct { const char *key; int mode; } modes[] = {
    {"pooling_mode_mean_tokens", AE_POOL_MEAN}, {"pooling_mode_cls_token", AE_POOL_CLS},
    {"pooling_mode_max_tokens", AE_POOL_MAX}, {"pooling_mode_mean_sqrt_len_tokens", AE_POOL_MEAN_SQRT_LEN},
    {"pooling_mode_weightedmean_tokens", -1}, {"pooling_mode_lasttoken", -1},
  };
  if (!json_is_object(pc)) return ae__error(AE_EFORMAT, "%s: not a JSON object", what);
  json_t *dim = json_object_get(pc, "word_embedding_dimension");
  if (json_is_integer(dim) && json_integer_value(dim) != hidden)
    return ae__error(AE_EMISMATCH, "%s: word_embedding_dimension %lld, config.json hidden_size %d",
                     what, (long long)json_integer_value(dim), hidden);
  char on[160] = "";
  int n = 0;
  for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
    if (!json_is_true(json_object_get(pc, modes[i].key))) continue;
    if (modes[i].mode < 0)
      return ae__error(AE_EUNSUPPORTED, "%s: %s is not supported (mean, cls, max, mean_sqrt_len)",
                       what, modes[i].key);
    *pooling = modes[i].mode;
    snprintf(on + strlen(on), sizeof on - strlen(on), "%s%s", n ? ", " : "", modes[i].key);
    n++;
  }
  if (n == 0) return ae__error(AE_EFORMAT, "%s: no pooling mode is enabled", what);
  if (n > 1)
    return ae__error(AE_EUNSUPPORTED, "%s: several pooling modes at once (%s): concatenated "
                     "outputs are not supported", what, on);
  return AE_OK;
}

int ae__st_modules_load(const char *dir, int hidden, int *pooling, int *normalize) {
  char pool_path[512] = "1_Pooling", what[4200];
  *pooling = AE_POOL_MEAN;
  *normalize = 0;
  json_t *root;
  int rc = load_json_opt(dir, "modules.json", 0, &root);
  if (rc) return rc;
  if (root) {
    snprintf(what, sizeof what, "%s/modules.json", dir);
    rc = parse_modules(root, what, pool_path, sizeof pool_path, normalize);
    json_decref(root);
    if (rc) return rc;
  }
  char name[600];
  snprintf(name, sizeof name, "%s%sconfig.json", pool_path, pool_path[0] ? "/" : "");
  if ((rc = load_json_opt(dir, name, 0, &root)) || !root) return rc;
  snprintf(what, sizeof what, "%s/%s", dir, name);
  rc = parse_pooling(root, what, hidden, pooling);
  json_decref(root);
  return rc;
}

/* Tokenizers store "no limit" as a huge sentinel (int(1e30)); jansson cannot hold
 * that as an integer, so tokenizer_config.json is read with integers as reals. */
int ae__max_length_load(const char *dir, int max_positions, int override, int *max_length) {
  if (override < 0) return ae__error(AE_EINVAL, "max_length %d must not be negative", override);
  if (override > 0) {
    if (override > max_positions)
      return ae__error(AE_ERANGE, "%s: max_length %d exceeds max_position_embeddings %d", dir,
                       override, max_positions);
    *max_length = override;
    return AE_OK;
  }
  int len = 0;
  json_t *root;
  int rc = load_json_opt(dir, "sentence_bert_config.json", 0, &root);
  if (rc) return rc;
  if (root) {
    json_t *v = json_object_get(root, "max_seq_length");
    if (v && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) > 0))
      rc = ae__error(AE_EFORMAT, "%s/sentence_bert_config.json: max_seq_length must be a positive "
                     "integer", dir);
    else if (v && json_is_integer(v))
      len = json_integer_value(v) > max_positions ? max_positions : (int)json_integer_value(v);
    json_decref(root);
    if (rc) return rc;
  }
  if (!len) {
    if ((rc = load_json_opt(dir, "tokenizer_config.json", JSON_DECODE_INT_AS_REAL, &root))) return rc;
    json_t *v = root ? json_object_get(root, "model_max_length") : NULL;
    double x = json_is_number(v) ? json_number_value(v) : 0;
    if (x >= 1 && x < 1e6) len = x > max_positions ? max_positions : (int)x;
    json_decref(root);
  }
  *max_length = len ? len : max_positions;
  return AE_OK;
}

/* A folder that holds only a tokenizer has no config.json and so no position bound:
 * the bound is then INT_MAX, reported as 0 (no length). config.json is read for its
 * one key here; ae__bert_load validates the rest. */
int ae_model_max_length(const char *dir, int *max_length) {
  json_t *root;
  int rc = load_json_opt(dir, "config.json", 0, &root), positions = INT_MAX, len;
  if (rc) return rc;
  if (root) {
    char what[4200];
    snprintf(what, sizeof what, "%s/config.json", dir);
    rc = get_int(root, what, "max_position_embeddings", 0, INT_MAX, 1, INT_MAX, &positions);
    json_decref(root);
    if (rc) return rc;
  }
  if ((rc = ae__max_length_load(dir, positions, 0, &len))) return rc;
  *max_length = len == INT_MAX ? 0 : len;
  return AE_OK;
}

/* ---- half precision ------------------------------------------------------- */

/* Bit-level conversions so results do not depend on the compiler's _Float16 support
 * or the FPU rounding mode. f32 -> f16 rounds to nearest even: keep the top bits,
 * look at the dropped ones (above, at or below half an ulp). */
uint16_t ae__f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000, a = x & 0x7fffffff;
  if (a > 0x7f800000) return (uint16_t)(sign | 0x7e00);      /* NaN */
  if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00);     /* >= 65520 rounds to inf */
  if (a < 0x38800000) {                                      /* below 2^-14: subnormal */
    if (a < 0x33000000) return (uint16_t)sign;               /* <= 2^-25 rounds to 0 */
    uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000, shift = 126 - e;
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
    return (uint16_t)(sign | r);
  }
  uint32_t r = a - 0x38000000, h = r >> 13, rem = r & 0x1fff; /* rebias 127 -> 15 */
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
  return (uint16_t)(sign | h);
}

float ae__f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, x;
  if (e == 0x1f) x = sign | 0x7f800000 | (m << 13);
  else if (e) x = sign | ((e + 112) << 23) | (m << 13);
  else if (!m) x = sign;
  else {
    uint32_t s = 0;
    while (!(m & 0x400)) { m <<= 1; s++; }
    x = sign | ((113 - s) << 23) | ((m & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

uint16_t ae__f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
  return (uint16_t)((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float ae__bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}
