// ctest-labels: tsan
// ctest-timeout: 120
/* The memory-aware processor: strategy rule and hysteresis, callbacks, cleanup, real
 * concurrency of the parallel approach, and the exactly-once property under thousands
 * of randomized runs with scripted pressure (real threads: also run under TSan). */
#define _GNU_SOURCE
#include "common/common.h"
#include "test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* ---- scripted pressure: each probe read takes the next memory % ---------------- */
typedef struct {
  const double *pct;
  int n, pos;
  int reads;
} script;

static char *script_read(const char *path, void *ud) {
  script *s = ud;
  if (strcmp(path, "/proc/meminfo") != 0) return NULL;
  double p = s->n ? s->pct[s->pos < s->n ? s->pos : s->n - 1] : 0;
  if (s->pos < s->n) s->pos++;
  s->reads++;
  char *buf = malloc(128);
  snprintf(buf, 128, "MemTotal: 1000000 kB\nMemAvailable: %.0f kB\n", (100 - p) * 10000);
  return buf;
}
static void quiet(void *ud, const char *msg) { (void)ud; (void)msg; }

static ae_probe *script_probe(script *s) {
  ae_probe_options o = {0};
  o.read_file = script_read;
  o.read_ud = s;
  o.log = quiet;
  ae_probe *p = NULL;
  CHECK_OK(ae_probe_new_ex(&o, &p));
  return p;
}

/* ---- recording callbacks ----------------------------------------------------------- */
typedef struct {
  int changes, warnings, cleanups, progress_calls;
  int from[64], to[64];
  size_t last_done, next_first;
  int order_ok;
  size_t sizes[4096];
  int strat_at_batch[4096];
  int nb;
  ae_memproc *m;
} rec;

static void on_change(void *ud, int from, int to, double pct) {
  rec *r = ud;
  if (r->changes < 64) { r->from[r->changes] = from; r->to[r->changes] = to; }
  r->changes++;
  (void)pct;
}
static void on_warn(void *ud, double pct) { ((rec *)ud)->warnings++; (void)pct; }
static void on_cleanup(void *ud) { ((rec *)ud)->cleanups++; }
static void on_progress(void *ud, size_t done, size_t total) {
  rec *r = ud;
  if (done < r->last_done || done > total) r->order_ok = 0;
  r->last_done = done;
  r->progress_calls++;
}
static void on_batch(void *ud, size_t first, size_t count, const int *status, double ms) {
  rec *r = ud;
  if (first != r->next_first) r->order_ok = 0;
  r->next_first = first + count;
  if (r->nb < 4096) {
    r->sizes[r->nb] = count;
    r->strat_at_batch[r->nb] = ae_memproc_current_strategy(r->m);
    r->nb++;
  }
  (void)status; (void)ms;
}

static int ok_fn(void *ctx, size_t first, size_t count, int *status) {
  (void)ctx; (void)first; (void)count; (void)status;
  return AE_OK;
}

