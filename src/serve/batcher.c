/* The server's batcher: one bounded queue of inputs, one thread that embeds them.
 *
 * Every input of every request joins one FIFO ring of max_queue slots. A request is
 * queued whole or not at all (the ring has room for all its inputs, else the server
 * answers 429), so the ring never grows and a request is never half-queued.
 *
 * The batcher thread takes a group of inputs from the head and embeds it with one
 * ae_generator_embed_texts call, which is the generator's own path: the memory cache
 * answers repeated texts, the misses are ordered by token length and cut into encoder
 * batches by the DynamicBatchOptimizer's token budget within the MemoryAwareProcessor's
 * strategy. The group itself is bounded by the same two components, read after every
 * call: at most the optimizer's token budget (what one encoder batch may hold now) and
 * at most the current strategy's batch size (and --max-batch-items), so one group is
 * about one encoder batch and no input waits behind a much larger one.
 *
 * When to start a group: as soon as the queue holds a full one, or max_wait_ms after
 * its oldest input arrived. Under load the queue fills while the previous group runs,
 * so groups start full and the wait never happens; a lone request waits at most
 * max_wait_ms. Concurrent requests that arrive within that window share a batch.
 *
 * A request's inputs may land in different groups; each group writes its vectors into
 * the request's own rows, so the answer is in input order whatever the grouping. The
 * last group to finish one of a request's inputs calls the request's done hook (the
 * server resumes the connection there).
 *
 * Draining: ae__batcher_drain refuses new jobs, lets the thread empty the queue and
 * joins it, so every accepted input is answered.
 */
#define _GNU_SOURCE
#include "serve/serve.h"

#include <errno.h>
#include <string.h>
#include <time.h>

typedef struct {
  ae__serve_job *job;
  size_t index;
  uint64_t enqueued_ns;
} slot;

struct ae__batcher {
  ae_generator *g;
  ae_generator_config cfg;
  ae__batcher_options o;
  int dim, max_len;
  pthread_t thread;
  int started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  slot *ring;
  size_t head, count, cap;
  size_t queued_tokens;
  int draining;
  ae__batcher_stats st;     /* guarded by mu */
  /* the batcher thread's own group buffers */
  const char **texts;
  size_t *lens;
  ae_embed_result *res;
};

