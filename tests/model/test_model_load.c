/* Model loading round trips: random-weight folders written by init-random load back
 * with the right shapes, values (F16/BF16 = the F32 values rounded), prefixes,
 * pooling, normalisation, max length and fingerprints. */
#include "model_test_util.h"
#include "model/safetensors.h"
#include "test.h"

/* Every weight pointer of a model with its element count, in a fixed order. */
typedef struct { const float *p; size_t n; } span;

static size_t spans(const ae__bert_model *m, span *s) {
  const ae__bert_config *c = &m->cfg;
  size_t H = c->hidden, I = c->intermediate, k = 0;
  s[k++] = (span){m->word_emb, (size_t)c->vocab * H};
  s[k++] = (span){m->pos_emb, (size_t)c->max_positions * H};
  s[k++] = (span){m->type_emb, (size_t)c->type_vocab * H};
  s[k++] = (span){m->emb_ln_g, H};
  s[k++] = (span){m->emb_ln_b, H};
  for (int l = 0; l < c->layers; l++) {
    const ae__bert_layer *L = &m->layer[l];
    const float *hh[] = {L->q_w, L->k_w, L->v_w, L->o_w};
    const float *h[] = {L->q_b, L->k_b, L->v_b, L->o_b, L->ln1_g, L->ln1_b, L->out_b, L->ln2_g, L->ln2_b};
    for (int i = 0; i < 4; i++) s[k++] = (span){hh[i], H * H};
    for (int i = 0; i < 9; i++) s[k++] = (span){h[i], H};
    s[k++] = (span){L->i_w, I * H};
    s[k++] = (span){L->i_b, I};
    s[k++] = (span){L->out_w, H * I};
  }
  return k;
}

static ae__bert_model *load_ok(const char *dir, int max_len) {
  ae__bert_model *m = NULL;
  int rc = ae__bert_load(dir, max_len, &m);
  CHECKF(rc == AE_OK, "%s: %s", ae_strerror(rc), ae_last_error());
  REQUIRE(m);
  return m;
}

static void test_dtypes_round_trip(void) {
  char *d32 = make_model(NULL, "F32", 11, 0), *d16 = make_model(NULL, "F16", 11, 0),
       *dbf = make_model(NULL, "BF16", 11, 0), *dpre = make_model(NULL, "F32", 11, 1);
  ae__bert_model *a = load_ok(d32, 0), *b = load_ok(d16, 0), *c = load_ok(dbf, 0), *p = load_ok(dpre, 0);
  CHECK(a->cfg.hidden == 32 && a->cfg.layers == 2 && a->cfg.heads == 4 && a->cfg.intermediate == 64);
  CHECK(a->cfg.vocab == 100 && a->cfg.max_positions == 40 && a->cfg.type_vocab == 2);
  CHECK(a->cfg.act == AE__ACT_GELU && a->cfg.pad_id == 0 && a->cfg.ln_eps == 1e-12f);
  CHECK(!strcmp(a->dtype, "F32") && !strcmp(b->dtype, "F16") && !strcmp(c->dtype, "BF16"));
  CHECK(a->n_params == ae__bert_param_count(&a->cfg) && b->n_params == a->n_params);
  CHECK(!a->bert_prefix && p->bert_prefix);
  /* F32 weights are used in place from the mapping; half ones converted. */
  CHECK(a->converted == NULL);
  CHECK((const uint8_t *)a->word_emb > (const uint8_t *)a->map &&
        (const uint8_t *)a->word_emb < (const uint8_t *)a->map + a->map_len);
  CHECK(b->converted != NULL && c->converted != NULL);
  span sa[64], sb[64], sc[64], sp[64];
  size_t n = spans(a, sa);
  REQUIRE(spans(b, sb) == n && spans(c, sc) == n && spans(p, sp) == n);
  size_t bad16 = 0, badbf = 0, badpre = 0, total = 0, nonzero = 0, far_from_one = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < sa[i].n; j++) {
      float x = sa[i].p[j];
      bad16 += sb[i].p[j] != ae__f16_to_f32(ae__f32_to_f16(x));
      badbf += sc[i].p[j] != ae__bf16_to_f32(ae__f32_to_bf16(x));
      badpre += sp[i].p[j] != x;
      nonzero += x != 0;
      total++;
    }
  CHECKF(bad16 == 0, "%zu of %zu F16 values differ from the rounded F32 values", bad16, total);
  CHECKF(badbf == 0, "%zu of %zu BF16 values differ from the rounded F32 values", badbf, total);
  CHECK(badpre == 0);
  CHECK(nonzero == total); /* biases too: the forward pass must not get away without them */
  for (int h = 0; h < 32; h++) far_from_one += fabsf(a->layer[1].ln2_g[h] - 1.0f) > 0.3f;
  CHECK(far_from_one == 0 && a->layer[1].ln2_g[0] != 1.0f);
  /* weights ~ N(0, 0.02) */
  double s2 = 0;
  for (size_t j = 0; j < sa[0].n; j++) s2 += (double)sa[0].p[j] * sa[0].p[j];
  double sd = sqrt(s2 / (double)sa[0].n);
  CHECKF(sd > 0.017 && sd < 0.023, "word embedding std %g", sd);
  /* the same folder content elsewhere has the same fingerprint; another dtype not */
  CHECK(memcmp(a->fingerprint, b->fingerprint, 16) != 0 && memcmp(b->fingerprint, c->fingerprint, 16) != 0);
  ae__bert_free(a); ae__bert_free(b); ae__bert_free(c); ae__bert_free(p);
  const char *dirs[] = {d32, d16, dbf, dpre};
  for (int i = 0; i < 4; i++) { rm_rf(dirs[i]); free((void *)dirs[i]); }
}