static void test_config_and_rule(void) {
  ae_memproc_config c;
  ae_memproc_config_default(&c);
  CHECK(c.strategies[0].max_batch_size == 1 && c.strategies[0].approach == AE_APPROACH_SEQUENTIAL &&
        c.strategies[0].cleanup_frequency == 1 && strcmp(c.strategies[0].name, "streaming") == 0);
  CHECK(c.strategies[1].max_batch_size == 16 && c.strategies[1].approach == AE_APPROACH_SEQUENTIAL &&
        c.strategies[1].cleanup_frequency == 50);
  CHECK(c.strategies[2].max_batch_size == 32 && c.strategies[2].approach == AE_APPROACH_PARALLEL &&
        c.strategies[2].cleanup_frequency == 100);
  CHECK(c.strategies[3].max_batch_size == 128 && c.strategies[3].approach == AE_APPROACH_PARALLEL &&
        c.strategies[3].cleanup_frequency == 200);
  CHECK(c.critical == 85 && c.high == 70 && c.normal == 55 && c.low == 35);

  /* tightening is immediate */
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_AGGRESSIVE, 90) == AE_STRAT_STREAMING);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_AGGRESSIVE, 85) == AE_STRAT_STREAMING);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_AGGRESSIVE, 70) == AE_STRAT_CONSERVATIVE);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_AGGRESSIVE, 55) == AE_STRAT_BALANCED);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_AGGRESSIVE, 54.9) == AE_STRAT_AGGRESSIVE);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_BALANCED, 84.9) == AE_STRAT_CONSERVATIVE);
  /* relaxing waits for the next threshold down */
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_STREAMING, 80) == AE_STRAT_STREAMING);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_STREAMING, 70) == AE_STRAT_STREAMING);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_STREAMING, 69.9) == AE_STRAT_CONSERVATIVE);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_CONSERVATIVE, 60) == AE_STRAT_CONSERVATIVE);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_CONSERVATIVE, 54) == AE_STRAT_BALANCED);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_BALANCED, 40) == AE_STRAT_BALANCED);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_BALANCED, 34) == AE_STRAT_AGGRESSIVE);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_STREAMING, 10) == AE_STRAT_AGGRESSIVE);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_STREAMING, 50) == AE_STRAT_BALANCED);
  CHECK(ae_memproc_strategy_for(&c, AE_STRAT_CONSERVATIVE, -1) == AE_STRAT_CONSERVATIVE);

  ae_memproc *m;
  ae_memproc_config bad = c;
  bad.high = 90;
  CHECK(ae_memproc_new(&bad, &m) == AE_EINVAL && strstr(ae_last_error(), "thresholds"));
  bad = c;
  bad.strategies[2].max_batch_size = 0;
  CHECK(ae_memproc_new(&bad, &m) == AE_EINVAL && strstr(ae_last_error(), "balanced"));
  bad = c;
  bad.strategies[1].approach = 7;
  CHECK(ae_memproc_new(&bad, &m) == AE_EINVAL);
  CHECK(ae_memproc_new(&c, NULL) == AE_EINVAL);
  ae_memproc_free(NULL);

  /* the default processor reads this machine */
  CHECK_OK(ae_memproc_new(NULL, &m));
  ae_memproc_result res;
  CHECK_OK(ae_memproc_process(m, 1000, ok_fn, NULL, NULL, &res));
  CHECK(res.processed == 1000 && res.succeeded == 1000 && res.failed == 0);
  CHECK(res.peak_memory_pct > 0 && res.peak_memory_pct < 100);
  ae_memproc_result_free(&res);
  CHECK(ae_memproc_process(m, 10, NULL, NULL, NULL, &res) == AE_EINVAL);
  ae_memproc_free(m);
}

/* A scripted run: pressure 20% -> 60% -> 75% -> 90% -> 60% -> 20%; strategies follow
 * with hysteresis and batch sizes follow the strategies. */
static void test_scripted_run(void) {
  static double seq[400];
  int k = 0;
  for (int i = 0; i < 5; i++) seq[k++] = 20;   /* aggressive */
  for (int i = 0; i < 5; i++) seq[k++] = 60;   /* balanced */
  for (int i = 0; i < 10; i++) seq[k++] = 75;  /* conservative */
  for (int i = 0; i < 40; i++) seq[k++] = 90;  /* streaming */
  for (int i = 0; i < 10; i++) seq[k++] = 60;  /* relax to conservative only */
  for (int i = 0; i < 400 - 70; i++) seq[k++] = 20; /* aggressive */
  script s = {seq, 400, 0, 0};
  ae_memproc_config c;
  ae_memproc_config_default(&c);
  c.monitoring_interval_ms = 0;
  c.threads = 3;
  c.probe = script_probe(&s);
  ae_memproc *m;
  CHECK_OK(ae_memproc_new(&c, &m));
  rec r = {0};
  r.order_ok = 1;
  r.m = m;
  ae_memproc_callbacks cb = {on_progress, on_change, on_warn, on_cleanup, on_batch, NULL, &r};
  ae_memproc_result res;
  CHECK_OK(ae_memproc_process(m, 2000, ok_fn, NULL, &cb, &res));
  CHECK(res.processed == 2000 && res.succeeded == 2000 && res.failed == 0 && !res.failed_index);
  CHECK(r.order_ok && r.last_done == 2000 && r.next_first == 2000);
  /* balanced -> aggressive (first read), -> balanced, -> conservative, -> streaming,
   * -> conservative, -> aggressive */
  int want_to[6] = {AE_STRAT_AGGRESSIVE, AE_STRAT_BALANCED, AE_STRAT_CONSERVATIVE,
                    AE_STRAT_STREAMING, AE_STRAT_CONSERVATIVE, AE_STRAT_AGGRESSIVE};
  CHECKF(r.changes == 6 && res.strategy_changes == 6, "%d changes", r.changes);
  for (int i = 0; i < 6 && i < r.changes; i++) CHECKF(r.to[i] == want_to[i], "change %d -> %d", i, r.to[i]);
  CHECK(r.warnings == 2); /* rising to high (75), then to critical (90) */
  CHECK(res.peak_memory_pct == 90 && res.final_strategy == AE_STRAT_AGGRESSIVE);
  CHECK(res.average_memory_pct > 20 && res.average_memory_pct < 90);
  /* each batch fits the strategy in force when it was delivered or just before */
  int streaming_batches = 0;
  for (int i = 0; i < r.nb; i++) {
    CHECK(r.sizes[i] >= 1 && r.sizes[i] <= 128);
    if (r.strat_at_batch[i] == AE_STRAT_STREAMING && r.sizes[i] == 1) streaming_batches++;
  }
  CHECK(streaming_batches >= 30);
  /* cleanups: every streaming item plus those over the 80% threshold, count-based ones */
  CHECK(r.cleanups == res.cleanups && res.cleanups >= 40);
  CHECK(r.progress_calls == (int)res.batches);
  ae_memproc_result_free(&res);
  ae_memproc_free(m);
  ae_probe_free(c.probe);
}

