/* Helpers shared by the cache tests: content-derived vectors (so any hit can be
 * verified), a controllable clock, and the exact-accounting check. */
#ifndef AE_CACHE_TEST_UTIL_H
#define AE_CACHE_TEST_UTIL_H
#include "astembed.h"
#include "cache/cache_internal.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const uint8_t FP_A[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const uint8_t FP_B[16] = {16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};

/* Vector derived from a content id: every component known to the verifier. */
static inline void vec_for(uint64_t id, float *out, size_t dim) {
  uint64_t x = id * 0x9E3779B97F4A7C15ull + 0x1234567ull;
  for (size_t i = 0; i < dim; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    out[i] = (float)((double)(x >> 11) / 9007199254740992.0 * 2.0 - 1.0);
  }
}

static inline int vec_is(uint64_t id, const float *v, size_t dim) {
  float ref[4096];
  if (dim > 4096) return 0;
  vec_for(id, ref, dim);
  return memcmp(ref, v, dim * sizeof(float)) == 0;
}

static inline void content_for(uint64_t id, char *buf, size_t n) {
  snprintf(buf, n, "def function_%llu(x):\n    return x * %llu\n", (unsigned long long)id,
           (unsigned long long)(id % 97));
}

/* The configuration the tests start from: the given limits, policy, shards and
 * persistent file (NULL = memory only), no background thread (tests that want one
 * set maintenance_interval_ms themselves). max_bytes 0 = the default limit. */
static inline ae_cache_config test_cache_config(size_t max_entries, size_t max_bytes, int policy,
                                                unsigned shards, const char *persist) {
  ae_cache_config cfg;
  ae_cache_config_default(&cfg);
  cfg.max_entries = max_entries;
  cfg.max_bytes = max_bytes;
  cfg.policy = policy;
  cfg.shards = shards;
  cfg.maintenance_interval_ms = 0;
  cfg.persist_path = persist;
  return cfg;
}

/* Sets key to id's content (content_for) and vector (vec_for), dim floats. */
static inline int cache_set_id(ae_cache *c, const char *key, uint64_t id, size_t dim) {
  char content[128];
  float v[4096];
  if (dim > 4096) return AE_EINVAL;
  content_for(id, content, sizeof content);
  vec_for(id, v, dim);
  return ae_cache_set(c, key, content, strlen(content), v, dim);
}

/* Gets key with id's content: AE_OK only for a hit returning id's exact vector,
 * AE_EMISS on a miss, -100 for a hit with a wrong vector. */
static inline int cache_get_id(ae_cache *c, const char *key, uint64_t id, size_t dim) {
  char content[128];
  float v[4096];
  if (dim > 4096) return AE_EINVAL;
  content_for(id, content, sizeof content);
  int rc = ae_cache_get(c, key, content, strlen(content), v, dim);
  if (rc == AE_OK && !vec_is(id, v, dim)) return -100;
  return rc;
}

/* A clock the test moves by hand (atomic: the maintenance thread reads it). */
static _Atomic uint64_t fake_now_ns = 1000000000ull;
static inline uint64_t fake_clock(void *ud) { (void)ud; return atomic_load(&fake_now_ns); }

/* entries and bytes in the metrics equal a recount from scratch. */
static inline int accounting_exact(ae_cache *c, uint64_t *got_bytes, uint64_t *want_bytes) {
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  uint64_t n, b;
  ae__cache_recount(c, &n, &b);
  if (got_bytes) *got_bytes = m.bytes;
  if (want_bytes) *want_bytes = b;
  return n == m.entries && b == m.bytes;
}
#endif
