// ctest-labels: tsan
// ctest-timeout: 600
/* The generator's tokenizer thread: misses are tokenized on their own thread, at
 * most a bounded number of items ahead of the batch being encoded.
 *
 * With more misses than the look-ahead (2,048 items), the first batch necessarily
 * starts while the tokenizer is still working, so overlapped_batches > 0 whenever the
 * overlap exists; results stay in input order and equal to embedding each text
 * directly (vectors, token counts and truncated flags), and a cancel from the
 * progress callback in the middle of the run leaves every item either embedded or
 * AE_EINTR, never half-done. An allocation-failure sweep over the whole embed call
 * (tokenizer thread included) checks the same of every result and that nothing
 * leaks. Labelled tsan: the hand-off between the tokenizer thread
 * and the batches (the memory processor's worker) runs under ThreadSanitizer too, so
 * the encoder runs on one thread here (libgomp is not instrumented). */
#include "astembed.h"
#include "model/model.h"
#include "failalloc.h"
#include "gen_test_util.h"
#include "test.h"
#include <stdatomic.h>
#include <unistd.h>

#define N_ITEMS 2600

static char dir[64], model[128];
static ae_annotation items[N_ITEMS];
static char ids[N_ITEMS][16], sigs[N_ITEMS][64], sums[N_ITEMS][512];

static void make_model(void) {
  snprintf(model, sizeof model, "%s/model", dir);
  make_tiny_minilm(model, (tiny_shape){.seed = 11, .layers = 1, .hidden = 32, .heads = 2,
                                       .intermediate = 64, .max_len = 48});
}

/* Items of many lengths, some over the max length (truncated), in no length order. */
static void make_items(void) {
  static const char *words[] = {"parse", "the", "buffer", "into", "tokens", "and", "return", "count"};
  for (int i = 0; i < N_ITEMS; i++) {
    snprintf(ids[i], sizeof ids[i], "n%d", i);
    snprintf(sigs[i], sizeof sigs[i], "def f_%d(a, b=%d)", i, i % 7);
    int words_n = (i * 37) % 61, k = 0;
    for (int w = 0; w < words_n && k < 480; w++)
      k += snprintf(sums[i] + k, sizeof sums[i] - (size_t)k, "%s ", words[(i + w) % 8]);
    items[i] = (ae_annotation){.node_id = ids[i], .signature = sigs[i], .summary = sums[i],
                               .snippet = "", .file_path = "", .node_type = "", .language = ""};
  }
}

static ae_generator *make_gen(void) {
  ae_generator_config c;
  ae_generator_config_default(&c);
  snprintf(c.model.path, sizeof c.model.path, "%s", model);
  c.model.threads = 1;
  c.cache.enabled = 0;
  ae_generator *g = NULL;
  if (ae_generator_new(&c, &g) || ae_generator_init(g)) {
    fprintf(stderr, "generator: %s\n", ae_last_error());
    ae_generator_free(g);
    return NULL;
  }
  return g;
}

static void test_matches_direct(void) {
  ae_encoder_options eo = {.threads = 1};
  ae_encoder *enc;
  REQUIRE(ae_encoder_load(model, &eo, &enc) == AE_OK);
  int dim = ae_encoder_dim(enc), max_len = ae_encoder_max_length(enc);
  float *ref = calloc((size_t)N_ITEMS * dim, sizeof(float));
  int *ref_tokens = calloc(N_ITEMS, sizeof(int)), *ref_trunc = calloc(N_ITEMS, sizeof(int));
  REQUIRE(ref && ref_tokens && ref_trunc);
  for (int i = 0; i < N_ITEMS; i++) {
    char *t;
    size_t len, n_ids;
    int32_t *tok;
    REQUIRE(ae_annotation_text(&items[i], NULL, &t, &len, NULL) == AE_OK);
    const char *tx[1] = {t};
    int st;
    ae_encoder_embed_texts(enc, tx, &len, 1, ref + (size_t)i * dim, &st);
    REQUIRE(ae_tokenizer_encode(ae_encoder_tokenizer(enc), t, len, (size_t)max_len, &tok, &n_ids,
                                &ref_trunc[i]) == AE_OK);
    ref_tokens[i] = (int)n_ids;
    ae_free(tok);
    ae_free(t);
  }
  ae_encoder_free(enc);

  ae_generator *g = make_gen();
  REQUIRE(g);
  ae_embed_result *r = calloc(N_ITEMS, sizeof *r);
  REQUIRE(r);
  CHECK_OK(ae_generator_embed(g, items, N_ITEMS, r));
  size_t bad_order = 0, bad_vec = 0, bad_tokens = 0, bad_trunc = 0, n_trunc = 0;
  for (int i = 0; i < N_ITEMS; i++) {
    if (r[i].node_id != items[i].node_id) bad_order++;
    int ok = r[i].status == AE_OK && r[i].vector;
    for (int d = 0; ok && d < dim; d++)
      if (fabsf(r[i].vector[d] - ref[(size_t)i * dim + d]) > 1e-4f) ok = 0;
    bad_vec += !ok;
    bad_tokens += r[i].tokens != ref_tokens[i];
    bad_trunc += r[i].truncated != ref_trunc[i];
    n_trunc += ref_trunc[i] != 0;
  }
  CHECKF(!bad_order && !bad_vec && !bad_tokens && !bad_trunc,
         "%zu out of order, %zu wrong vectors, %zu wrong token counts, %zu wrong truncated flags",
         bad_order, bad_vec, bad_tokens, bad_trunc);
  CHECK(n_trunc > 0 && n_trunc < N_ITEMS);   /* the test covers both kinds */
  ae_performance_metrics m;
  CHECK_OK(ae_generator_metrics(g, &m));
  CHECKF(m.overall.overlapped_batches > 0, "no batch overlapped the tokenizer (%llu batches)",
         (unsigned long long)m.overall.batches);
  CHECK(m.overall.tokenize_ms > 0 && m.overall.tokenize_wait_ms >= 0 && m.overall.embedded == N_ITEMS);
  char *js = ae_generator_metrics_json(g);
  CHECK(js && strstr(js, "\"overlappedBatches\"") && strstr(js, "\"tokenizeWaitTime\""));
  ae_free(js);
  ae_embed_results_free(r, N_ITEMS);
  free(r);
  ae_generator_free(g);
  free(ref);
  free(ref_tokens);
  free(ref_trunc);
}