/* Count-based cleanup: conservative (16 per batch, cleanup every 50 items) at steady
 * 72%: 400 items -> a cleanup after items 64, 128, ... (every 4th batch) = 6, plus the
 * final batch at 400 makes 7 (items 64*k for k=1..6, then 400-384 = 16 < 50: none). */
static void test_cleanup_frequency(void) {
  double seq[1] = {72};
  script s = {seq, 1, 0, 0};
  ae_memproc_config c;
  ae_memproc_config_default(&c);
  c.monitoring_interval_ms = 0;
  c.probe = script_probe(&s);
  ae_memproc *m;
  CHECK_OK(ae_memproc_new(&c, &m));
  rec r = {0};
  r.m = m;
  ae_memproc_callbacks cb = {0};
  cb.cleanup = on_cleanup;
  cb.ud = &r;
  ae_memproc_result res;
  CHECK_OK(ae_memproc_process(m, 400, ok_fn, NULL, &cb, &res));
  CHECK(res.final_strategy == AE_STRAT_CONSERVATIVE && res.batches == 25);
  CHECKF(res.cleanups == 6 && r.cleanups == 6, "%d cleanups", res.cleanups);
  ae_memproc_result_free(&res);
  ae_memproc_free(m);
  ae_probe_free(c.probe);
}

/* Threshold-based cleanup: no count-based cleanups, memory steady at 81% (above the
 * 80% cleanup threshold): every pressure read (one per batch, plus the first) cleans. */
static void test_cleanup_threshold(void) {
  double seq[1] = {81};
  script s = {seq, 1, 0, 0};
  ae_memproc_config c;
  ae_memproc_config_default(&c);
  c.monitoring_interval_ms = 0;
  for (int i = 0; i < AE_STRAT_COUNT; i++) c.strategies[i].cleanup_frequency = 0;
  c.probe = script_probe(&s);
  ae_memproc *m;
  CHECK_OK(ae_memproc_new(&c, &m));
  rec r = {0};
  ae_memproc_callbacks cb = {0};
  cb.cleanup = on_cleanup;
  cb.memory_warning = on_warn;
  cb.ud = &r;
  ae_memproc_result res;
  CHECK_OK(ae_memproc_process(m, 160, ok_fn, NULL, &cb, &res));
  CHECK(res.final_strategy == AE_STRAT_CONSERVATIVE && res.batches == 10);
  CHECKF(res.cleanups == 11 && r.cleanups == 11 && s.reads == 11, "%d cleanups, %d reads",
         res.cleanups, s.reads);
  CHECK(r.warnings == 1); /* rose above high once, stayed there */
  ae_memproc_result_free(&res);
  /* below the threshold: no cleanup at all */
  seq[0] = 79;
  s.pos = 0;
  r.cleanups = 0;
  CHECK_OK(ae_memproc_process(m, 160, ok_fn, NULL, &cb, &res));
  CHECK(res.cleanups == 0 && r.cleanups == 0);
  ae_memproc_result_free(&res);
  ae_memproc_free(m);
  ae_probe_free(c.probe);
}

