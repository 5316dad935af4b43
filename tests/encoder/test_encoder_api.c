// ctest-timeout: 300
/* ae_encoder_*: loading a folder, accessors, fingerprints, per-item robustness of
 * embed_texts (empty, whitespace/control-only, invalid UTF-8, 1 MB, NULL), input
 * validation of embed_ids, thread-count and batch-composition invariance, and
 * allocation failures injected into load and embed. */
#include "encoder_testutil.h"
#include "test.h"
#include "failalloc.h"
#include <unistd.h>

static char *mkdir_tmp(void) {
  char *d = strdup("/tmp/ae-enc-api-XXXXXX");
  if (!mkdtemp(d)) { free(d); return NULL; }
  return d;
}

/* A small model folder (root/model-NORMALIZE-SEED): see tm_model_dir. */
static char *small_model(const char *root, int normalize, uint64_t seed) {
  char name[64];
  snprintf(name, sizeof name, "%d-%llu", normalize, (unsigned long long)seed);
  char *out = tm_model_dir(root, name, (tm_shape){.H = 32, .heads = 2, .I = 64, .layers = 2,
                                                  .max_pos = 48, .model_max_length = 24,
                                                  .normalize = normalize, .act = "gelu",
                                                  .seed = seed});
  REQUIRE(out);
  return out;
}

static double norm2(const float *v, int d) {
  double s = 0;
  for (int i = 0; i < d; i++) s += (double)v[i] * v[i];
  return s;
}

static void test_load_and_accessors(const char *dir, const char *dir_other) {
  ae_encoder *e = NULL, *e2 = NULL, *e3 = NULL;
  CHECK_OK(ae_encoder_load(dir, NULL, &e));
  REQUIRE(e);
  CHECK(ae_encoder_dim(e) == 32);
  CHECK(ae_encoder_max_length(e) == 24);    /* tokenizer_config model_max_length */
  CHECK(ae_encoder_tokenizer(e) != NULL);
  ae_encoder_options o = {.threads = 1, .max_length = 10};
  CHECK_OK(ae_encoder_load(dir, &o, &e2));
  REQUIRE(e2);
  CHECK(ae_encoder_max_length(e2) == 10);
  uint8_t f1[16], f2[16], f3[16];
  ae_encoder_fingerprint(e, f1);
  ae_encoder_fingerprint(e2, f2);
  CHECK(memcmp(f1, f2, 16) != 0);           /* other max length, other vectors */
  CHECK_OK(ae_encoder_load(dir_other, NULL, &e3));
  ae_encoder_fingerprint(e3, f3);
  CHECK(memcmp(f1, f3, 16) != 0);           /* other weights */
  ae_encoder *e4 = NULL;
  CHECK_OK(ae_encoder_load(dir, NULL, &e4));
  uint8_t f4[16];
  ae_encoder_fingerprint(e4, f4);
  CHECK(memcmp(f1, f4, 16) == 0);           /* same folder, same options */
  /* the fingerprint is the model's mixed with the precision, not the model's itself */
  CHECK(memcmp(f1, e->model->fingerprint, 16) != 0);
  ae_encoder_free(e2); ae_encoder_free(e3); ae_encoder_free(e4);

  /* bad arguments and folders */
  ae_encoder *bad = NULL;
  CHECK(ae_encoder_load("/nonexistent/model", NULL, &bad) == AE_ENOTFOUND && !bad);
  ae_encoder_options big = {.threads = 0, .max_length = 49};
  CHECK(ae_encoder_load(dir, &big, &bad) == AE_ERANGE && !bad);
  printf("max_length 49: %s\n", ae_last_error());
  ae_encoder_free(NULL);

  /* embed_ids validation */
  int32_t ok_ids[3] = {2, 5, 3}, bad_ids[3] = {2, 40, 3}, neg_ids[2] = {2, -1};
  const int32_t *p[1] = {ok_ids};
  size_t len = 3, zero = 0, toolong = 49;
  float v[32];
  CHECK_OK(ae_encoder_embed_ids(e, p, &len, 1, v));
  CHECK(fabs(norm2(v, 32) - 1) < 1e-5);
  CHECK(ae_encoder_embed_ids(e, p, &zero, 1, v) == AE_EINVAL);
  p[0] = bad_ids;
  CHECK(ae_encoder_embed_ids(e, p, &len, 1, v) == AE_EINVAL);
  CHECK(strstr(ae_last_error(), "vocabulary") != NULL);
  p[0] = neg_ids;
  len = 2;
  CHECK(ae_encoder_embed_ids(e, p, &len, 1, v) == AE_EINVAL);
  int32_t *longer = calloc(49, sizeof(int32_t));
  p[0] = longer;
  CHECK(ae_encoder_embed_ids(e, p, &toolong, 1, v) == AE_EINVAL);
  free(longer);
  CHECK_OK(ae_encoder_embed_ids(e, NULL, NULL, 0, NULL));
  ae_encoder_free(e);
}