/* Cancels once a few hundred items are done (called from the batch side). */
static void cancel_midway(void *ud, size_t done, size_t total, size_t hits) {
  (void)total; (void)hits;
  ae_generator *g = ud;
  if (done >= 300) ae_generator_cancel(g);
}

static void test_cancel_midway(void) {
  ae_generator *g = make_gen();
  REQUIRE(g);
  ae_generator_set_progress(g, cancel_midway, g);
  ae_embed_result *r = calloc(N_ITEMS, sizeof *r);
  REQUIRE(r);
  CHECK(ae_generator_embed(g, items, N_ITEMS, r) == AE_EINTR);
  size_t ok = 0, intr = 0, other = 0;
  for (int i = 0; i < N_ITEMS; i++) {
    if (r[i].status == AE_OK && r[i].vector) ok++;
    else if (r[i].status == AE_EINTR && !r[i].vector) intr++;
    else other++;
  }
  CHECKF(ok >= 300 && intr > 0 && other == 0 && ok + intr == N_ITEMS,
         "after a cancel: %zu embedded, %zu interrupted, %zu in another state", ok, intr, other);
  ae_embed_results_free(r, N_ITEMS);
  free(r);
  ae_generator_free(g);
}

/* The k-th allocation fails, for k across one embed call of 60 items: the call may
 * fail, an item may fail, but each result is whole (a vector, or an error and none)
 * and every block is given back. */
static void test_alloc_failures(void) {
  enum { M = 60 };
  ae_embed_result r[M];
  ae_set_allocator(&fa_allocator);
  fa_fail_at = 0;
  ae_generator *g = make_gen();
  REQUIRE(g);
  long before = fa_calls;
  CHECK_OK(ae_generator_embed(g, items, M, r));   /* a clean call: how many allocations */
  ae_embed_results_free(r, M);
  long per_call = fa_calls - before, runs = 0, bad = 0, call_failed = 0, item_failed = 0;
  ae_generator_free(g);
  long stride = per_call / 150 + 1;
  for (long k = 1; k <= per_call + 1; k += stride) {
    fa_fail_at = 0;
    long live0 = fa_live;
    g = make_gen();
    REQUIRE(g);
    ae_generator_set_force(g, 1);
    fa_fail_at = fa_calls + k;
    int rc = ae_generator_embed(g, items, M, r);
    fa_fail_at = 0;
    call_failed += rc != AE_OK;
    for (int i = 0; i < M; i++) {
      int whole = (r[i].status == AE_OK && r[i].vector) || (r[i].status != AE_OK && !r[i].vector && r[i].error[0]);
      bad += !whole;
      item_failed += r[i].status != AE_OK;
    }
    ae_embed_results_free(r, M);
    ae_generator_free(g);
    CHECKF(fa_live == live0, "k=%ld: %ld blocks leaked", k, fa_live - live0);
    runs++;
  }
  ae_set_allocator(NULL);
  CHECKF(bad == 0, "%ld results neither embedded nor failed cleanly over %ld runs", bad, runs);
  CHECKF(call_failed + item_failed > 0, "no injected failure was seen over %ld runs", runs);
  printf("alloc sweep: %ld allocations per call, %ld runs, %ld calls and %ld items failed\n",
         per_call, runs, call_failed, item_failed);
}

int main(void) {
  strcpy(dir, "/tmp/ae_overlap_XXXXXX");
  REQUIRE(mkdtemp(dir));
  make_model();
  make_items();
  test_matches_direct();
  test_cancel_midway();
  test_alloc_failures();
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  TEST_DONE();
}
