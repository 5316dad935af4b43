// ctest-timeout: 900
/* The opt-in bf16 precision (ae_encoder_options.precision = "bf16"): bf16 GEMM
 * inputs, f32 accumulation and f32 everywhere else.
 *
 *  - the f32 -> bf16 conversion rounds to nearest even, like the scalar definition;
 *  - option handling: unknown precision -> AE_EINVAL naming it; fingerprints differ
 *    between f32 and bf16 and the f32 one is unchanged (model fp || "f32\0");
 *  - accuracy, measured against the f32 path AND the float64 PyTorch reference
 *    (tools/reference.py), on random-weight MiniLM-shaped models (in memory, random
 *    ids of every length; and an init-random folder fed real annotation texts):
 *    every vector's cosine >= MIN_COS, max |diff| <= MAX_ABS, and the nearest
 *    neighbour of each text among the others is the same as with f32;
 *  - oneDNN without AVX512-BF16 (ONEDNN_MAX_CPU_ISA=AVX512_CORE: emulated) still
 *    gives the same vectors; without AVX-512 (AVX2) either the same or a clear
 *    AE_EUNSUPPORTED error naming bf16.
 *
 * Measured (max |diff| relative to the vector's norm, see compare()):
 *   in-memory MiniLM shape, random ids:  min cos 0.99995, max |diff| 1.4e-3
 *   tiny, CLS pooling, no Normalize:     min cos 0.99998, max |diff| 2.5e-3
 *   init-random MiniLM folder, 240 real annotations: min cos 0.999999, 2.6e-4;
 *     nearest neighbour unchanged for 239/240, the other a near-tie (7e-7)
 *   the same against the float64 reference (bf16 error dominates).
 * Bounds: cosine >= 0.9999 (2x the worst measured 1 - cos; the README and the CLI help
 * quote this bound), max |diff| <= 6e-3 (2.4x the worst). A real bf16 bug (wrong layout, unconverted or stale rows) gives cosines
 * far below 0.99. */
#define _GNU_SOURCE
#include "encoder_testutil.h"
#include "failalloc.h"
#include "reference_util.h"
#include "test.h"
#include <unistd.h>
#include <xxhash.h>

#define MIN_COS 0.9999
#define MAX_ABS 6e-3

/* max_abs is max |a - b| over the elements of a vector divided by the L2 norm of a
 * (= the absolute difference for normalised vectors; unnormalised ones have norms
 * of ~sqrt(H) and their errors scale with it). */
typedef struct {
  double min_cos, max_abs;
} closeness;

static closeness compare(const float *a, const float *b, size_t n, int H) {
  closeness c = {1.0, 0.0};
  for (size_t i = 0; i < n; i++) {
    double d = 0, na = 0, nb = 0, e = 0;
    for (int k = 0; k < H; k++) {
      double x = a[i * H + k], y = b[i * H + k];
      d += x * y; na += x * x; nb += y * y;
      if (!(fabs(x - y) <= e)) e = fabs(x - y);   /* NaN propagates as a failure */
    }
    double cs = na > 0 && nb > 0 ? d / sqrt(na * nb) : (na == nb ? 1 : 0);
    if (!(cs >= c.min_cos)) c.min_cos = cs;
    e = na > 0 ? e / sqrt(na) : e;
    if (!(e <= c.max_abs)) c.max_abs = e;
  }
  return c;
}

static double cosine(const float *a, const float *b, int H) {
  double d = 0, na = 0, nb = 0;
  for (int k = 0; k < H; k++) { d += (double)a[k] * b[k]; na += (double)a[k] * a[k]; nb += (double)b[k] * b[k]; }
  return d / sqrt(na * nb);
}

/* Index of the nearest other vector of each vector (cosine), into nn[n]. */
static void nearest(const float *v, size_t n, int H, size_t *nn) {
  for (size_t i = 0; i < n; i++) {
    double best = -2, ni = 0;
    for (int k = 0; k < H; k++) ni += (double)v[i * H + k] * v[i * H + k];
    nn[i] = i;
    for (size_t j = 0; j < n; j++) {
      if (j == i) continue;
      double d = 0, nj = 0;
      for (int k = 0; k < H; k++) { d += (double)v[i * H + k] * v[j * H + k]; nj += (double)v[j * H + k] * v[j * H + k]; }
      double cs = d / sqrt(ni * nj);
      if (cs > best) { best = cs; nn[i] = j; }
    }
  }
}