/* Per-item robustness of embed_texts. */
static void test_texts(const char *dir) {
  ae_encoder *e = NULL;
  CHECK_OK(ae_encoder_load(dir, NULL, &e));
  REQUIRE(e);
  size_t big_n = 1 << 20;
  char *big = malloc(big_n + 1);
  for (size_t i = 0; i < big_n; i++) big[i] = "def parse path "[i % 15];
  big[big_n] = 0;
  const char *texts[] = {
    "def parse(self, path): return the value",   /* 0 normal */
    "",                                           /* 1 empty -> [CLS] [SEP] */
    "   \t\n  ",                                  /* 2 whitespace only */
    "\x01\x02\x7f\x1b",                           /* 3 control only */
    "def \xff\xfe parse \xc3 path \xe2\x82",      /* 4 invalid UTF-8 */
    big,                                          /* 5 1 MB, truncated */
    NULL,                                         /* 6 NULL: per-item error */
    "return self.value",                          /* 7 normal */
  };
  size_t n = sizeof texts / sizeof texts[0];
  float *out = malloc(sizeof(float) * 32 * n);
  int st[8];
  for (size_t i = 0; i < n * 32; i++) out[i] = 123.0f;
  double t0 = ae__now_ms();
  CHECK_OK(ae_encoder_embed_texts(e, texts, NULL, n, out, st));
  printf("8 robustness texts incl. 1 MB: %.1f ms\n", ae__now_ms() - t0);
  for (size_t i = 0; i < n; i++) {
    if (i == 6) {
      CHECK(st[i] == AE_EINVAL);
      CHECK(norm2(out + i * 32, 32) == 0);    /* zero vector for the bad item */
    } else {
      CHECKF(st[i] == AE_OK, "item %zu: %d", i, st[i]);
      CHECKF(fabs(norm2(out + i * 32, 32) - 1) < 1e-5, "item %zu norm^2 %g", i, norm2(out + i * 32, 32));
    }
  }
  /* empty, whitespace-only and control-only texts are all [CLS] [SEP] */
  CHECK(memcmp(out + 1 * 32, out + 2 * 32, sizeof(float) * 32) == 0);
  CHECK(memcmp(out + 1 * 32, out + 3 * 32, sizeof(float) * 32) == 0);
  /* the 1 MB text equals its first max_length tokens embedded by id */
  int32_t *ids = NULL;
  size_t nids = 0;
  int trunc = 0;
  CHECK_OK(ae_tokenizer_encode(ae_encoder_tokenizer(e), big, big_n, 24, &ids, &nids, &trunc));
  CHECK(nids == 24 && trunc == 1);
  float v[32];
  const int32_t *pp[1] = {ids};
  CHECK_OK(ae_encoder_embed_ids(e, pp, &nids, 1, v));
  double d = 0;
  for (int c = 0; c < 32; c++) d = fmax(d, fabs(v[c] - out[5 * 32 + c]));
  CHECKF(d < 1e-6, "1 MB text vs its truncated ids: %g", d);
  ae_free(ids);

  /* lens given explicitly: a text with an embedded NUL is embedded up to len */
  size_t lens[2] = {3, 17};
  const char *t2[2] = {"def", "return self.value\0ignored"};
  float o2[64];
  CHECK_OK(ae_encoder_embed_texts(e, t2, lens, 2, o2, NULL));
  CHECK(memcmp(o2 + 32, out + 7 * 32, sizeof(float) * 32) == 0 ||
        fabs(o2[32] - out[7 * 32]) < 1e-6);
  free(out);
  free(big);
  ae_encoder_free(e);
}

