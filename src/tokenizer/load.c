/* Loading a Hugging Face tokenizer: tokenizer.json (BertNormalizer, BertPreTokenizer,
 * WordPiece, TemplateProcessing/BertProcessing, added tokens), or, when that file is
 * missing, vocab.txt + tokenizer_config.json (+ special_tokens_map.json) configured the
 * way transformers' BertTokenizerFast converts them. Anything else (BPE, Unigram, other
 * normalisers or pre-tokenizers) is refused with an error naming the file and the
 * unsupported piece, never tokenized approximately. */
#include "tokenizer/tokenizer.h"
#include "common/loadcache.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ids index a dense id -> token array, so a file must not be able to ask for a huge
 * one with a single stray id: 16M is far above any real vocabulary. */
#define MAX_ID ((1 << 24) - 1)

/* ---- small JSON helpers ---------------------------------------------------- */

static int load_json(const char *path, json_t **out) {
  char *data;
  size_t len;
  int rc = ae__read_file(path, &data, &len);
  if (rc) return rc;
  json_error_t err;
  *out = json_loadb(data, len, 0, &err);
  ae__free(data);
  if (!*out)
    return ae__error(AE_EFORMAT, "%s: invalid JSON at line %d, column %d: %s", path, err.line,
                     err.column, err.text);
  if (!json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    return ae__error(AE_EFORMAT, "%s: top-level value is not an object", path);
  }
  return AE_OK;
}

/* Boolean member with a default; a present non-boolean is an error. */
static int get_bool(const char *path, const char *where, json_t *obj, const char *key, int def,
                    int *out) {
  json_t *v = json_object_get(obj, key);
  if (!v || json_is_null(v)) { *out = def; return AE_OK; }
  if (!json_is_boolean(v))
    return ae__error(AE_EFORMAT, "%s: %s.%s is not a boolean", path, where, key);
  *out = json_is_true(v);
  return AE_OK;
}

/* A special-token value is a string or an AddedToken object {"content": ...}. */
static const char *token_text(json_t *v) {
  if (json_is_string(v)) return json_string_value(v);
  if (json_is_object(v) && json_is_string(json_object_get(v, "content")))
    return json_string_value(json_object_get(v, "content"));
  return NULL;
}

static int set_str(char **dst, const char *s) {
  char *d = ae__strdup(s);
  if (!d) return ae__error(AE_ENOMEM, "tokenizer: out of memory");
  ae__free(*dst);
  *dst = d;
  return AE_OK;
}

static int push_ids(int32_t **arr, size_t *n, const int32_t *ids, size_t k) {
  int32_t *na = ae__realloc(*arr, (*n + k + 1) * sizeof *na);
  if (!na) return ae__error(AE_ENOMEM, "tokenizer: out of memory");
  memcpy(na + *n, ids, k * sizeof *ids);
  *arr = na;
  *n += k;
  return AE_OK;
}

static int add_added(ae_tokenizer *t, const char *content, int32_t id, int single_word,
                     int lstrip, int rstrip, int normalized, int special) {
  if (!*content) return AE_OK; /* an empty pattern can never be matched */
  ae__added_token *na = ae__realloc(t->added, (t->n_added + 1) * sizeof *na);
  if (!na) return ae__error(AE_ENOMEM, "tokenizer: out of memory");
  t->added = na;
  ae__added_token *a = &t->added[t->n_added];
  memset(a, 0, sizeof *a);
  a->content = ae__strdup(content);
  a->text = ae__strdup(content);
  t->n_added++; /* counted now so that free releases a half-built entry */
  if (!a->content || !a->text) return ae__error(AE_ENOMEM, "tokenizer: out of memory");
  a->len = strlen(content);
  a->id = id;
  a->single_word = (uint8_t)single_word;
  a->lstrip = (uint8_t)lstrip;
  a->rstrip = (uint8_t)rstrip;
  a->normalized = (uint8_t)normalized;
  a->special = (uint8_t)special;
  return AE_OK;
}

/* ---- tokenizer.json ---------------------------------------------------------- */

