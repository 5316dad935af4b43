// ctest-timeout: 900
/* The forward pass against tools/reference.py, an independent float64 PyTorch
 * implementation: for several model configurations (MiniLM shape, tiny, odd head
 * size, F16/BF16 weights, CLS / max / mean_sqrt_len pooling, no Normalize) and
 * inputs of every length from 1 token to the maximum, max |diff| must be <= 1e-5. */
#include "encoder_testutil.h"
#include "reference_util.h"
#include "test.h"
#include <unistd.h>

/* Texts of every token length for the file-based configs: words of an annotation
 * corpus (or a fixed vocabulary without ../shared) repeated to grow, and some far
 * beyond the max length so truncation is exercised. */
static const char *words[] = {"def", "parse", "(", "self", ",", "path", ")", ":", "return",
  "the", "value", "of", "config", "file", "with", "utf", "-", "8", "encoding", "naïve",
  "café", "import", "os", ".", "join", "[", "]", "{", "}", "\"", "error", "raise",
  "ValueError", "timeout", "=", "None", "#", "comment", "Σ", "λ", "日本", "😀"};

static char *make_text(size_t n_words, uint64_t salt) {
  size_t cap = n_words * 12 + 16, len = 0;
  char *t = malloc(cap);
  t[0] = 0;
  for (size_t i = 0; i < n_words; i++) {
    const char *w = words[(i * 7 + salt * 13 + i / 3) % (sizeof words / sizeof words[0])];
    len += snprintf(t + len, cap - len, i ? " %s" : "%s", w);
  }
  return t;
}

typedef struct {
  int from_files;            /* 1: ae_model_init_random_opts + ae_encoder_load + texts;
                                2: in memory, only when ../shared is missing */
  const char *name;
  int H, layers, heads, I, vocab, max_pos, act, pooling, normalize;
  const char *dtype;
  float std;
  int every_to;              /* every length 1..every_to */
  int extra[8];              /* then these lengths (0-terminated) */
  int n_random, max_len;     /* then n_random lengths drawn from 1..max_len */
} config;

/* A model folder written by init-random (like ../shared's MiniLM, with the config's
 * changes), loaded by ae_encoder_load, fed texts through the tokenizer. */
static void check_files_config(const config *c, const char *tmp, const char *like) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", tmp, c->name);
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.seed = 42 + c->H;
  o.dtype = c->dtype;
  o.layers = c->layers; o.hidden = c->H; o.heads = c->heads; o.intermediate = c->I;
  o.max_positions = c->max_pos;
  o.hidden_act = c->act == AE__ACT_GELU ? "gelu" : c->act == AE__ACT_GELU_NEW ? "gelu_new" : "relu";
  o.pooling = c->pooling;
  o.normalize = c->normalize;
  o.max_seq_length = c->max_len;
  CHECK_OK(ae_model_init_random_opts(like, dir, &o));
  ae_encoder *enc = NULL;
  ae_encoder_options eo = {.threads = 2, .max_length = 0};
  CHECK_OK(ae_encoder_load(dir, &eo, &enc));
  REQUIRE(enc);
  CHECK(ae_encoder_max_length(enc) == c->max_len);
  /* texts: n_words = 0 .. every_to, then the extra sizes (up to far beyond max) */
  size_t n = 0;
  char *texts[600];
  int32_t *ids[600];
  size_t lens[600];
  for (int k = 0; k < c->every_to + 8; k++) {
    int nw = k < c->every_to ? k : c->extra[k - c->every_to];
    if (k >= c->every_to && nw <= 0) continue;
    texts[n] = make_text((size_t)nw, (uint64_t)k);
    CHECK_OK(ae_tokenizer_encode(ae_encoder_tokenizer(enc), texts[n], strlen(texts[n]),
                                 (size_t)c->max_len, &ids[n], &lens[n], NULL));
    n++;
  }
  size_t total = 0, longest = 0;
  for (size_t i = 0; i < n; i++) { total += lens[i]; if (lens[i] > longest) longest = lens[i]; }
  CHECK(longest == (size_t)c->max_len);   /* some texts were truncated */
  double t0 = ae__now_ms();
  float *ref = run_reference(dir, ids, lens, n, c->H);
  REQUIRE(ref);
  double t1 = ae__now_ms();
  float *got = calloc(n * c->H, sizeof(float));
  int *st = calloc(n, sizeof(int));
  CHECK_OK(ae_encoder_embed_texts(enc, (const char *const *)texts, NULL, n, got, st));
  double t2 = ae__now_ms();
  for (size_t i = 0; i < n; i++) CHECK(st[i] == AE_OK);
  double d = max_diff(got, ref, n * c->H);
  printf("%-14s H=%d L=%d heads=%d I=%d %s pool=%d norm=%d: %zu texts (%zu tokens, up to "
         "%zu), max |diff| = %.3g (reference %.1f s, astembed %.2f s)\n", c->name, c->H,
         c->layers, c->heads, c->I, c->dtype, c->pooling, c->normalize, n, total, longest, d,
         (t1 - t0) / 1e3, (t2 - t1) / 1e3);
  CHECKF(d <= 1e-5, "%s: max |diff| %.3g > 1e-5", c->name, d);
  for (size_t i = 0; i < n; i++) { free(texts[i]); ae_free(ids[i]); }
  free(got); free(ref); free(st);
  ae_encoder_free(enc);
}

