/* Every way a model folder can be wrong gets its own status and a message naming
 * the file and the tensor or key: config.json problems, safetensors structure
 * (truncation, header length, JSON, offsets, overlap, sizes), tensors that do not
 * fit the config, corrupt values and sentence-transformers files. */
#include "model_test_util.h"
#include "test.h"

/* Loads dir expecting status and every non-NULL needle in the error message. */
static void expect_at(int line, const char *dir, int status, const char *n1, const char *n2) {
  ae__bert_model *m = (ae__bert_model *)1;
  int rc = ae__bert_load(dir, 0, &m);
  const char *e = ae_last_error();
  if (getenv("AE_TEST_VERBOSE")) printf("line %d: %s: %s\n", line, ae_strerror(rc), e);
  if (rc == status && m == NULL && (!n1 || strstr(e, n1)) && (!n2 || strstr(e, n2))) { t_pass++; return; }
  t_fail++;
  fprintf(stderr, "line %d: got %d (%s) '%s'; want %d (%s) with '%s' and '%s'\n", line, rc,
          ae_strerror(rc), e, status, ae_strerror(status), n1 ? n1 : "", n2 ? n2 : "");
  if (rc == AE_OK) ae__bert_free(m);
}
#define EXPECT(dir, status, n1, n2) expect_at(__LINE__, dir, status, n1, n2)

static char *fresh(void) { return make_model(NULL, "F32", 9, 0); }
static void done(char *d) { rm_rf(d); free(d); }

/* Replaces `from` by `to` in tiny_config and writes it over dir's config.json. */
static void config_with(const char *dir, const char *from, const char *to) {
  const char *at = strstr(tiny_config, from);
  if (!at) { fprintf(stderr, "bad test: '%s' not in config\n", from); exit(1); }
  char buf[2048];
  snprintf(buf, sizeof buf, "%.*s%s%s", (int)(at - tiny_config), tiny_config, to, at + strlen(from));
  write_text(dir, "config.json", buf);
}

