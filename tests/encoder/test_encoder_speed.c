// ctest-timeout: 120
/* Self-benchmark of the forward pass, for tuning (no timing assertions).
 *
 * By default it runs a quick smoke version (small model, one pass) that checks the
 * vectors are finite and unit length and the FLOP accounting. With AE_FWD_BENCH=1
 * it measures, with a MiniLM-shaped random model and AE_FWD_THREADS threads
 * (default 2):
 *   - oneDNN's raw matmul rate for the model's four GEMM shapes at M = 4096
 *     (prepacked weights, bias only), the yardstick for "% of GEMM rate";
 *   - (a) batches of 32 x 128 random tokens;
 *   - (b) the first AE_FWD_N (2000) annotations of
 *     ../shared/testdata/cpython-stdlib-annotations.jsonl (signature + summary +
 *     source, MiniLM tokenizer, truncated at 256) in batches of 32, in input order
 *     and length-sorted;
 * printing tokens/s, items/s, GFLOP/s, % of the GEMM rate and a phase profile.
 *   AE_FWD_BENCH=1 build/tests/test_encoder_speed
 * Other knobs: AE_FWD_REPS (timed runs per workload, median reported),
 * AE_FWD_CHUNK (tokens per forward pass), AE_FWD_FFN_ROWS (row block). */
#define _GNU_SOURCE
#include "encoder_testutil.h"
#include "test.h"
#include <jansson.h>
#include <omp.h>

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median seconds of reps runs of fn over the batches. */
typedef struct {
  ae_encoder *enc;
  int32_t **ids;
  size_t *lens;
  size_t n, batch;
  float *out;
} workload;

static double run_once(workload *w) {
  double t0 = ae__now_ms();
  for (size_t i = 0; i < w->n; i += w->batch) {
    size_t k = w->n - i < w->batch ? w->n - i : w->batch;
    if (ae_encoder_embed_ids(w->enc, (const int32_t *const *)w->ids + i, w->lens + i, k,
                             w->out + i * ae_encoder_dim(w->enc)))
      return -1;
  }
  return (ae__now_ms() - t0) / 1e3;
}

static double median_run(workload *w, int reps) {
  double t[32];
  if (getenv("AE_FWD_REPS")) reps = atoi(getenv("AE_FWD_REPS"));
  if (reps < 1 || reps > 32) reps = 3;
  run_once(w);   /* warm-up: primitives, buffers, page faults */
  for (int r = 0; r < reps; r++) t[r] = run_once(w);
  qsort(t, reps, sizeof t[0], cmp_double);
  return t[reps / 2];
}

static double gemm_rate(ae_encoder *enc, ae__gemm *g, int M, const float *w) {
  float *a = ae__aligned_alloc(sizeof(float) * M * g->K), *c = ae__aligned_alloc(sizeof(float) * M * g->N);
  float *bias = calloc(g->N, sizeof(float));
  for (size_t i = 0; i < (size_t)M * g->K; i++) a[i] = (float)((i % 13) * 0.01);
  memset(c, 0, sizeof(float) * M * g->N);
  double best = 1e30;
  for (int r = 0; r < 12; r++) {
    double t0 = ae__now_ms();
    ae__gemm_run(g, enc->st, M, a, w, bias, c);
    dnnl_stream_wait(enc->st);
    double dt = (ae__now_ms() - t0) / 1e3;
    if (r >= 2) { double x[1] = {dt}; if (x[0] < best) best = x[0]; }
  }
  ae__aligned_free(a); ae__aligned_free(c); free(bias);
  return 2.0 * M * g->K * g->N / best / 1e9;
}

/* Phase shares of one profiled pass, and the GEMMs' own rate inside the forward
 * pass (their FLOPs over their time): a contention-robust view of the overheads. */
static void print_profile(ae_encoder *enc, const size_t *lens, size_t n) {
  uint64_t tot = 0;
  for (int i = 0; i < AE__PH_COUNT; i++) tot += enc->prof_ns[i];
  printf("  profile:");
  for (int i = 0; i < AE__PH_COUNT; i++)
    printf(" %s %.1f%%", ae__phase_names[i], 100.0 * enc->prof_ns[i] / (tot ? tot : 1));
  const ae__bert_config *c = &enc->model->cfg;
  double T = 0;
  for (size_t i = 0; i < n; i++) T += (double)lens[i];
  double gemm_fl = c->layers * 2.0 * T * (4.0 * c->hidden * c->hidden + 2.0 * c->hidden * c->intermediate);
  uint64_t gemm_ns = enc->prof_ns[AE__PH_QKV] + enc->prof_ns[AE__PH_O] + enc->prof_ns[AE__PH_FFN1] +
                     enc->prof_ns[AE__PH_FFN2];
  double all_fl = ae__encoder_flops(c, lens, n);
  printf("\n  GEMMs: %.1f%% of the time for %.1f%% of the FLOPs, %.1f GFLOP/s inside the pass; "
         "whole pass %.1f GFLOP/s = %.1f%% of that\n", 100.0 * gemm_ns / tot, 100.0 * gemm_fl / all_fl,
         gemm_fl / gemm_ns, all_fl / tot, 100.0 * (all_fl / tot) / (gemm_fl / gemm_ns));
  memset(enc->prof_ns, 0, sizeof enc->prof_ns);
}

