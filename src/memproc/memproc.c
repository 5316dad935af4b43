/* The memory-aware processor: runs a batch function over n items with batch size and
 * concurrency chosen from memory pressure, re-read between batches.
 *
 * Exactly-once. The previous design re-split the remaining items whenever the
 * strategy changed, and lost or repeated items at the seams. Here a single cursor
 * (next) owned by the dispatching thread hands out [first, first+count) ranges; a
 * range is given to fn once and its statuses land in one slot of an n-sized status
 * array. A strategy change only affects the size and approach of ranges cut after it,
 * never a range already handed out, so no seam exists to lose items at.
 *
 * Approaches. Sequential batches run on the calling thread. Parallel batches go to a
 * pool of worker threads (created on first use, kept for the processor's lifetime),
 * at most one batch in flight per worker. Switching from parallel to sequential first
 * drains the batches in flight, so a sequential strategy really has one batch in
 * memory at a time, which is its point under pressure.
 *
 * Ordering. Finished batches are delivered (counted, reported through batch_done and
 * progress) in submission order: the in-flight batches form a FIFO and the dispatcher
 * waits for its head. All callbacks therefore run on the calling thread, one at a
 * time, and failed items come out ascending.
 *
 * Pressure. Before each batch is cut, when monitoring_interval_ms has passed since
 * the last read, the probe is read; memory % picks the strategy with hysteresis (see
 * ae_memproc_strategy_for), rising into high/critical raises a memory warning, and a
 * reading at or above cleanup_threshold triggers a cleanup. Cleanup also runs every
 * cleanup_frequency items of the current strategy: malloc_trim(0), which hands free
 * heap pages back to the kernel, then the caller's cleanup hook (the generator
 * shrinks its cache). Above gc_threshold, malloc_trim(0) alone runs after every batch.
 */
#define _GNU_SOURCE
#include "common/common.h"

#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  size_t first, count;
  int *status;
  int rc;
  double elapsed_ms;
  int done;
} job;

struct ae_memproc {
  ae_memproc_config c;
  ae_probe *probe;
  int own_probe;
  atomic_int strategy;
  atomic_int running;
  /* pool */
  pthread_t *threads;
  int nthreads, pool_state;     /* 0 = not started, 1 = running, -1 = failed */
  pthread_mutex_t mu;
  pthread_cond_t work_cv, done_cv;
  job *slots;                   /* in-flight FIFO ring, nthreads entries */
  int head, inflight, queued;   /* queued: submitted, not yet taken by a worker */
  int shutdown;
  ae_batch_fn fn;
  void *ctx;
};

static const char *const strat_names[AE_STRAT_COUNT] = {"streaming", "conservative",
                                                        "balanced", "aggressive"};

/* The memory and CPU overheads are the original tool's advisory estimates
 * (reported, not acted on); they are the one source of the values config/production.json and
 * config/development.json write out. */
void ae_memproc_config_default(ae_memproc_config *c) {
  memset(c, 0, sizeof *c);
  c->strategies[AE_STRAT_STREAMING] =
      (ae_strategy){strat_names[0], 1, AE_APPROACH_SEQUENTIAL, 0.1, 0.2, 1};
  c->strategies[AE_STRAT_CONSERVATIVE] =
      (ae_strategy){strat_names[1], 16, AE_APPROACH_SEQUENTIAL, 0.3, 0.4, 50};
  c->strategies[AE_STRAT_BALANCED] =
      (ae_strategy){strat_names[2], 32, AE_APPROACH_PARALLEL, 0.5, 0.6, 100};
  c->strategies[AE_STRAT_AGGRESSIVE] =
      (ae_strategy){strat_names[3], 128, AE_APPROACH_PARALLEL, 0.8, 0.9, 200};
  c->critical = 85;
  c->high = 70;
  c->normal = 55;
  c->low = 35;
  c->monitoring_interval_ms = 100;
  c->cleanup_threshold = 80;
  c->gc_threshold = 75;
  c->threads = 0;
  c->probe = NULL;
}

/* Hysteresis: tighten at once when memory reaches a strategy's entry threshold;
 * relax one level at a time, each only once memory is below the next threshold down,
 * so a reading hovering at a threshold cannot flip the strategy back and forth. */