static void test_config(void) {
  char *d = fresh();
  char *cfg = pjoin(d, "config.json");
  unlink(cfg);
  EXPECT(d, AE_ENOTFOUND, cfg, NULL);
  write_text(d, "config.json", "{\"hidden_size\": 32,");
  EXPECT(d, AE_EFORMAT, cfg, "malformed");
  write_text(d, "config.json", "[1]");
  EXPECT(d, AE_EFORMAT, cfg, NULL);
  config_with(d, "\"model_type\": \"bert\"", "\"model_type\": \"gpt2\"");
  EXPECT(d, AE_EUNSUPPORTED, cfg, "gpt2");
  config_with(d, "\"model_type\": \"bert\"", "\"model_type\": \"roberta\"");
  EXPECT(d, AE_EUNSUPPORTED, cfg, "pad_token_id+1");
  config_with(d, "\"model_type\": \"bert\"", "\"model_type\": \"xlm-roberta\"");
  EXPECT(d, AE_EUNSUPPORTED, cfg, "xlm-roberta");
  config_with(d, "\"model_type\": \"bert\"", "\"model_type\": \"distilbert\"");
  EXPECT(d, AE_EUNSUPPORTED, cfg, "distilbert");
  config_with(d, "\"architectures\": [\"BertModel\"], \"model_type\": \"bert\",", "\"architectures\": [\"GPT2Model\"],");
  EXPECT(d, AE_EUNSUPPORTED, cfg, "not a BERT model");
  config_with(d, "\"gelu\"", "\"silu\"");
  EXPECT(d, AE_EUNSUPPORTED, cfg, "hidden_act 'silu'");
  config_with(d, "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
  EXPECT(d, AE_EINVAL, cfg, "num_attention_heads 5");
  config_with(d, "\"hidden_size\": 32,", "");
  EXPECT(d, AE_ENOTFOUND, cfg, "'hidden_size' is missing");
  config_with(d, "\"hidden_size\": 32", "\"hidden_size\": \"32\"");
  EXPECT(d, AE_EFORMAT, cfg, "'hidden_size' must be an integer");
  config_with(d, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 0");
  EXPECT(d, AE_EINVAL, cfg, "'num_hidden_layers' is 0");
  config_with(d, "\"vocab_size\": 100", "\"vocab_size\": 99999999999");
  EXPECT(d, AE_ERANGE, cfg, "vocab_size");
  config_with(d, "\"pad_token_id\": 0", "\"pad_token_id\": 100");
  EXPECT(d, AE_ERANGE, cfg, "pad_token_id");
  config_with(d, "\"layer_norm_eps\": 1e-12", "\"layer_norm_eps\": -1");
  EXPECT(d, AE_EINVAL, cfg, "layer_norm_eps");
  config_with(d, "\"absolute\"", "\"relative_key\"");
  EXPECT(d, AE_EUNSUPPORTED, cfg, "relative_key");
  /* a config that disagrees with the weights: the tensor names the file and shape */
  config_with(d, "\"intermediate_size\": 64", "\"intermediate_size\": 65");
  EXPECT(d, AE_EMISMATCH, "model.safetensors: tensor 'encoder.layer.0.intermediate.dense.weight': shape [64,32], config wants [65,32]", NULL);
  config_with(d, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3");
  EXPECT(d, AE_ENOTFOUND, "tensor 'encoder.layer.2.attention.self.query.weight' is missing", NULL);
  /* no model_type, a Bert architecture: accepted */
  config_with(d, "\"model_type\": \"bert\",", "");
  ae__bert_model *m;
  CHECK_OK(ae__bert_load(d, 0, &m));
  ae__bert_free(m);
  free(cfg);
  done(d);
}

static void test_file_structure(void) {
  char *d = fresh();
  char *st = pjoin(d, "model.safetensors");
  size_t len;
  uint8_t *orig = read_bytes(d, "model.safetensors", &len);
  unlink(st);
  EXPECT(d, AE_ENOTFOUND, st, NULL);
  write_text(d, "pytorch_model.bin", "x");
  EXPECT(d, AE_ENOTFOUND, st, "pytorch_model.bin");
  write_bytes(d, "model.safetensors", orig, 0);
  EXPECT(d, AE_EFORMAT, st, "truncated");
  write_bytes(d, "model.safetensors", orig, 5);
  EXPECT(d, AE_EFORMAT, st, "truncated");
  /* cut inside the header: the header length runs past the end */
  write_bytes(d, "model.safetensors", orig, 100);
  EXPECT(d, AE_EFORMAT, st, "header length");
  /* cut inside the data: the last tensors run past the end */
  write_bytes(d, "model.safetensors", orig, len - 10);
  EXPECT(d, AE_EFORMAT, st, "pooler.dense.bias");
  write_bytes(d, "model.safetensors", orig, len / 2);
  EXPECT(d, AE_EFORMAT, st, "run past the end");
  /* a huge header length */
  uint8_t *b = malloc(len);
  memcpy(b, orig, len);
  memset(b, 0xff, 8);
  write_bytes(d, "model.safetensors", b, len);
  EXPECT(d, AE_EFORMAT, st, "header length");
  /* malformed header JSON: overwrite a brace */
  memcpy(b, orig, len);
  b[8] = '[';
  write_bytes(d, "model.safetensors", b, len);
  EXPECT(d, AE_EFORMAT, st, "header JSON is malformed");
  memcpy(b, orig, len);
  memset(b + 8, ' ', 4);
  b[8] = '7'; /* "7   ..." : trailing garbage */
  write_bytes(d, "model.safetensors", b, len);
  EXPECT(d, AE_EFORMAT, st, "header JSON");
  free(b);
  free(orig);
  free(st);
  done(d);
}

/* Header edits keeping the data region as it is. */
typedef void (*edit_fn)(json_t *hdr);
static void edit_raw(const char *d, edit_fn f) {
  st_parts p = st_read(d);
  f(p.hdr);
  st_write_raw(d, p.hdr, p.data, p.data_len, 0);
  st_parts_free(&p);
}
static void edit_rebuild(const char *d, edit_fn f) {
  st_parts p = st_read(d);
  f(p.hdr);
  st_rebuild(d, &p);
  st_parts_free(&p);
}
static json_t *T(json_t *h, const char *name) { return json_object_get(h, name); }
static void set_offsets(json_t *h, const char *name, long long b, long long e) {
  json_object_set_new(T(h, name), "data_offsets", json_pack("[II]", (json_int_t)b, (json_int_t)e));
}
static long long off(json_t *h, const char *name, int i) {
  return json_integer_value(json_array_get(json_object_get(T(h, name), "data_offsets"), (size_t)i));
}

#define B1 "encoder.layer.1.output.dense.bias"
#define B0 "encoder.layer.1.attention.self.query.bias"
#define W1 "encoder.layer.1.output.dense.weight"
static void e_past_end(json_t *h) { set_offsets(h, B1, off(h, B1, 0), 1LL << 40); }
static void e_reversed(json_t *h) { set_offsets(h, B1, off(h, B1, 1), off(h, B1, 0)); }
static void e_overlap(json_t *h) { set_offsets(h, B1, off(h, B0, 0), off(h, B0, 1)); }
static void e_overlap_partial(json_t *h) { set_offsets(h, B1, off(h, B0, 0) + 4, off(h, B0, 1) + 4); }
static void e_size(json_t *h) { json_object_set_new(T(h, B1), "shape", json_pack("[i]", 31)); }
static void e_negative(json_t *h) { json_object_set_new(T(h, B1), "shape", json_pack("[i]", -32)); }
static void e_dims(json_t *h) { json_object_set_new(T(h, B1), "shape", json_pack("[iiiiiiiiii]", 1,1,1,1,1,1,1,1,1,32)); }
static void e_i32(json_t *h) { json_object_set_new(T(h, W1), "dtype", json_string("I32")); }
static void e_unknown_dtype(json_t *h) { json_object_set_new(T(h, W1), "dtype", json_string("F12")); }
static void e_no_offsets(json_t *h) { json_object_del(T(h, W1), "data_offsets"); }
static void e_entry_string(json_t *h) { json_object_set_new(h, W1, json_string("x")); }
static void e_meta_bad(json_t *h) { json_object_set_new(h, "__metadata__", json_integer(3)); }
static void e_meta_value(json_t *h) { json_object_set_new(h, "__metadata__", json_pack("{s:i}", "format", 1)); }
static void e_missing(json_t *h) { json_object_del(h, W1); }
static void e_shape(json_t *h) { json_object_set_new(T(h, W1), "shape", json_pack("[ii]", 32, 63)); }
static void e_shape_1d(json_t *h) { json_object_set_new(T(h, "embeddings.LayerNorm.weight"), "shape", json_pack("[ii]", 1, 32)); }
static void e_f64(json_t *h) { json_object_set_new(T(h, W1), "dtype", json_string("F64")); }
static void e_extra_i8(json_t *h) { json_object_set_new(h, "cls.extra", json_pack("{s:s,s:[i],s:[i,i]}", "dtype", "I8", "shape", 3, "data_offsets", 0, 3)); }

static void test_tensors(void) {
  static const struct { edit_fn f; int rebuild, status; const char *n1, *n2; } cases[] = {
    {e_past_end, 0, AE_EFORMAT, "tensor '" B1 "'", "run past the end"},
    {e_reversed, 0, AE_EFORMAT, "tensor '" B1 "'", "begin <= end"},
    {e_overlap, 0, AE_EFORMAT, "overlap", B0},
    {e_overlap_partial, 0, AE_EFORMAT, "overlap", B1},
    {e_size, 0, AE_EFORMAT, "tensor '" B1 "'", "need 124"},
    {e_negative, 0, AE_EFORMAT, "tensor '" B1 "'", "shape[0]"},
    {e_dims, 0, AE_EFORMAT, "tensor '" B1 "'", "dimensions"},
    {e_i32, 0, AE_EMISMATCH, "tensor '" W1 "': dtype I32, want F32, F16 or BF16", NULL},
    {e_unknown_dtype, 0, AE_EUNSUPPORTED, "tensor '" W1 "'", "F12"},
    {e_no_offsets, 0, AE_EFORMAT, "tensor '" W1 "'", "data_offsets"},
    {e_entry_string, 0, AE_EFORMAT, "tensor '" W1 "'", "not an object"},
    {e_meta_bad, 0, AE_EFORMAT, "__metadata__", NULL},
    {e_meta_value, 0, AE_EFORMAT, "__metadata__", "format"},
    {e_missing, 1, AE_ENOTFOUND, "tensor '" W1 "' is missing", NULL},
    {e_shape, 1, AE_EMISMATCH, "model.safetensors: tensor '" W1 "': shape [32,63], config wants [32,64]", NULL},
    {e_shape_1d, 1, AE_EMISMATCH, "tensor 'embeddings.LayerNorm.weight': shape [1,32], config wants [32]", NULL},
    {e_f64, 1, AE_EMISMATCH, "tensor '" W1 "': dtype F64", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char *d = fresh();
    (cases[i].rebuild ? edit_rebuild : edit_raw)(d, cases[i].f);
    char *st = pjoin(d, "model.safetensors");
    expect_at((int)(1000 + i), d, cases[i].status, cases[i].n1, cases[i].n2);
    CHECKF(strstr(ae_last_error(), st) != NULL, "case %zu: message lacks the file: %s", i, ae_last_error());
    free(st);
    done(d);
  }
  /* extra tensors of any dtype are fine, as long as they are well-formed */
  char *d = fresh();
  edit_rebuild(d, e_extra_i8);
  ae__bert_model *m;
  CHECK_OK(ae__bert_load(d, 0, &m));
  ae__bert_free(m);
  done(d);
  /* duplicate names in the header */
  d = fresh();
  st_parts p = st_read(d);
  char *h = json_dumps(p.hdr, JSON_COMPACT);
  char *dup = malloc(strlen(h) + 200);
  sprintf(dup, "{\"" B1 "\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},%s", h + 1);
  size_t hl = strlen(dup), pad = (8 - hl % 8) % 8;
  uint8_t *f = malloc(8 + hl + pad + p.data_len);
  for (int i = 0; i < 8; i++) f[i] = (uint8_t)((hl + pad) >> (8 * i));
  memcpy(f + 8, dup, hl);
  memset(f + 8 + hl, ' ', pad);
  memcpy(f + 8 + hl + pad, p.data, p.data_len);
  write_bytes(d, "model.safetensors", f, 8 + hl + pad + p.data_len);
  EXPECT(d, AE_EFORMAT, "header JSON", "duplicate");
  free(f); free(dup); free(h);
  st_parts_free(&p);
  done(d);
}

/* NaN / Inf weights in each dtype: corrupt, refused with the tensor's name. */
static void test_non_finite(void) {
  const char *dtypes[] = {"F32", "F16", "BF16"};
  for (int k = 0; k < 3; k++)
    for (int inf = 0; inf < 2; inf++) {
      char *d = make_model(NULL, dtypes[k], 2, k == 2);
      st_parts p = st_read(d);
      long long b = off(p.hdr, k == 2 ? "bert." W1 : W1, 0);
      size_t es = k ? 2 : 4, idx = 77;
      uint8_t *at = p.data + b + idx * es;
      if (k == 0) { uint32_t v = inf ? 0xff800000u : 0x7fc00001u; memcpy(at, &v, 4); }
      else if (k == 1) { uint16_t v = inf ? 0x7c00 : 0x7e01; memcpy(at, &v, 2); }
      else { uint16_t v = inf ? 0x7f80 : 0x7fc1; memcpy(at, &v, 2); }
      st_write_raw(d, p.hdr, p.data, p.data_len, 0);
      expect_at(2000 + k * 2 + inf, d, AE_EFORMAT, k == 2 ? "tensor 'bert." W1 "': element 77" : "tensor '" W1 "': element 77",
                inf ? "infinite" : "NaN");
      st_parts_free(&p);
      done(d);
    }
}

static void test_sentence_transformers_files(void) {
  char *d = fresh();
  char *mods = pjoin(d, "modules.json");
  write_text(d, "modules.json", "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
             "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"},"
             "{\"path\":\"2_Dense\",\"type\":\"sentence_transformers.models.Dense\"}]");
  EXPECT(d, AE_EUNSUPPORTED, mods, "Dense");
  write_text(d, "modules.json", "{}");
  EXPECT(d, AE_EFORMAT, mods, "array");
  write_text(d, "modules.json", "[{\"path\":\"../x\",\"type\":\"sentence_transformers.models.Pooling\"}]");
  EXPECT(d, AE_EFORMAT, mods, "../x");
  write_text(d, "modules.json", "[{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]");
  char *pdir = pjoin(d, "1_Pooling");
  mkdir(pdir, 0777);
  char *pc = pjoin(d, "1_Pooling/config.json");
  write_text(d, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": true, \"pooling_mode_max_tokens\": true}");
  EXPECT(d, AE_EUNSUPPORTED, pc, "several pooling modes");
  write_text(d, "1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": false}");
  EXPECT(d, AE_EFORMAT, pc, "no pooling mode");
  write_text(d, "1_Pooling/config.json", "{\"pooling_mode_weightedmean_tokens\": true}");
  EXPECT(d, AE_EUNSUPPORTED, pc, "weightedmean");
  write_text(d, "1_Pooling/config.json", "{\"word_embedding_dimension\": 384, \"pooling_mode_cls_token\": true}");
  EXPECT(d, AE_EMISMATCH, pc, "word_embedding_dimension 384");
  write_text(d, "1_Pooling/config.json", "{\"pooling_mode_cls_token\": tru");
  EXPECT(d, AE_EFORMAT, pc, "malformed");
  write_text(d, "1_Pooling/config.json", "{\"pooling_mode_cls_token\": true}");
  write_text(d, "sentence_bert_config.json", "{\"max_seq_length\": \"long\"}");
  EXPECT(d, AE_EFORMAT, "sentence_bert_config.json", "max_seq_length");
  write_text(d, "sentence_bert_config.json", "{\"max_seq_length\": 20}");
  ae__bert_model *m = (ae__bert_model *)1;
  CHECK(ae__bert_load(d, 41, &m) == AE_ERANGE && m == NULL && strstr(ae_last_error(), "max_position_embeddings 40"));
  CHECK(ae__bert_load(d, -1, &m) == AE_EINVAL);
  CHECK_OK(ae__bert_load(d, 0, &m));
  CHECK(m->pooling == AE_POOL_CLS && m->max_length == 20);
  ae__bert_free(m);
  CHECK(ae__bert_load("", 0, &m) == AE_EINVAL);
  free(pc); free(pdir); free(mods);
  done(d);
}

int main(void) {
  test_config();
  test_file_structure();
  test_tensors();
  test_non_finite();
  test_sentence_transformers_files();
  TEST_DONE();
}