static int parse_normalizer(ae_tokenizer *t, const char *path, json_t *n) {
  if (!n || json_is_null(n)) { t->normalize = 0; return AE_OK; }
  const char *type = json_string_value(json_object_get(n, "type"));
  if (!type || strcmp(type, "BertNormalizer"))
    return ae__error(AE_EUNSUPPORTED, "%s: normalizer '%s' is not supported (only BertNormalizer)",
                     path, type ? type : "?");
  int rc;
  t->normalize = 1;
  if ((rc = get_bool(path, "normalizer", n, "clean_text", 1, &t->clean_text)) ||
      (rc = get_bool(path, "normalizer", n, "handle_chinese_chars", 1, &t->handle_chinese)) ||
      (rc = get_bool(path, "normalizer", n, "lowercase", 1, &t->lowercase)))
    return rc;
  /* strip_accents: null means "follow lowercase", as in BertNormalizer::normalize */
  return get_bool(path, "normalizer", n, "strip_accents", t->lowercase, &t->strip_accents);
}

static int parse_pre_tokenizer(const char *path, json_t *p) {
  const char *type = p ? json_string_value(json_object_get(p, "type")) : NULL;
  if (!type || strcmp(type, "BertPreTokenizer"))
    return ae__error(AE_EUNSUPPORTED,
                     "%s: pre_tokenizer '%s' is not supported (only BertPreTokenizer)", path,
                     type ? type : (p && !json_is_null(p) ? "?" : "null"));
  return AE_OK;
}

static int parse_wordpiece(ae_tokenizer *t, const char *path, json_t *m, const char **unk) {
  if (!json_is_object(m)) return ae__error(AE_EFORMAT, "%s: missing \"model\" object", path);
  const char *type = json_string_value(json_object_get(m, "type"));
  if (type && strcmp(type, "WordPiece"))
    return ae__error(AE_EUNSUPPORTED,
                     "%s: tokenizer model type '%s' is not supported (only WordPiece)", path,
                     type);
  json_t *vocab = json_object_get(m, "vocab");
  if (!type && !json_object_get(m, "continuing_subword_prefix"))
    return ae__error(AE_EUNSUPPORTED, "%s: model has no type and is not a WordPiece model",
                     path);
  if (!json_is_object(vocab))
    return ae__error(AE_EFORMAT, "%s: model.vocab is not an object of token -> id", path);
  const char *key;
  json_t *val;
  json_object_foreach(vocab, key, val) {
    if (!json_is_integer(val) || json_integer_value(val) < 0 ||
        json_integer_value(val) > MAX_ID)
      return ae__error(AE_EFORMAT, "%s: model.vocab[\"%s\"] is not a valid id (0..%d)", path,
                       key, MAX_ID);
    int rc = ae__vocab_add(&t->vocab, key, strlen(key), (int32_t)json_integer_value(val));
    if (rc) return ae__error(rc, "%s: cannot add vocabulary entry \"%s\"", path, key);
  }
  json_t *u = json_object_get(m, "unk_token");
  *unk = json_is_string(u) ? json_string_value(u) : "[UNK]";
  json_t *p = json_object_get(m, "continuing_subword_prefix");
  int rc = set_str(&t->prefix, json_is_string(p) ? json_string_value(p) : "##");
  if (rc) return rc;
  json_t *mc = json_object_get(m, "max_input_chars_per_word");
  if (mc && !json_is_null(mc)) {
    if (!json_is_integer(mc) || json_integer_value(mc) < 0)
      return ae__error(AE_EFORMAT, "%s: model.max_input_chars_per_word is not a count", path);
    t->max_input_chars_per_word = (size_t)json_integer_value(mc);
  }
  return AE_OK;
}

/* Looks up a special token's ids in TemplateProcessing's special_tokens map. */
static int template_piece_ids(ae_tokenizer *t, const char *path, json_t *specials,
                              const char *name, int after) {
  json_t *sp = json_object_get(specials, name);
  json_t *ids = sp ? json_object_get(sp, "ids") : NULL;
  if (!json_is_array(ids))
    return ae__error(AE_EFORMAT, "%s: post_processor special token '%s' has no ids", path, name);
  size_t i;
  json_t *v;
  json_array_foreach(ids, i, v) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT32_MAX)
      return ae__error(AE_EFORMAT, "%s: post_processor special token '%s' has a bad id", path,
                       name);
    int32_t id = (int32_t)json_integer_value(v);
    int rc = after ? push_ids(&t->post_ids, &t->n_post, &id, 1)
                   : push_ids(&t->pre_ids, &t->n_pre, &id, 1);
    if (rc) return rc;
  }
  return AE_OK;
}