/* The same vector whatever the thread count or the other items of the batch. */
static void test_invariance(const char *dir) {
  ae_encoder_options o1 = {.threads = 1}, o2 = {.threads = 2};
  ae_encoder *a = NULL, *b = NULL;
  CHECK_OK(ae_encoder_load(dir, &o1, &a));
  CHECK_OK(ae_encoder_load(dir, &o2, &b));
  REQUIRE(a && b);
  enum { N = 40 };
  int32_t *ids[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    lens[i] = 1 + (size_t)(i * 7) % 24;
    ids[i] = malloc(sizeof(int32_t) * lens[i]);
    for (size_t k = 0; k < lens[i]; k++) ids[i][k] = (int32_t)((i * 31 + k * 17) % 40);
  }
  float va[N * 32], vb[N * 32], one[32];
  CHECK_OK(ae_encoder_embed_ids(a, (const int32_t *const *)ids, lens, N, va));
  CHECK_OK(ae_encoder_embed_ids(b, (const int32_t *const *)ids, lens, N, vb));
  double d = 0, d1 = 0;
  for (int i = 0; i < N * 32; i++) d = fmax(d, fabs(va[i] - vb[i]));
  for (int i = 0; i < N; i++) {
    CHECK_OK(ae_encoder_embed_ids(b, (const int32_t *const *)&ids[i], &lens[i], 1, one));
    for (int c = 0; c < 32; c++) d1 = fmax(d1, fabs(one[c] - va[i * 32 + c]));
  }
  printf("1 vs 2 threads: max |diff| %.3g; alone vs in a batch: %.3g\n", d, d1);
  CHECK(d < 1e-6);
  CHECK(d1 < 1e-6);
  for (int i = 0; i < N; i++) free(ids[i]);
  ae_encoder_free(a);
  ae_encoder_free(b);
}

/* ---- allocation failures ---------------------------------------------------- */

static void test_alloc_failures(const char *dir) {
  long k, bad_status = 0, leaks = 0;
  for (k = 1; k < 100000; k++) {
    fa_fail_at = k;
    fa_calls = fa_live = 0;
    ae_set_allocator(&fa_allocator);
    ae_encoder *e = NULL;
    int rc = ae_encoder_load(dir, NULL, &e);
    ae_encoder_free(e);
    ae_set_allocator(NULL);
    if (fa_live) leaks++;
    if (rc == AE_OK) { CHECK(fa_calls < k); break; }
    if (rc != AE_ENOMEM || e) bad_status++;
  }
  printf("load: allocation failure injected at each of %ld allocations\n", k - 1);
  CHECKF(bad_status == 0, "%ld injected failures gave another status than AE_ENOMEM", bad_status);
  CHECKF(leaks == 0, "%ld injected failures leaked", leaks);

  /* failures while embedding: a clean AE_ENOMEM, and the encoder still works after */
  ae_encoder *e = NULL;
  CHECK_OK(ae_encoder_load(dir, NULL, &e));
  REQUIRE(e);
  const char *texts[3] = {"def parse(path)", "return self.value", "the value of a"};
  float out[96], ref[96];
  int st[3];
  CHECK_OK(ae_encoder_embed_texts(e, texts, NULL, 3, ref, st));
  ae__encoder_tune(e, 0, 16);     /* drops the buffers: the next call reallocates them */
  long fails = 0;
  for (k = 1; k < 10000; k++) {
    fa_fail_at = k;
    fa_calls = 0;
    ae_set_allocator(&fa_allocator);
    int rc = ae_encoder_embed_texts(e, texts, NULL, 3, out, st);
    ae_set_allocator(NULL);
    if (rc == AE_OK && fa_calls < k) break;
    int any = rc == AE_ENOMEM;
    for (int i = 0; i < 3; i++) any |= st[i] == AE_ENOMEM;
    if (!any) fails++;
    ae__encoder_tune(e, 0, 16);
  }
  CHECKF(fails == 0, "%ld injected failures while embedding were not reported", fails);
  CHECK_OK(ae_encoder_embed_texts(e, texts, NULL, 3, out, st));
  CHECK(memcmp(out, ref, sizeof out) == 0);
  printf("embed_texts: allocation failure injected at each of %ld allocations\n", k - 1);
  ae_encoder_free(e);
}

int main(void) {
  char *root = mkdir_tmp();
  REQUIRE(root);
  char *dir = small_model(root, 1, 1), *other = small_model(root, 1, 2);
  test_load_and_accessors(dir, other);
  test_texts(dir);
  test_invariance(dir);
  test_alloc_failures(dir);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
  free(dir); free(other); free(root);
  TEST_DONE();
}
