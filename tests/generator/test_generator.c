// ctest-timeout: 300
/* Generator end to end with a tiny random-weight model (2 layers, hidden 64, max
 * length 64): results in input order and equal to embedding each text directly,
 * bad annotations failing alone, memory-cache hits on a second call, store-tier hits
 * in a new generator, exactly the edited items re-embedded, every section disabled in
 * turn giving the same vectors, --force, truncation counted, cancellation, metrics as
 * JSON and Prometheus, and a child SIGKILLed mid-run after which the next run embeds
 * exactly what is missing. */
#include "astembed.h"
#include "model/model.h"
#include "test.h"
#include "gen_test_util.h"
#include <jansson.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], model[128];
static ae_annotation_set *set;
static const ae_annotation *items;
static size_t n;

static void make_model(void) {
  snprintf(model, sizeof model, "%s/model", dir);
  make_tiny_minilm(model, (tiny_shape){.seed = 7, .layers = 2, .hidden = 64, .heads = 4,
                                       .intermediate = 128, .max_len = 64});
}

static void config(ae_generator_config *c) {
  ae_generator_config_default(c);
  snprintf(c->model.path, sizeof c->model.path, "%s", model);
  c->model.threads = 2;
}

static ae_generator *make_gen(const ae_generator_config *c, ae_store *st) {
  ae_generator *g = NULL;
  if (ae_generator_new(c, &g) != AE_OK) return NULL;
  if (st) ae_generator_set_store(g, st);
  if (ae_generator_init(g) != AE_OK) {
    fprintf(stderr, "init: %s\n", ae_last_error());
    ae_generator_free(g);
    return NULL;
  }
  return g;
}

/* Reference vectors: each annotation's text embedded directly by the encoder. */
static float *reference(int *dim_out) {
  ae_encoder_options eo = {.threads = 2};
  ae_encoder *enc;
  if (ae_encoder_load(model, &eo, &enc)) return NULL;
  int dim = ae_encoder_dim(enc);
  float *ref = calloc(n * dim, sizeof(float));
  for (size_t i = 0; i < n; i++) {
    char *t; size_t len;
    if (ae_annotation_text(&items[i], NULL, &t, &len, NULL)) continue;
    const char *tx[1] = {t};
    int st;
    ae_encoder_embed_texts(enc, tx, &len, 1, ref + i * dim, &st);
    ae_free(t);
  }
  ae_encoder_free(enc);
  *dim_out = dim;
  return ref;
}

static double max_diff(const float *a, const float *b, int dim) {
  double m = 0;
  for (int i = 0; i < dim; i++) m = fmax(m, fabs((double)a[i] - b[i]));
  return m;
}

static void check_results(const char *what, ae_embed_result *r, const float *ref, int dim, int want_cache) {
  size_t bad_order = 0, bad_vec = 0, bad_cache = 0;
  for (size_t i = 0; i < n; i++) {
    if (r[i].node_id != items[i].node_id) bad_order++;
    if (r[i].status != AE_OK || !r[i].vector || max_diff(r[i].vector, ref + i * dim, dim) > 1e-4) bad_vec++;
    if (want_cache >= 0 && r[i].from_cache != want_cache) bad_cache++;
  }
  CHECKF(!bad_order && !bad_vec && !bad_cache, "%s: %zu out of order, %zu wrong vectors, %zu wrong cache flags",
         what, bad_order, bad_vec, bad_cache);
}

