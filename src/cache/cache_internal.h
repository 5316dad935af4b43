/* Private interfaces of the cache module: the W-TinyLFU frequency sketch, the SQLite
 * persistent tier, and hooks for tests (clock, exact recount). */
#ifndef AE_CACHE_INTERNAL_H
#define AE_CACHE_INTERNAL_H
#include "astembed.h"
#include <stdint.h>
#include <stddef.h>

/* ---- frequency sketch (sketch.c) ----------------------------------------- */
typedef struct {
  uint8_t *counters;   /* 4 rows x width saturating counters (0..15) */
  uint64_t *door;      /* doorkeeper bloom filter bits */
  uint64_t width_mask, door_mask;
  uint64_t additions, sample_size;
} ae__sketch;

int ae__sketch_init(ae__sketch *s, size_t capacity);
void ae__sketch_free(ae__sketch *s);
void ae__sketch_record(ae__sketch *s, uint64_t hash);
unsigned ae__sketch_estimate(const ae__sketch *s, uint64_t hash);

/* ---- persistent tier (persist.c) ------------------------------------------ */
typedef struct ae__persist ae__persist;

typedef struct {
  uint64_t hits, writes, errors, rejected, pending, pruned;
  int status;
  char error[256];
} ae__persist_stats;

/* Opens (creating when needed) the database. On failure returns the status with
 * ae_last_error set and *out NULL. */
/* prefetch_bytes: budget of the bulk load on the first lookup, 0 = no prefetch. */
int ae__persist_open(const char *path, const uint8_t fp[16], size_t max_mb,
                     uint32_t batch_count, uint32_t batch_ms, int sync_full,
                     uint64_t prefetch_bytes, ae__persist **out);
/* Commits everything pending and closes. */
void ae__persist_close(ae__persist *p);
/* Queues a vector for writing (copied). Commits when the batch is full. */
int ae__persist_put(ae__persist *p, const uint8_t h[16], const float *vec, uint32_t dim);
/* Looks a vector up (pending writes first, then the database). AE_OK with out filled,
 * AE_EMISS when absent, AE_EMISMATCH when its dimension differs from dim; a row
 * whose length or checksum is wrong is counted, deleted and reported as AE_EMISS. */
int ae__persist_get(ae__persist *p, const uint8_t h[16], float *out, uint32_t dim);
/* n lookups in one read transaction, item i into outs[i]; status[i] as for
 * ae__persist_get. */
int ae__persist_get_many(ae__persist *p, size_t n, const uint8_t (*h)[16], float *const *outs,
                         uint32_t dim, int *status);
/* Commits pending writes and last-access updates. */
int ae__persist_flush(ae__persist *p);
/* Flush when due by age, prune past the size cap. */
int ae__persist_maintain(ae__persist *p);
void ae__persist_stats_get(ae__persist *p, ae__persist_stats *st);

/* ---- test hooks (cache.c) ------------------------------------------------- */
/* Replaces the clock used for TTL (ns, monotonic). NULL restores the real one. */
void ae__cache_set_clock(ae_cache *c, uint64_t (*now_ns)(void *ud), void *ud);
/* Recounts entries and bytes from scratch by walking every structure. */
void ae__cache_recount(ae_cache *c, uint64_t *entries, uint64_t *bytes);
/* The content hash the cache uses for content (model fingerprint mixed in). */
void ae__cache_content_hash(ae_cache *c, const char *content, size_t len, uint8_t out[16]);
/* Number of lock shards actually used. */
unsigned ae__cache_shards(ae_cache *c);
#endif
