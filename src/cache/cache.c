/* The embedding cache: the in-memory tier.
 *
 * Layout. Two kinds of objects:
 *   - an entry per key (file path / node id): the key, the content hash it was set
 *     with, a pointer to its vector, its place in the eviction policy's lists and in
 *     the expiry FIFO;
 *   - a vector per content hash (XXH3-128 of the content, seeded with the model
 *     fingerprint): the floats, reference counted by the entries pointing at it, so
 *     identical content under many keys is stored once.
 *
 * Blocks. A hit with a working set in DRAM waits on a chain of dependent misses
 * (bucket -> entry -> vector), so the vector set with a key lives in that key's
 * entry allocation, right after the key: the entry's miss (and its TLB miss) also
 * brings the vector's first lines. The block outlives its entry when other keys
 * still share the vector: the dead entry's bytes then move to the vector's cost
 * (vec->cost starts as the vector's bytes plus alignment padding), and the block
 * is freed, and the cost given back, with the last reference.
 *
 * Keys are spread over lock shards by their hash; each shard owns a chained hash
 * table, its policy lists and max_entries / shards entries. Vectors live in a
 * separate content index split into lock stripes. Locks are always taken in the
 * order shard -> stripe and never two shards at once, so there is no deadlock.
 * A hit takes one shard lock: hash key and content (outside the lock), find the
 * entry, compare the content hash, memcpy the floats, bump the policy.
 *
 * Accounting. Entries are capped per shard (the caps add up to max_entries exactly);
 * bytes are one global atomic counter, reserved with compare-and-swap before
 * anything is published, so the total never exceeds max_bytes even for an instant
 * and every path that frees an object subtracts exactly what its creation added
 * (entry_bytes below, and vec->cost). ae__cache_recount() recomputes both from scratch.
 *
 * Policies (per shard):
 *   - LRU: one list, hit moves to the head, the tail is evicted. O(1). The moves
 *     are deferred a few dozen hits and replayed in order (see hitlog_push), which
 *     keeps the order exact.
 *   - W-TinyLFU (Einziger et al.; Caffeine): a small LRU window (1% of the shard)
 *     takes new entries; an entry leaving the window is a candidate for the main
 *     region, a segmented LRU (probation + protected, 80% protected). When the shard
 *     is full the candidate is admitted only if the frequency sketch says it is more
 *     popular than main's victim (probation tail), otherwise the candidate goes. A
 *     scan of once-seen keys therefore churns only the window and never flushes main.
 *
 * Expiry. ttl is per entry from its last set; a per-shard FIFO in stamp order lets
 * a maintenance step pop expired entries from the head in O(1) each, with a bound on
 * the work per step; gets also drop expired entries they meet. */
#define _GNU_SOURCE
#include "cache/cache_internal.h"
#include "common/common.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#define MAX_SHARDS 64
#define MAX_DIM (1u << 20)
#define SWEEP_BUDGET 256 /* expired entries removed per maintenance step, at most */
#define PERSIST_CHUNK 64 /* get_many: persistent lookups promoted per round */
#ifndef HITLOG_LAG
#define HITLOG_LAG 32    /* deferred hits per shard (0 = every move at once) */
#endif
#define HITLOG 64        /* ring size, a power of two > HITLOG_LAG */
#define HITLOG_AHEAD 8   /* replay: neighbours prefetched this many moves ahead */

struct link { struct link *prev, *next; };

typedef struct vec {
  struct vec *next;      /* content index chain */
  XXH128_hash_t h;
  uint64_t born_ns;      /* when set (TTL for hits through another key) */
  void *block;           /* the allocation holding it: its first entry's block */
  uint32_t refs;         /* entries pointing here; under the stripe lock */
  uint32_t dim;
  uint32_t cost;         /* bytes accounted to the vector (see "Blocks" above) */
  int indexed;           /* still the index's vector for h (not replaced) */
  float data[];
} vec_t;

enum { Q_WINDOW = 0, Q_PROBATION = 1, Q_PROTECTED = 2, Q_COUNT = 3 };

/* The fields a lookup reads (chain, key hash, content hash, vector, policy links)
 * come first, in the block's first cache line. */
typedef struct entry {
  struct entry *hnext;   /* key table chain */
  uint64_t kh;
  XXH128_hash_t h;
  vec_t *vec;
  struct link lru;       /* policy list */
  uint32_t klen;
  uint8_t queue;
  struct link exp;       /* expiry FIFO */
  uint64_t stamp_ns;
  char key[];
} entry_t;

#define LRU_ENTRY(l) ((entry_t *)((char *)(l) - offsetof(entry_t, lru)))
#define EXP_ENTRY(l) ((entry_t *)((char *)(l) - offsetof(entry_t, exp)))

typedef struct {
  pthread_mutex_t mu;
  entry_t **buckets;
  size_t bmask, n, cap;
  struct link q[Q_COUNT];  /* LRU uses q[Q_PROBATION] only */
  size_t qn[Q_COUNT];
  size_t win_cap, prot_cap;
  struct link expiry;
  ae__sketch sketch;
  size_t nlog, log_head;
  entry_t *hitlog[HITLOG];  /* deferred policy moves, see hitlog_push */
  uint64_t requests, hits, misses, evictions, expirations, invalidations, persist_hits;
  uint64_t time_ns, timed;
  char pad[64];
} shard_t;

typedef struct {
  pthread_mutex_t mu;
  vec_t **buckets;
  size_t bmask, n;
  char pad[64];
} stripe_t;

struct ae_cache {
  ae_cache_config cfg;
  uint8_t fp[16];
  uint64_t seed;
  uint64_t ttl_ns;
  size_t max_bytes;
  _Atomic size_t bytes;
  _Atomic size_t payload;   /* vector float bytes, for memory efficiency */
  _Atomic size_t nvecs;
  unsigned nshards, nstripes;
  shard_t *shards;
  stripe_t *stripes;
  _Atomic unsigned steal_cursor, sweep_cursor;
  ae__persist *persist;
  int persist_status;
  char persist_error[256];
  uint64_t (*clock)(void *);
  void *clock_ud;
  /* maintenance thread */
  pthread_t thread;
  int thread_started, stop;
  pthread_mutex_t tmu;
  pthread_cond_t tcv;
};

/* ---- small helpers --------------------------------------------------------- */

static inline void list_init(struct link *l) { l->prev = l->next = l; }
static inline void list_unlink(struct link *x) {
  x->prev->next = x->next;
  x->next->prev = x->prev;
}
static inline void list_push_head(struct link *l, struct link *x) {
  x->next = l->next;
  x->prev = l;
  l->next->prev = x;
  l->next = x;
}
static inline void list_push_tail(struct link *l, struct link *x) {
  x->prev = l->prev;
  x->next = l;
  l->prev->next = x;
  l->prev = x;
}
static inline int list_empty(const struct link *l) { return l->next == l; }

static inline int hash_eq(XXH128_hash_t a, XXH128_hash_t b) {
  return a.low64 == b.low64 && a.high64 == b.high64;
}

static inline size_t entry_bytes(size_t klen) { return sizeof(entry_t) + klen + 1; }
static inline size_t vec_bytes(size_t dim) { return sizeof(vec_t) + dim * sizeof(float); }
/* Offset of an embedded vector in its entry's block (16-byte aligned). */
static inline size_t vec_offset(size_t klen) { return (entry_bytes(klen) + 15) & ~(size_t)15; }
static inline int owns_vec(const entry_t *e) { return e->vec->block == (const void *)e; }

static inline shard_t *shard_of(ae_cache *c, uint64_t kh) {
  return &c->shards[(kh >> 40) & (c->nshards - 1)];
}
static inline stripe_t *stripe_of(ae_cache *c, XXH128_hash_t h) {
  return &c->stripes[(h.low64 >> 40) & (c->nstripes - 1)];
}