static void test_paths(void) {
  int dim;
  float *ref = reference(&dim);
  REQUIRE(ref);
  ae_embed_result *r = calloc(n, sizeof *r);
  ae_generator_config c;
  config(&c);
  ae_generator *g = make_gen(&c, NULL);
  REQUIRE(g);
  CHECK(ae_generator_dim(g) == dim);
  CHECK_OK(ae_generator_embed(g, items, n, r));
  check_results("cold", r, ref, dim, 0);
  size_t trunc = 0;
  char *was_trunc = calloc(n, 1);
  REQUIRE(was_trunc);
  for (size_t i = 0; i < n; i++) { trunc += r[i].truncated; was_trunc[i] = (char)r[i].truncated; }
  CHECK(trunc > 0);                 /* max length 64: many CPython texts are longer */
  ae_embed_results_free(r, n);
  CHECK_OK(ae_generator_embed(g, items, n, r));
  check_results("memory cache", r, ref, dim, 1);
  /* a hit reports the same truncated flag as the run that embedded it */
  size_t flag_diff = 0;
  for (size_t i = 0; i < n; i++) flag_diff += r[i].truncated != was_trunc[i];
  CHECKF(flag_diff == 0, "memory-cache hits: %zu truncated flags differ from the cold run", flag_diff);
  free(was_trunc);
  ae_embed_results_free(r, n);
  ae_performance_metrics m;
  CHECK_OK(ae_generator_metrics(g, &m));
  CHECK(m.overall.items_processed == 2 * n && m.overall.embedded == n && m.cache.memory_hits == n &&
        m.overall.truncated == 2 * trunc && m.overall.failed == 0 && m.cache.lookups == 2 * n);
  CHECK(fabs(m.cache.hit_ratio - 0.5) < 1e-9 && m.overall.batches > 0);
  char *js = ae_generator_metrics_json(g);
  json_t *root = js ? json_loads(js, 0, NULL) : NULL;
  CHECK(root && json_object_get(json_object_get(root, "cache"), "hitRatio") &&
        json_object_get(json_object_get(root, "batchOptimizer"), "averageBatchSize") &&
        json_object_get(json_object_get(root, "memoryProcessor"), "currentStrategy") &&
        json_integer_value(json_object_get(json_object_get(root, "overall"), "itemsProcessed")) == (json_int_t)(2 * n));
  json_decref(root);
  ae_free(js);
  char *prom = ae_generator_metrics_prometheus(g);
  CHECK(prom && strstr(prom, "# TYPE astembed_cache_hit_ratio gauge\nastembed_cache_hit_ratio 0.5") &&
        strstr(prom, "astembed_memory_strategy{strategy="));
  ae_free(prom);
  CHECK_OK(ae_generator_optimize(g));
  /* force: everything through the encoder again */
  ae_generator_set_force(g, 1);
  CHECK_OK(ae_generator_embed(g, items, n, r));
  check_results("force", r, ref, dim, 0);
  ae_embed_results_free(r, n);
  /* cancelled before the first batch: items not reached are AE_EINTR */
  ae_generator_cancel(g);
  CHECK(ae_generator_embed(g, items, n, r) == AE_EINTR);
  size_t intr = 0;
  for (size_t i = 0; i < n; i++) intr += r[i].status == AE_EINTR && !r[i].vector;
  CHECK(intr == n);
  ae_embed_results_free(r, n);
  ae_generator_free(g);

  /* each section disabled in turn: same vectors */
  for (int v = 0; v < 4; v++) {
    config(&c);
    if (v == 0) c.cache.enabled = 0;
    if (v == 1) c.batch_optimizer.enabled = 0;
    if (v == 2) c.memory_processor.enabled = 0;
    if (v == 3) { c.cache.enabled = c.batch_optimizer.enabled = c.memory_processor.enabled = 0; }
    g = make_gen(&c, NULL);
    REQUIRE(g);
    CHECK_OK(ae_generator_embed(g, items, n, r));
    char what[32];
    snprintf(what, sizeof what, "variant %d", v);
    check_results(what, r, ref, dim, 0);
    ae_embed_results_free(r, n);
    ae_generator_free(g);
  }
  free(r);
  free(ref);
}

static void test_bad_items(void) {
  ae_annotation bad[5] = {
    {.node_id = "ok1", .signature = "def f(a)", .summary = "", .snippet = "", .file_path = "", .node_type = "", .language = ""},
    {.node_id = "empty", .signature = "", .summary = "  ", .snippet = "", .file_path = "", .node_type = "", .language = ""},
    {.node_id = "ok2", .signature = "", .summary = "Return the sum", .snippet = "", .file_path = "", .node_type = "", .language = ""},
    {.node_id = "comment-only", .signature = "", .summary = "", .snippet = "# nothing", .file_path = "", .node_type = "", .language = "python"},
    {.node_id = "ok3", .signature = "", .summary = "", .snippet = "x = '\xff\xfe invalid utf8'", .file_path = "", .node_type = "", .language = "python"},
  };
  ae_generator_config c;
  config(&c);
  ae_generator *g = make_gen(&c, NULL);
  REQUIRE(g);
  ae_embed_result r[5];
  CHECK_OK(ae_generator_embed(g, bad, 5, r));
  CHECK(r[0].status == AE_OK && r[2].status == AE_OK && r[4].status == AE_OK);
  CHECK(r[1].status == AE_EINVAL && strstr(r[1].error, "empty") && !r[1].vector);
  CHECK(r[3].status == AE_EINVAL && strstr(r[3].error, "comment-only"));
  ae_performance_metrics m;
  ae_generator_metrics(g, &m);
  CHECK(m.overall.failed == 2 && fabs(m.overall.error_rate - 0.4) < 1e-9);
  ae_embed_results_free(r, 5);
  ae_generator_free(g);
}

