/* The generator: the path every annotation takes.
 *
 *   text  ->  store tier (same node, same text: nothing to do)
 *         ->  memory cache (ae_cache, keyed by node id + text, model fingerprint)
 *         ->  store tier by content (same text under another node)
 *         ->  miss: order by length (longest first), tokenize ahead of the batches:
 *             the memory processor picks how many items a batch may hold for the
 *             current memory pressure (its strategy), and within that the batch
 *             optimizer's recommendation bounds the sub-batches by items and by
 *             tokens (cost grows with tokens, not items) -> encoder -> cache, and
 *             the store in one transaction per batch.
 *
 * Each of the three adaptive components is on this path, and each can be switched
 * off in the configuration (then: no cache tier; fixed batches of 32 items; no
 * strategy switching).
 *
 * Tokenization runs on its own thread, a bounded number of items ahead of the batch
 * being encoded (phase 2 below explains the order it takes the misses in).
 *
 * Batches run one at a time even under the "parallel" approach: the encoder already
 * spreads each batch over all cores, so two concurrent batches would only split the
 * same cores and double the activation memory. The processor's pool is set to one
 * thread and a mutex guards the encoder and the store regardless.
 */
#define _GNU_SOURCE
#include "generator/generator.h"
#include "common/metrics.h"

#include <jansson.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define FIXED_BATCH 32      /* when the batch optimizer is disabled */
#define STORE_TX_ITEMS 512  /* store-tier writes per transaction */

struct ae_generator {
  ae_generator_config cfg;
  int initialized, force;
  ae_encoder *enc;
  int dim, max_len;
  uint8_t fp[16];
  ae_cache *cache;
  ae_batchopt *opt;
  ae_memproc *mp;
  ae_probe *probe;
  ae_store *store;
  int store_registered;
  char *load_cache_dir;     /* ae_encoder_options.cache_dir, NULL = none */
  ae_log_fn log;
  void *log_ud;
  int log_level;
  ae_progress_fn progress;
  void *progress_ud;
  atomic_int cancel;
  pthread_mutex_t lock;
  /* metrics */
  uint64_t items, embedded, memory_hits, store_hits, lookups, failed, truncated, tokens, batches;
  double total_ms, tokenize_ms, tokenize_wait_ms, encode_ms, store_ms;
  uint64_t overlapped_batches;
  uint64_t last_evictions, peak_rss;
  int last_batch_size, strategy_changes, cleanups;
  uint64_t mp_processed, mp_succeeded;
  double last_memory_pct, peak_memory_pct;
};

/* The tokenizer thread's hand-off (phase 2): miss[0, ready) is tokenized; it may run
 * until consumed + TOKENIZE_AHEAD. */
typedef struct {
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  size_t ready, consumed;
  int initialized, started, stop, done, waiting;
  double busy_ms;
} tok_queue;

/* Work state of one ae_generator_embed call. */
typedef struct {
  ae_generator *g;
  const ae_annotation *items;     /* annotations (ae_generator_embed), or NULL when */
  const char *const *in_texts;    /* raw texts (ae_generator_embed_texts) */
  const size_t *in_lens;
  char (*keys)[33];         /* raw texts: cache key = hex XXH3-128 of the text */
  ae_embed_result *res;
  char **text;
  size_t *text_len;
  uint8_t (*hash)[16];
  size_t *miss;             /* item indices of the misses, ordered by token length */
  int32_t **ids;            /* per item (misses only) */
  size_t *n_ids;
  size_t n_miss, done, hits;
  size_t total;
  tok_queue tq;             /* the tokenizer thread (phase 2) */
  float *scratch;           /* vectors of one sub-batch */
  const int32_t **batch_ids;/* the sub-batch's sequences */
  size_t *batch_lens;
  size_t scratch_rows;
} job;