/* TTL stamps use the coarse monotonic clock (a few ns to read, ms resolution: TTLs
 * are in seconds); the precise one is only read for sampled access times. */
static inline uint64_t ttl_clock(ae_cache *c) {
  if (c->clock) return c->clock(c->clock_ud);
  if (!c->ttl_ns) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* averageAccessTime is the mean over a 1-in-16 sample of gets per thread (the first
 * one included): reading the precise clock twice per get would cost more than a
 * third of a hit. */
static _Thread_local unsigned t_sample;
static inline uint64_t sample_start(void) { return (t_sample++ & 15) == 0 ? ae__now_ns() : 0; }

static inline int expired_at(ae_cache *c, uint64_t stamp, uint64_t now) {
  return c->ttl_ns && now >= stamp && now - stamp >= c->ttl_ns;
}

/* Reserves n bytes against the global limit; never lets the total pass it. */
static int try_reserve(ae_cache *c, size_t n) {
  size_t cur = atomic_load_explicit(&c->bytes, memory_order_relaxed);
  for (;;) {
    if (cur + n > c->max_bytes) return 0;
    if (atomic_compare_exchange_weak_explicit(&c->bytes, &cur, cur + n, memory_order_relaxed,
                                              memory_order_relaxed))
      return 1;
  }
}
static inline void unreserve(ae_cache *c, size_t n) {
  atomic_fetch_sub_explicit(&c->bytes, n, memory_order_relaxed);
}

/* ---- content index (stripes) ------------------------------------------------ */

static void stripe_grow(stripe_t *t) {
  size_t nb = (t->bmask + 1) * 2;
  vec_t **b = ae__calloc(nb, sizeof *b);
  if (!b) return; /* keep the longer chains; correctness does not depend on it */
  for (size_t i = 0; i <= t->bmask; i++)
    for (vec_t *v = t->buckets[i], *nx; v; v = nx) {
      nx = v->next;
      size_t k = v->h.high64 & (nb - 1);
      v->next = b[k];
      b[k] = v;
    }
  ae__free(t->buckets);
  t->buckets = b;
  t->bmask = nb - 1;
}

static vec_t **stripe_slot(stripe_t *t, XXH128_hash_t h) {
  vec_t **pp = &t->buckets[h.high64 & t->bmask];
  while (*pp && !hash_eq((*pp)->h, h)) pp = &(*pp)->next;
  return pp;
}

/* Takes a reference on the vector indexed under h when its dimension is dim and it
 * is not expired; NULL otherwise. */
static vec_t *vec_find_ref(ae_cache *c, XXH128_hash_t h, size_t dim, uint64_t now) {
  stripe_t *t = stripe_of(c, h);
  pthread_mutex_lock(&t->mu);
  vec_t *v = *stripe_slot(t, h);
  if (v && (v->dim != dim || expired_at(c, v->born_ns, now))) v = NULL;
  if (v) v->refs++;
  pthread_mutex_unlock(&t->mu);
  return v;
}

/* Takes a reference on the vector indexed under h when it holds exactly vec[dim]
 * and is not expired: a set of content already stored under another key then costs
 * only its entry. NULL otherwise. */
static vec_t *vec_find_same(ae_cache *c, XXH128_hash_t h, const float *vec, size_t dim,
                            uint64_t now) {
  stripe_t *t = stripe_of(c, h);
  pthread_mutex_lock(&t->mu);
  vec_t *v = *stripe_slot(t, h);
  if (v && (v->dim != dim || expired_at(c, v->born_ns, now) ||
            memcmp(v->data, vec, dim * sizeof(float)) != 0))
    v = NULL;
  if (v) v->refs++;
  pthread_mutex_unlock(&t->mu);
  return v;
}

/* Indexes a fresh vector (refs 1, embedded in its entry's block) under its hash. A
 * vector already indexed under the same hash (a different one: the caller
 * re-embedded; or an identical one set by another thread since vec_find_same looked)
 * leaves the index and lives on for the entries still pointing at it. */
static void vec_publish(ae_cache *c, vec_t *v) {
  stripe_t *t = stripe_of(c, v->h);
  pthread_mutex_lock(&t->mu);
  vec_t **pp = stripe_slot(t, v->h);
  vec_t *old = *pp;
  if (old) {
    *pp = old->next;
    old->indexed = 0;
    t->n--;
  }
  v->indexed = 1;
  v->next = t->buckets[v->h.high64 & t->bmask];
  t->buckets[v->h.high64 & t->bmask] = v;
  if (++t->n > t->bmask + 1) stripe_grow(t);
  pthread_mutex_unlock(&t->mu);
  atomic_fetch_add_explicit(&c->payload, v->dim * sizeof(float), memory_order_relaxed);
  atomic_fetch_add_explicit(&c->nvecs, 1, memory_order_relaxed);
}

/* Drops one reference on v. owner: the entry whose block holds v is going away
 * while other entries still point at v; its bytes then move to the vector's cost
 * (the block, header included, stays until the last reference goes). Returns 1 when
 * v died (its cost given back; the caller frees v->block unless it is the caller's
 * own entry). */
static int vec_unref(ae_cache *c, vec_t *v, entry_t *owner) {
  stripe_t *t = stripe_of(c, v->h);
  pthread_mutex_lock(&t->mu);
  int dead = --v->refs == 0;
  if (dead && v->indexed) {
    vec_t **pp = stripe_slot(t, v->h);
    if (*pp == v) *pp = v->next;
    t->n--;
  }
  if (!dead && owner) v->cost += (uint32_t)entry_bytes(owner->klen);
  pthread_mutex_unlock(&t->mu);
  if (!dead) return 0;
  unreserve(c, v->cost);
  atomic_fetch_sub_explicit(&c->payload, v->dim * sizeof(float), memory_order_relaxed);
  atomic_fetch_sub_explicit(&c->nvecs, 1, memory_order_relaxed);
  return 1;
}

/* A reference taken without an entry of its own (vec_find_ref / vec_find_same). */
static void vec_release(ae_cache *c, vec_t *v) {
  if (vec_unref(c, v, NULL)) ae__free(v->block);
}

/* Frees an entry (already unlinked) and gives back its bytes and its reference. */
static void entry_destroy(ae_cache *c, entry_t *e) {
  vec_t *v = e->vec;
  if (owns_vec(e)) {
    /* bytes: the entry's, unless vec_unref moved them to the surviving vector */
    if (vec_unref(c, v, e)) {
      unreserve(c, entry_bytes(e->klen));
      ae__free(e);
    }
    return;
  }
  unreserve(c, entry_bytes(e->klen));
  ae__free(e);
  vec_release(c, v);
}

/* ---- key table and policy (shard, under its lock) --------------------------- */

static void shard_grow(shard_t *s) {
  size_t nb = (s->bmask + 1) * 2;
  entry_t **b = ae__calloc(nb, sizeof *b);
  if (!b) return;
  for (size_t i = 0; i <= s->bmask; i++)
    for (entry_t *e = s->buckets[i], *nx; e; e = nx) {
      nx = e->hnext;
      e->hnext = b[e->kh & (nb - 1)];
      b[e->kh & (nb - 1)] = e;
    }
  ae__free(s->buckets);
  /* atomic stores: get_many prefetches bucket addresses without the lock */
  __atomic_store_n(&s->buckets, b, __ATOMIC_RELAXED);
  __atomic_store_n(&s->bmask, nb - 1, __ATOMIC_RELAXED);
}

static entry_t **shard_slot(shard_t *s, uint64_t kh, const char *key, size_t klen) {
  entry_t **pp = &s->buckets[kh & s->bmask];
  while (*pp && !((*pp)->kh == kh && (*pp)->klen == klen && memcmp((*pp)->key, key, klen) == 0))
    pp = &(*pp)->hnext;
  return pp;
}

static inline unsigned freq(shard_t *s, entry_t *e) { return ae__sketch_estimate(&s->sketch, e->kh); }

static void q_push(shard_t *s, entry_t *e, int q) {
  e->queue = (uint8_t)q;
  list_push_head(&s->q[q], &e->lru);
  s->qn[q]++;
}
static void q_unlink(shard_t *s, entry_t *e) {
  list_unlink(&e->lru);
  s->qn[e->queue]--;
}
static entry_t *q_tail(shard_t *s, int q) {
  return list_empty(&s->q[q]) ? NULL : LRU_ENTRY(s->q[q].prev);
}

static void policy_hit(ae_cache *c, shard_t *s, entry_t *e) {
  if (c->cfg.policy != AE_CACHE_TINYLFU || e->queue != Q_PROBATION) {
    if (s->q[e->queue].next == &e->lru) return; /* already the most recent */
    list_unlink(&e->lru);
    list_push_head(&s->q[e->queue], &e->lru);
    return;
  }
  /* probation hit: promote to protected, demoting protected's LRU when over. */
  q_unlink(s, e);
  q_push(s, e, Q_PROTECTED);
  if (s->qn[Q_PROTECTED] > s->prot_cap) {
    entry_t *d = q_tail(s, Q_PROTECTED);
    q_unlink(s, d);
    q_push(s, d, Q_PROBATION);
  }
}

/* Deferred hits. Moving a hit to the head of its list writes its two neighbours,
 * random entries: with a working set in DRAM those are two more misses per get,
 * and the lock release after them waits for them. So a hit appends its entry to
 * the shard's hit log, a ring (a sequential write to a line in cache), and the
 * moves are replayed from the ring's other end, in order: one per hit once
 * HITLOG_LAG are waiting, with the neighbours of the move HITLOG_AHEAD places
 * later prefetched now, so each replayed move finds its lines in cache and no get
 * pays for a whole batch; and all of them before anything reads or changes the
 * policy lists (insert, remove, victim choice). Replaying the same moves in the
 * same order with nothing looking at the lists in between leaves exactly the lists
 * eager moves would have left, so eviction stays true LRU (and W-TinyLFU exactly
 * what it was); and the ring never holds a removed entry, since a removal replays
 * it first. */
static inline void hitlog_replay_one(ae_cache *c, shard_t *s) {
  if (s->nlog > HITLOG_AHEAD) {
    entry_t *f = s->hitlog[(s->log_head + HITLOG_AHEAD) & (HITLOG - 1)];
    __builtin_prefetch(f->lru.prev, 1);
    __builtin_prefetch(f->lru.next, 1);
  }
  entry_t *e = s->hitlog[s->log_head++ & (HITLOG - 1)];
  s->nlog--;
  policy_hit(c, s, e);
}
static inline void hitlog_flush(ae_cache *c, shard_t *s) {
  while (s->nlog) hitlog_replay_one(c, s);
}
static inline void hitlog_push(ae_cache *c, shard_t *s, entry_t *e) {
  s->hitlog[(s->log_head + s->nlog++) & (HITLOG - 1)] = e;
  if (s->nlog > HITLOG_LAG) hitlog_replay_one(c, s);
}

/* Unlinks e from everything, gives back its bytes and its vector reference. */
static void remove_entry(ae_cache *c, shard_t *s, entry_t *e) {
  hitlog_flush(c, s);
  entry_t **pp = shard_slot(s, e->kh, e->key, e->klen);
  *pp = e->hnext;
  q_unlink(s, e);
  list_unlink(&e->exp);
  s->n--;
  entry_destroy(c, e);
}

/* The entry byte pressure evicts: LRU's tail; for W-TinyLFU main's victim
 * (probation, then protected), the window's tail only when main is empty. */
static entry_t *policy_victim(ae_cache *c, shard_t *s) {
  hitlog_flush(c, s);
  entry_t *v = q_tail(s, Q_PROBATION);
  if (!v && c->cfg.policy == AE_CACHE_TINYLFU) {
    v = q_tail(s, Q_PROTECTED);
    if (!v) v = q_tail(s, Q_WINDOW);
  }
  return v;
}

static void evict(ae_cache *c, shard_t *s, entry_t *e) {
  remove_entry(c, s, e);
  s->evictions++;
}


/* Inserts e (already in the key table) into the policy and enforces the shard's
 * entry cap. */
static void policy_insert(ae_cache *c, shard_t *s, entry_t *e) {
  hitlog_flush(c, s);
  if (c->cfg.policy != AE_CACHE_TINYLFU) {
    q_push(s, e, Q_PROBATION);
    while (s->n > s->cap) evict(c, s, q_tail(s, Q_PROBATION));
    return;
  }
  q_push(s, e, Q_WINDOW);
  while (s->qn[Q_WINDOW] > s->win_cap) {
    entry_t *cand = q_tail(s, Q_WINDOW);
    q_unlink(s, cand);
    q_push(s, cand, Q_PROBATION);
    if (s->n <= s->cap) continue;
    /* Full: the candidate (now probation's head) meets main's victim. Ties go to
     * the resident, which is what makes a scan unable to flush the cache. */
    entry_t *victim = q_tail(s, Q_PROBATION);
    if (victim == cand) victim = q_tail(s, Q_PROTECTED);
    if (victim && freq(s, cand) > freq(s, victim)) evict(c, s, victim);
    else evict(c, s, cand);
  }
  while (s->n > s->cap) evict(c, s, policy_victim(c, s));
}

/* Frees bytes until n more fit, evicting from this shard only. 0 when the shard ran
 * out of victims first. */
static int reserve_evicting(ae_cache *c, shard_t *s, size_t n) {
  while (!try_reserve(c, n)) {
    entry_t *v = policy_victim(c, s);
    if (!v) return 0;
    evict(c, s, v);
  }
  return 1;
}

/* Evicts one entry from some other shard (none of ours held). */
static int steal_one(ae_cache *c, shard_t *mine) {
  for (unsigned k = 0; k < c->nshards; k++) {
    shard_t *t = &c->shards[atomic_fetch_add(&c->steal_cursor, 1) & (c->nshards - 1)];
    if (t == mine) continue;
    pthread_mutex_lock(&t->mu);
    entry_t *v = policy_victim(c, t);
    if (v) evict(c, t, v);
    pthread_mutex_unlock(&t->mu);
    if (v) return 1;
  }
  return 0;
}

/* An entry's block: the entry, its key, and with dim > 0 a fresh vector of dim floats
 * (copied from vec, refs 1, not yet indexed) right after the key. */
static entry_t *entry_alloc(const char *key, size_t klen, uint64_t kh, XXH128_hash_t h,
                            const float *vec, size_t dim, uint64_t now) {
  size_t size = dim ? vec_offset(klen) + vec_bytes(dim) : entry_bytes(klen);
  entry_t *e = ae__malloc(size);
  if (!e) return NULL;
  memset(e, 0, sizeof *e);
  memcpy(e->key, key, klen);
  e->key[klen] = 0;
  e->klen = (uint32_t)klen;
  e->kh = kh;
  if (dim) {
    vec_t *v = (vec_t *)((char *)e + vec_offset(klen));
    memset(v, 0, sizeof *v);
    v->h = h;
    v->born_ns = now;
    v->block = e;
    v->refs = 1;
    v->dim = (uint32_t)dim;
    v->cost = (uint32_t)(size - entry_bytes(klen));
    memcpy(v->data, vec, dim * sizeof(float));
    e->vec = v;
  }
  return e;
}

/* Links a fresh entry (bytes reserved) into the table, policy and expiry FIFO. */
static void entry_link(ae_cache *c, shard_t *s, entry_t *e, XXH128_hash_t h, vec_t *v,
                       uint64_t now) {
  e->h = h;
  e->vec = v;
  e->stamp_ns = now;
  entry_t **b = &s->buckets[e->kh & s->bmask];
  e->hnext = *b;
  *b = e;
  list_push_tail(&s->expiry, &e->exp);
  s->n++;
  if (s->n > s->bmask + 1) shard_grow(s);
  policy_insert(c, s, e);
}

/* ---- set ------------------------------------------------------------------- */

static int check_vector(const char *key, const float *vec, size_t dim) {
  if (!vec || dim == 0) return ae__error(AE_EINVAL, "cache set '%s': empty vector (dim 0)", key);
  if (dim > MAX_DIM)
    return ae__error(AE_EINVAL, "cache set '%s': dimension %zu exceeds %u", key, dim, MAX_DIM);
  for (size_t i = 0; i < dim; i++)
    if (!isfinite(vec[i]))
      return ae__error(AE_EINVAL, "cache set '%s': component %zu is %s", key, i,
                       isnan(vec[i]) ? "NaN" : "infinite");
  return AE_OK;
}

/* Inserts (key -> h -> vec). persist: also queue it for the persistent tier.
 * When the index already holds these very floats for h (another key, same content)
 * the entry shares them and costs only its own bytes; otherwise the vector is
 * embedded in the entry's block (see "Blocks"). */
static int insert_hashed(ae_cache *c, const char *key, size_t klen, uint64_t kh,
                         XXH128_hash_t h, const float *vec, size_t dim, int persist) {
  size_t need_e = entry_bytes(klen), need_own = vec_offset(klen) + vec_bytes(dim);
  if (need_own > c->max_bytes)
    return ae__error(AE_ERANGE, "cache set '%.*s': entry of %zu bytes exceeds the %zu-byte limit",
                     (int)(klen > 200 ? 200 : klen), key, need_own, c->max_bytes);
  uint64_t now = ttl_clock(c);
  vec_t *shared = vec_find_same(c, h, vec, dim, now);
  entry_t *e = entry_alloc(key, klen, kh, h, vec, shared ? 0 : dim, now);
  if (!e) {
    if (shared) vec_release(c, shared);
    return ae__error(AE_ENOMEM, "cache set '%.*s': out of memory for %zu bytes",
                     (int)(klen > 200 ? 200 : klen), key, shared ? need_e : need_own);
  }
  size_t need = shared ? need_e : need_own;

  shard_t *s = shard_of(c, kh);
  for (int attempt = 0;; attempt++) {
    pthread_mutex_lock(&s->mu);
    entry_t **pp = shard_slot(s, kh, key, klen);
    entry_t *old = *pp;
    if (old && hash_eq(old->h, h) && old->vec->dim == dim &&
        memcmp(old->vec->data, vec, dim * sizeof(float)) == 0) {
      /* Same content, same vector: only refresh the TTL stamp. */
      old->stamp_ns = now;
      list_unlink(&old->exp);
      list_push_tail(&s->expiry, &old->exp);
      pthread_mutex_unlock(&s->mu);
      ae__free(e);
      if (shared) vec_release(c, shared);
      return AE_OK;
    }
    if (old) remove_entry(c, s, old); /* overwrite = delete + insert */
    if (reserve_evicting(c, s, need)) break;
    pthread_mutex_unlock(&s->mu);
    if (steal_one(c, s)) continue;
    /* Nothing left to evict anywhere: the bytes are reserved by sets in flight on
     * other threads, which will either link their entries (evictable then) or give
     * the reservation back. Wait for them a little, then give up. */
    if (attempt < 1000) {
      sched_yield();
      continue;
    }
    ae__free(e);
    if (shared) vec_release(c, shared);
    return ae__error(AE_ERANGE, "cache set: no room for %zu bytes", need);
  }
  if (!shared) vec_publish(c, e->vec);
  entry_link(c, s, e, h, shared ? shared : e->vec, now);
  pthread_mutex_unlock(&s->mu);

  if (persist && !shared && c->persist) {
    XXH128_canonical_t canon;
    XXH128_canonicalFromHash(&canon, h);
    ae__persist_put(c->persist, canon.digest, vec, (uint32_t)dim);
  }
  return AE_OK;
}

int ae_cache_set(ae_cache *c, const char *key, const char *content, size_t content_len,
                 const float *vec, size_t dim) {
  if (!c || !key || (!content && content_len))
    return ae__error(AE_EINVAL, "cache set: NULL %s", !c ? "cache" : !key ? "key" : "content");
  int rc = check_vector(key, vec, dim);
  if (rc) return rc;
  size_t klen = strlen(key);
  XXH128_hash_t h = XXH3_128bits_withSeed(content ? content : "", content_len, c->seed);
  return insert_hashed(c, key, klen, XXH3_64bits(key, klen), h, vec, dim, 1);
}

/* ---- get ------------------------------------------------------------------- */

/* Attaches key to v (a reference already taken) after a hit through another key with
 * the same content; gives the reference back when there is no room without stealing. */
static void attach_or_release(ae_cache *c, shard_t *s, const char *key, size_t klen,
                              uint64_t kh, XXH128_hash_t h, vec_t *v, uint64_t now) {
  entry_t *e = entry_alloc(key, klen, kh, h, NULL, 0, now);
  if (e && entry_bytes(klen) <= c->max_bytes && reserve_evicting(c, s, entry_bytes(klen))) {
    entry_link(c, s, e, h, v, now);
    return;
  }
  ae__free(e);
  vec_release(c, v);
}

/* Prefetches kh's bucket without the shard lock: the table pointer and mask are read
 * with relaxed atomics (shard_grow stores them atomically); a stale pair only yields
 * a useless address, and a prefetch never faults. */
static inline void gm_prefetch_bucket(ae_cache *c, uint64_t kh) {
  shard_t *s = shard_of(c, kh);
  entry_t **b = __atomic_load_n(&s->buckets, __ATOMIC_RELAXED);
  size_t mask = __atomic_load_n(&s->bmask, __ATOMIC_RELAXED);
  __builtin_prefetch(&b[kh & mask]);
}

static inline void prefetch_range(const void *from, size_t n) {
  const char *p = from, *end = p + n;
  for (; p < end; p += 64) __builtin_prefetch(p);
  __builtin_prefetch(end - 1);
}

/* A hit waits on the chain bucket -> entry -> vector, each a DRAM (and TLB) miss
 * when the working set is larger than the caches. The moment the bucket yields the
 * chain's first entry, its whole block is prefetched, sized as a hit for this
 * request would be (the key length and dim are the caller's; the vector is
 * embedded after the key): entry, key and vector then arrive together instead of
 * one after the other. When that entry turns out to be another key the lines were
 * wasted, nothing else. */
static inline entry_t *find_prefetching(shard_t *s, uint64_t kh, const char *key, size_t klen,
                                        size_t dim) {
  entry_t *e = s->buckets[kh & s->bmask];
  if (!e) return NULL;
  prefetch_range(e, vec_offset(klen) + vec_bytes(dim));
  while (e && !(e->kh == kh && e->klen == klen && memcmp(e->key, key, klen) == 0)) e = e->hnext;
  return e;
}

/* Once the hit's entry is known: a vector shared from another key's block. */
static inline void hit_prefetch(const entry_t *e, size_t dim) {
  if ((const char *)e->vec != (const char *)e + vec_offset(e->klen))
    prefetch_range(e->vec, vec_bytes(dim));
}

/* Memory-tier lookup under the shard lock. */
static int memory_get(ae_cache *c, shard_t *s, const char *key, size_t klen, uint64_t kh,
                      XXH128_hash_t h, float *out, size_t dim, uint64_t now) {
  if (c->cfg.policy == AE_CACHE_TINYLFU) ae__sketch_record(&s->sketch, kh);
  entry_t *e = find_prefetching(s, kh, key, klen, dim);
  if (e && expired_at(c, e->stamp_ns, now)) {
    remove_entry(c, s, e);
    s->expirations++;
    e = NULL;
  } else if (e && c->cfg.enable_content_validation && !hash_eq(e->h, h)) {
    remove_entry(c, s, e);
    s->invalidations++;
    e = NULL;
  }
  if (e) {
    hit_prefetch(e, dim);
    if (e->vec->dim != dim)
      return ae__error(AE_EMISMATCH, "cache get '%s': stored vector has dimension %u, asked %zu",
                       e->key, e->vec->dim, dim);
    memcpy(out, e->vec->data, dim * sizeof(float));
    hitlog_push(c, s, e);
    return AE_OK;
  }
  vec_t *v = vec_find_ref(c, h, dim, now);
  if (!v) return AE_EMISS;
  memcpy(out, v->data, dim * sizeof(float));
  attach_or_release(c, s, key, klen, kh, h, v, now);
  return AE_OK;
}

static void account(shard_t *s, int rc, uint64_t t0, int from_persist) {
  s->requests++;
  if (rc == AE_OK) s->hits++;
  else s->misses++;
  if (rc == AE_OK && from_persist) s->persist_hits++;
  if (t0) {
    s->time_ns += ae__now_ns() - t0;
    s->timed++;
  }
}

int ae_cache_get(ae_cache *c, const char *key, const char *content, size_t content_len,
                 float *out, size_t dim) {
  if (!c || !key || (!content && content_len) || !out || !dim)
    return ae__error(AE_EINVAL, "cache get: NULL argument or dim 0");
  uint64_t t0 = sample_start();
  /* the caller's content is read by the hash below: start its lines now, so that
   * their misses overlap the key's */
  if (content) prefetch_range(content, content_len < 1024 ? content_len : 1024);
  size_t klen = strlen(key);
  uint64_t kh = XXH3_64bits(key, klen);
  gm_prefetch_bucket(c, kh); /* in flight while the content is hashed */
  XXH128_hash_t h = XXH3_128bits_withSeed(content ? content : "", content_len, c->seed);
  shard_t *s = shard_of(c, kh);
  pthread_mutex_lock(&s->mu);
  int rc = memory_get(c, s, key, klen, kh, h, out, dim, ttl_clock(c));
  if (rc != AE_EMISS || !c->persist) {
    account(s, rc, t0, 0);
    pthread_mutex_unlock(&s->mu);
    return rc;
  }
  pthread_mutex_unlock(&s->mu);

  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, h);
  rc = ae__persist_get(c->persist, canon.digest, out, (uint32_t)dim);
  if (rc == AE_OK) insert_hashed(c, key, klen, kh, h, out, dim, 0); /* promote */
  pthread_mutex_lock(&s->mu);
  account(s, rc, t0, 1);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

/* Batch gets, memory tier. With a working set larger than the CPU caches a hit waits
 * on a chain of dependent misses (bucket -> entry -> vector), which a single get
 * cannot overlap. A batch can: its items are hashed first (the caller's keys and
 * contents are read independently, so their misses overlap) and every item's bucket
 * is prefetched; then the items are grouped by shard (one lock per group, stable so
 * repeated keys keep their order) and, under the lock, the group's chain-head
 * entries are prefetched together, then each item's vector and LRU neighbours
 * GM_AHEAD items before its lookup, which then finds its lines in cache.
 *
 * The bucket prefetch runs without the lock (see gm_prefetch_bucket). Everything
 * else reads the table afresh under the lock and dereferences only pointers valid at
 * that moment (earlier items of the group may remove or add entries). */
#define GM_BLOCK 256
#define GM_AHEAD 4
#define GM_HASH_AHEAD 8

/* The caller's key and content of item i, read by the hashing GM_HASH_AHEAD items
 * later (scattered strings: each its own miss, otherwise taken one at a time). */
static inline void gm_prefetch_input(const char *const *keys, const char *const *contents,
                                     const size_t *lens, size_t i) {
  if (keys[i]) __builtin_prefetch(keys[i]);
  if (contents[i]) prefetch_range(contents[i], lens[i] < 1024 ? lens[i] : 1024);
}

typedef struct {
  uint64_t kh, t0;
  XXH128_hash_t h;
  size_t klen;
} gm_item;

static inline void gm_prefetch_hit(shard_t *s, const gm_item *it, size_t dim) {
  entry_t *e = s->buckets[it->kh & s->bmask];
  if (!e || e->kh != it->kh) return;
  prefetch_range(e, vec_offset(it->klen) + vec_bytes(dim));
}

/* Items [b0, b0 + m) of a batch (m <= GM_BLOCK), valid ones hashed in it[] (klen ==
 * SIZE_MAX marks an invalid one, already answered). Memory-tier results into
 * status[]; a persistent-tier candidate is left AE_EMISS and not yet accounted. */
static void gm_memory_block(ae_cache *c, size_t b0, size_t m, const char *const *keys,
                            const gm_item *it, float *out, size_t dim, int *status) {
  uint16_t ord[GM_BLOCK], start[MAX_SHARDS + 1] = {0}, pos[MAX_SHARDS];
  for (size_t j = 0; j < m; j++)
    if (it[j].klen != SIZE_MAX) start[((it[j].kh >> 40) & (c->nshards - 1)) + 1]++;
  for (unsigned g = 0; g < c->nshards; g++) {
    start[g + 1] = (uint16_t)(start[g + 1] + start[g]);
    pos[g] = start[g];
  }
  for (size_t j = 0; j < m; j++)
    if (it[j].klen != SIZE_MAX) ord[pos[(it[j].kh >> 40) & (c->nshards - 1)]++] = (uint16_t)j;
  for (unsigned g = 0; g < c->nshards; g++) {
    size_t a = start[g], b = start[g + 1];
    if (a == b) continue;
    shard_t *s = &c->shards[g];
    pthread_mutex_lock(&s->mu);
    for (size_t k = a; k < b; k++) {
      entry_t *e = s->buckets[it[ord[k]].kh & s->bmask];
      if (e) __builtin_prefetch(e);
    }
    for (size_t k = a; k < b && k < a + GM_AHEAD; k++) gm_prefetch_hit(s, &it[ord[k]], dim);
    for (size_t k = a; k < b; k++) {
      if (k + GM_AHEAD < b) gm_prefetch_hit(s, &it[ord[k + GM_AHEAD]], dim);
      size_t j = ord[k], i = b0 + j;
      status[i] = memory_get(c, s, keys[i], it[j].klen, it[j].kh, it[j].h, out + i * dim, dim,
                             ttl_clock(c));
      if (status[i] != AE_EMISS || !c->persist) account(s, status[i], it[j].t0, 0);
    }
    pthread_mutex_unlock(&s->mu);
  }
}

int ae_cache_get_many(ae_cache *c, size_t n, const char *const *keys,
                      const char *const *contents, const size_t *content_lens,
                      float *out, size_t dim, int *status, size_t *hits) {
  if (hits) *hits = 0;
  if (!c || (n && (!keys || !contents || !content_lens || !out || !status)) || !dim)
    return ae__error(AE_EINVAL, "cache get_many: NULL argument or dim 0");
  size_t nmiss = 0, nhit = 0;
  size_t *miss = NULL;
  uint64_t *khs = NULL;
  uint8_t (*hs)[16] = NULL;
  int *pst = NULL;
  float **outs = NULL;
  gm_item it[GM_BLOCK];
  for (size_t b0 = 0; b0 < n; b0 += GM_BLOCK) {
    size_t m = n - b0 < GM_BLOCK ? n - b0 : GM_BLOCK;
    for (size_t j = 0; j < m && j < GM_HASH_AHEAD; j++) gm_prefetch_input(keys, contents, content_lens, b0 + j);
    for (size_t j = 0; j < m; j++) {
      size_t i = b0 + j;
      if (j + GM_HASH_AHEAD < m) gm_prefetch_input(keys, contents, content_lens, i + GM_HASH_AHEAD);
      if (!keys[i] || (!contents[i] && content_lens[i])) {
        status[i] = ae__error(AE_EINVAL, "cache get_many: item %zu has a NULL key or content", i);
        it[j].klen = SIZE_MAX;
        continue;
      }
      it[j].t0 = sample_start();
      it[j].klen = strlen(keys[i]);
      it[j].kh = XXH3_64bits(keys[i], it[j].klen);
      it[j].h = XXH3_128bits_withSeed(contents[i] ? contents[i] : "", content_lens[i], c->seed);
      gm_prefetch_bucket(c, it[j].kh);
    }
    gm_memory_block(c, b0, m, keys, it, out, dim, status);
    for (size_t j = 0; j < m; j++) {
      size_t i = b0 + j;
      if (it[j].klen == SIZE_MAX) continue;
      if (status[i] == AE_OK) nhit++;
      if (status[i] != AE_EMISS || !c->persist) continue;
      if (!miss) {
        miss = ae__malloc(n * sizeof *miss);
        khs = ae__malloc(n * sizeof *khs);
        hs = ae__malloc(n * sizeof *hs);
        pst = ae__malloc(n * sizeof *pst);
        outs = ae__malloc(n * sizeof *outs);
        if (!miss || !khs || !hs || !pst || !outs) { /* no batch: these misses stay misses */
          ae__free(miss); ae__free(khs); ae__free(hs); ae__free(pst); ae__free(outs);
          miss = NULL; khs = NULL; hs = NULL; pst = NULL; outs = NULL;
        }
      }
      if (!miss) {
        shard_t *s = shard_of(c, it[j].kh);
        pthread_mutex_lock(&s->mu);
        account(s, AE_EMISS, it[j].t0, 0);
        pthread_mutex_unlock(&s->mu);
        continue;
      }
      XXH128_canonical_t canon;
      XXH128_canonicalFromHash(&canon, it[j].h);
      memcpy(hs[nmiss], canon.digest, 16);
      khs[nmiss] = it[j].kh;
      outs[nmiss] = out + i * dim;
      miss[nmiss++] = i;
    }
  }
  /* Persistent lookups in chunks, each promoted into the memory tier right away
   * while its vectors are still in the CPU cache (a whole batch of 384-d rows would
   * not fit in L2, and promotion re-reads every vector). */
  for (size_t j0 = 0; j0 < nmiss; j0 += PERSIST_CHUNK) {
    size_t j1 = nmiss - j0 < PERSIST_CHUNK ? nmiss : j0 + PERSIST_CHUNK;
    ae__persist_get_many(c->persist, j1 - j0, (const uint8_t (*)[16])hs + j0, outs + j0,
                         (uint32_t)dim, pst + j0);
    for (size_t j = j0; j < j1; j++) {
      size_t i = miss[j];
      uint64_t t0 = sample_start();
      int rc = pst[j];
      if (rc == AE_OK) {
        XXH128_canonical_t canon;
        memcpy(canon.digest, hs[j], 16);
        insert_hashed(c, keys[i], strlen(keys[i]), khs[j], XXH128_hashFromCanonical(&canon),
                      out + i * dim, dim, 0);
        nhit++;
      }
      status[i] = rc;
      shard_t *s = shard_of(c, khs[j]);
      pthread_mutex_lock(&s->mu);
      account(s, rc, t0, 1);
      pthread_mutex_unlock(&s->mu);
    }
  }
  ae__free(outs);
  ae__free(miss);
  ae__free(khs);
  ae__free(hs);
  ae__free(pst);
  if (hits) *hits = nhit;
  return AE_OK;
}

int ae_cache_delete(ae_cache *c, const char *key) {
  if (!c || !key) return ae__error(AE_EINVAL, "cache delete: NULL argument");
  size_t klen = strlen(key);
  uint64_t kh = XXH3_64bits(key, klen);
  shard_t *s = shard_of(c, kh);
  pthread_mutex_lock(&s->mu);
  entry_t *e = *shard_slot(s, kh, key, klen);
  if (e) remove_entry(c, s, e);
  pthread_mutex_unlock(&s->mu);
  return e ? AE_OK : ae__error(AE_ENOTFOUND, "cache delete: key '%s' not cached", key);
}

/* ---- maintenance ------------------------------------------------------------ */

/* Pops expired entries from the heads of the shards' expiry FIFOs, at most budget in
 * all, starting with the shard after the one the last step ended on. */
static size_t sweep_expired(ae_cache *c, size_t budget) {
  if (!c->ttl_ns) return 0;
  size_t done = 0;
  for (unsigned k = 0; k < c->nshards && done < budget; k++) {
    shard_t *s = &c->shards[atomic_fetch_add(&c->sweep_cursor, 1) & (c->nshards - 1)];
    pthread_mutex_lock(&s->mu);
    uint64_t now = ttl_clock(c);
    while (done < budget && !list_empty(&s->expiry)) {
      entry_t *e = EXP_ENTRY(s->expiry.next);
      if (!expired_at(c, e->stamp_ns, now)) break;
      remove_entry(c, s, e);
      s->expirations++;
      done++;
    }
    pthread_mutex_unlock(&s->mu);
  }
  return done;
}

int ae_cache_maintain(ae_cache *c) {
  if (!c) return ae__error(AE_EINVAL, "cache maintain: NULL cache");
  sweep_expired(c, SWEEP_BUDGET);
  return c->persist ? ae__persist_maintain(c->persist) : AE_OK;
}

int ae_cache_shrink(ae_cache *c, double fraction) {
  if (!c || !(fraction >= 0 && fraction <= 1))
    return ae__error(AE_EINVAL, "cache shrink: fraction must be within 0..1");
  for (unsigned i = 0; i < c->nshards; i++) {
    shard_t *s = &c->shards[i];
    pthread_mutex_lock(&s->mu);
    size_t target = (size_t)((double)s->cap * fraction);
    while (s->n > target) evict(c, s, policy_victim(c, s));
    pthread_mutex_unlock(&s->mu);
  }
  size_t byte_target = (size_t)((double)c->max_bytes * fraction);
  while (atomic_load(&c->bytes) > byte_target) {
    int any = 0;
    for (unsigned i = 0; i < c->nshards && atomic_load(&c->bytes) > byte_target; i++) {
      shard_t *s = &c->shards[i];
      pthread_mutex_lock(&s->mu);
      entry_t *v = policy_victim(c, s);
      if (v) { evict(c, s, v); any = 1; }
      pthread_mutex_unlock(&s->mu);
    }
    if (!any) break;
  }
  return AE_OK;
}

int ae_cache_flush(ae_cache *c) {
  if (!c) return ae__error(AE_EINVAL, "cache flush: NULL cache");
  return c->persist ? ae__persist_flush(c->persist) : AE_OK;
}

int ae_cache_persist_status(ae_cache *c) {
  if (!c) return AE_EINVAL;
  if (c->persist_status) return c->persist_status;
  if (!c->persist) return AE_OK;
  ae__persist_stats st;
  ae__persist_stats_get(c->persist, &st);
  return st.status;
}

/* The background thread: one maintenance step per interval. A timed wait on a
 * condition variable (not sleep) so that free wakes it at once. */
static void *maintenance_main(void *arg) {
  ae_cache *c = arg;
  pthread_mutex_lock(&c->tmu);
  while (!c->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)c->cfg.maintenance_interval_ms * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    int r = 0;
    while (!c->stop && r == 0) r = pthread_cond_timedwait(&c->tcv, &c->tmu, &ts);
    if (c->stop) break;
    pthread_mutex_unlock(&c->tmu);
    ae_cache_maintain(c);
    pthread_mutex_lock(&c->tmu);
  }
  pthread_mutex_unlock(&c->tmu);
  return NULL;
}