static void test_store_tiers(void) {
  char db[160];
  snprintf(db, sizeof db, "%s/index.db", dir);
  ae_store *st;
  CHECK_OK(ae_store_open(db, 0, &st));
  ae_generator_config c;
  config(&c);
  ae_generator *g = make_gen(&c, st);
  REQUIRE(g);
  ae_embed_result *r = calloc(n, sizeof *r);
  char *was_trunc = calloc(n, 1);
  REQUIRE(was_trunc);
  CHECK_OK(ae_generator_embed(g, items, n, r));
  for (size_t i = 0; i < n; i++) was_trunc[i] = (char)r[i].truncated;
  ae_embed_results_free(r, n);
  ae_generator_free(g);
  ae_store_stats ss;
  ae_store_stats_get(st, NULL, &ss);
  CHECK(ss.annotations == n && ss.current_vectors == n);
  /* a new generator (empty memory cache): every vector from the store */
  g = make_gen(&c, st);
  REQUIRE(g);
  CHECK_OK(ae_generator_embed(g, items, n, r));
  size_t from_store = 0;
  size_t flag_diff = 0;
  for (size_t i = 0; i < n; i++) {
    from_store += r[i].from_cache == 2 && r[i].status == AE_OK;
    flag_diff += r[i].truncated != was_trunc[i];
  }
  CHECK(from_store == n);
  CHECKF(flag_diff == 0, "store hits: %zu truncated flags differ from the run that embedded them", flag_diff);
  free(was_trunc);
  ae_embed_results_free(r, n);
  ae_generator_free(g);
  /* 10% edited: exactly those embedded, the rest hits */
  ae_annotation *ed = malloc(n * sizeof *ed);
  memcpy(ed, items, n * sizeof *ed);
  size_t edited = 0;
  for (size_t i = 0; i < n; i += 10) { ed[i].summary = "edited summary"; edited++; }
  g = make_gen(&c, st);
  REQUIRE(g);
  CHECK_OK(ae_generator_embed(g, ed, n, r));
  ae_performance_metrics m;
  ae_generator_metrics(g, &m);
  CHECKF(m.overall.embedded == edited && m.cache.hits == n - edited, "embedded %llu (want %zu), hits %llu",
         (unsigned long long)m.overall.embedded, edited, (unsigned long long)m.cache.hits);
  ae_embed_results_free(r, n);
  ae_generator_free(g);
  ae_store_stats_get(st, NULL, &ss);
  CHECK(ss.annotations == n && ss.current_vectors == n);
  /* model disabled: the store serves what it has, the rest fails alone */
  ae_generator_config off;
  config(&off);
  off.model.enabled = 0;
  off.model.path[0] = 0;
  g = make_gen(&off, st);
  REQUIRE(g);
  ed[3].summary = "edited again";
  CHECK_OK(ae_generator_embed(g, ed, n, r));
  size_t ok = 0;
  for (size_t i = 0; i < n; i++) ok += r[i].status == AE_OK && r[i].from_cache == 2;
  CHECK(ok == n - 1 && r[3].status == AE_ESTATE && strstr(r[3].error, "model is disabled"));
  ae_embed_results_free(r, n);
  ae_generator_free(g);
  ed[3].summary = items[3].summary;
  /* the model is recorded with its folder, so query can find it */
  char *mdir = NULL; uint8_t fp[16]; int dim;
  CHECK_OK(ae_store_model(st, NULL, &mdir, fp, &dim));
  CHECK(mdir && strstr(mdir, "/model") && dim == 64);
  ae_free(mdir);
  free(ed);
  free(r);
  ae_store_close(st);
}

/* A real child process (the astembed CLI) embeds into a fresh store and is SIGKILLed
 * mid-run; the store stays consistent and the next run embeds exactly the items
 * without a current vector. (exec, not a bare fork: GNU OpenMP's thread pool does not
 * survive fork in a process that already used it.) */