int ae_memproc_strategy_for(const ae_memproc_config *c, int cur, double pct) {
  if (cur < 0 || cur >= AE_STRAT_COUNT) cur = AE_STRAT_BALANCED;
  if (pct < 0) return cur; /* unknown: keep what we have */
  int tight = pct >= c->critical ? AE_STRAT_STREAMING
              : pct >= c->high   ? AE_STRAT_CONSERVATIVE
              : pct >= c->normal ? AE_STRAT_BALANCED
                                 : AE_STRAT_AGGRESSIVE;
  if (tight < cur) return tight;
  const double relax_below[AE_STRAT_COUNT - 1] = {c->high, c->normal, c->low};
  while (cur < AE_STRAT_AGGRESSIVE && pct < relax_below[cur]) cur++;
  return cur;
}

static int check_config(const ae_memproc_config *c) {
  if (!(c->low < c->normal && c->normal < c->high && c->high < c->critical))
    return ae__error(AE_EINVAL, "memproc config: thresholds must rise low %g < normal %g < "
                     "high %g < critical %g", c->low, c->normal, c->high, c->critical);
  for (int i = 0; i < AE_STRAT_COUNT; i++) {
    const ae_strategy *s = &c->strategies[i];
    if (s->max_batch_size < 1 || s->cleanup_frequency < 0 ||
        (s->approach != AE_APPROACH_SEQUENTIAL && s->approach != AE_APPROACH_PARALLEL))
      return ae__error(AE_EINVAL, "memproc config: strategy %d (%s): max_batch_size %d must be "
                       ">= 1, cleanup_frequency %d >= 0, approach %d 0 or 1", i,
                       s->name ? s->name : strat_names[i], s->max_batch_size,
                       s->cleanup_frequency, s->approach);
  }
  if (c->threads < 0 || c->threads > 1024)
    return ae__error(AE_EINVAL, "memproc config: threads %d out of range 0..1024", c->threads);
  return AE_OK;
}

int ae_memproc_new(const ae_memproc_config *cfg, ae_memproc **out) {
  if (!out) return ae__error(AE_EINVAL, "ae_memproc_new: out is NULL");
  *out = NULL;
  ae_memproc_config c;
  if (cfg) c = *cfg;
  else ae_memproc_config_default(&c);
  int rc = check_config(&c);
  if (rc) return rc;
  for (int i = 0; i < AE_STRAT_COUNT; i++)
    if (!c.strategies[i].name) c.strategies[i].name = strat_names[i];
  ae_memproc *m = ae__calloc(1, sizeof *m);
  if (!m) return ae__error(AE_ENOMEM, "ae_memproc_new: out of memory");
  m->c = c;
  m->nthreads = c.threads > 0 ? c.threads : ae__cpu_count();
  m->slots = ae__calloc((size_t)m->nthreads, sizeof *m->slots);
  if (!m->slots) { ae__free(m); return ae__error(AE_ENOMEM, "ae_memproc_new: out of memory"); }
  if (c.probe) m->probe = c.probe;
  else {
    rc = ae_probe_new(NULL, NULL, &m->probe);
    if (rc) { ae__free(m->slots); ae__free(m); return rc; }
    m->own_probe = 1;
  }
  atomic_init(&m->strategy, AE_STRAT_BALANCED);
  atomic_init(&m->running, 0);
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->work_cv, NULL);
  pthread_cond_init(&m->done_cv, NULL);
  *out = m;
  return AE_OK;
}

static void stop_pool(ae_memproc *m) {
  if (m->pool_state != 1) return;
  pthread_mutex_lock(&m->mu);
  m->shutdown = 1;
  pthread_cond_broadcast(&m->work_cv);
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < m->nthreads; i++) pthread_join(m->threads[i], NULL);
  m->pool_state = 0;
}

void ae_memproc_free(ae_memproc *m) {
  if (!m) return;
  stop_pool(m);
  ae__free(m->threads);
  ae__free(m->slots);
  if (m->own_probe) ae_probe_free(m->probe);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->work_cv);
  pthread_cond_destroy(&m->done_cv);
  ae__free(m);
}

int ae_memproc_current_strategy(const ae_memproc *m) {
  return m ? atomic_load(&((ae_memproc *)m)->strategy) : -1;
}

void ae_memproc_result_free(ae_memproc_result *r) {
  if (!r) return;
  ae__free(r->failed_index);
  ae__free(r->failed_status);
  r->failed_index = NULL;
  r->failed_status = NULL;
}

/* ---- batches --------------------------------------------------------------------- */

static void run_batch(ae_batch_fn fn, void *ctx, job *j) {
  for (size_t i = 0; i < j->count; i++) j->status[i] = AE_OK;
  double t0 = ae__now_ms();
  j->rc = fn(ctx, j->first, j->count, j->status);
  j->elapsed_ms = ae__now_ms() - t0;
}