static void logf_(ae_generator *g, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void logf_(ae_generator *g, int level, const char *fmt, ...) {
  if (!g->log || level > g->log_level) return;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  g->log(g->log_ud, level, msg);
}

static const char *strategy_name(const ae_generator *g, int s) {
  if (s < 0 || s >= AE_STRAT_COUNT) return "none";
  const char *n = g->cfg.memory_processor.config.strategies[s].name;
  return n ? n : "?";
}

/* ---- lifecycle -------------------------------------------------------------------- */

int ae_generator_new(const ae_generator_config *cfg, ae_generator **out) {
  *out = NULL;
  ae_generator *g = ae__calloc(1, sizeof *g);
  if (!g) return ae__error(AE_ENOMEM, "generator: out of memory");
  if (cfg) g->cfg = *cfg;
  else ae_generator_config_default(&g->cfg);
  g->log_level = AE_LOG_INFO;
  pthread_mutex_init(&g->lock, NULL);
  atomic_init(&g->cancel, 0);
  *out = g;
  return AE_OK;
}

void ae_generator_set_force(ae_generator *g, int force) { g->force = force; }
int ae_generator_set_load_cache_dir(ae_generator *g, const char *dir) {
  if (g->initialized) return ae__error(AE_ESTATE, "generator: set the load-cache folder before init");
  char *copy = dir ? ae__strdup(dir) : NULL;
  if (dir && !copy) return ae__error(AE_ENOMEM, "generator: out of memory");
  ae__free(g->load_cache_dir);
  g->load_cache_dir = copy;
  return AE_OK;
}
void ae_generator_set_log(ae_generator *g, ae_log_fn fn, void *ud, int level) {
  g->log = fn; g->log_ud = ud; g->log_level = level;
}
void ae_generator_set_progress(ae_generator *g, ae_progress_fn fn, void *ud) {
  g->progress = fn; g->progress_ud = ud;
}
void ae_generator_cancel(ae_generator *g) { atomic_store(&g->cancel, 1); }
int ae_generator_dim(const ae_generator *g) { return g->dim; }
void ae_generator_fingerprint(const ae_generator *g, uint8_t fp[16]) { memcpy(fp, g->fp, 16); }
ae_encoder *ae_generator_encoder(ae_generator *g) { return g->enc; }

static int register_model(ae_generator *g) {
  if (!g->store || !g->initialized || g->store_registered || !g->enc) return AE_OK;
  const char *dir = g->cfg.model.path;
  const char *slash = strrchr(dir, '/');
  const char *name = slash && slash[1] ? slash + 1 : dir;
  char repo[256], commit[64], hub_name[400];
  if (ae_hub_snapshot_info(dir, repo, sizeof repo, commit, sizeof commit)) {
    snprintf(hub_name, sizeof hub_name, "%s@%s", repo, commit);   /* the repo id and commit */
    name = hub_name;
  }
  char named[4200];  /* a bf16 index row says so, next to the f32 one of the same folder */
  if (g->enc && strcmp(ae_encoder_precision(g->enc), "f32")) {
    snprintf(named, sizeof named, "%s (%s)", name, ae_encoder_precision(g->enc));
    name = named;
  }
  int rc = ae_store_register_model(g->store, g->fp, name, dir, g->dim);
  if (!rc) g->store_registered = 1;
  return rc;
}

int ae_generator_set_store(ae_generator *g, ae_store *s) {
  g->store = s;
  g->store_registered = 0;
  return register_model(g);
}

int ae_generator_init(ae_generator *g) {
  if (g->initialized) return ae__error(AE_ESTATE, "generator: already initialised");
  ae_generator_config *c = &g->cfg;
  int rc;
  if (c->model.enabled) {
    if (!c->model.path[0])
      return ae__error(AE_EINVAL, "generator: no model folder (model.path, --model or ASTEMBED_MODEL)");
    if (ae_hub_is_model_name(c->model.path)) {   /* ORG/NAME[@REV]: its cached snapshot */
      char *snap = NULL;
      if ((rc = ae_hub_resolve(c->model.path, NULL, &snap))) return rc;
      int fits = snprintf(c->model.path, sizeof c->model.path, "%s", snap) < (int)sizeof c->model.path;
      ae_free(snap);
      if (!fits) return ae__error(AE_EINVAL, "generator: the snapshot path of the model is too long");
    }
    ae_encoder_options eo = {.threads = c->model.threads, .max_length = c->model.max_length,
                             .precision = ae_precision_name(c->model.precision),
                             .cache_dir = g->load_cache_dir};
    if ((rc = ae_encoder_load(c->model.path, &eo, &g->enc))) return rc;
    g->dim = ae_encoder_dim(g->enc);
    g->max_len = ae_encoder_max_length(g->enc);
    ae_encoder_fingerprint(g->enc, g->fp);
  } else {
    /* cache/store-only: the model is the one the store last recorded */
    char *dir = NULL;
    if (!g->store)
      return ae__error(AE_EINVAL, "generator: model disabled and no store to serve vectors from");
    if ((rc = ae_store_model(g->store, NULL, &dir, g->fp, &g->dim))) return rc;
    ae_free(dir);
  }
  if (c->cache.enabled) {
    ae_cache_config cc = c->cache.config;
    cc.persist_path = c->cache.persist_path[0] ? c->cache.persist_path : NULL;
    if ((rc = ae_cache_new(&cc, g->fp, &g->cache))) goto fail;
  }
  if (c->batch_optimizer.enabled) {
    ae_batchopt_config bc = c->batch_optimizer.config;
    if (!bc.max_tokens && g->max_len) bc.max_tokens = bc.max_batch_size * g->max_len;
    if ((rc = ae_batchopt_new(&bc, &g->opt))) goto fail;
  }
  if ((rc = ae_probe_new(NULL, NULL, &g->probe))) goto fail;
  if (c->memory_processor.enabled) {
    ae_memproc_config mc = c->memory_processor.config;
    mc.threads = 1; /* see the comment at the top */
    mc.probe = NULL;
    if ((rc = ae_memproc_new(&mc, &g->mp))) goto fail;
  }
  g->initialized = 1;
  if ((rc = register_model(g))) goto fail;
  logf_(g, AE_LOG_INFO, "generator: dim %d, max length %d, cache %s, batch optimizer %s, memory processor %s",
        g->dim, g->max_len, g->cache ? "on" : "off", g->opt ? "on" : "off", g->mp ? "on" : "off");
  return AE_OK;
fail:
  g->initialized = 0;
  ae_memproc_free(g->mp); g->mp = NULL;
  ae_probe_free(g->probe); g->probe = NULL;
  ae_batchopt_free(g->opt); g->opt = NULL;
  ae_cache_free(g->cache); g->cache = NULL;
  ae_encoder_free(g->enc); g->enc = NULL;
  return rc;
}

void ae_generator_free(ae_generator *g) {
  if (!g) return;
  ae_memproc_free(g->mp);
  ae_probe_free(g->probe);
  ae_batchopt_free(g->opt);
  ae_cache_free(g->cache);
  ae_encoder_free(g->enc);
  ae__free(g->load_cache_dir);
  pthread_mutex_destroy(&g->lock);
  ae__free(g);
}

void ae_embed_results_free(ae_embed_result *r, size_t n) {
  if (!r) return;
  for (size_t i = 0; i < n; i++) { ae__free(r[i].vector); r[i].vector = NULL; }
}

/* ---- per-item helpers -------------------------------------------------------------- */

static void fail_item(ae_embed_result *r, int status, const char *detail) {
  r->status = status;
  const char *d = detail && *detail ? detail : ae_strerror(status);
  size_t n = strlen(d);
  if (n >= sizeof r->error) n = sizeof r->error - 1;
  memcpy(r->error, d, n);
  r->error[n] = 0;
  ae__free(r->vector);
  r->vector = NULL;
}

static int give_vector(ae_generator *g, ae_embed_result *r, const float *v) {
  if (!r->vector && !(r->vector = ae__malloc((size_t)g->dim * sizeof(float)))) {
    fail_item(r, AE_ENOMEM, "out of memory");
    return AE_ENOMEM;
  }
  if (v && v != r->vector) memcpy(r->vector, v, (size_t)g->dim * sizeof(float));
  return AE_OK;
}

static uint64_t rss_peak_bytes(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)ru.ru_maxrss * 1024;
}