static void check_config(const config *c, const char *tmp) {
  tmodel *t = tm_new(c->H, c->layers, c->heads, c->I, c->vocab, c->max_pos, c->act,
                     c->pooling, c->normalize, c->dtype, 1234 + c->H, c->std);
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/%s", tmp, c->name);
  REQUIRE(tm_write_folder(t, dir) == 0);
  /* lengths: every length up to step_after, then every step-th, then max_len */
  size_t n = 0, cap = 1024;
  int32_t **ids = malloc(sizeof *ids * cap);
  size_t *lens = malloc(sizeof *lens * cap);
  for (int k = 0; k < c->every_to + 8 + c->n_random; k++) {
    int L = k < c->every_to ? k + 1
          : k < c->every_to + 8 ? c->extra[k - c->every_to]
          : 1 + (int)(tm_uniform() * c->max_len);
    if (L <= 0) continue;
    lens[n] = (size_t)L;
    ids[n] = malloc(sizeof(int32_t) * L);
    for (int p = 0; p < L; p++) ids[n][p] = (int32_t)(tm_uniform() * c->vocab);
    n++;
  }
  size_t total = 0;
  for (size_t i = 0; i < n; i++) total += lens[i];
  double t0 = ae__now_ms();
  float *ref = run_reference(dir, ids, lens, n, c->H);
  REQUIRE(ref);
  double t1 = ae__now_ms();
  ae_encoder *enc = NULL;
  ae_encoder_options opts = {.threads = 2, .max_length = 0};
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &opts, &enc));
  REQUIRE(enc);
  float *got = calloc(n * c->H, sizeof(float));
  CHECK_OK(ae_encoder_embed_ids(enc, (const int32_t *const *)ids, lens, n, got));
  double t2 = ae__now_ms();
  if (c->pooling == AE_POOL_MEAN_SQRT_LEN && !c->normalize) {
    /* sum / sqrt(L) grows with sqrt(L): compare the underlying mean (the scaling
     * itself is one exact multiply) so the 1e-5 budget means the same here. */
    for (size_t i = 0; i < n; i++)
      for (int k = 0; k < c->H; k++) {
        got[i * c->H + k] /= sqrtf((float)lens[i]);
        ref[i * c->H + k] /= sqrtf((float)lens[i]);
      }
  }
  double d = max_diff(got, ref, n * c->H);
  printf("%-14s H=%d L=%d heads=%d I=%d %s pool=%d norm=%d: %zu inputs (%zu tokens), "
         "max |diff| = %.3g (reference %.1f s, astembed %.2f s)\n", c->name, c->H, c->layers, c->heads, c->I, c->dtype, c->pooling,
         c->normalize, n, total, d, (t1 - t0) / 1e3, (t2 - t1) / 1e3);
  CHECKF(d <= 1e-5, "%s: max |diff| %.3g > 1e-5", c->name, d);
  /* the same vectors whatever the batch: items one at a time, and small chunks */
  ae__encoder_tune(enc, 512, 64);
  float *one = calloc(c->H, sizeof(float));
  double d1 = 0;
  for (size_t i = 0; i < n; i += 7) {
    CHECK_OK(ae_encoder_embed_ids(enc, (const int32_t *const *)&ids[i], &lens[i], 1, one));
    if (c->pooling == AE_POOL_MEAN_SQRT_LEN && !c->normalize)
      for (int k = 0; k < c->H; k++) one[k] /= sqrtf((float)lens[i]);
    double di = max_diff(one, ref + i * c->H, c->H);
    if (!(di <= d1)) d1 = di;
  }
  CHECKF(d1 <= 1e-5, "%s: single items: max |diff| %.3g", c->name, d1);
  free(one);
  free(got);
  free(ref);
  ae_encoder_free(enc);
  for (size_t i = 0; i < n; i++) free(ids[i]);
  free(ids);
  free(lens);
  tm_free(t);
}