static int parse_template(ae_tokenizer *t, const char *path, json_t *pp) {
  json_t *single = json_object_get(pp, "single");
  json_t *specials = json_object_get(pp, "special_tokens");
  if (!json_is_array(single))
    return ae__error(AE_EFORMAT, "%s: post_processor.single is not an array", path);
  int seen_seq = 0;
  size_t i;
  json_t *piece;
  json_array_foreach(single, i, piece) {
    json_t *st = json_object_get(piece, "SpecialToken");
    json_t *sq = json_object_get(piece, "Sequence");
    if (sq) {
      if (seen_seq)
        return ae__error(AE_EUNSUPPORTED, "%s: post_processor.single repeats the sequence", path);
      seen_seq = 1;
    } else if (st && json_is_string(json_object_get(st, "id"))) {
      int rc = template_piece_ids(t, path, specials, json_string_value(json_object_get(st, "id")),
                                  seen_seq);
      if (rc) return rc;
    } else {
      return ae__error(AE_EFORMAT, "%s: post_processor.single[%zu] is not understood", path, i);
    }
  }
  if (!seen_seq)
    return ae__error(AE_EFORMAT, "%s: post_processor.single has no Sequence", path);
  return AE_OK;
}

/* BertProcessing / RobertaProcessing: {"cls": ["[CLS]", 101], "sep": ["[SEP]", 102]}. */
static int processing_pair(const char *path, json_t *pp, const char *key, int32_t *id) {
  json_t *a = json_object_get(pp, key);
  json_t *v = json_array_get(a, 1);
  if (!json_is_array(a) || !json_is_integer(v) || json_integer_value(v) < 0 ||
      json_integer_value(v) > INT32_MAX)
    return ae__error(AE_EFORMAT, "%s: post_processor.%s is not [token, id]", path, key);
  *id = (int32_t)json_integer_value(v);
  return AE_OK;
}