/* ---- phase 1: texts and the cache tiers ------------------------------------------- */

/* The cache key of item i: the annotation's node id, or for a raw text its hash. */
static const char *item_key(const job *j, size_t i) {
  return j->items ? j->items[i].node_id : j->keys[i];
}

static void build_texts(job *j) {
  ae_generator *g = j->g;
  for (size_t i = 0; i < j->total; i++) {
    ae_embed_result *r = &j->res[i];
    if (j->in_texts) {
      size_t len = j->in_lens ? j->in_lens[i] : (j->in_texts[i] ? strlen(j->in_texts[i]) : 0);
      if (!j->in_texts[i]) { fail_item(r, AE_EINVAL, "text is NULL"); continue; }
      if (!(j->text[i] = ae__strndup(j->in_texts[i], len))) { fail_item(r, AE_ENOMEM, "out of memory"); continue; }
      j->text_len[i] = len;
      ae_text_hash(j->text[i], len, j->hash[i]);
      for (int b = 0; b < 16; b++) snprintf(j->keys[i] + 2 * b, 3, "%02x", j->hash[i][b]);
      continue;
    }
    int capped = 0;
    int rc = ae_annotation_text(&j->items[i], &g->cfg.model.text, &j->text[i], &j->text_len[i], &capped);
    if (rc) { fail_item(r, rc, ae_last_error()); continue; }
    r->truncated = capped;
    ae_text_hash(j->text[i], j->text_len[i], j->hash[i]);
  }
}

/* Writes store-tier hits that the store lacks for this node (need_vec) or whose
 * annotation row may have changed, STORE_TX_ITEMS per transaction. */
static void store_tier_writes(job *j, const size_t *idx, const char *need_vec, size_t n) {
  ae_generator *g = j->g;
  double t0 = ae__now_ms();
  for (size_t s = 0; s < n; s += STORE_TX_ITEMS) {
    size_t e = s + STORE_TX_ITEMS < n ? s + STORE_TX_ITEMS : n;
    int rc = ae_store_begin(g->store);
    for (size_t k = s; !rc && k < e; k++) {
      size_t i = idx[k];
      rc = ae_store_put(g->store, &j->items[i], j->hash[i], g->fp,
                        need_vec[k] ? j->res[i].vector : NULL, g->dim, j->res[i].truncated);
    }
    if (!rc) rc = ae_store_commit(g->store);
    if (rc) {
      ae_store_rollback(g->store);
      logf_(g, AE_LOG_ERROR, "store: %s", ae_last_error());
      for (size_t k = s; k < e; k++) fail_item(&j->res[idx[k]], rc, ae_last_error());
    }
  }
  g->store_ms += ae__now_ms() - t0;
}

/* Hits whose truncated flag no tier knows (memory-cache hits, rows from schema 1):
 * tokenizing finds it. The tokenizer stops at the max length, so this costs at most
 * max_length tokens per item, split over the CPUs. */
static void learn_truncation(job *j, const size_t *idx, size_t n) {
  ae_generator *g = j->g;
  if (!n || !g->enc) return;
  double t0 = ae__now_ms();
  const ae_tokenizer *tok = ae_encoder_tokenizer(g->enc);
  long m = (long)n;
  #pragma omp parallel for schedule(dynamic, 32)
  for (long k = 0; k < m; k++) {
    size_t i = idx[k], n_ids = 0;
    int32_t *ids = NULL;
    int trunc = 0;
    if (ae_tokenizer_encode(tok, j->text[i], j->text_len[i], (size_t)g->max_len, &ids, &n_ids, &trunc) == AE_OK &&
        trunc)
      j->res[i].truncated = 1;
    ae_free(ids);
  }
  g->tokenize_ms += ae__now_ms() - t0;
}

static int lookup_tiers(job *j) {
  ae_generator *g = j->g;
  size_t *wr = ae__malloc((j->total + 1) * sizeof *wr);
  size_t *unknown = ae__malloc((j->total + 1) * sizeof *unknown);
  char *need = ae__malloc(j->total + 1);
  j->miss = ae__malloc((j->total + 1) * sizeof *j->miss);
  if (!wr || !unknown || !need || !j->miss) {
    ae__free(wr); ae__free(unknown); ae__free(need);
    return ae__error(AE_ENOMEM, "generator: out of memory");
  }
  size_t n_wr = 0, n_unknown = 0;
  for (size_t i = 0; i < j->total; i++) {
    ae_embed_result *r = &j->res[i];
    if (r->status) continue;
    if (g->force) { j->miss[j->n_miss++] = i; continue; }
    g->lookups++;
    if (give_vector(g, r, NULL)) continue;
    int same = 0, trunc = -1;
    ae_store *store = j->items ? g->store : NULL;   /* raw texts: memory cache only */
    if (store && ae_store_lookup(g->store, g->fp, j->items[i].node_id, j->hash[i], r->vector, g->dim, &same, &trunc) == AE_OK && same) {
      r->from_cache = 2;
      wr[n_wr] = i; need[n_wr++] = 0;   /* annotation row only (written if it changed) */
    } else if (g->cache && ae_cache_get(g->cache, item_key(j, i), j->text[i], j->text_len[i],
                                        r->vector, (size_t)g->dim) == AE_OK) {
      r->from_cache = 1;
      if (store) { wr[n_wr] = i; need[n_wr++] = 1; }
      trunc = -1;
    } else if (store && ae_store_lookup(g->store, g->fp, j->items[i].node_id, j->hash[i], r->vector, g->dim, &same, &trunc) == AE_OK) {
      r->from_cache = 2;
      wr[n_wr] = i; need[n_wr++] = 1;
    } else {
      j->miss[j->n_miss++] = i;
      continue;
    }
    if (r->from_cache == 2 && g->cache)
      ae_cache_set(g->cache, item_key(j, i), j->text[i], j->text_len[i], r->vector, (size_t)g->dim);
    if (trunc > 0) r->truncated = 1;
    else if (trunc < 0 && !r->truncated) unknown[n_unknown++] = i;
    if (r->from_cache == 1) g->memory_hits++;
    else g->store_hits++;
    j->hits++;
  }
  learn_truncation(j, unknown, n_unknown);
  if (n_wr) store_tier_writes(j, wr, need, n_wr);
  ae__free(wr);
  ae__free(unknown);
  ae__free(need);
  return AE_OK;
}