/* Workers take the oldest queued slot: slots [head, head+inflight) are in flight in
 * submission order, the last `queued` of them not yet started. */
static void *worker(void *arg) {
  ae_memproc *m = arg;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    while (!m->queued && !m->shutdown) pthread_cond_wait(&m->work_cv, &m->mu);
    if (m->shutdown) break;
    int idx = (m->head + m->inflight - m->queued) % m->nthreads;
    m->queued--;
    job *j = &m->slots[idx];
    pthread_mutex_unlock(&m->mu);
    run_batch(m->fn, m->ctx, j);
    pthread_mutex_lock(&m->mu);
    j->done = 1;
    pthread_cond_broadcast(&m->done_cv);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

static int start_pool(ae_memproc *m) {
  if (m->pool_state) return m->pool_state == 1;
  m->threads = ae__calloc((size_t)m->nthreads, sizeof *m->threads);
  if (!m->threads) { m->pool_state = -1; return 0; }
  m->shutdown = 0;
  for (int i = 0; i < m->nthreads; i++) {
    if (pthread_create(&m->threads[i], NULL, worker, m) != 0) {
      /* keep the threads that started; the pool just has fewer workers */
      if (i == 0) {
        m->pool_state = -1;
        fprintf(stderr, "astembed: memproc: cannot start worker threads; parallel "
                        "strategies run sequentially\n");
        return 0;
      }
      m->nthreads = i;
      break;
    }
  }
  m->pool_state = 1;
  return 1;
}

/* ---- one run ------------------------------------------------------------------------ */

typedef struct {
  ae_memproc *m;
  size_t n;
  const ae_memproc_callbacks *cb;
  int *status;
  ae_memproc_result *res;
  size_t done, since_cleanup;
  double last_read_ms, last_pct, pct_sum;
  int pct_n, have_read;
} run_state;

static void do_cleanup(run_state *r) {
  malloc_trim(0);
  if (r->cb && r->cb->cleanup) r->cb->cleanup(r->cb->ud);
  r->res->cleanups++;
  r->since_cleanup = 0;
}

static void read_pressure(run_state *r, int force) {
  ae_memproc *m = r->m;
  double now = ae__now_ms();
  if (!force && r->have_read && now - r->last_read_ms < m->c.monitoring_interval_ms) return;
  ae_probe_reading pr;
  if (ae_probe_read(m->probe, &pr) != AE_OK) return;
  r->last_read_ms = now;
  double pct = pr.memory_pct, prev = r->have_read ? r->last_pct : -1;
  r->have_read = 1;
  r->last_pct = pct;
  if (pct < 0) return;
  if (pct > r->res->peak_memory_pct) r->res->peak_memory_pct = pct;
  r->pct_sum += pct;
  r->pct_n++;
  const ae_memproc_callbacks *cb = r->cb;
  if (cb && cb->memory_warning &&
      ((pct >= m->c.high && prev < m->c.high) || (pct >= m->c.critical && prev < m->c.critical)))
    cb->memory_warning(cb->ud, pct);
  int cur = atomic_load(&m->strategy);
  int next = ae_memproc_strategy_for(&m->c, cur, pct);
  if (next != cur) {
    atomic_store(&m->strategy, next);
    r->res->strategy_changes++;
    if (cb && cb->strategy_change) cb->strategy_change(cb->ud, cur, next, pct);
  }
  if (pct >= m->c.cleanup_threshold) do_cleanup(r);
}

/* Accounts a finished batch: statuses, counters, callbacks, count-based cleanup. */
static void deliver(run_state *r, job *j) {
  if (j->rc != AE_OK)
    for (size_t i = 0; i < j->count; i++) j->status[i] = j->rc;
  for (size_t i = 0; i < j->count; i++) {
    if (j->status[i] == AE_OK) r->res->succeeded++;
    else r->res->failed++;
  }
  r->res->processed += j->count;
  r->res->batches++;
  r->done += j->count;
  r->since_cleanup += j->count;
  const ae_memproc_callbacks *cb = r->cb;
  if (cb && cb->batch_done) cb->batch_done(cb->ud, j->first, j->count, j->status, j->elapsed_ms);
  if (cb && cb->progress) cb->progress(cb->ud, r->done, r->n);
  int freq = r->m->c.strategies[atomic_load(&r->m->strategy)].cleanup_frequency;
  if (freq > 0 && r->since_cleanup >= (size_t)freq) do_cleanup(r);
  else if (r->have_read && r->last_pct >= r->m->c.gc_threshold) malloc_trim(0);
}

/* Waits for the oldest in-flight batch and delivers it. */
static void deliver_head(run_state *r) {
  ae_memproc *m = r->m;
  pthread_mutex_lock(&m->mu);
  job *j = &m->slots[m->head];
  while (!j->done) pthread_cond_wait(&m->done_cv, &m->mu);
  job copy = *j;
  m->head = (m->head + 1) % m->nthreads;
  m->inflight--;
  pthread_mutex_unlock(&m->mu);
  deliver(r, &copy);
}

static void drain(run_state *r) {
  while (r->m->inflight) deliver_head(r);
}

static void submit(run_state *r, size_t first, size_t count) {
  ae_memproc *m = r->m;
  pthread_mutex_lock(&m->mu);
  job *j = &m->slots[(m->head + m->inflight) % m->nthreads];
  j->first = first;
  j->count = count;
  j->status = r->status + first;
  j->rc = AE_OK;
  j->done = 0;
  m->inflight++;
  m->queued++;
  pthread_cond_signal(&m->work_cv);
  pthread_mutex_unlock(&m->mu);
}

static size_t cut_batch(run_state *r, size_t first, int strategy) {
  size_t left = r->n - first;
  size_t max = (size_t)r->m->c.strategies[strategy].max_batch_size;
  if (max > left) max = left;
  size_t count = max;
  if (r->cb && r->cb->batch_limit) {
    count = r->cb->batch_limit(r->cb->ud, first, max);
    if (count < 1) count = 1;
    if (count > max) count = max;
  }
  return count;
}

static int collect_failures(run_state *r) {
  ae_memproc_result *res = r->res;
  if (!res->failed) return AE_OK;
  res->failed_index = ae__malloc(res->failed * sizeof *res->failed_index);
  res->failed_status = ae__malloc(res->failed * sizeof *res->failed_status);
  if (!res->failed_index || !res->failed_status) {
    ae_memproc_result_free(res);
    return ae__error(AE_ENOMEM, "memproc: out of memory listing %zu failed items", res->failed);
  }
  size_t k = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->status[i] != AE_OK) {
      res->failed_index[k] = i;
      res->failed_status[k] = r->status[i];
      k++;
    }
  return AE_OK;
}