/* ---- conversion ------------------------------------------------------------------- */

static void check_conversion(void) {
  static const size_t sizes[] = {1, 15, 16, 17, 31, 32, 33, 100, 70001};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    size_t n = sizes[s];
    float *x = malloc(sizeof(float) * n);
    uint16_t *y = malloc(sizeof(uint16_t) * (n + 1));
    y[n] = 0xBEEF;   /* canary: nothing written past n */
    for (size_t i = 0; i < n; i++) {
      float v = tm_normal(3.0f);
      if (i % 5 == 1) {   /* an exact tie: low half 0x8000, so even/odd decides */
        uint32_t b;
        memcpy(&b, &v, 4);
        b = (b & 0xFFFF0000u) | 0x8000u;
        memcpy(&v, &b, 4);
      }
      x[i] = v;
    }
    for (int path = 0; path < 2; path++) {   /* AVX512-BF16 (when present), portable */
      if (path == 0) ae__to_bf16(x, y, n);
      else ae__to_bf16_portable(x, y, n);
      size_t bad = 0;
      for (size_t i = 0; i < n; i++) bad += y[i] != tm_f32_to_bf16(x[i]);
      CHECKF(bad == 0, "n=%zu, path %d: %zu of the conversions are not round-to-nearest-even", n,
             path, bad);
      CHECK(y[n] == 0xBEEF);
    }
    free(x);
    free(y);
  }
  float sp[5] = {INFINITY, -INFINITY, 0.0f, -0.0f, NAN};
  uint16_t o[5], q[5];
  ae__to_bf16(sp, o, 5);
  ae__to_bf16_portable(sp, q, 5);
  for (int i = 0; i < 4; i++) CHECK(o[i] == q[i]);
  CHECK(o[0] == 0x7F80 && o[1] == 0xFF80 && o[2] == 0 && o[3] == 0x8000);
  /* NaN stays a NaN (exponent all ones, mantissa non-zero) on both paths */
  CHECK((o[4] & 0x7F80) == 0x7F80 && (o[4] & 0x7F) && (q[4] & 0x7F80) == 0x7F80 && (q[4] & 0x7F));
}

/* ---- options and fingerprints ----------------------------------------------------- */

static void check_options(void) {
  tmodel *t = tm_new(64, 2, 4, 128, 500, 64, AE__ACT_GELU, AE_POOL_MEAN, 1, "F32", 5, 0.1f);
  ae_encoder *e32 = NULL, *e16 = NULL, *plain16 = NULL, *bad = NULL;
  ae_encoder_options o = {.threads = 2};
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e32));
  o.precision = "f32";
  ae_encoder *e32b = NULL;
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e32b));
  o.precision = "bf16";
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e16));
  o.prepack = AE_PREPACK_OFF;
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &plain16));
  o.prepack = 0;
  o.precision = "fp16";
  CHECK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &bad) == AE_EINVAL);
  CHECK(bad == NULL);
  CHECKF(strstr(ae_last_error(), "'fp16'") != NULL, "error: %s", ae_last_error());
  REQUIRE(e32 && e32b && e16 && plain16);
  CHECK(!strcmp(ae_encoder_precision(e32), "f32") && !strcmp(ae_encoder_precision(e32b), "f32"));
  CHECK(!strcmp(ae_encoder_precision(e16), "bf16") && !strcmp(ae_encoder_precision(plain16), "bf16"));

  uint8_t f32[16], f32b[16], b16[16], p16[16], as[16];
  ae_encoder_fingerprint(e32, f32);
  ae_encoder_fingerprint(e32b, f32b);
  ae_encoder_fingerprint(e16, b16);
  ae_encoder_fingerprint(plain16, p16);
  CHECK(!memcmp(f32, f32b, 16));
  CHECK(memcmp(f32, b16, 16) != 0);
  CHECK(!memcmp(b16, p16, 16));   /* the fingerprint follows the precision, not the mode */
  /* f32 is what it was before precisions existed: XXH3-128(model fp || "f32\0") */
  uint8_t buf[20];
  memcpy(buf, t->m.fingerprint, 16);
  memcpy(buf + 16, "f32", 4);
  XXH128_canonical_t c;
  XXH128_canonicalFromHash(&c, XXH3_128bits(buf, sizeof buf));
  CHECK(!memcmp(f32, c.digest, 16));
  CHECK_OK(ae_encoder_fingerprint_as(e32, "bf16", as));
  CHECK(!memcmp(as, b16, 16));
  CHECK_OK(ae_encoder_fingerprint_as(e16, "f32", as));
  CHECK(!memcmp(as, f32, 16));
  CHECK_OK(ae_encoder_fingerprint_as(e16, NULL, as));
  CHECK(!memcmp(as, f32, 16));
  CHECK(ae_encoder_fingerprint_as(e16, "int8", as) == AE_EINVAL);
  CHECK(strstr(ae_last_error(), "'int8'") != NULL);

  /* f32 vectors are bit-for-bit those of an encoder made without the field; plain
   * mode computes in f32 whatever the precision (within the f32 tolerance) */
  int32_t ids[3][20];
  size_t lens[3] = {20, 7, 13};
  const int32_t *p[3] = {ids[0], ids[1], ids[2]};
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 20; k++) ids[i][k] = (int32_t)((i * 131 + k * 17) % 500);
  float va[3 * 64], vb[3 * 64], vp[3 * 64];
  CHECK_OK(ae_encoder_embed_ids(e32, p, lens, 3, va));
  CHECK_OK(ae_encoder_embed_ids(e32b, p, lens, 3, vb));
  CHECK_OK(ae_encoder_embed_ids(plain16, p, lens, 3, vp));
  CHECK(!memcmp(va, vb, sizeof va));
  CHECK(max_diff(va, vp, 3 * 64) <= 1e-6);
  ae_encoder_free(e32); ae_encoder_free(e32b); ae_encoder_free(e16); ae_encoder_free(plain16);
  tm_free(t);
}