/* ---- phase 2: tokenize the misses, one step ahead of the encoder --------------------
 *
 * Why a producer thread: the encoder keeps every core busy for 10-30 ms per item, the
 * tokenizer needs ~5 µs per item (bench_tokenizer: 220k texts/s on one thread).
 * Tokenizing every miss before the first batch makes the first vector wait for the
 * whole input and holds every miss's ids at once; here a producer thread tokenizes
 * the misses in the order the batches will take them, at most TOKENIZE_AHEAD items
 * ahead of the batch being encoded, and a batch waits only for its own items (the
 * wait is measured: metrics.overall.tokenize_wait_ms).
 *
 * Order: exact token counts exist only after tokenizing, so the misses are first
 * ordered by text length in bytes (longest first: a close proxy; every text longer
 * than the max length truncates to the same token count), and each batch of the
 * memory processor re-orders its own items by their exact token counts once they are
 * tokenized. The encoder packs sequences without padding, so the order decides only
 * how the optimizer's token budget is cut, never how much work is wasted.
 *
 * Ownership: the producer writes ids / n_ids / res of miss[k] and then publishes
 * ready = k + 1 under the queue's mutex; the batches touch only positions below
 * ready, or any position once the producer has finished (done). */
#define TOKENIZE_AHEAD 2048

/* qsort_r order of item indices by a per-item length (text bytes or token count),
 * longest first, ties in input order. */
static int by_length_desc(const void *a, const void *b, void *lens) {
  const size_t *len = lens;
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  if (len[x] != len[y]) return len[x] < len[y] ? 1 : -1;
  return x < y ? -1 : x > y;
}

static void tokenize_one(job *j, size_t i) {
  ae_generator *g = j->g;
  int trunc = 0;
  int rc = ae_tokenizer_encode(ae_encoder_tokenizer(g->enc), j->text[i], j->text_len[i],
                               (size_t)g->max_len, &j->ids[i], &j->n_ids[i], &trunc);
  if (rc) { fail_item(&j->res[i], rc, ae_last_error()); j->n_ids[i] = 0; return; }
  if (trunc) j->res[i].truncated = 1;
  j->res[i].tokens = (int)j->n_ids[i];
}

static void *tokenize_producer(void *arg) {
  job *j = arg;
  tok_queue *q = &j->tq;
  double busy = 0;
  for (size_t k = 0; k < j->n_miss; k++) {
    pthread_mutex_lock(&q->mu);
    while (!q->stop && k >= q->consumed + TOKENIZE_AHEAD) pthread_cond_wait(&q->cv, &q->mu);
    int stop = q->stop || atomic_load(&j->g->cancel);
    pthread_mutex_unlock(&q->mu);
    if (stop) break;
    double t0 = ae__now_ms();
    tokenize_one(j, j->miss[k]);
    busy += ae__now_ms() - t0;
    pthread_mutex_lock(&q->mu);
    q->ready = k + 1;
    if (q->waiting) pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
  }
  pthread_mutex_lock(&q->mu);
  q->done = 1;
  q->busy_ms = busy;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  return NULL;
}

/* Orders the misses by text length and starts the producer (or, when no thread can
 * be started, tokenizes everything here: the same code, just not overlapped). */
static int tokenize_start(job *j) {
  ae_generator *g = j->g;
  if (!g->enc) {
    for (size_t k = 0; k < j->n_miss; k++)
      fail_item(&j->res[j->miss[k]], AE_ESTATE, "not cached and the model is disabled");
    j->n_miss = 0;
    return AE_OK;
  }
  qsort_r(j->miss, j->n_miss, sizeof *j->miss, by_length_desc, j->text_len);
  tok_queue *q = &j->tq;
  pthread_mutex_init(&q->mu, NULL);
  pthread_cond_init(&q->cv, NULL);
  q->initialized = 1;
  if (!j->n_miss) { q->done = 1; return AE_OK; }
  if (pthread_create(&q->thread, NULL, tokenize_producer, j) == 0) {
    q->started = 1;
  } else {
    logf_(g, AE_LOG_WARN, "generator: no tokenizer thread: tokenizing %zu misses first", j->n_miss);
    q->consumed = (size_t)-1 / 2;    /* no look-ahead bound without a consumer to wait on */
    tokenize_producer(j);
  }
  return AE_OK;
}

/* Stops the producer (it finishes the item in hand) and collects its time. */
static void tokenize_stop(job *j) {
  tok_queue *q = &j->tq;
  if (!q->initialized) return;
  pthread_mutex_lock(&q->mu);
  q->stop = 1;
  pthread_cond_broadcast(&q->cv);
  pthread_mutex_unlock(&q->mu);
  if (q->started) pthread_join(q->thread, NULL);
  j->g->tokenize_ms += q->busy_ms;
  pthread_cond_destroy(&q->cv);
  pthread_mutex_destroy(&q->mu);
  q->initialized = 0;
}

/* Waits until miss[0, end) is tokenized (or the producer has stopped) and lets the
 * producer run up to TOKENIZE_AHEAD items past end. Returns whether the producer was
 * still working when this batch could start (the batch overlaps it). */
static int tokenize_wait(job *j, size_t end) {
  tok_queue *q = &j->tq;
  double t0 = ae__now_ms();
  pthread_mutex_lock(&q->mu);
  if (end > q->consumed) { q->consumed = end; pthread_cond_broadcast(&q->cv); }
  q->waiting = 1;
  while (q->ready < end && !q->done) pthread_cond_wait(&q->cv, &q->mu);
  q->waiting = 0;
  int overlapped = !q->done;
  pthread_mutex_unlock(&q->mu);
  j->g->tokenize_wait_ms += ae__now_ms() - t0;
  return overlapped;
}