/* The parallel approach really runs batches concurrently: each batch waits (bounded)
 * until another batch is inside fn at the same time. */
typedef struct {
  atomic_int inside, max_inside, met;
} rendezvous;
static int meet_fn(void *ctx, size_t first, size_t count, int *status) {
  rendezvous *z = ctx;
  int now = atomic_fetch_add(&z->inside, 1) + 1;
  int mx = atomic_load(&z->max_inside);
  while (now > mx && !atomic_compare_exchange_weak(&z->max_inside, &mx, now)) {}
  for (int i = 0; i < 2000 && atomic_load(&z->max_inside) < 2; i++) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  atomic_fetch_sub(&z->inside, 1);
  (void)first; (void)count; (void)status;
  return AE_OK;
}
static void test_parallel_concurrency(void) {
  double seq[1] = {10};
  script s = {seq, 1, 0, 0};
  ae_memproc_config c;
  ae_memproc_config_default(&c);
  c.threads = 4;
  c.probe = script_probe(&s);
  ae_memproc *m;
  CHECK_OK(ae_memproc_new(&c, &m));
  rendezvous z;
  atomic_init(&z.inside, 0);
  atomic_init(&z.max_inside, 0);
  atomic_init(&z.met, 0);
  ae_memproc_result res;
  CHECK_OK(ae_memproc_process(m, 128 * 4, meet_fn, &z, NULL, &res));
  CHECK(res.final_strategy == AE_STRAT_AGGRESSIVE && res.batches == 4);
  CHECKF(atomic_load(&z.max_inside) >= 2, "max concurrent batches %d", atomic_load(&z.max_inside));
  ae_memproc_result_free(&res);
  ae_memproc_free(m);
  ae_probe_free(c.probe);
}

/* batch_limit shapes batches within the strategy's maximum. */
static size_t limit7(void *ud, size_t first, size_t max) { (void)ud; (void)first; return max < 7 ? max : 7; }
static size_t limit_big(void *ud, size_t first, size_t max) { (void)ud; (void)first; return max + 1000; }
static size_t limit_zero(void *ud, size_t first, size_t max) { (void)ud; (void)first; (void)max; return 0; }
static void test_batch_limit(void) {
  double seq[1] = {10};
  script s = {seq, 1, 0, 0};
  ae_memproc_config c;
  ae_memproc_config_default(&c);
  c.probe = script_probe(&s);
  c.threads = 2;
  ae_memproc *m;
  CHECK_OK(ae_memproc_new(&c, &m));
  size_t (*lims[3])(void *, size_t, size_t) = {limit7, limit_big, limit_zero};
  size_t want_batches[3] = {15, 1, 100};
  for (int t = 0; t < 3; t++) {
    rec r = {0};
    r.order_ok = 1;
    r.m = m;
    ae_memproc_callbacks cb = {0};
    cb.batch_done = on_batch;
    cb.batch_limit = lims[t];
    cb.ud = &r;
    ae_memproc_result res;
    CHECK_OK(ae_memproc_process(m, 100, ok_fn, NULL, &cb, &res));
    CHECKF(res.batches == want_batches[t], "limit %d: %zu batches", t, res.batches);
    CHECK(r.order_ok && r.next_first == 100 && res.processed == 100);
    ae_memproc_result_free(&res);
  }
  ae_memproc_free(m);
  ae_probe_free(c.probe);
}