static double best_gemm_rate(ae_encoder *enc) {
  double r[4] = {gemm_rate(enc, &enc->g_qkv, 4096, enc->pl[0].qkv_w),
                 gemm_rate(enc, &enc->g_o, 4096, enc->pl[0].o_w),
                 gemm_rate(enc, &enc->g_i, 4096, enc->pl[0].i_w),
                 gemm_rate(enc, &enc->g_out, 4096, enc->pl[0].out_w)};
  double best = 0;
  for (int i = 0; i < 4; i++) if (r[i] > best) best = r[i];
  printf("oneDNN matmul, M=4096, prepacked (incl. epilogue): QKV %.1f  O %.1f  FFN1 %.1f  FFN2 %.1f GFLOP/s; best %.1f\n",
         r[0], r[1], r[2], r[3], best);
  return best;
}

static void report(const char *name, ae_encoder *enc, workload *w, int reps, double gemm_best) {
  (void)gemm_best;
  gemm_best = best_gemm_rate(enc);   /* measured next to each workload: the load varies */
  enc->profile = 0;
  double s = median_run(w, reps);
  size_t tokens = 0;
  for (size_t i = 0; i < w->n; i++) tokens += w->lens[i];
  double fl = ae__encoder_flops(&enc->model->cfg, w->lens, w->n);
  printf("%-28s %6zu items %7zu tokens  %8.1f items/s %9.0f tokens/s %6.1f GFLOP/s  %5.1f%% of GEMM\n",
         name, w->n, tokens, w->n / s, tokens / s, fl / s / 1e9, 100.0 * fl / s / 1e9 / gemm_best);
  enc->profile = 1;
  run_once(w);
  enc->profile = 0;
  print_profile(enc, w->lens, w->n);
}

static int cmp_len(const void *a, const void *b, void *lens) {
  size_t x = ((size_t *)lens)[*(const size_t *)a], y = ((size_t *)lens)[*(const size_t *)b];
  return x < y ? -1 : x > y;
}