/* ---- metrics ---------------------------------------------------------------- */

void ae_cache_metrics_get(ae_cache *c, ae_cache_metrics *m) {
  memset(m, 0, sizeof *m);
  if (!c) return;
  uint64_t time_ns = 0, timed = 0;
  for (unsigned i = 0; i < c->nshards; i++) {
    shard_t *s = &c->shards[i];
    pthread_mutex_lock(&s->mu);
    m->requests += s->requests;
    m->hits += s->hits;
    m->misses += s->misses;
    m->evictions += s->evictions;
    m->expirations += s->expirations;
    m->invalidations += s->invalidations;
    m->entries += s->n;
    m->persist_hits += s->persist_hits;
    time_ns += s->time_ns;
    timed += s->timed;
    pthread_mutex_unlock(&s->mu);
  }
  m->bytes = atomic_load(&c->bytes);
  m->vectors = atomic_load(&c->nvecs);
  size_t payload = atomic_load(&c->payload);
  if (m->requests) {
    m->hit_ratio = (double)m->hits / (double)m->requests;
    m->miss_ratio = (double)m->misses / (double)m->requests;
    m->average_access_time_ns = timed ? (double)time_ns / (double)timed : 0;
  }
  m->memory_efficiency = m->bytes ? (double)payload / (double)m->bytes : 0;
  if (m->requests)
    m->performance_score = 100.0 * (0.6 * m->hit_ratio + 0.2 * m->memory_efficiency +
                                    0.2 * 1000.0 / (1000.0 + m->average_access_time_ns));
  m->persist_enabled = c->persist != NULL;
  m->persist_status = c->persist_status;
  snprintf(m->persist_error, sizeof m->persist_error, "%s", c->persist_error);
  if (c->persist) {
    ae__persist_stats st;
    ae__persist_stats_get(c->persist, &st);
    m->persist_writes = st.writes;
    m->persist_errors = st.errors;
    m->persist_rejected = st.rejected;
    m->persist_pending = st.pending;
    m->persist_pruned = st.pruned;
    if (st.status) {
      m->persist_status = st.status;
      snprintf(m->persist_error, sizeof m->persist_error, "%s", st.error);
    }
  }
}