/* miss[first, end) once tokenized: items that failed (or were never tokenized, after
 * an interruption) move to the end, the rest is ordered by exact token count. Returns
 * how many can be encoded. */
static size_t order_range(job *j, size_t first, size_t end) {
  size_t *m = j->miss + first, n = end - first, ok = 0;
  for (size_t k = 0; k < n; k++) {
    size_t i = m[k];
    if (!j->res[i].status && !j->ids[i]) fail_item(&j->res[i], AE_EINTR, "interrupted");
    if (!j->res[i].status) { m[k] = m[ok]; m[ok++] = i; }
  }
  qsort_r(m, ok, sizeof *m, by_length_desc, j->n_ids);
  return ok;
}

/* ---- phase 3: batches ---------------------------------------------------------------- */

/* Encodes miss[a, b) as one encoder call; on failure of a multi-item call, item by
 * item so one bad sequence cannot fail its neighbours. */
static void encode_range(job *j, size_t a, size_t b) {
  ae_generator *g = j->g;
  size_t n = b - a;
  const int32_t **ids = j->batch_ids;
  size_t *lens = j->batch_lens;
  for (size_t k = 0; k < n; k++) {
    size_t i = j->miss[a + k];
    ids[k] = j->ids[i];
    lens[k] = j->n_ids[i];
  }
  int rc = ae_encoder_embed_ids(g->enc, ids, lens, n, j->scratch);
  if (rc && n > 1) {
    for (size_t k = a; k < b; k++) encode_range(j, k, k + 1);
    return;
  }
  for (size_t k = 0; k < n; k++) {
    ae_embed_result *r = &j->res[j->miss[a + k]];
    if (rc) fail_item(r, rc, ae_last_error());
    else give_vector(g, r, j->scratch + k * (size_t)g->dim);
  }
}

static void record_sample(ae_generator *g, int items, int tokens, double ms, int ok_items, int success) {
  if (!g->opt) return;
  ae_probe_reading pr;
  memset(&pr, 0, sizeof pr);
  pr.process_cpu_pct = pr.memory_pct = -1;
  if (g->probe) ae_probe_read(g->probe, &pr);
  if (pr.rss_bytes > g->peak_rss) g->peak_rss = pr.rss_bytes;
  ae_batch_sample s = {items, tokens, ms > 0 ? ms : 1e-3, pr.process_cpu_pct, pr.memory_pct, success, ok_items};
  ae_batchopt_record(g->opt, &s);
}

/* The batch optimizer's unit. The misses run longest first (256 tokens at the start
 * of a cold run, 20 at its end), so a batch of k items is a different amount of work
 * at each end of the run, and the best k for long items (a few: a 256-token item
 * already fills the GEMMs) is far too small for short ones. Measured in items, the
 * optimizer settled on 3-4 items early in a cold run and kept them for the short
 * items too (4 items per batch on average, ~80 tokens per batch at the end). So the
 * generator speaks to the optimizer in units of max-length sequences: a recommended
 * size k is a budget of k × max_length tokens, cut from the length-ordered misses (as
 * many items as fit, and the scratch holds); each batch is reported as
 * tokens / max_length units (rounded, at least 1), with its tokens and its raw time,
 * and the optimizer compares sizes by tokens per second. The unit is the longest
 * item, so every size the optimizer asks for can be run as asked: with a smaller
 * unit (the mean length was tried) a 256-token item is several units, the sizes below
 * it cannot be run, and the search stalled there. */
static double unit_tokens(const ae_generator *g) {
  return g->max_len >= 1 ? (double)g->max_len : 256.0;
}

/* A batch of `items` items and `tokens` tokens in the optimizer's unit, within its
 * [min, max] batch size. */
static int unit_items(const ae_generator *g, int tokens) {
  const ae_batchopt_config *c = &g->cfg.batch_optimizer.config;
  long k = lround((double)tokens / unit_tokens(g));
  if (k < c->min_batch_size) k = c->min_batch_size;
  if (k > c->max_batch_size) k = c->max_batch_size;
  return (int)k;
}

/* The next sub-batch starting at miss[a], limited to end: the optimizer's size as a
 * token budget (see unit_tokens), further capped by its token budget, and at most as
 * many items as the scratch holds (at least one item). */
static size_t next_chunk(job *j, size_t a, size_t end) {
  ae_generator *g = j->g;
  size_t max_items = FIXED_BATCH, budget = (size_t)-1;
  if (g->opt) {
    ae_batch_recommendation rec;
    if (ae_batchopt_recommend(g->opt, &rec) == AE_OK) {
      max_items = j->scratch_rows;
      double units = rec.batch_size > 0 ? (double)rec.batch_size : 1;
      budget = (size_t)ceil(units * unit_tokens(g));
      if (rec.token_budget > 0 && (size_t)rec.token_budget < budget) budget = (size_t)rec.token_budget;
      if (rec.batch_size != g->last_batch_size) {
        logf_(g, AE_LOG_DEBUG, "batch optimizer: batch size %d -> %d max-length sequences, "
              "token budget %zu (%s)", g->last_batch_size, rec.batch_size, budget, rec.reason);
        g->last_batch_size = rec.batch_size;
      }
    }
  }
  if (max_items > j->scratch_rows) max_items = j->scratch_rows;
  size_t b = a, tokens = 0;
  while (b < end && b - a < max_items) {
    size_t t = j->n_ids[j->miss[b]];
    if (b > a && tokens + t > budget) break;
    tokens += t;
    b++;
  }
  return b;
}