int main(void) {
  if (!have_torch()) {
    TEST_SKIP("/usr/bin/python3 cannot import torch and numpy (tools/deps.sh test)");
  }
  char tmp[] = "/tmp/ae_encref_XXXXXX";
  REQUIRE(mkdtemp(tmp));
  /* Sized for the reference's speed. With OpenBLAS as the system BLAS (tools/deps.sh
   * installs libopenblas0-pthread) Debian's torch runs float64 at ~25 GFLOP/s, so the
   * MiniLM-shaped folder gets every text length from 0 words to past max_seq_length
   * (263 texts); the other wide models get fewer, chosen lengths (with the netlib
   * reference BLAS float64 runs at ~1-2 GFLOP/s) and the narrow ones every length. */
  static const config configs[] = {
    /* files name       H  lay heads  I    vocab max_pos act               pooling          norm dtype  std  every extra lengths (words for files) random max_len */
    {1, "minilm-files",  384, 6, 12, 1536, 30522, 512, AE__ACT_GELU,     AE_POOL_MEAN,          1, "F32",  0,   260, {300, 1000, 2000},             0, 256},
    {1, "f16-cls-files", 128, 2,  4,  256, 30522, 128, AE__ACT_GELU,     AE_POOL_CLS,           1, "F16",  0,   100, {150, 400},                   0, 100},
    {1, "bf16-max-files", 96, 2,  3,  192, 30522, 100, AE__ACT_GELU_NEW, AE_POOL_MAX,           0, "BF16", 0,    80, {120, 5000},                  0, 80},
    {2, "minilm-shape",  384, 6, 12, 1536, 30522, 512, AE__ACT_GELU,     AE_POOL_MEAN,          1, "F32",  0.05f, 12, {20, 40, 80, 160, 256},      0, 256},
    {0, "tiny-2layer",    64, 2,  4,  128,  1000, 128, AE__ACT_GELU,     AE_POOL_MEAN,          1, "F32",  0.15f, 128, {0},                      100, 128},
    {0, "f16-cls",       128, 2,  4,  256,  2000,  64, AE__ACT_GELU,     AE_POOL_CLS,           1, "F16",  0.1f,  64, {0},                       100, 64},
    {0, "max-nonorm",     96, 3,  3,  200,  1500, 100, AE__ACT_GELU_NEW, AE_POOL_MAX,           0, "F32",  0.1f, 100, {0},                        20, 100},
    {0, "sqrtlen-relu",   72, 2,  3,  144,  1000,  64, AE__ACT_RELU,     AE_POOL_MEAN_SQRT_LEN, 0, "BF16", 0.1f,  64, {0},                        50, 64},
    {0, "wide-nonorm",   384, 2, 12, 1536,  3000, 512, AE__ACT_GELU,     AE_POOL_MEAN,          0, "F32",  0.05f,  6, {512},                       0, 512},
  };
  const char *sh = test_shared_dir();
  char like[4200];
  if (sh) snprintf(like, sizeof like, "%s/models/all-MiniLM-L6-v2", sh);
  else printf("SKIP: ../shared missing: the init-random + ae_encoder_load configs are skipped "
              "(the in-memory MiniLM shape runs instead)\n");
  for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
    const config *c = &configs[i];
    if (c->from_files == 1 && sh) check_files_config(c, tmp, like);
    else if (c->from_files == 0 || (c->from_files == 2 && !sh)) check_config(c, tmp);
  }
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
  TEST_DONE();
}