static int parse_post_processor(ae_tokenizer *t, const char *path, json_t *pp) {
  if (!pp || json_is_null(pp)) return AE_OK;
  const char *type = json_string_value(json_object_get(pp, "type"));
  if (type && !strcmp(type, "TemplateProcessing")) return parse_template(t, path, pp);
  if (type && (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing"))) {
    int32_t cls, sep;
    int rc;
    if ((rc = processing_pair(path, pp, "cls", &cls)) ||
        (rc = processing_pair(path, pp, "sep", &sep)) ||
        (rc = push_ids(&t->pre_ids, &t->n_pre, &cls, 1)) ||
        (rc = push_ids(&t->post_ids, &t->n_post, &sep, 1)))
      return rc;
    return AE_OK;
  }
  return ae__error(AE_EUNSUPPORTED,
                   "%s: post_processor '%s' is not supported (TemplateProcessing or "
                   "BertProcessing)", path, type ? type : "?");
}

static int parse_added_tokens(ae_tokenizer *t, const char *path, json_t *arr) {
  if (!arr || json_is_null(arr)) return AE_OK;
  if (!json_is_array(arr)) return ae__error(AE_EFORMAT, "%s: added_tokens is not an array", path);
  size_t i;
  json_t *a;
  json_array_foreach(arr, i, a) {
    json_t *id = json_object_get(a, "id");
    json_t *content = json_object_get(a, "content");
    if (!json_is_integer(id) || json_integer_value(id) < 0 ||
        json_integer_value(id) > MAX_ID || !json_is_string(content))
      return ae__error(AE_EFORMAT, "%s: added_tokens[%zu] needs an id and a content", path, i);
    int sw = 0, ls = 0, rs = 0, norm = 0, special = 0, rc;
    char where[48];
    snprintf(where, sizeof where, "added_tokens[%zu]", i);
    if ((rc = get_bool(path, where, a, "single_word", 0, &sw)) ||
        (rc = get_bool(path, where, a, "lstrip", 0, &ls)) ||
        (rc = get_bool(path, where, a, "rstrip", 0, &rs)) ||
        (rc = get_bool(path, where, a, "special", 0, &special)) ||
        (rc = get_bool(path, where, a, "normalized", !special, &norm)))
      return rc;
    rc = add_added(t, json_string_value(content), (int32_t)json_integer_value(id), sw, ls, rs,
                   norm, special);
    if (rc) return rc;
  }
  return AE_OK;
}

static int finish_vocab(ae_tokenizer *t, const char *path, const char *unk) {
  t->prefix_len = strlen(t->prefix);
  int rc = ae__vocab_finish(&t->vocab, t->prefix, t->prefix_len);
  if (rc) return ae__error(rc, "%s: out of memory", path);
  t->unk_id = ae__vocab_find(&t->vocab, 0, unk, strlen(unk));
  if (t->unk_id < 0)
    return ae__error(AE_EFORMAT, "%s: unk_token '%s' is not in the vocabulary", path, unk);
  return AE_OK;
}

static int load_tokenizer_json(ae_tokenizer *t, const char *path) {
  json_t *root;
  int rc = load_json(path, &root);
  if (rc) return rc;
  const char *unk = NULL;
  t->max_input_chars_per_word = 100;
  if (!(rc = parse_wordpiece(t, path, json_object_get(root, "model"), &unk)) &&
      !(rc = parse_normalizer(t, path, json_object_get(root, "normalizer"))) &&
      !(rc = parse_pre_tokenizer(path, json_object_get(root, "pre_tokenizer"))) &&
      !(rc = parse_post_processor(t, path, json_object_get(root, "post_processor"))) &&
      !(rc = parse_added_tokens(t, path, json_object_get(root, "added_tokens"))))
    rc = finish_vocab(t, path, unk);
  json_decref(root);
  return rc;
}

/* ---- vocab.txt + tokenizer_config.json ------------------------------------- */

/* One token per line, id = line number; a repeated token keeps its last line, as in
 * HF's HashMap. */
static int load_vocab_txt(ae_tokenizer *t, const char *path) {
  char *data;
  size_t len;
  int rc = ae__read_file(path, &data, &len);
  if (rc) return rc;
  size_t line = 0, i = 0;
  while (i < len) {
    size_t e = i;
    while (e < len && data[e] != '\n') e++;
    size_t k = e;
    while (k > i && data[k - 1] == '\r') k--;
    if (line > MAX_ID) { rc = ae__error(AE_ERANGE, "%s: more than %d lines", path, MAX_ID); break; }
    rc = ae__vocab_add(&t->vocab, data + i, k - i, (int32_t)line);
    if (rc) { rc = ae__error(rc, "%s:%zu: cannot add token", path, line + 1); break; }
    line++;
    i = e + 1;
  }
  ae__free(data);
  if (!rc && line == 0) rc = ae__error(AE_EFORMAT, "%s: empty vocabulary", path);
  return rc;
}

/* transformers classes that are BERT WordPiece tokenizers underneath. */
static int wordpiece_class(const char *cls) {
  static const char *known[] = {"BertTokenizer", "DistilBertTokenizer", "ElectraTokenizer",
                                "MobileBertTokenizer", "SqueezeBertTokenizer",
                                "LayoutLMTokenizer", "RetriBertTokenizer", "FunnelTokenizer",
                                "LxmertTokenizer", "RealmTokenizer", NULL};
  for (int i = 0; known[i]; i++) {
    size_t n = strlen(known[i]);
    if (!strncmp(cls, known[i], n) && (!cls[n] || !strcmp(cls + n, "Fast"))) return 1;
  }
  return 0;
}

enum { SP_UNK, SP_SEP, SP_PAD, SP_CLS, SP_MASK, SP_COUNT };
static const char *sp_keys[SP_COUNT] = {"unk_token", "sep_token", "pad_token", "cls_token",
                                        "mask_token"};
static const char *sp_defaults[SP_COUNT] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};

static int fallback_config(ae_tokenizer *t, const char *cfg_path, json_t *cfg,
                           const char *sp[SP_COUNT]) {
  int rc;
  if (!cfg) return AE_OK;
  json_t *cls = json_object_get(cfg, "tokenizer_class");
  if (json_is_string(cls) && !wordpiece_class(json_string_value(cls)))
    return ae__error(AE_EUNSUPPORTED,
                     "%s: tokenizer_class '%s' is not a BERT WordPiece tokenizer and there is "
                     "no tokenizer.json", cfg_path, json_string_value(cls));
  if ((rc = get_bool(cfg_path, "config", cfg, "do_lower_case", 1, &t->lowercase)) ||
      (rc = get_bool(cfg_path, "config", cfg, "tokenize_chinese_chars", 1, &t->handle_chinese)) ||
      (rc = get_bool(cfg_path, "config", cfg, "strip_accents", t->lowercase, &t->strip_accents)))
    return rc;
  for (int k = 0; k < SP_COUNT; k++) {
    const char *s = token_text(json_object_get(cfg, sp_keys[k]));
    if (s) sp[k] = s;
  }
  return AE_OK;
}