char *ae_cache_metrics_json(ae_cache *c) {
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  char err[600];
  size_t k = 0;
  for (const char *p = m.persist_error; *p && k < sizeof err - 8; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch == '"' || ch == '\\') { err[k++] = '\\'; err[k++] = (char)ch; }
    else if (ch < 0x20) k += (size_t)snprintf(err + k, sizeof err - k, "\\u%04x", ch);
    else err[k++] = (char)ch;
  }
  err[k] = 0;
  char buf[2048];
  int n = snprintf(buf, sizeof buf,
      "{\"requests\":%llu,\"hits\":%llu,\"misses\":%llu,\"hitRatio\":%.6f,\"missRatio\":%.6f,"
      "\"averageAccessTime\":%.1f,\"entries\":%llu,\"bytes\":%llu,\"vectors\":%llu,"
      "\"evictions\":%llu,\"expirations\":%llu,\"invalidations\":%llu,"
      "\"memoryEfficiency\":%.6f,\"performanceScore\":%.3f,"
      "\"persistEnabled\":%s,\"persistStatus\":%d,\"persistError\":\"%s\","
      "\"persistHits\":%llu,\"persistWrites\":%llu,\"persistErrors\":%llu,"
      "\"persistRejected\":%llu,\"persistPending\":%llu,\"persistPruned\":%llu}",
      (unsigned long long)m.requests, (unsigned long long)m.hits, (unsigned long long)m.misses,
      m.hit_ratio, m.miss_ratio, m.average_access_time_ns, (unsigned long long)m.entries,
      (unsigned long long)m.bytes, (unsigned long long)m.vectors,
      (unsigned long long)m.evictions, (unsigned long long)m.expirations,
      (unsigned long long)m.invalidations, m.memory_efficiency, m.performance_score,
      m.persist_enabled ? "true" : "false", m.persist_status, err,
      (unsigned long long)m.persist_hits, (unsigned long long)m.persist_writes,
      (unsigned long long)m.persist_errors, (unsigned long long)m.persist_rejected,
      (unsigned long long)m.persist_pending, (unsigned long long)m.persist_pruned);
  if (n < 0 || (size_t)n >= sizeof buf) return NULL;
  return ae__strdup(buf);
}