/* ---- in-memory models, random ids of every length ------------------------------ */

typedef struct {
  const char *name;
  int H, layers, heads, I, vocab, max_pos, act, pooling, normalize;
  float std;
  int every_to, n_random;
} config;

/* Vectors of enc for ids (both precisions run the same call). */
static float *embed(ae_encoder *enc, int32_t **ids, size_t *lens, size_t n, int H) {
  float *v = calloc(n * H, sizeof(float));
  CHECK_OK(ae_encoder_embed_ids(enc, (const int32_t *const *)ids, lens, n, v));
  return v;
}

static void check_memory_config(const config *c, const char *tmp, int torch) {
  tmodel *t = tm_new(c->H, c->layers, c->heads, c->I, c->vocab, c->max_pos, c->act, c->pooling,
                     c->normalize, "F32", 77 + c->H, c->std);
  size_t n = 0, cap = (size_t)(c->every_to + c->n_random);
  int32_t **ids = malloc(sizeof *ids * cap);
  size_t *lens = malloc(sizeof *lens * cap);
  for (int k = 0; k < c->every_to + c->n_random; k++) {
    int L = k < c->every_to ? k + 1 : 1 + (int)(tm_uniform() * c->max_pos);
    lens[n] = (size_t)L;
    ids[n] = malloc(sizeof(int32_t) * L);
    for (int p = 0; p < L; p++) ids[n][p] = (int32_t)(tm_uniform() * c->vocab);
    n++;
  }
  ae_encoder *e32 = NULL, *e16 = NULL;
  ae_encoder_options o = {.threads = 2};
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e32));
  o.precision = "bf16";
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e16));
  REQUIRE(e32 && e16);
  float *v32 = embed(e32, ids, lens, n, c->H), *v16 = embed(e16, ids, lens, n, c->H);
  closeness vs32 = compare(v32, v16, n, c->H);
  printf("%-12s H=%d L=%d I=%d: %zu inputs: bf16 vs f32 min cos %.7f max |diff| %.3g\n", c->name,
         c->H, c->layers, c->I, n, vs32.min_cos, vs32.max_abs);
  CHECKF(vs32.min_cos >= MIN_COS && vs32.max_abs <= MAX_ABS, "%s: bf16 vs f32: cos %.7f, |diff| %.3g",
         c->name, vs32.min_cos, vs32.max_abs);
  /* a vector does not depend on the rest of the call: one at a time, small chunks */
  ae__encoder_tune(e16, 512, 64);
  float *one = calloc(c->H, sizeof(float));
  double d1 = 0;
  for (size_t i = 0; i < n; i += 5) {
    CHECK_OK(ae_encoder_embed_ids(e16, (const int32_t *const *)&ids[i], &lens[i], 1, one));
    double di = max_diff(one, v16 + i * c->H, c->H);
    if (!(di <= d1)) d1 = di;
  }
  CHECKF(d1 <= 1e-5, "%s: bf16 single items vs batched: max |diff| %.3g", c->name, d1);
  if (torch) {
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", tmp, c->name);
    REQUIRE(tm_write_folder(t, dir) == 0);
    float *ref = run_reference(dir, ids, lens, n, c->H);
    REQUIRE(ref);
    closeness r32 = compare(ref, v32, n, c->H), r16 = compare(ref, v16, n, c->H);
    printf("%-12s   vs float64 reference: f32 max |diff| %.3g; bf16 min cos %.7f max |diff| %.3g\n",
           c->name, r32.max_abs, r16.min_cos, r16.max_abs);
    CHECK(r32.max_abs <= 1e-5);
    CHECKF(r16.min_cos >= MIN_COS && r16.max_abs <= MAX_ABS, "%s: bf16 vs reference: cos %.7f, |diff| %.3g",
           c->name, r16.min_cos, r16.max_abs);
    free(ref);
  }
  free(one); free(v32); free(v16);
  ae_encoder_free(e32); ae_encoder_free(e16);
  for (size_t i = 0; i < n; i++) free(ids[i]);
  free(ids); free(lens);
  tm_free(t);
}