/* Cache and store for miss[a, b): the store in one transaction. */
static void commit_range(job *j, size_t a, size_t b) {
  ae_generator *g = j->g;
  for (size_t k = a; k < b; k++) {
    size_t i = j->miss[k];
    if (j->res[i].status || !g->cache) continue;
    ae_cache_set(g->cache, item_key(j, i), j->text[i], j->text_len[i], j->res[i].vector, (size_t)g->dim);
  }
  if (!g->store || !j->items) return;
  double t0 = ae__now_ms();
  int rc = ae_store_begin(g->store);
  for (size_t k = a; !rc && k < b; k++) {
    size_t i = j->miss[k];
    if (!j->res[i].status)
      rc = ae_store_put(g->store, &j->items[i], j->hash[i], g->fp, j->res[i].vector, g->dim,
                        j->res[i].truncated);
  }
  if (!rc) rc = ae_store_commit(g->store);
  if (rc) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s", ae_last_error());
    ae_store_rollback(g->store);
    logf_(g, AE_LOG_ERROR, "store: %s", msg);
    for (size_t k = a; k < b; k++)
      if (!j->res[j->miss[k]].status) fail_item(&j->res[j->miss[k]], rc, msg);
  }
  g->store_ms += ae__now_ms() - t0;
}

static void note_evictions(ae_generator *g) {
  if (!g->cache) return;
  ae_cache_metrics cm;
  ae_cache_metrics_get(g->cache, &cm);
  if (cm.evictions > g->last_evictions)
    logf_(g, AE_LOG_INFO, "cache: %llu evictions (now %llu entries, %.1f MB)",
          (unsigned long long)(cm.evictions - g->last_evictions), (unsigned long long)cm.entries,
          (double)cm.bytes / 1048576.0);
  g->last_evictions = cm.evictions;
}

/* Memory limit of the configuration: over 90 % of it, the cache gives back half. */
static void enforce_memory_limit(ae_generator *g) {
  size_t limit = g->cfg.memory_processor.memory_limit_mb;
  if (!limit || !g->probe) return;
  ae_probe_reading pr;
  if (ae_probe_read(g->probe, &pr)) return;
  if (pr.rss_bytes > g->peak_rss) g->peak_rss = pr.rss_bytes;
  if ((double)pr.rss_bytes > 0.9 * (double)limit * 1048576.0) {
    logf_(g, AE_LOG_WARN, "memory: RSS %.0f MB is above 90%% of the %zu MB limit: shrinking the cache",
          (double)pr.rss_bytes / 1048576.0, limit);
    if (g->cache) ae_cache_shrink(g->cache, 0.5);
    malloc_trim(0);
    g->cleanups++;
  }
}

/* One batch of the memory processor: miss[first, first+count). */
static int batch_fn(void *ctx, size_t first, size_t count, int *status) {
  job *j = ctx;
  ae_generator *g = j->g;
  pthread_mutex_lock(&g->lock);
  size_t end = first + count;
  int overlapped = tokenize_wait(j, end);
  if (atomic_load(&g->cancel)) {
    for (size_t k = 0; k < count; k++) {
      fail_item(&j->res[j->miss[first + k]], AE_EINTR, "interrupted");
      status[k] = AE_EINTR;
    }
    pthread_mutex_unlock(&g->lock);
    return AE_OK;
  }
  enforce_memory_limit(g);
  size_t run_end = first + order_range(j, first, end);
  for (size_t a = first; a < run_end;) {
    if (atomic_load(&g->cancel)) {   /* stop between sub-batches; what ran is committed */
      for (size_t k = a; k < run_end; k++) fail_item(&j->res[j->miss[k]], AE_EINTR, "interrupted");
      break;
    }
    size_t b = next_chunk(j, a, run_end);
    int tokens = 0;
    for (size_t k = a; k < b; k++) tokens += (int)j->n_ids[j->miss[k]];
    double t0 = ae__now_ms();
    encode_range(j, a, b);
    double ms = ae__now_ms() - t0;
    int ok = 0;
    for (size_t k = a; k < b; k++) ok += j->res[j->miss[k]].status == AE_OK;
    g->encode_ms += ms;
    g->batches++;
    g->overlapped_batches += (uint64_t)overlapped;
    g->tokens += (uint64_t)tokens;
    /* in the optimizer's unit (see unit_tokens): succeeded share of the batch */
    if (g->opt) {
      int units = unit_items(g, tokens);
      int ok_units = (int)lround((double)units * ok / (double)(b - a));
      if (ok > 0 && ok_units < 1) ok_units = 1;
      record_sample(g, units, tokens, ms, ok_units, ok > 0);
    }
    a = b;
  }
  commit_range(j, first, run_end);
  for (size_t k = first; k < end; k++) {   /* the ids are done with: memory stays bounded */
    ae__free(j->ids[j->miss[k]]);
    j->ids[j->miss[k]] = NULL;
  }
  note_evictions(g);
  for (size_t k = 0; k < count; k++) status[k] = j->res[j->miss[first + k]].status;
  j->done += count;
  pthread_mutex_unlock(&g->lock);
  return AE_OK;
}

static void on_progress(void *ud, size_t done, size_t total) {
  job *j = ud;
  if (j->g->progress) j->g->progress(j->g->progress_ud, j->hits + done, j->total, j->hits);
}
static void on_strategy(void *ud, int from, int to, double pct) {
  job *j = ud;
  j->g->strategy_changes++;
  logf_(j->g, AE_LOG_INFO, "memory processor: strategy %s -> %s at %.1f%% memory",
        strategy_name(j->g, from), strategy_name(j->g, to), pct);
}
static void on_warning(void *ud, double pct) {
  job *j = ud;
  logf_(j->g, AE_LOG_WARN, "memory processor: memory at %.1f%%", pct);
}
/* The processor asks for a cleanup every cleanupFrequency items and under pressure;
 * the cache gives memory back only in the second case (memory at or above the high
 * threshold), or a routine cleanup would throw away what the cache is for. */
static void on_cleanup(void *ud) {
  job *j = ud;
  ae_generator *g = j->g;
  g->cleanups++;
  ae_probe_reading pr;
  if (!g->cache || !g->probe || ae_probe_read(g->probe, &pr) || pr.memory_pct < 0) return;
  if (pr.memory_pct >= g->cfg.memory_processor.config.high) {
    ae_cache_shrink(g->cache, 0.5);
    logf_(g, AE_LOG_INFO, "memory processor: cleanup at %.1f%% memory: cache shrunk to half its limit",
          pr.memory_pct);
  }
}