/* Calling process from inside a callback of the same processor is refused. */
static ae_memproc *g_reenter;
static int g_reenter_rc;
static void reenter(void *ud, size_t done, size_t total) {
  ae_memproc_result res;
  g_reenter_rc = ae_memproc_process(g_reenter, 1, ok_fn, NULL, NULL, &res);
  (void)ud; (void)done; (void)total;
}
static int alloc_fail;
static void *fail_malloc(size_t n, void *ud) { (void)ud; return alloc_fail ? NULL : malloc(n); }
static void *fail_realloc(void *p, size_t n, void *ud) { (void)ud; return alloc_fail ? NULL : realloc(p, n); }
static void fail_free(void *p, void *ud) { (void)ud; free(p); }
static atomic_int alloc_calls;
static int count_fn(void *ctx, size_t first, size_t count, int *status) {
  (void)ctx; (void)first; (void)status;
  atomic_fetch_add(&alloc_calls, (int)count);
  return AE_OK;
}

static void test_reentry_and_alloc(void) {
  double seq[1] = {10};
  script s = {seq, 1, 0, 0};
  ae_memproc_config c;
  ae_memproc_config_default(&c);
  c.probe = script_probe(&s);
  CHECK_OK(ae_memproc_new(&c, &g_reenter));
  ae_memproc_callbacks cb = {0};
  cb.progress = reenter;
  ae_memproc_result res;
  CHECK_OK(ae_memproc_process(g_reenter, 5, ok_fn, NULL, &cb, &res));
  CHECK(g_reenter_rc == AE_ESTATE);
  ae_memproc_result_free(&res);
  /* no memory for the item statuses: fails before any item reaches fn, and the
   * processor is usable again afterwards */
  ae_allocator fa = {fail_malloc, fail_realloc, fail_free, NULL};
  ae_set_allocator(&fa);
  alloc_fail = 1;
  atomic_init(&alloc_calls, 0);
  CHECK(ae_memproc_process(g_reenter, 50, count_fn, NULL, NULL, &res) == AE_ENOMEM);
  CHECK(strstr(ae_last_error(), "50 item statuses") != NULL);
  alloc_fail = 0;
  ae_set_allocator(NULL);
  CHECK(atomic_load(&alloc_calls) == 0 && res.processed == 0 && !res.failed_index);
  CHECK_OK(ae_memproc_process(g_reenter, 50, count_fn, NULL, NULL, &res));
  CHECK(atomic_load(&alloc_calls) == 50 && res.processed == 50);
  ae_memproc_result_free(&res);
  ae_memproc_free(g_reenter);
  ae_probe_free(c.probe);
}

/* ---- exactly-once under randomized scripted pressure --------------------------------- */
static uint64_t mix(uint64_t x) {
  x ^= x >> 33; x *= 0xff51afd7ed558ccdull; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull; x ^= x >> 33;
  return x;
}

typedef struct {
  uint64_t seed;
  size_t n;
  atomic_int *calls;        /* per item: times passed to fn */
  int *expect;              /* per item: expected status */
  atomic_int inside;
  atomic_int overlap_inline;
  pthread_t main_thread;
  int sleepy;
} eo_ctx;

static int eo_fn(void *vctx, size_t first, size_t count, int *status) {
  eo_ctx *c = vctx;
  int now = atomic_fetch_add(&c->inside, 1) + 1;
  if (pthread_equal(pthread_self(), c->main_thread) && now != 1) atomic_fetch_add(&c->overlap_inline, 1);
  for (size_t i = 0; i < count; i++) {
    size_t it = first + i;
    if (it < c->n) atomic_fetch_add(&c->calls[it], 1);
  }
  if (c->sleepy && mix(c->seed ^ first) % 4 == 0) sched_yield();
  int whole = mix(c->seed * 31 + first) % 13 == 0;
  for (size_t i = 0; i < count; i++) {
    size_t it = first + i;
    uint64_t h = mix(c->seed ^ (it * 0x9E3779B97F4A7C15ull));
    int st = h % 9 == 0 ? -(int)(1 + (h >> 8) % 12) : AE_OK;
    status[i] = st;
    if (it < c->n) c->expect[it] = whole ? AE_EIO : st; /* each item is written once */
  }
  atomic_fetch_sub(&c->inside, 1);
  return whole ? AE_EIO : AE_OK;
}

static size_t eo_limit(void *ud, size_t first, size_t max) {
  (void)ud;
  uint64_t h = mix(first * 77 + 5);
  return h % 3 == 0 ? 1 + h % (max + 2) : max; /* sometimes smaller, sometimes too big */
}