/* ---- a model folder and real texts ------------------------------------------------ */

/* text = signature + summary + source of the first n annotations (NULL when missing). */
static size_t read_annotations(const char *shared, char **texts, size_t n) {
  char path[4200];
  snprintf(path, sizeof path, "%s/testdata/cpython-stdlib-annotations.jsonl", shared);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char *line = NULL;
  size_t cap = 0, k = 0;
  while (k < n && getline(&line, &cap, f) > 0) {
    json_t *j = json_loads(line, 0, NULL);
    if (!j) continue;
    const char *parts[3] = {json_string_value(json_object_get(j, "signature")),
                            json_string_value(json_object_get(j, "summary")),
                            json_string_value(json_object_get(j, "sourceSnippet"))};
    size_t len = 4;
    for (int p = 0; p < 3; p++) len += parts[p] ? strlen(parts[p]) : 0;
    texts[k] = malloc(len);
    snprintf(texts[k], len, "%s %s %s", parts[0] ? parts[0] : "", parts[1] ? parts[1] : "",
             parts[2] ? parts[2] : "");
    k++;
    json_decref(j);
  }
  free(line);
  fclose(f);
  return k;
}

static void check_real_texts(const char *shared, const char *tmp, int torch) {
  enum { N = 240, N_REF = 80 };
  char like[4200], dir[4200];
  snprintf(like, sizeof like, "%s/models/all-MiniLM-L6-v2", shared);
  snprintf(dir, sizeof dir, "%s/minilm-files", tmp);
  ae_model_random_options io;
  ae_model_random_options_default(&io);
  io.seed = 11;
  CHECK_OK(ae_model_init_random_opts(like, dir, &io));
  char *texts[N];
  size_t n = read_annotations(shared, texts, N);
  if (n < N) { printf("SKIP: the annotations file has %zu of %d texts\n", n, N); return; }
  ae_encoder *e32 = NULL, *e16 = NULL, *bad = NULL;
  ae_encoder_options o = {.threads = 2, .max_length = 256};
  CHECK_OK(ae_encoder_load(dir, &o, &e32));
  o.precision = "BF16";   /* names are exact, lowercase */
  CHECK(ae_encoder_load(dir, &o, &bad) == AE_EINVAL && bad == NULL);
  CHECK(strstr(ae_last_error(), "'BF16'") != NULL);
  o.precision = "bf16";
  CHECK_OK(ae_encoder_load(dir, &o, &e16));
  REQUIRE(e32 && e16);
  const int H = ae_encoder_dim(e32);
  int32_t *ids[N];
  size_t lens[N], tokens = 0;
  for (size_t i = 0; i < n; i++) {
    CHECK_OK(ae_tokenizer_encode(ae_encoder_tokenizer(e32), texts[i], strlen(texts[i]), 256, &ids[i], &lens[i], NULL));
    tokens += lens[i];
  }
  float *v32 = calloc(n * H, sizeof(float)), *v16 = calloc(n * H, sizeof(float));
  int st[N];
  CHECK_OK(ae_encoder_embed_texts(e32, (const char *const *)texts, NULL, n, v32, st));
  CHECK_OK(ae_encoder_embed_texts(e16, (const char *const *)texts, NULL, n, v16, st));
  closeness vs32 = compare(v32, v16, n, H);
  size_t nn32[N], nn16[N], agree = 0;   /* agree: counted below */
  nearest(v32, n, H, nn32);
  nearest(v16, n, H, nn16);
  /* where the neighbours differ, bf16 must have picked a near-tie: by the f32
   * vectors, its choice scores within TIE of the f32 best */
  double worst_gap = 0;
  for (size_t i = 0; i < n; i++) {
    if (nn32[i] == nn16[i]) { agree++; continue; }
    double gap = cosine(v32 + i * H, v32 + nn32[i] * H, H) - cosine(v32 + i * H, v32 + nn16[i] * H, H);
    if (gap > worst_gap) worst_gap = gap;
  }
  printf("real texts   %zu annotations (%zu tokens): bf16 vs f32 min cos %.7f max |diff| %.3g, "
         "nearest neighbour the same for %zu/%zu (the others: f32 cosine gap <= %.2g)\n", n, tokens,
         vs32.min_cos, vs32.max_abs, agree, n, worst_gap);
  CHECKF(worst_gap <= 1e-4, "a changed nearest neighbour was %.3g below the f32 best", worst_gap);
  CHECKF(vs32.min_cos >= MIN_COS && vs32.max_abs <= MAX_ABS, "real texts: bf16 vs f32: cos %.7f, |diff| %.3g",
         vs32.min_cos, vs32.max_abs);
  /* ranking: at least 98% of the texts keep their nearest neighbour (measured: all) */
  CHECKF(agree * 100 >= n * 98, "nearest neighbour agreement %zu/%zu", agree, n);
  if (torch) {
    float *ref = run_reference(dir, ids, lens, N_REF, H);
    REQUIRE(ref);
    closeness r32 = compare(ref, v32, N_REF, H), r16 = compare(ref, v16, N_REF, H);
    printf("real texts   first %d vs float64 reference: f32 max |diff| %.3g; bf16 min cos %.7f max |diff| %.3g\n",
           N_REF, r32.max_abs, r16.min_cos, r16.max_abs);
    CHECK(r32.max_abs <= 1e-5);
    CHECKF(r16.min_cos >= MIN_COS && r16.max_abs <= MAX_ABS, "real texts: bf16 vs reference: cos %.7f, |diff| %.3g",
           r16.min_cos, r16.max_abs);
    free(ref);
  }
  for (size_t i = 0; i < n; i++) { free(texts[i]); ae_free(ids[i]); }
  free(v32); free(v16);
  ae_encoder_free(e32); ae_encoder_free(e16);
}