/* added_tokens_decoder (transformers >= 4.34) lists the added tokens with their flags;
 * older folders only name the special tokens, which are added unnormalised. */
static int fallback_added(ae_tokenizer *t, const char *cfg_path, json_t *cfg,
                          const char *sp[SP_COUNT]) {
  json_t *dec = cfg ? json_object_get(cfg, "added_tokens_decoder") : NULL;
  if (json_is_object(dec)) {
    const char *key;
    json_t *a;
    json_object_foreach(dec, key, a) {
      char *end;
      long id = strtol(key, &end, 10);
      const char *content = json_string_value(json_object_get(a, "content"));
      if (*end || id < 0 || id > MAX_ID || !content)
        return ae__error(AE_EFORMAT, "%s: added_tokens_decoder[\"%s\"] is malformed", cfg_path,
                         key);
      int sw = 0, ls = 0, rs = 0, norm = 0, special = 0, rc;
      if ((rc = get_bool(cfg_path, "added_tokens_decoder", a, "single_word", 0, &sw)) ||
          (rc = get_bool(cfg_path, "added_tokens_decoder", a, "lstrip", 0, &ls)) ||
          (rc = get_bool(cfg_path, "added_tokens_decoder", a, "rstrip", 0, &rs)) ||
          (rc = get_bool(cfg_path, "added_tokens_decoder", a, "special", 0, &special)) ||
          (rc = get_bool(cfg_path, "added_tokens_decoder", a, "normalized", !special, &norm)) ||
          (rc = add_added(t, content, (int32_t)id, sw, ls, rs, norm, special)))
        return rc;
    }
    return AE_OK;
  }
  for (int k = 0; k < SP_COUNT; k++) {
    int32_t id = ae__vocab_find(&t->vocab, 0, sp[k], strlen(sp[k]));
    if (id < 0) continue;
    int rc = add_added(t, sp[k], id, 0, 0, 0, 0, 1);
    if (rc) return rc;
  }
  return AE_OK;
}

static int load_fallback(ae_tokenizer *t, const char *dir) {
  char *vocab_path = ae__path_join(dir, "vocab.txt");
  char *cfg_path = ae__path_join(dir, "tokenizer_config.json");
  char *map_path = ae__path_join(dir, "special_tokens_map.json");
  json_t *cfg = NULL, *map = NULL;
  int rc = AE_OK;
  if (!vocab_path || !cfg_path || !map_path) { rc = ae__error(AE_ENOMEM, "%s: out of memory", dir); goto done; }
  if (!ae__file_exists(vocab_path)) {
    rc = ae__error(AE_ENOTFOUND, "%s: neither tokenizer.json nor vocab.txt found", dir);
    goto done;
  }
  if (ae__file_exists(cfg_path) && (rc = load_json(cfg_path, &cfg))) goto done;
  if (ae__file_exists(map_path) && (rc = load_json(map_path, &map))) goto done;
  const char *sp[SP_COUNT];
  memcpy(sp, sp_defaults, sizeof sp);
  t->normalize = t->clean_text = t->handle_chinese = t->lowercase = t->strip_accents = 1;
  t->max_input_chars_per_word = 100;
  if ((rc = fallback_config(t, cfg_path, cfg, sp))) goto done;
  for (int k = 0; map && k < SP_COUNT; k++) {
    const char *s = token_text(json_object_get(map, sp_keys[k]));
    if (s) sp[k] = s;
  }
  if ((rc = set_str(&t->prefix, "##")) || (rc = load_vocab_txt(t, vocab_path)) ||
      (rc = finish_vocab(t, vocab_path, sp[SP_UNK])))
    goto done;
  int32_t cls = ae__vocab_find(&t->vocab, 0, sp[SP_CLS], strlen(sp[SP_CLS]));
  int32_t sep = ae__vocab_find(&t->vocab, 0, sp[SP_SEP], strlen(sp[SP_SEP]));
  if (cls < 0 || sep < 0) {
    rc = ae__error(AE_EFORMAT, "%s: cls_token '%s' or sep_token '%s' is not in the vocabulary",
                   vocab_path, sp[SP_CLS], sp[SP_SEP]);
    goto done;
  }
  if ((rc = push_ids(&t->pre_ids, &t->n_pre, &cls, 1)) ||
      (rc = push_ids(&t->post_ids, &t->n_post, &sep, 1)) ||
      (rc = fallback_added(t, cfg_path, cfg, sp)))
    goto done;
done:
  json_decref(cfg);
  json_decref(map);
  ae__free(vocab_path);
  ae__free(cfg_path);
  ae__free(map_path);
  return rc;
}