static void test_exactly_once(void) {
  int runs = 3000, bad_runs = 0;
  long items = 0, switches = 0, parallel_runs = 0;
  static double seq[2048];
  for (int run = 0; run < runs; run++) {
    uint64_t seed = mix((uint64_t)run + 12345);
    size_t n = seed % 7 == 0 ? seed % 3 : 1 + (seed >> 8) % 400;
    /* pressure: random walk with jumps across every threshold */
    int len = 1 + (int)((seed >> 20) % 600);
    double p = (double)((seed >> 30) % 100);
    for (int i = 0; i < len; i++) {
      uint64_t h = mix(seed + (uint64_t)i * 7919);
      if (h % 5 == 0) p = (double)(h % 100);
      else p += (double)((int)((h >> 16) % 21) - 10);
      if (p < 0) p = 0;
      if (p > 99) p = 99;
      seq[i] = p;
    }
    script s = {seq, len, 0, 0};
    ae_memproc_config c;
    ae_memproc_config_default(&c);
    c.monitoring_interval_ms = 0;
    c.threads = 1 + (int)((seed >> 40) % 4);
    c.strategies[AE_STRAT_AGGRESSIVE].max_batch_size = 1 + (int)((seed >> 44) % 64);
    c.strategies[AE_STRAT_BALANCED].max_batch_size = 1 + (int)((seed >> 50) % 32);
    if ((seed >> 56) % 4 == 0) c.strategies[AE_STRAT_CONSERVATIVE].approach = AE_APPROACH_PARALLEL;
    c.probe = script_probe(&s);
    ae_memproc *m = NULL;
    CHECK_OK(ae_memproc_new(&c, &m));
    eo_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.seed = seed;
    ctx.n = n;
    ctx.calls = calloc(n + 1, sizeof *ctx.calls);
    ctx.expect = malloc((n + 1) * sizeof *ctx.expect);
    for (size_t i = 0; i < n; i++) ctx.expect[i] = 12345;
    ctx.main_thread = pthread_self();
    ctx.sleepy = run % 3 == 0;
    rec r = {0};
    r.order_ok = 1;
    r.m = m;
    ae_memproc_callbacks cb = {on_progress, on_change, NULL, NULL, on_batch, NULL, &r};
    if (run % 2) cb.batch_limit = eo_limit;
    ae_memproc_result res;
    int rc = ae_memproc_process(m, n, eo_fn, &ctx, &cb, &res);
    int ok = rc == AE_OK && res.processed == n && res.succeeded + res.failed == n &&
             r.order_ok && r.next_first == n && atomic_load(&ctx.overlap_inline) == 0 &&
             res.strategy_changes == r.changes;
    size_t nf = 0;
    for (size_t i = 0; i < n && ok; i++) {
      if (atomic_load(&ctx.calls[i]) != 1) { ok = 0; break; }
      if (ctx.expect[i] != AE_OK) {
        if (nf >= res.failed || res.failed_index[nf] != i || res.failed_status[nf] != ctx.expect[i]) {
          ok = 0;
          break;
        }
        nf++;
      }
    }
    if (ok && nf != res.failed) ok = 0;
    if (!ok) {
      bad_runs++;
      if (bad_runs < 5)
        fprintf(stderr, "run %d: rc %d n %zu processed %zu ok %zu failed %zu order %d overlap %d\n",
                run, rc, n, res.processed, res.succeeded, res.failed, r.order_ok,
                atomic_load(&ctx.overlap_inline));
    }
    items += (long)n;
    switches += res.strategy_changes;
    if (c.threads > 1) parallel_runs++;
    ae_memproc_result_free(&res);
    ae_memproc_free(m);
    ae_probe_free(c.probe);
    free(ctx.calls);
    free(ctx.expect);
  }
  printf("exactly-once: %d runs, %ld items, %ld strategy switches, %d bad runs\n", runs, items,
         switches, bad_runs);
  CHECK(bad_runs == 0);
  CHECK(switches > runs); /* switching really happened, many times */
}

int main(void) {
  test_config_and_rule();
  test_scripted_run();
  test_cleanup_frequency();
  test_cleanup_threshold();
  test_parallel_concurrency();
  test_batch_limit();
  test_reentry_and_alloc();
  test_exactly_once();
  TEST_DONE();
}