int ae_memproc_process(ae_memproc *m, size_t n, ae_batch_fn fn, void *ctx,
                       const ae_memproc_callbacks *cb, ae_memproc_result *res) {
  if (!m || !fn || !res) return ae__error(AE_EINVAL, "ae_memproc_process: NULL argument");
  memset(res, 0, sizeof *res);
  res->peak_memory_pct = res->average_memory_pct = -1;
  int idle = 0;
  if (!atomic_compare_exchange_strong(&m->running, &idle, 1))
    return ae__error(AE_ESTATE, "ae_memproc_process: this processor is already running");
  double t0 = ae__now_ms();
  run_state r = {0};
  r.m = m;
  r.n = n;
  r.cb = cb;
  r.res = res;
  r.status = ae__malloc((n ? n : 1) * sizeof *r.status);
  if (!r.status) {
    atomic_store(&m->running, 0);
    return ae__error(AE_ENOMEM, "ae_memproc_process: out of memory for %zu item statuses", n);
  }
  m->fn = fn;
  m->ctx = ctx;
  res->peak_memory_pct = -1;
  read_pressure(&r, 1);

  size_t next = 0;
  while (next < n) {
    read_pressure(&r, 0);
    int s = atomic_load(&m->strategy);
    int parallel = m->c.strategies[s].approach == AE_APPROACH_PARALLEL && start_pool(m);
    if (parallel) {
      if (m->inflight == m->nthreads) {
        deliver_head(&r);
        continue; /* re-read pressure before cutting the next batch */
      }
      size_t count = cut_batch(&r, next, s);
      submit(&r, next, count);
      next += count;
    } else {
      if (m->inflight) {
        drain(&r);
        continue;
      }
      size_t count = cut_batch(&r, next, s);
      job j = {next, count, r.status + next, AE_OK, 0, 0};
      run_batch(fn, ctx, &j);
      next += count;
      deliver(&r, &j);
    }
  }
  drain(&r);

  res->final_strategy = atomic_load(&m->strategy);
  res->average_memory_pct = r.pct_n ? r.pct_sum / r.pct_n : -1;
  int rc = collect_failures(&r);
  ae__free(r.status);
  res->elapsed_ms = ae__now_ms() - t0;
  atomic_store(&m->running, 0);
  return rc;
}