/* model_max_length from tokenizer_config.json: transformers writes 1e30 for "no
 * limit", so only a sane value (0 < n < 1e6) counts. */
static int read_model_max_length(ae_tokenizer *t, const char *dir) {
  char *path = ae__path_join(dir, "tokenizer_config.json");
  if (!path) return ae__error(AE_ENOMEM, "%s: out of memory", dir);
  int rc = AE_OK;
  if (ae__file_exists(path)) {
    json_t *cfg;
    rc = load_json(path, &cfg);
    if (!rc) {
      json_t *v = json_object_get(cfg, "model_max_length");
      double d = json_is_number(v) ? json_number_value(v) : 0;
      t->model_max_length = (d > 0 && d < 1e6) ? (int)d : 0;
      json_decref(cfg);
    }
  }
  ae__free(path);
  return rc;
}

/* Normalised added tokens are matched against normalised text, so their content is
 * normalised once here (HF does the same when it builds its matcher). */
static int normalize_added(ae_tokenizer *t) {
  for (size_t i = 0; i < t->n_added; i++) {
    ae__added_token *a = &t->added[i];
    if (!a->normalized || !t->normalize) { a->normalized = 0; continue; }
    char *s;
    size_t n;
    int rc = ae__tokenizer_normalize(t, a->content, a->len, &s, &n);
    if (rc) return rc;
    ae__free(a->content);
    a->content = s;
    a->len = n;
    t->any_normalized_added = 1;
  }
  t->added_only_first[0] = t->added_only_first[1] = -1;
  int distinct[2] = {0, 0};
  for (size_t i = 0; i < t->n_added; i++) {
    ae__added_token *a = &t->added[i];
    if (!a->len) continue;
    uint8_t b = (uint8_t)a->content[0], k = a->normalized;
    if (!(t->added_first[k][b >> 3] & (1u << (b & 7)))) {
      distinct[k]++;
      t->added_only_first[k] = b;
    }
    t->added_first[k][b >> 3] |= (uint8_t)(1u << (b & 7));
  }
  for (int k = 0; k < 2; k++)
    if (distinct[k] != 1) t->added_only_first[k] = -1;
  return AE_OK;
}

/* The post-processor's ids are emitted as they are, so each must name a token. */
static int check_special_ids(ae_tokenizer *t) {
  size_t vocab = ae_tokenizer_vocab_size(t);
  for (size_t k = 0; k < t->n_pre + t->n_post; k++) {
    int32_t id = k < t->n_pre ? t->pre_ids[k] : t->post_ids[k - t->n_pre];
    if (id < 0 || (size_t)id >= vocab)
      return ae__error(AE_EFORMAT, "%s: post-processor id %d is not in the vocabulary (%zu ids)",
                       t->source, id, vocab);
  }
  return AE_OK;
}

void ae_tokenizer_free(ae_tokenizer *t) {
  if (!t) return;
  ae__vocab_free(&t->vocab);
  for (size_t i = 0; i < t->n_added; i++) {
    ae__free(t->added[i].content);
    ae__free(t->added[i].text);
  }
  ae__free(t->added);
  ae__free(t->pre_ids);
  ae__free(t->post_ids);
  ae__free(t->prefix);
  ae__free(t->source);
  ae__free(t);
}

int ae_tokenizer_load(const char *model_dir, ae_tokenizer **out) {
  if (!model_dir || !out) return ae__error(AE_EINVAL, "ae_tokenizer_load: NULL argument");
  *out = NULL;
  ae_tokenizer *t = ae__calloc(1, sizeof *t);
  char *json_path = ae__path_join(model_dir, "tokenizer.json");
  if (!t || !json_path) {
    ae__free(t);
    ae__free(json_path);
    return ae__error(AE_ENOMEM, "%s: out of memory", model_dir);
  }
  ae__vocab_init(&t->vocab);
  int rc;
  if (ae__file_exists(json_path)) {
    t->source = json_path;
    rc = load_tokenizer_json(t, json_path);
  } else {
    ae__free(json_path);
    t->source = ae__path_join(model_dir, "vocab.txt");
    rc = t->source ? load_fallback(t, model_dir) : ae__error(AE_ENOMEM, "%s: out of memory",
                                                             model_dir);
  }
  if (!rc) rc = check_special_ids(t);
  if (!rc) {
    ae__tokenizer_build_tables(t);
    if (!(rc = read_model_max_length(t, model_dir))) rc = normalize_added(t);
  }
  if (rc) { ae_tokenizer_free(t); return rc; }
  *out = t;
  return AE_OK;
}