/* ---- lifecycle -------------------------------------------------------------- */

void ae_cache_config_default(ae_cache_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->max_entries = 1000;
  cfg->max_memory_mb = 100;
  cfg->ttl_seconds = 3600;
  cfg->enable_content_validation = 1;
  cfg->maintenance_interval_ms = 300000;
  cfg->policy = AE_CACHE_LRU;
  cfg->persist_batch_count = 256;
  cfg->persist_batch_ms = 1000;
}

static unsigned auto_shards(size_t max_entries) {
  unsigned s = 1;
  while (s < 16 && max_entries / (s * 2) >= 1024) s *= 2;
  return s;
}

static int shards_init(ae_cache *c) {
  c->shards = ae__calloc(c->nshards, sizeof(shard_t));
  c->stripes = ae__calloc(c->nstripes, sizeof(stripe_t));
  if (!c->shards || !c->stripes) return ae__error(AE_ENOMEM, "cache: out of memory for shards");
  for (unsigned i = 0; i < c->nshards; i++) {
    shard_t *s = &c->shards[i];
    pthread_mutex_init(&s->mu, NULL);
    for (int q = 0; q < Q_COUNT; q++) list_init(&s->q[q]);
    list_init(&s->expiry);
    s->cap = c->cfg.max_entries / c->nshards + (i < c->cfg.max_entries % c->nshards);
    s->win_cap = s->cap / 100 ? s->cap / 100 : 1;
    s->prot_cap = (s->cap - (s->cap > s->win_cap ? s->win_cap : 0)) * 8 / 10;
    size_t nb = 16;
    while (nb < s->cap && nb < (1u << 20)) nb *= 2;
    s->buckets = ae__calloc(nb, sizeof(entry_t *));
    if (!s->buckets) return ae__error(AE_ENOMEM, "cache: out of memory for a key table");
    s->bmask = nb - 1;
    if (c->cfg.policy == AE_CACHE_TINYLFU) {
      int rc = ae__sketch_init(&s->sketch, s->cap);
      if (rc) return rc;
    }
  }
  for (unsigned i = 0; i < c->nstripes; i++) {
    stripe_t *t = &c->stripes[i];
    pthread_mutex_init(&t->mu, NULL);
    t->buckets = ae__calloc(64, sizeof(vec_t *));
    if (!t->buckets) return ae__error(AE_ENOMEM, "cache: out of memory for the content index");
    t->bmask = 63;
  }
  return AE_OK;
}