static void test_deterministic(void) {
  char *x = make_model(NULL, "F16", 5, 0), *y = make_model(NULL, "F16", 5, 0), *z = make_model(NULL, "F16", 6, 0);
  size_t lx, ly, lz;
  uint8_t *bx = read_bytes(x, "model.safetensors", &lx), *by = read_bytes(y, "model.safetensors", &ly),
          *bz = read_bytes(z, "model.safetensors", &lz);
  CHECK(lx == ly && memcmp(bx, by, lx) == 0);
  CHECK(lx == lz && memcmp(bx, bz, lx) != 0);
  ae__bert_model *mx = load_ok(x, 0), *my = load_ok(y, 0), *mz = load_ok(z, 0);
  CHECK(memcmp(mx->fingerprint, my->fingerprint, 16) == 0);
  /* the header is identical for another seed, but the weights differ, so the
   * fingerprint does too */
  CHECK(memcmp(mx->fingerprint, mz->fingerprint, 16) != 0);
  /* the file has the extra tensors transformers writes, and they are ignored */
  ae__st_file st;
  CHECK_OK(ae__safetensors_parse(mx->map, mx->map_len, "x", &st));
  const ae__st_tensor *pid = ae__st_find(&st, "embeddings.position_ids");
  CHECK(pid && pid->dtype == AE__ST_I64 && pid->ndim == 2 && pid->shape[1] == 40);
  CHECK(pid && pid->data[8 * 39] == 39);
  CHECK(ae__st_find(&st, "pooler.dense.weight") != NULL);
  CHECK(st.n == 6 + 16 * 2 + 2);
  ae__st_file_free(&st);
  ae__bert_free(mx); ae__bert_free(my); ae__bert_free(mz);
  free(bx); free(by); free(bz);
  rm_rf(x); rm_rf(y); rm_rf(z);
  free(x); free(y); free(z);
}

/* A header whose length is not a multiple of 4 leaves F32 data misaligned in the
 * mapping: the loader must copy instead of handing out a misaligned float*. */
static void test_misaligned_f32(void) {
  char *d = make_model(NULL, "F32", 3, 0);
  ae__bert_model *ref = load_ok(d, 0);
  float w0 = ref->word_emb[5], g = ref->layer[1].ln2_g[7];
  st_parts p = st_read(d);
  char *h = json_dumps(p.hdr, JSON_COMPACT);
  st_write_raw(d, p.hdr, p.data, p.data_len, 1 + (8 - strlen(h) % 8) % 8);
  free(h);
  ae__bert_model *m = load_ok(d, 0);
  CHECK(m->converted != NULL && ((uintptr_t)m->word_emb & 3) == 0);
  CHECK(m->word_emb[5] == w0 && m->layer[1].ln2_g[7] == g);
  ae__bert_free(m);
  ae__bert_free(ref);
  st_parts_free(&p);
  rm_rf(d);
  free(d);
}

static void set_file(const char *dir, const char *name, const char *text) {
  if (text) write_text(dir, name, text);
  else { char *p = pjoin(dir, name); unlink(p); free(p); }
}