/* ---- the compiled-tokenizer cache -------------------------------------------- */

/* Compiled files are a few MB for real vocabularies; anything far larger is not one. */
#define COMPILED_MAX (256u << 20)

static void compiled_name(const uint8_t key[16], char name[64]) {
  char hex[33];
  ae__lc_hex(key, 16, hex);
  snprintf(name, 64, "tokenizer-%s.aetok", hex);
}

/* The compiled file for key, validated, as a ready tokenizer; NULL on any miss. */
static ae_tokenizer *load_compiled(const char *model_dir, const char *cache_dir,
                                   const uint8_t key[16]) {
  char name[64];
  compiled_name(key, name);
  uint8_t *data;
  size_t len;
  if (ae__lc_read(cache_dir, name, COMPILED_MAX, &data, &len)) return NULL;
  ae_tokenizer *t = ae__calloc(1, sizeof *t);
  int rc = t ? ae__tok_compiled_decode(data, len, key, t) : AE_ENOMEM;
  ae__free(data);
  if (rc == AE_OK) {
    char *tj = ae__path_join(model_dir, "tokenizer.json");
    if (tj && !ae__file_exists(tj)) {
      ae__free(tj);
      tj = ae__path_join(model_dir, "vocab.txt");
    }
    t->source = tj;
    rc = tj ? AE_OK : AE_ENOMEM;
  }
  if (rc == AE_OK && check_special_ids(t) != AE_OK) rc = AE_EFORMAT;
  if (rc) { ae_tokenizer_free(t); return NULL; }
  ae__tokenizer_build_tables(t);
  return t;
}

/* Writes the compiled file, unless the folder changed while it was parsed (its key
 * would then describe other bytes). Failures only mean nothing is cached. */
static void store_compiled(const char *model_dir, const char *cache_dir, const uint8_t key[16],
                           const ae_tokenizer *t) {
  uint8_t again[16], *data;
  size_t len;
  if (ae__tok_cache_key(model_dir, again) || memcmp(again, key, 16)) return;
  if (ae__tok_compiled_encode(t, key, &data, &len)) return;
  char name[64];
  compiled_name(key, name);
  ae__lc_write(cache_dir, name, data, len);
  ae__free(data);
}

int ae__tokenizer_load_ex(const char *model_dir, const char *cache_dir, ae_tokenizer **out,
                          int *from_cache) {
  if (from_cache) *from_cache = 0;
  if (!cache_dir || !*cache_dir || !model_dir || !out) return ae_tokenizer_load(model_dir, out);
  uint8_t key[16];
  int keyed = ae__tok_cache_key(model_dir, key) == AE_OK;
  if (keyed && (*out = load_compiled(model_dir, cache_dir, key))) {
    if (from_cache) *from_cache = 1;
    return AE_OK;
  }
  int rc = ae_tokenizer_load(model_dir, out);
  if (rc == AE_OK && keyed) store_compiled(model_dir, cache_dir, key, *out);
  return rc;
}

int ae_tokenizer_load_cached(const char *model_dir, const char *cache_dir, ae_tokenizer **out) {
  return ae__tokenizer_load_ex(model_dir, cache_dir, out, NULL);
}

int ae__tokenizer_model_max_length(const ae_tokenizer *tok) {
  return tok ? tok->model_max_length : 0;
}

size_t ae_tokenizer_vocab_size(const ae_tokenizer *tok) {
  if (!tok) return 0;
  size_t n = tok->vocab.n_ids;
  for (size_t i = 0; i < tok->n_added; i++)
    if ((size_t)tok->added[i].id + 1 > n) n = (size_t)tok->added[i].id + 1;
  return n;
}

const char *ae_tokenizer_id_to_token(const ae_tokenizer *tok, int32_t id) {
  if (!tok) return NULL;
  const char *s = ae__vocab_token(&tok->vocab, id);
  if (s) return s;
  for (size_t i = 0; i < tok->n_added; i++)
    if (tok->added[i].id == id) return tok->added[i].text;
  return NULL;
}