static void test_sigkill(void) {
  const char *bdir = getenv("AE_BUILD_DIR");
  char bin[512], db[160], cfg[160];
  snprintf(bin, sizeof bin, "%s/astembed", bdir ? bdir : "build");
  if (access(bin, X_OK)) { printf("SKIP: %s not built: SIGKILL test skipped\n", bin); return; }
  snprintf(db, sizeof db, "%s/kill.db", dir);
  snprintf(cfg, sizeof cfg, "%s/fixed.json", dir);
  FILE *f = fopen(cfg, "w");
  fputs("{\"batchOptimizer\": {\"enabled\": false}, \"memoryProcessor\": {\"enabled\": false}}", f);
  fclose(f);
  size_t all = ae_annotation_set_count(set);
  /* Three kills mid-run are wanted. The CLI child cannot be held back, so on a loaded
   * machine it may finish between "first batch committed" and the kill: such an attempt
   * still checks the store, and another is made, at most 12 in all. */
  int killed = 0;
  for (int round = 0; killed < 3 && round < 12; round++) {
    unlink(db);
    pid_t pid = fork();
    if (pid == 0) {
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execl(bin, bin, "embed", "--input", "examples/annotations.jsonl", "--db", db, "--model", model,
            "--config", cfg, "--threads", "1", "--no-progress", (char *)NULL);
      _exit(127);
    }
    /* wait (up to 60 s of wall time) until the first batch is committed, then kill */
    int status = 0, exited = 0;
    double t0 = ae__now_ms();
    while (!exited && ae__now_ms() - t0 < 60000) {
      usleep(5000);
      ae_store *st;
      if (ae_store_open(db, 1, &st) == AE_OK) {
        ae_store_stats ss;
        int ok = ae_store_stats_get(st, NULL, &ss) == AE_OK;
        ae_store_close(st);
        if (ok && ss.current_vectors > 0) break;    /* the first batch is committed */
      }
      exited = waitpid(pid, &status, WNOHANG) == pid;
    }
    if (!exited) {
      usleep((unsigned)(round % 3 * 7000));  /* then a little later each round */
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
    }
    if (WIFSIGNALED(status)) killed++;
    else printf("note: round %d: the child finished before SIGKILL\n", round);
    ae_store *st;
    CHECK_OK(ae_store_open(db, 0, &st));
    ae_store_stats ss;
    ae_store_stats_get(st, NULL, &ss);
    CHECK(ss.annotations == ss.current_vectors && ss.vectors == ss.current_vectors);
    size_t present = ss.current_vectors;
    ae_generator_config c;
    config(&c);
    ae_generator *g = make_gen(&c, st);
    REQUIRE(g);
    ae_embed_result *r = calloc(all, sizeof *r);
    CHECK_OK(ae_generator_embed(g, items, all, r));
    ae_performance_metrics m;
    ae_generator_metrics(g, &m);
    CHECKF(m.overall.embedded == all - present, "round %d: embedded %llu, missing was %zu", round,
           (unsigned long long)m.overall.embedded, all - present);
    ae_embed_results_free(r, all);
    free(r);
    ae_generator_free(g);
    ae_store_stats_get(st, NULL, &ss);
    CHECK(ss.current_vectors == all);
    ae_store_close(st);
  }
  CHECKF(killed == 3, "only %d children were killed mid-run in 12 attempts", killed);
}

/* The load-cache folder reaches the encoder: the first init writes the compiled
 * tokenizer and the weights entry there, and a second generator loads the same
 * fingerprint from them. Setting it after init is refused. */
static void test_load_cache_dir(void) {
  char cdir[160], cmd[512];
  snprintf(cdir, sizeof cdir, "%s/loadcache", dir);
  ae_generator_config c;
  config(&c);
  uint8_t fp[2][16];
  for (int k = 0; k < 2; k++) {
    ae_generator *g = NULL;
    REQUIRE(ae_generator_new(&c, &g) == AE_OK);
    CHECK_OK(ae_generator_set_load_cache_dir(g, cdir));
    CHECK_OK(ae_generator_init(g));
    ae_generator_fingerprint(g, fp[k]);
    CHECK(ae_generator_set_load_cache_dir(g, NULL) == AE_ESTATE);
    ae_generator_free(g);
    snprintf(cmd, sizeof cmd, "ls %s/tokenizer-*.aetok %s/weights-*.aew >/dev/null 2>&1", cdir, cdir);
    CHECKF(system(cmd) == 0, "round %d: no compiled tokenizer or weights entry in %s", k, cdir);
  }
  CHECK(!memcmp(fp[0], fp[1], 16));
}

int main(void) {
  strcpy(dir, "/tmp/ae_gen_XXXXXX");
  REQUIRE(mkdtemp(dir));
  /* the CLI run by test_sigkill uses the load cache: in this test's folder, not
   * ~/.cache/astembed */
  char lcache[160];
  snprintf(lcache, sizeof lcache, "%s/cli-loadcache", dir);
  setenv("ASTEMBED_CACHE_DIR", lcache, 1);
  make_model();
  CHECK_OK(ae_annotations_load_jsonl("examples/annotations.jsonl", NULL, NULL, &set));
  items = ae_annotation_set_items(set);
  n = ae_annotation_set_count(set);
  if (n > 240) n = 240;
  test_paths();
  test_load_cache_dir();
  test_bad_items();
  test_store_tiers();
  test_sigkill();
  ae_annotation_set_free(set);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  TEST_DONE();
}