static int run_batches(job *j) {
  ae_generator *g = j->g;
  if (!j->n_miss) return AE_OK;
  size_t rows = FIXED_BATCH;
  if (g->opt && (size_t)g->cfg.batch_optimizer.config.max_batch_size > rows)
    rows = (size_t)g->cfg.batch_optimizer.config.max_batch_size;
  j->scratch = ae__malloc(rows * (size_t)g->dim * sizeof(float));
  j->batch_ids = ae__malloc(rows * sizeof *j->batch_ids);
  j->batch_lens = ae__malloc(rows * sizeof *j->batch_lens);
  if (!j->scratch || !j->batch_ids || !j->batch_lens) return ae__error(AE_ENOMEM, "generator: out of memory");
  j->scratch_rows = rows;
  if (g->mp) {
    ae_memproc_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.progress = on_progress;
    cb.strategy_change = on_strategy;
    cb.memory_warning = on_warning;
    cb.cleanup = on_cleanup;
    cb.ud = j;
    ae_memproc_result mr;
    memset(&mr, 0, sizeof mr);
    int rc = ae_memproc_process(g->mp, j->n_miss, batch_fn, j, &cb, &mr);
    if (rc == AE_OK) {
      g->mp_processed += mr.processed;
      g->mp_succeeded += mr.succeeded;
      g->last_memory_pct = mr.average_memory_pct;
      if (mr.peak_memory_pct > g->peak_memory_pct) g->peak_memory_pct = mr.peak_memory_pct;
      /* an item the processor failed without our fn having seen it */
      for (size_t k = 0; k < mr.failed; k++) {
        size_t i = j->miss[mr.failed_index[k]];
        if (!j->res[i].status) fail_item(&j->res[i], mr.failed_status[k], "batch failed");
      }
    }
    ae_memproc_result_free(&mr);
    return rc;
  }
  /* no memory processor: batches of the optimizer's size (or FIXED_BATCH) in order */
  for (size_t a = 0; a < j->n_miss;) {
    size_t b = a + (g->opt ? (size_t)g->cfg.batch_optimizer.config.max_batch_size : FIXED_BATCH);
    if (b > j->n_miss) b = j->n_miss;
    int st[b - a];
    batch_fn(j, a, b - a, st);
    on_progress(j, b, j->n_miss);
    a = b;
  }
  return AE_OK;
}

/* ---- embed --------------------------------------------------------------------------- */

static void job_free(job *j) {
  for (size_t i = 0; i < j->total; i++) {
    if (j->text) ae__free(j->text[i]);
    if (j->ids) ae__free(j->ids[i]);
  }
  ae__free(j->text);
  ae__free(j->text_len);
  ae__free(j->hash);
  ae__free(j->miss);
  ae__free(j->ids);
  ae__free(j->n_ids);
  ae__free(j->scratch);
  ae__free(j->batch_ids);
  ae__free(j->batch_lens);
  ae__free(j->keys);
}

/* One embed call over the job's items (annotations or raw texts). */
static int embed_job(ae_generator *g, job *jp, size_t n, ae_embed_result *results) {
  job j = *jp;
  double t0 = ae__now_ms();
  for (size_t i = 0; i < n; i++) {
    memset(&results[i], 0, sizeof results[i]);
    results[i].node_id = j.items ? j.items[i].node_id : NULL;
  }
  j.g = g;
  j.res = results;
  j.total = n;
  j.text = ae__calloc(n + 1, sizeof *j.text);
  j.text_len = ae__calloc(n + 1, sizeof *j.text_len);
  j.hash = ae__calloc(n + 1, sizeof *j.hash);
  j.ids = ae__calloc(n + 1, sizeof *j.ids);
  j.n_ids = ae__calloc(n + 1, sizeof *j.n_ids);
  if (j.in_texts) j.keys = ae__calloc(n + 1, sizeof *j.keys);
  int rc = j.text && j.text_len && j.hash && j.ids && j.n_ids && (!j.in_texts || j.keys) ? AE_OK
           : ae__error(AE_ENOMEM, "generator: out of memory for %zu items", n);
  if (!rc) { register_model(g); build_texts(&j); }
  if (!rc) rc = lookup_tiers(&j);
  if (!rc) rc = tokenize_start(&j);
  if (!rc && g->progress) g->progress(g->progress_ud, j.hits, n, j.hits);
  if (!rc) rc = run_batches(&j);
  tokenize_stop(&j);
  if (rc) {
    char msg[300];
    snprintf(msg, sizeof msg, "%s", ae_last_error());
    for (size_t i = 0; i < n; i++)
      if (!results[i].status && !results[i].vector) fail_item(&results[i], rc, msg);
    ae__error(rc, "%s", msg);
  }
  /* metrics */
  for (size_t i = 0; i < n; i++) {
    ae_embed_result *r = &results[i];
    if (r->status == AE_OK && !r->vector) fail_item(r, AE_EINTR, "interrupted");
    if (r->status) { g->failed++; continue; }
    if (!r->from_cache) g->embedded++;
    if (r->truncated) g->truncated++;
  }
  g->items += n;
  g->total_ms += ae__now_ms() - t0;
  uint64_t peak = rss_peak_bytes();
  if (peak > g->peak_rss) g->peak_rss = peak;
  job_free(&j);
  if (!rc && atomic_load(&g->cancel)) return ae__error(AE_EINTR, "generator: interrupted");
  return rc;
}

int ae_generator_embed(ae_generator *g, const ae_annotation *items, size_t n,
                       ae_embed_result *results) {
  if (!g->initialized) return ae__error(AE_ESTATE, "generator: ae_generator_init was not called");
  job j = {.items = items};
  return embed_job(g, &j, n, results);
}