static int check_config(const ae_cache_config *cfg) {
  if (cfg->max_entries == 0) return ae__error(AE_EINVAL, "cache: max_entries must be at least 1");
  if (cfg->max_bytes == 0 && cfg->max_memory_mb == 0)
    return ae__error(AE_EINVAL, "cache: max_memory_mb (or max_bytes) must be positive");
  if (cfg->max_memory_mb > ((size_t)1 << 40))
    return ae__error(AE_EINVAL, "cache: max_memory_mb %zu is too large", cfg->max_memory_mb);
  if (cfg->policy != AE_CACHE_LRU && cfg->policy != AE_CACHE_TINYLFU)
    return ae__error(AE_EINVAL, "cache: unknown policy %d (0 = lru, 1 = tinylfu)", cfg->policy);
  if (cfg->shards > MAX_SHARDS || (cfg->shards & (cfg->shards - 1)))
    return ae__error(AE_EINVAL, "cache: shards %u must be a power of two <= %d", cfg->shards,
                     MAX_SHARDS);
  return AE_OK;
}

int ae_cache_new(const ae_cache_config *cfg_in, const uint8_t model_fingerprint[16],
                 ae_cache **out) {
  if (!out) return ae__error(AE_EINVAL, "cache new: NULL out");
  *out = NULL;
  if (!model_fingerprint) return ae__error(AE_EINVAL, "cache new: NULL model fingerprint");
  ae_cache_config cfg;
  if (cfg_in) cfg = *cfg_in;
  else ae_cache_config_default(&cfg);
  int rc = check_config(&cfg);
  if (rc) return rc;
  ae_cache *c = ae__calloc(1, sizeof *c);
  if (!c) return ae__error(AE_ENOMEM, "cache new: out of memory");
  c->cfg = cfg;
  c->cfg.persist_path = NULL; /* not kept: the caller owns the string */
  memcpy(c->fp, model_fingerprint, 16);
  c->seed = XXH3_64bits(model_fingerprint, 16);
  c->ttl_ns = (uint64_t)cfg.ttl_seconds * 1000000000ull;
  c->max_bytes = cfg.max_bytes ? cfg.max_bytes : cfg.max_memory_mb << 20;
  c->nshards = cfg.shards ? cfg.shards : auto_shards(cfg.max_entries);
  while (c->nshards > 1 && c->nshards > cfg.max_entries) c->nshards /= 2;
  c->nstripes = c->nshards * 2;
  pthread_mutex_init(&c->tmu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->tcv, &ca);
  pthread_condattr_destroy(&ca);
  if ((rc = shards_init(c))) {
    ae_cache_free(c);
    return rc;
  }
  if (cfg.persist_path) {
    rc = ae__persist_open(cfg.persist_path, model_fingerprint, cfg.persist_max_mb,
                          cfg.persist_batch_count ? cfg.persist_batch_count : 256,
                          cfg.persist_batch_ms ? cfg.persist_batch_ms : 1000,
                          cfg.persist_sync_full,
                          cfg.persist_no_prefetch ? 0 : c->max_bytes, &c->persist);
    if (rc) { /* carry on in memory; the detail stays in ae_last_error and metrics */
      c->persist_status = rc;
      snprintf(c->persist_error, sizeof c->persist_error, "%s", ae_last_error());
    }
  }
  if (cfg.maintenance_interval_ms) {
    if (pthread_create(&c->thread, NULL, maintenance_main, c) == 0) c->thread_started = 1;
    else {
      int err_rc = ae__error(AE_ESTATE, "cache new: cannot start the maintenance thread");
      char keep[1024];
      snprintf(keep, sizeof keep, "%s", ae_last_error());
      ae_cache_free(c);
      ae__error(err_rc, "%s", keep);
      return err_rc;
    }
  }
  *out = c;
  if (c->persist_status) ae__error(c->persist_status, "%s", c->persist_error);
  return AE_OK;
}