static void test_sentence_transformers(void) {
  char *d = make_model(NULL, "F32", 1, 0);
  ae__bert_model *m = load_ok(d, 0);
  /* no modules.json, no pooling config, no length files: mean, no normalize, positions */
  CHECK(m->pooling == AE_POOL_MEAN && m->normalize == 0 && m->max_length == 40);
  ae__bert_free(m);
  uint8_t fp0[16], fp1[16];

  set_file(d, "tokenizer_config.json", "{\"model_max_length\": 30}");
  m = load_ok(d, 0); CHECK(m->max_length == 30); memcpy(fp0, m->fingerprint, 16); ae__bert_free(m);
  set_file(d, "tokenizer_config.json", "{\"model_max_length\": 1000000000000000019884624838656}");
  m = load_ok(d, 0); CHECK(m->max_length == 40); ae__bert_free(m);
  set_file(d, "sentence_bert_config.json", "{\"max_seq_length\": 16, \"do_lower_case\": false}");
  m = load_ok(d, 0); CHECK(m->max_length == 16); ae__bert_free(m);
  set_file(d, "sentence_bert_config.json", "{\"max_seq_length\": 1000}");
  m = load_ok(d, 0); CHECK(m->max_length == 40); ae__bert_free(m);
  m = load_ok(d, 8); CHECK(m->max_length == 8); memcpy(fp1, m->fingerprint, 16); ae__bert_free(m);
  m = load_ok(d, 40); CHECK(m->max_length == 40); CHECK(memcmp(fp1, m->fingerprint, 16) != 0); ae__bert_free(m);
  /* the fingerprint covers tokenizer_config.json when there is no tokenizer.json */
  CHECK(memcmp(fp0, fp1, 16) != 0);

  const char *modules =
    "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
    " {\"idx\":1,\"name\":\"1\",\"path\":\"pool\",\"type\":\"sentence_transformers.models.Pooling\"},"
    " {\"idx\":2,\"name\":\"2\",\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]";
  set_file(d, "modules.json", modules);
  char *pool = pjoin(d, "pool");
  mkdir(pool, 0777);
  static const struct { const char *key; int mode; } modes[] = {
    {"pooling_mode_mean_tokens", AE_POOL_MEAN}, {"pooling_mode_cls_token", AE_POOL_CLS},
    {"pooling_mode_max_tokens", AE_POOL_MAX}, {"pooling_mode_mean_sqrt_len_tokens", AE_POOL_MEAN_SQRT_LEN}};
  uint8_t fps[4][16];
  for (int i = 0; i < 4; i++) {
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"word_embedding_dimension\": 32, \"%s\": true, \"pooling_mode_lasttoken\": false}", modes[i].key);
    set_file(d, "pool/config.json", cfg);
    m = load_ok(d, 0);
    CHECKF(m->pooling == modes[i].mode && m->normalize == 1, "%s -> %d", modes[i].key, m->pooling);
    memcpy(fps[i], m->fingerprint, 16);
    ae__bert_free(m);
  }
  for (int i = 1; i < 4; i++) CHECK(memcmp(fps[0], fps[i], 16) != 0);
  /* the Normalize module changes the fingerprint */
  set_file(d, "modules.json", "[{\"path\":\"pool\",\"type\":\"sentence_transformers.models.Pooling\"}]");
  m = load_ok(d, 0);
  CHECK(m->normalize == 0 && m->pooling == AE_POOL_MEAN_SQRT_LEN && memcmp(fps[3], m->fingerprint, 16) != 0);
  ae__bert_free(m);
  free(pool);
  rm_rf(d);
  free(d);
}