/* ---- allocation failures ----------------------------------------------------------- */

/* Building a bf16 encoder and its first embed (which grows the bf16 buffer) with the
 * k-th allocation failing, for every k: AE_ENOMEM, nothing leaked; then the vectors. */
static void check_alloc_failures(void) {
  tmodel *t = tm_new(64, 2, 4, 128, 500, 64, AE__ACT_GELU, AE_POOL_MEAN, 1, "F32", 3, 0.1f);
  int32_t ids[2][30];
  size_t lens[2] = {30, 9};
  const int32_t *p[2] = {ids[0], ids[1]};
  for (int i = 0; i < 2; i++)
    for (int k = 0; k < 30; k++) ids[i][k] = (int32_t)((i * 57 + k * 13) % 500);
  ae_encoder_options o = {.threads = 2, .precision = "bf16"};
  float ref[128], out[128];
  ae_encoder *e = NULL;
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e));
  REQUIRE(e);
  CHECK_OK(ae_encoder_embed_ids(e, p, lens, 2, ref));
  ae_encoder_free(e);
  long k, bad = 0, leaks = 0;
  for (k = 1; k < 100000; k++) {
    fa_fail_at = k;
    fa_calls = fa_live = 0;
    ae_set_allocator(&fa_allocator);
    e = NULL;
    int rc = ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e);
    if (!rc) rc = ae_encoder_embed_ids(e, p, lens, 2, out);
    ae_encoder_free(e);
    ae_set_allocator(NULL);
    if (fa_live) leaks++;
    if (rc == AE_OK) { CHECK(fa_calls < k && !memcmp(out, ref, sizeof out)); break; }
    if (rc != AE_ENOMEM) bad++;
  }
  printf("bf16 new + embed: allocation failure injected at each of %ld allocations\n", k - 1);
  CHECKF(bad == 0 && leaks == 0, "%ld wrong statuses, %ld leaks", bad, leaks);
  tm_free(t);
}