void ae_cache_free(ae_cache *c) {
  if (!c) return;
  if (c->thread_started) {
    pthread_mutex_lock(&c->tmu);
    c->stop = 1;
    pthread_cond_signal(&c->tcv);
    pthread_mutex_unlock(&c->tmu);
    pthread_join(c->thread, NULL);
  }
  if (c->persist) ae__persist_close(c->persist);
  if (c->shards)
    for (unsigned i = 0; i < c->nshards; i++) {
      shard_t *s = &c->shards[i];
      if (s->buckets) {
        while (!list_empty(&s->expiry)) remove_entry(c, s, EXP_ENTRY(s->expiry.next));
        ae__free(s->buckets);
        pthread_mutex_destroy(&s->mu);
      }
      ae__sketch_free(&s->sketch);
    }
  if (c->stripes)
    for (unsigned i = 0; i < c->nstripes; i++)
      if (c->stripes[i].buckets) {
        ae__free(c->stripes[i].buckets);
        pthread_mutex_destroy(&c->stripes[i].mu);
      }
  pthread_mutex_destroy(&c->tmu);
  pthread_cond_destroy(&c->tcv);
  ae__free(c->shards);
  ae__free(c->stripes);
  ae__free(c);
}

/* ---- test hooks ------------------------------------------------------------- */