static void bench(void) {
  setvbuf(stdout, NULL, _IONBF, 0);
  int threads = getenv("AE_FWD_THREADS") ? atoi(getenv("AE_FWD_THREADS")) : 2;
  tmodel *t = tm_new(384, 6, 12, 1536, 30522, 512, AE__ACT_GELU, AE_POOL_MEAN, 1, "F32", 7, 0.02f);
  t->m.max_length = 256;
  ae_encoder *enc = NULL;
  ae_encoder_options o = {.threads = threads, .max_length = 0};
  REQUIRE(ae__encoder_new(&t->m, NULL, NULL, NULL, &o, &enc) == AE_OK);
  if (getenv("AE_FWD_CHUNK")) ae__encoder_tune(enc, (size_t)atol(getenv("AE_FWD_CHUNK")), 0);
  if (getenv("AE_FWD_FFN_ROWS")) ae__encoder_tune(enc, 0, (size_t)atol(getenv("AE_FWD_FFN_ROWS")));
  omp_set_num_threads(threads);
  printf("threads %d, chunk %zu tokens, FFN block %zu rows\n", threads, enc->chunk_tokens, enc->ffn_rows);
  double best = 0;
  /* (a) 32 x 128 */
  workload w = {enc, NULL, NULL, 32 * 4, 32, NULL};
  w.ids = malloc(sizeof *w.ids * w.n);
  w.lens = malloc(sizeof *w.lens * w.n);
  for (size_t i = 0; i < w.n; i++) {
    w.lens[i] = 128;
    w.ids[i] = malloc(sizeof(int32_t) * 128);
    for (int p = 0; p < 128; p++) w.ids[i][p] = (int32_t)(tm_uniform() * 30522);
  }
  w.out = malloc(sizeof(float) * w.n * 384);
  report("(a) 32x128 batches", enc, &w, 7, best);
  for (size_t i = 0; i < w.n; i++) free(w.ids[i]);
  free(w.ids); free(w.lens); free(w.out);

  /* (b) real annotation lengths */
  const char *sh = test_shared_dir();
  char path[4200];
  ae_tokenizer *tok = NULL;
  if (sh) snprintf(path, sizeof path, "%s/models/all-MiniLM-L6-v2", sh);
  if (!sh || ae_tokenizer_load(path, &tok)) {
    printf("SKIP (b): ../shared tokenizer not available\n");
  } else {
    size_t want = getenv("AE_FWD_N") ? (size_t)atol(getenv("AE_FWD_N")) : 2000;
    snprintf(path, sizeof path, "%s/testdata/cpython-stdlib-annotations.jsonl", sh);
    FILE *f = fopen(path, "r");
    workload b = {enc, malloc(sizeof(int32_t *) * want), malloc(sizeof(size_t) * want), 0, 32, NULL};
    char *line = NULL;
    size_t cap = 0;
    while (f && b.n < want && getline(&line, &cap, f) > 0) {
      json_t *v = json_loads(line, 0, NULL);
      if (!v) continue;
      const char *sig = json_string_value(json_object_get(v, "signature"));
      const char *sum = json_string_value(json_object_get(v, "summary"));
      const char *src = json_string_value(json_object_get(v, "sourceSnippet"));
      size_t L = strlen(sig ? sig : "") + strlen(sum ? sum : "") + strlen(src ? src : "") + 3;
      char *text = malloc(L);
      snprintf(text, L, "%s\n%s\n%s", sig ? sig : "", sum ? sum : "", src ? src : "");
      if (!ae_tokenizer_encode(tok, text, strlen(text), 256, &b.ids[b.n], &b.lens[b.n], NULL)) b.n++;
      free(text);
      json_decref(v);
    }
    free(line);
    if (f) fclose(f);
    b.out = malloc(sizeof(float) * b.n * 384);
    report("(b) annotations, input order", enc, &b, 5, best);
    size_t *order = malloc(sizeof(size_t) * b.n);
    for (size_t i = 0; i < b.n; i++) order[i] = i;
    qsort_r(order, b.n, sizeof *order, cmp_len, b.lens);
    int32_t **sid = malloc(sizeof(int32_t *) * b.n);
    size_t *slen = malloc(sizeof(size_t) * b.n);
    for (size_t i = 0; i < b.n; i++) { sid[i] = b.ids[order[i]]; slen[i] = b.lens[order[i]]; }
    workload s = {enc, sid, slen, b.n, 32, b.out};
    report("(b) annotations, sorted", enc, &s, 5, best);
    workload one = {enc, b.ids, b.lens, b.n, b.n, b.out};
    report("(b) annotations, one call", enc, &one, 5, best);
    for (size_t i = 0; i < b.n; i++) ae_free(b.ids[i]);
    free(b.ids); free(b.lens); free(b.out); free(order); free(sid); free(slen);
    ae_tokenizer_free(tok);
  }
  ae_encoder_free(enc);
  tm_free(t);
}

/* Smoke version: a small model, one pass; checks outputs and the FLOP count. */
static void smoke(void) {
  tmodel *t = tm_new(64, 2, 4, 128, 500, 128, AE__ACT_GELU, AE_POOL_MEAN, 1, "F32", 3, 0.1f);
  ae_encoder *enc = NULL;
  CHECK_OK(ae__encoder_new(&t->m, NULL, NULL, NULL, NULL, &enc));
  REQUIRE(enc);
  size_t lens[3] = {1, 17, 128};
  int32_t *ids[3];
  for (int i = 0; i < 3; i++) {
    ids[i] = malloc(sizeof(int32_t) * lens[i]);
    for (size_t p = 0; p < lens[i]; p++) ids[i][p] = (int32_t)(p * 7 % 500);
  }
  float out[3 * 64];
  CHECK_OK(ae_encoder_embed_ids(enc, (const int32_t *const *)ids, lens, 3, out));
  for (int i = 0; i < 3; i++) {
    double ss = 0;
    for (int c = 0; c < 64; c++) ss += (double)out[i * 64 + c] * out[i * 64 + c];
    CHECKF(fabs(ss - 1.0) < 1e-5, "item %d norm^2 %g", i, ss);
  }
  /* 2 layers x (2*146*(4*64^2 + 2*64*128) + 4*(1+289+16384)*64) */
  double want = 2.0 * (2.0 * 146 * (4.0 * 64 * 64 + 2.0 * 64 * 128) + 4.0 * (1 + 289 + 16384) * 64);
  CHECK(fabs(ae__encoder_flops(&t->m.cfg, lens, 3) - want) < 1);
  for (int i = 0; i < 3; i++) free(ids[i]);
  ae_encoder_free(enc);
  tm_free(t);
}

int main(void) {
  if (getenv("AE_FWD_BENCH")) bench();
  else smoke();
  TEST_DONE();
}