int ae_generator_embed_texts(ae_generator *g, const char *const *texts, const size_t *lens,
                             size_t n, ae_embed_result *results) {
  if (!g->initialized) return ae__error(AE_ESTATE, "generator: ae_generator_init was not called");
  job j = {.in_texts = texts, .in_lens = lens};
  return embed_job(g, &j, n, results);
}

/* ---- metrics -------------------------------------------------------------------------- */

int ae_generator_metrics(ae_generator *g, ae_performance_metrics *m) {
  memset(m, 0, sizeof *m);
  m->cache.lookups = g->lookups;
  m->cache.memory_hits = g->memory_hits;
  m->cache.store_hits = g->store_hits;
  m->cache.hits = g->memory_hits + g->store_hits;
  m->cache.misses = g->lookups - m->cache.hits;
  m->cache.hit_ratio = g->lookups ? (double)m->cache.hits / (double)g->lookups : 0;
  m->cache.miss_ratio = g->lookups ? 1.0 - m->cache.hit_ratio : 0;
  if (g->cache) {
    ae_cache_metrics cm;
    ae_cache_metrics_get(g->cache, &cm);
    m->cache.average_access_time_ns = cm.average_access_time_ns;
    m->cache.memory_efficiency = cm.memory_efficiency;
    m->cache.performance_score = cm.performance_score;
    m->cache.entries = cm.entries;
    m->cache.bytes = cm.bytes;
    m->cache.evictions = cm.evictions;
  }
  if (g->opt) {
    ae_batch_analytics a;
    if (ae_batchopt_analytics(g->opt, &a) == AE_OK) {
      /* the optimizer counts in max-length units (see unit_tokens): items per batch and
       * per second come from the generator's own counters */
      m->batch_optimizer.average_batch_size = g->batches ? (double)g->embedded / (double)g->batches : 0;
      m->batch_optimizer.average_throughput = g->encode_ms > 0 ? (double)g->embedded / (g->encode_ms / 1000) : 0;
      m->batch_optimizer.average_throughput_tokens = a.average_throughput_tokens;
      m->batch_optimizer.optimization_score = a.optimization_score;
      m->batch_optimizer.resource_utilization = a.resource_utilization;
      snprintf(m->batch_optimizer.trend, sizeof m->batch_optimizer.trend, "%s", a.trend);
    }
    ae_batch_recommendation r;
    if (ae_batchopt_recommend(g->opt, &r) == AE_OK) {
      /* in max-length units; the budget is what next_chunk cuts batches by */
      m->batch_optimizer.recommended_batch_size = r.batch_size;
      double units = (double)r.batch_size * unit_tokens(g);
      m->batch_optimizer.token_budget = units < r.token_budget ? (int)units : r.token_budget;
    }
  } else if (g->batches) {
    m->batch_optimizer.average_batch_size = (double)g->embedded / (double)g->batches;
    m->batch_optimizer.average_throughput = g->encode_ms > 0 ? (double)g->embedded / (g->encode_ms / 1000) : 0;
  }
  snprintf(m->memory_processor.current_strategy, sizeof m->memory_processor.current_strategy, "%s",
           g->mp ? strategy_name(g, ae_memproc_current_strategy(g->mp)) : "none");
  m->memory_processor.memory_usage = g->last_memory_pct;
  m->memory_processor.efficiency = g->mp_processed ? (double)g->mp_succeeded / (double)g->mp_processed : 1;
  m->memory_processor.strategy_changes = g->strategy_changes;
  m->memory_processor.cleanups = g->cleanups;
  m->memory_processor.peak_memory_pct = g->peak_memory_pct;
  m->overall.total_processing_time_ms = g->total_ms;
  m->overall.items_processed = g->items;
  m->overall.embedded = g->embedded;
  m->overall.failed = g->failed;
  m->overall.truncated = g->truncated;
  m->overall.tokens = g->tokens;
  m->overall.batches = g->batches;
  m->overall.average_item_time_ms = g->items ? g->total_ms / (double)g->items : 0;
  m->overall.error_rate = g->items ? (double)g->failed / (double)g->items : 0;
  m->overall.items_per_second = g->total_ms > 0 ? (double)g->items / (g->total_ms / 1000) : 0;
  m->overall.tokenize_ms = g->tokenize_ms;
  m->overall.tokenize_wait_ms = g->tokenize_wait_ms;
  m->overall.overlapped_batches = g->overlapped_batches;
  m->overall.encode_ms = g->encode_ms;
  m->overall.store_ms = g->store_ms;
  m->overall.peak_rss_bytes = g->peak_rss;
  return AE_OK;
}

/* Both writers walk the one metrics table (src/common/metrics.c). */
char *ae_generator_metrics_json(ae_generator *g) {
  ae_performance_metrics m;
  ae_generator_metrics(g, &m);
  json_t *root = json_object();
  if (!root || ae__metrics_json(ae__perf_metrics, ae__perf_metrics_n, &m, root)) {
    json_decref(root);
    return NULL;
  }
  char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
  json_decref(root);
  char *r = s ? ae__strdup(s) : NULL;
  free(s);
  return r;
}

char *ae_generator_metrics_prometheus(ae_generator *g) {
  ae_performance_metrics m;
  ae_generator_metrics(g, &m);
  ae__sb b = {0};
  ae__metrics_prom(ae__perf_metrics, ae__perf_metrics_n, &m, &b);
  return sb_finish(&b, NULL);
}

int ae_generator_optimize(ae_generator *g) {
  if (g->cache) {
    ae_cache_maintain(g->cache);
    ae_cache_flush(g->cache);
  }
  if (g->opt) {
    ae_batch_recommendation r;
    if (ae_batchopt_recommend(g->opt, &r) == AE_OK)
      logf_(g, AE_LOG_INFO, "batch optimizer: recommends batches of %d max-length sequences "
            "(%.0f tokens; confidence %.2f): %s", r.batch_size, r.batch_size * unit_tokens(g),
            r.confidence, r.reason);
  }
  malloc_trim(0);
  return AE_OK;
}