void ae__cache_set_clock(ae_cache *c, uint64_t (*now_ns)(void *ud), void *ud) {
  c->clock = now_ns;
  c->clock_ud = ud;
}

void ae__cache_recount(ae_cache *c, uint64_t *entries, uint64_t *bytes) {
  uint64_t n = 0, b = 0;
  for (unsigned i = 0; i < c->nshards; i++) {
    shard_t *s = &c->shards[i];
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k <= s->bmask; k++)
      for (entry_t *e = s->buckets[k]; e; e = e->hnext) {
        n++;
        b += entry_bytes(e->klen);
      }
    pthread_mutex_unlock(&s->mu);
  }
  /* Vectors: every one still referenced. Replaced ones are out of the index, so
   * walk them through the entries, counting each vector once (by address). */
  size_t cap = 1024, used = 0;
  const vec_t **seen = ae__malloc(cap * sizeof *seen);
  for (unsigned i = 0; i < c->nshards && seen; i++) {
    shard_t *s = &c->shards[i];
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k <= s->bmask && seen; k++)
      for (entry_t *e = s->buckets[k]; e && seen; e = e->hnext) {
        if (used == cap) {
          const vec_t **ns = ae__realloc(seen, cap * 2 * sizeof *seen);
          if (!ns) { ae__free(seen); seen = NULL; break; }
          seen = ns;
          cap *= 2;
        }
        seen[used++] = e->vec;
      }
    pthread_mutex_unlock(&s->mu);
  }
  if (seen) {
    /* sort addresses, count distinct */
    for (size_t gap = used / 2; gap > 0; gap /= 2) /* shell sort: no comparator casts */
      for (size_t i = gap; i < used; i++)
        for (size_t j = i; j >= gap && seen[j - gap] > seen[j]; j -= gap) {
          const vec_t *t = seen[j];
          seen[j] = seen[j - gap];
          seen[j - gap] = t;
        }
    for (size_t i = 0; i < used; i++)
      if (i == 0 || seen[i] != seen[i - 1]) b += seen[i]->cost;
    ae__free(seen);
  } else {
    b = UINT64_MAX; /* could not recount */
  }
  *entries = n;
  *bytes = b;
}

void ae__cache_content_hash(ae_cache *c, const char *content, size_t len, uint8_t out[16]) {
  XXH128_canonical_t canon;
  XXH128_canonicalFromHash(&canon, XXH3_128bits_withSeed(content, len, c->seed));
  memcpy(out, canon.digest, 16);
}

unsigned ae__cache_shards(ae_cache *c) { return c->nshards; }