static const double ITEM_BUCKETS[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const double TOKEN_BUCKETS[] = {16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768};

void ae__hist_init(ae__hist *h, const double *le, int n) {
  memset(h, 0, sizeof *h);
  h->n = n > AE__HIST_MAX ? AE__HIST_MAX : n;
  memcpy(h->le, le, (size_t)h->n * sizeof *le);
}

void ae__hist_add(ae__hist *h, double v) {
  int i = 0;
  while (i < h->n && v > h->le[i]) i++;
  h->count[i]++;
  h->sum += v;
  h->total++;
}

/* The group limits now: items (strategy, --max-batch-items) and tokens (optimizer). */
static void group_limits(const ae__batcher *b, size_t *items, size_t *tokens) {
  const ae_performance_metrics *m = &b->st.perf;
  size_t it = b->cap;
  if (b->cfg.memory_processor.enabled) {
    for (int s = 0; s < AE_STRAT_COUNT; s++) {
      const ae_strategy *st = &b->cfg.memory_processor.config.strategies[s];
      if (st->name && !strcmp(st->name, m->memory_processor.current_strategy) && st->max_batch_size > 0)
        it = (size_t)st->max_batch_size;
    }
  }
  if (b->o.max_batch_items > 0 && (size_t)b->o.max_batch_items < it) it = (size_t)b->o.max_batch_items;
  *items = it ? it : 1;
  *tokens = m->batch_optimizer.token_budget > 0 ? (size_t)m->batch_optimizer.token_budget : (size_t)-1;
}

static int slot_tokens(const slot *s) { return s->job->tokens[s->index]; }

static void *batcher_main(void *arg) {
  ae__batcher *b = arg;
  size_t dim = (size_t)b->dim;
  pthread_mutex_lock(&b->mu);
  for (;;) {
    while (!b->count && !b->draining) pthread_cond_wait(&b->cv, &b->mu);
    if (!b->count && b->draining) break;
    size_t max_items, budget;
    group_limits(b, &max_items, &budget);
    /* wait for a full group, at most max_wait after the oldest input arrived */
    if (b->o.max_wait_ms > 0) {
      uint64_t deadline = b->ring[b->head].enqueued_ns + (uint64_t)(b->o.max_wait_ms * 1e6);
      while (!b->draining && b->count < max_items && b->queued_tokens < budget && ae__now_ns() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t left = deadline - ae__now_ns();
        if (left > deadline) break;
        uint64_t at = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + left;
        ts.tv_sec = (time_t)(at / 1000000000ull);
        ts.tv_nsec = (long)(at % 1000000000ull);
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
      }
    }
    /* take the group: FIFO, at least one input */
    size_t n = 0, tokens = 0;
    while (n < b->count && n < max_items) {
      const slot *s = &b->ring[(b->head + n) % b->cap];
      size_t t = (size_t)slot_tokens(s);
      if (n && tokens + t > budget) break;
      tokens += t;
      b->texts[n] = s->job->texts[s->index];
      b->lens[n] = s->job->lens[s->index];
      n++;
    }
    size_t first = b->head;
    pthread_mutex_unlock(&b->mu);

    int rc = ae_generator_embed_texts(b->g, b->texts, b->lens, n, b->res);
    ae_performance_metrics perf;
    ae_generator_metrics(b->g, &perf);

    pthread_mutex_lock(&b->mu);
    ae__serve_job *finished[n];
    size_t n_fin = 0;
    for (size_t k = 0; k < n; k++) {
      slot *s = &b->ring[(first + k) % b->cap];
      ae__serve_job *j = s->job;
      ae_embed_result *r = &b->res[k];
      int st = rc && !r->status ? rc : r->status;
      j->status[s->index] = st;
      if (j->from_cache) j->from_cache[s->index] = r->from_cache;
      if (!st && r->vector) memcpy(j->vecs + s->index * dim, r->vector, dim * sizeof(float));
      else if (!st) j->status[s->index] = AE_ENOMEM;
      if (--j->pending == 0) finished[n_fin++] = j;
    }
    ae_embed_results_free(b->res, n);
    b->head = (b->head + n) % b->cap;
    b->count -= n;
    b->queued_tokens -= tokens;
    b->st.perf = perf;
    ae__hist_add(&b->st.batch_items, (double)n);
    ae__hist_add(&b->st.batch_tokens, (double)tokens);
    pthread_mutex_unlock(&b->mu);
    /* outside the lock: the hook may hand the job back to its owner, who frees it */
    for (size_t k = 0; k < n_fin; k++) finished[k]->done(finished[k], finished[k]->done_ud);
    pthread_mutex_lock(&b->mu);
  }
  pthread_mutex_unlock(&b->mu);
  return NULL;
}

int ae__batcher_new(ae_generator *g, const ae_generator_config *cfg, const ae__batcher_options *o,
                    ae__batcher **out) {
  *out = NULL;
  ae__batcher *b = ae__calloc(1, sizeof *b);
  if (!b) return ae__error(AE_ENOMEM, "serve: out of memory");
  b->g = g;
  b->cfg = *cfg;
  b->o = *o;
  b->cap = o->max_queue ? o->max_queue : 4096;
  b->dim = ae_generator_dim(g);
  b->ring = ae__calloc(b->cap, sizeof *b->ring);
  b->texts = ae__calloc(b->cap, sizeof *b->texts);
  b->lens = ae__calloc(b->cap, sizeof *b->lens);
  b->res = ae__calloc(b->cap, sizeof *b->res);
  pthread_mutex_init(&b->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&b->cv, &ca);
  pthread_condattr_destroy(&ca);
  ae__hist_init(&b->st.batch_items, ITEM_BUCKETS, (int)(sizeof ITEM_BUCKETS / sizeof *ITEM_BUCKETS));
  ae__hist_init(&b->st.batch_tokens, TOKEN_BUCKETS, (int)(sizeof TOKEN_BUCKETS / sizeof *TOKEN_BUCKETS));
  b->st.queue_capacity = b->cap;
  ae_generator_metrics(g, &b->st.perf);
  if (!b->ring || !b->texts || !b->lens || !b->res) {
    ae__batcher_free(b);
    return ae__error(AE_ENOMEM, "serve: out of memory for a queue of %zu inputs", b->cap);
  }
  if (pthread_create(&b->thread, NULL, batcher_main, b)) {
    ae__batcher_free(b);
    return ae__error(AE_EIO, "serve: cannot start the batcher thread");
  }
  b->started = 1;
  *out = b;
  return AE_OK;
}

int ae__batcher_submit(ae__batcher *b, ae__serve_job *job) {
  uint64_t now = ae__now_ns();
  pthread_mutex_lock(&b->mu);
  if (b->draining) {
    pthread_mutex_unlock(&b->mu);
    return ae__error(AE_ESTATE, "the server is shutting down");
  }
  if (job->n > b->cap - b->count) {
    b->st.rejected_full++;
    size_t free_slots = b->cap - b->count;
    pthread_mutex_unlock(&b->mu);
    return ae__error(AE_ERANGE, "the queue is full (%zu of %zu inputs free, %zu needed)", free_slots, b->cap, job->n);
  }
  job->pending = job->n;
  for (size_t i = 0; i < job->n; i++) {
    slot *s = &b->ring[(b->head + b->count) % b->cap];
    s->job = job;
    s->index = i;
    s->enqueued_ns = now;
    b->count++;
    b->queued_tokens += (size_t)job->tokens[i];
  }
  pthread_cond_signal(&b->cv);
  pthread_mutex_unlock(&b->mu);
  return AE_OK;
}

void ae__batcher_drain(ae__batcher *b) {
  if (!b) return;
  pthread_mutex_lock(&b->mu);
  b->draining = 1;
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
  if (b->started) pthread_join(b->thread, NULL);
  b->started = 0;
}

void ae__batcher_free(ae__batcher *b) {
  if (!b) return;
  ae__batcher_drain(b);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  ae__free(b->ring);
  ae__free(b->texts);
  ae__free(b->lens);
  ae__free(b->res);
  ae__free(b);
}

void ae__batcher_stats_get(ae__batcher *b, ae__batcher_stats *st) {
  pthread_mutex_lock(&b->mu);
  *st = b->st;
  st->queue_depth = b->count;
  pthread_mutex_unlock(&b->mu);
}