/* init-random variants: pooling, normalize, shape, act, max length, prefix. */
static void test_init_random_variants(void) {
  char *like = tmp_dir(), *out = tmp_dir();
  write_text(like, "config.json", tiny_config);
  write_text(like, "vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n");
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.pooling = AE_POOL_MAX;
  o.normalize = 1;
  o.layers = 3;
  o.hidden = 48;
  o.heads = 6;
  o.intermediate = 96;
  o.hidden_act = "gelu_new";
  o.max_seq_length = 24;
  o.bert_prefix = 1;
  o.dtype = "BF16";
  CHECK_OK(ae_model_init_random_opts(like, out, &o));
  ae__bert_model *m = load_ok(out, 0);
  CHECK(m->cfg.layers == 3 && m->cfg.hidden == 48 && m->cfg.heads == 6 && m->cfg.intermediate == 96);
  CHECK(m->cfg.act == AE__ACT_GELU_NEW && m->pooling == AE_POOL_MAX && m->normalize == 1);
  CHECK(m->max_length == 24 && m->bert_prefix && !strcmp(m->dtype, "BF16"));
  ae__bert_free(m);
  char *vocab = pjoin(out, "vocab.txt");
  CHECK(ae__file_exists(vocab));
  free(vocab);
  /* rewriting the same folder without those options drops the stale files */
  set_file(like, "vocab.txt", NULL);
  ae_model_random_options_default(&o);
  o.hidden_act = "relu";
  o.pooling = AE_POOL_CLS;
  o.normalize = 0;
  CHECK_OK(ae_model_init_random_opts(like, out, &o));
  m = load_ok(out, 0);
  CHECK(m->cfg.act == AE__ACT_RELU && m->pooling == AE_POOL_CLS && m->normalize == 0);
  CHECK(m->cfg.hidden == 32 && m->max_length == 40);
  ae__bert_free(m);
  vocab = pjoin(out, "vocab.txt");
  CHECK(!ae__file_exists(vocab));
  free(vocab);
  /* a Pooling module in another folder is copied from there */
  write_text(like, "modules.json", "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
             "{\"path\":\"pool\",\"type\":\"sentence_transformers.models.Pooling\"},"
             "{\"path\":\"2_Normalize\",\"type\":\"sentence_transformers.models.Normalize\"}]");
  char *lpool = pjoin(like, "pool");
  mkdir(lpool, 0777);
  write_text(like, "pool/config.json", "{\"word_embedding_dimension\": 32, \"pooling_mode_mean_sqrt_len_tokens\": true}");
  CHECK_OK(ae_model_init_random(like, out, 1, NULL));
  m = load_ok(out, 0);
  CHECK(m->pooling == AE_POOL_MEAN_SQRT_LEN && m->normalize == 1);
  ae__bert_free(m);
  free(lpool);
  /* bad options */
  ae_model_random_options_default(&o);
  o.dtype = "F64";
  CHECK(ae_model_init_random_opts(like, out, &o) == AE_EINVAL && strstr(ae_last_error(), "F64"));
  ae_model_random_options_default(&o);
  o.heads = 5;
  CHECK(ae_model_init_random_opts(like, out, &o) == AE_EINVAL);
  o.heads = 0;
  o.hidden_act = "swish";
  CHECK(ae_model_init_random_opts(like, out, &o) == AE_EUNSUPPORTED);
  CHECK(ae_model_init_random(like, like, 1, "F32") == AE_EINVAL);
  CHECK(ae_model_init_random("/nonexistent-like", out, 1, "F32") == AE_ENOTFOUND &&
        strstr(ae_last_error(), "/nonexistent-like/config.json"));
  rm_rf(like); rm_rf(out);
  free(like); free(out);
}

/* The reference model's shape from ../shared: init-random --like, then load. */
static void test_minilm_like(void) {
  const char *shared = test_shared_dir();
  if (!shared) { printf("SKIP: ../shared missing: MiniLM-shaped round trip not run\n"); return; }
  char like[4200];
  snprintf(like, sizeof like, "%s/models/all-MiniLM-L6-v2", shared);
  char *out = tmp_dir();
  CHECK_OK(ae_model_init_random(like, out, 42, "F16"));
  ae__bert_model *m = load_ok(out, 0);
  CHECK(m->cfg.hidden == 384 && m->cfg.layers == 6 && m->cfg.heads == 12 && m->cfg.intermediate == 1536);
  CHECK(m->cfg.vocab == 30522 && m->cfg.max_positions == 512 && m->cfg.type_vocab == 2);
  CHECK(m->pooling == AE_POOL_MEAN && m->normalize == 1 && m->max_length == 256);
  CHECK(m->n_params == 22565376); /* 22,713,216 in the real checkpoint minus the pooler */
  ae__bert_free(m);
  const char *copied[] = {"tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json",
                          "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json",
                          "1_Pooling/config.json", "config.json"};
  for (int i = 0; i < 9; i++) {
    size_t la, lb;
    uint8_t *a = read_bytes(like, copied[i], &la), *b = read_bytes(out, copied[i], &lb);
    CHECKF(la == lb && memcmp(a, b, la) == 0, "%s not copied verbatim", copied[i]);
    free(a); free(b);
  }
  rm_rf(out);
  free(out);
}

int main(void) {
  test_dtypes_round_trip();
  test_deterministic();
  test_misaligned_f32();
  test_sentence_transformers();
  test_init_random_variants();
  test_minilm_like();
  TEST_DONE();
}