/* ---- CPUs without AVX512-BF16 ----------------------------------------------------- */

/* Child mode (ONEDNN_MAX_CPU_ISA set by the parent): exit 0 = bf16 matches f32,
 * 3 = a clear AE_EUNSUPPORTED naming bf16, anything else = failure. */
static int isa_child(void) {
  tmodel *t = tm_new(96, 2, 4, 192, 500, 64, AE__ACT_GELU, AE_POOL_MEAN, 1, "F32", 9, 0.08f);
  ae_encoder *e32 = NULL, *e16 = NULL;
  ae_encoder_options o = {.threads = 2};
  if (ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e32)) return 1;
  o.precision = "bf16";
  int rc = ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &e16);
  if (rc) {
    printf("  child: %s\n", ae_last_error());
    int clear = rc == AE_EUNSUPPORTED && strstr(ae_last_error(), "bf16");
    ae_encoder_free(e32);
    tm_free(t);
    return clear ? 3 : 2;
  }
  enum { N = 40 };
  int32_t *ids[N];
  size_t lens[N];
  for (int i = 0; i < N; i++) {
    lens[i] = (size_t)(1 + (i * 7) % 64);
    ids[i] = malloc(sizeof(int32_t) * lens[i]);
    for (size_t p = 0; p < lens[i]; p++) ids[i][p] = (int32_t)((i * 31 + p * 7) % 500);
  }
  float *a = embed(e32, ids, lens, N, 96), *b = embed(e16, ids, lens, N, 96);
  closeness c = compare(a, b, N, 96);
  printf("  child: bf16 vs f32 min cos %.7f max |diff| %.3g\n", c.min_cos, c.max_abs);
  for (int i = 0; i < N; i++) free(ids[i]);
  free(a); free(b);
  ae_encoder_free(e32); ae_encoder_free(e16);
  tm_free(t);
  return c.min_cos >= MIN_COS && c.max_abs <= MAX_ABS && !t_fail ? 0 : 1;
}

static void check_isa(const char *isa, int may_refuse) {
  char cmd[4400], self[4096];
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  REQUIRE(k > 0);
  self[k] = 0;
  snprintf(cmd, sizeof cmd, "ONEDNN_MAX_CPU_ISA=%s DNNL_MAX_CPU_ISA=%s '%s' --isa-child", isa, isa, self);
  int st = system(cmd);
  int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  printf("oneDNN limited to %s: %s\n", isa, code == 0 ? "bf16 runs (emulated), same vectors"
         : code == 3 ? "bf16 refused with a clear error" : "FAILED");
  CHECKF(code == 0 || (may_refuse && code == 3), "%s: child exit %d", isa, code);
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "--isa-child")) return isa_child();
  tm_rng = 12345;
  check_conversion();
  check_options();
  check_alloc_failures();
  int torch = have_torch();
  if (!torch) printf("SKIP: /usr/bin/python3 cannot import torch and numpy: bf16 is compared with f32 only\n");
  char tmp[] = "/tmp/ae_encbf16_XXXXXX";
  REQUIRE(mkdtemp(tmp));
  static const config configs[] = {
    {"minilm-shape", 384, 6, 12, 1536, 30522, 256, AE__ACT_GELU, AE_POOL_MEAN, 1, 0.05f, 4, 36},
    {"tiny-cls-raw", 64, 2, 4, 128, 1000, 128, AE__ACT_GELU_NEW, AE_POOL_CLS, 0, 0.15f, 64, 40},
  };
  for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
    check_memory_config(&configs[i], tmp, torch);
  const char *sh = test_shared_dir();
  if (sh) check_real_texts(sh, tmp, torch);
  else printf("SKIP: ../shared missing: no init-random folder and real texts\n");
  check_isa("AVX512_CORE", 0);
  check_isa("AVX2", 1);
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
  TEST_DONE();
}
