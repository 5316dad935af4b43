// ctest-timeout: 120
/* In-memory tier: hits and misses, content validation, content sharing, exact limits
 * and accounting under random operation sequences, LRU order, W-TinyLFU scan
 * resistance, TTL and the sweep, the maintenance thread, shrink, metrics, bad input. */
#include "astembed.h"
#include "cache_test_util.h"
#include "common/common.h"
#include "test.h"
#include <jansson.h>
#include <math.h>
#include <unistd.h>

#define DIM 16

static ae_cache *make(size_t entries, size_t bytes, int policy, unsigned shards, int validate) {
  ae_cache_config cfg = test_cache_config(entries, bytes, policy, shards, NULL);
  cfg.enable_content_validation = validate;
  ae_cache *c = NULL;
  int rc = ae_cache_new(&cfg, FP_A, &c);
  if (rc) fprintf(stderr, "ae_cache_new: %s\n", ae_last_error());
  return c;
}

static int set_id(ae_cache *c, const char *key, uint64_t id) { return cache_set_id(c, key, id, DIM); }
static int get_id(ae_cache *c, const char *key, uint64_t id) { return cache_get_id(c, key, id, DIM); }

static ae_cache_metrics metrics(ae_cache *c) {
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  return m;
}

static void test_defaults(void) {
  ae_cache_config cfg;
  ae_cache_config_default(&cfg);
  CHECK(cfg.max_entries == 1000);
  CHECK(cfg.max_memory_mb == 100);
  CHECK(cfg.ttl_seconds == 3600);
  CHECK(cfg.enable_content_validation == 1);
  CHECK(cfg.maintenance_interval_ms == 300000);
  CHECK(cfg.policy == AE_CACHE_LRU);
  ae_cache *c = NULL;
  CHECK_OK(ae_cache_new(NULL, FP_A, &c));
  REQUIRE(c);
  CHECK(ae__cache_shards(c) == 1);
  ae_cache_free(c);
  ae_cache_free(NULL);
  cfg.policy = 7;
  CHECK(ae_cache_new(&cfg, FP_A, &c) == AE_EINVAL && c == NULL);
  ae_cache_config_default(&cfg);
  cfg.max_entries = 0;
  CHECK(ae_cache_new(&cfg, FP_A, &c) == AE_EINVAL);
  ae_cache_config_default(&cfg);
  cfg.shards = 3;
  CHECK(ae_cache_new(&cfg, FP_A, &c) == AE_EINVAL);
  CHECK(strstr(ae_last_error(), "power of two") != NULL);
}

static void test_hit_miss_validation(void) {
  ae_cache *c = make(100, 1 << 20, AE_CACHE_LRU, 1, 1);
  REQUIRE(c);
  CHECK(get_id(c, "a.py:f", 1) == AE_EMISS);
  CHECK_OK(set_id(c, "a.py:f", 1));
  CHECK(get_id(c, "a.py:f", 1) == AE_OK);
  /* content changed: a miss, an invalidation, the stale entry gone */
  CHECK(get_id(c, "a.py:f", 2) == AE_EMISS);
  ae_cache_metrics m = metrics(c);
  CHECK(m.invalidations == 1);
  CHECK(m.entries == 0 && m.bytes == 0 && m.vectors == 0);
  CHECK(get_id(c, "a.py:f", 1) == AE_EMISS);
  m = metrics(c);
  CHECK(m.requests == 4 && m.hits == 1 && m.misses == 3);
  CHECK(fabs(m.hit_ratio - 0.25) < 1e-12 && fabs(m.miss_ratio - 0.75) < 1e-12);
  /* dimension mismatch is reported, not a silent truncation */
  CHECK_OK(set_id(c, "b", 3));
  float big[DIM * 2];
  char content[128];
  content_for(3, content, sizeof content);
  CHECK(ae_cache_get(c, "b", content, strlen(content), big, DIM * 2) == AE_EMISMATCH);
  CHECK(strstr(ae_last_error(), "dimension") != NULL);
  /* overwrite with new content replaces */
  CHECK_OK(set_id(c, "b", 4));
  CHECK(get_id(c, "b", 4) == AE_OK);
  CHECK(metrics(c).entries == 1 && metrics(c).vectors == 1);
  CHECK(accounting_exact(c, NULL, NULL));
  /* delete */
  CHECK_OK(ae_cache_delete(c, "b"));
  CHECK(ae_cache_delete(c, "b") == AE_ENOTFOUND);
  CHECK(metrics(c).bytes == 0);
  ae_cache_free(c);

  /* validation off: a key hits whatever content it was set with */
  c = make(100, 1 << 20, AE_CACHE_LRU, 1, 0);
  REQUIRE(c);
  CHECK_OK(set_id(c, "k", 5));
  char other[128];
  float v[DIM];
  content_for(6, other, sizeof other);
  CHECK(ae_cache_get(c, "k", other, strlen(other), v, DIM) == AE_OK && vec_is(5, v, DIM));
  CHECK(metrics(c).invalidations == 0);
  ae_cache_free(c);
}

static void test_fingerprint_in_key(void) {
  ae_cache *a = make(10, 1 << 20, AE_CACHE_LRU, 1, 1);
  ae_cache_config cfg;
  ae_cache_config_default(&cfg);
  cfg.maintenance_interval_ms = 0;
  ae_cache *b = NULL;
  CHECK_OK(ae_cache_new(&cfg, FP_B, &b));
  REQUIRE(a && b);
  uint8_t ha[16], hb[16], ha2[16];
  ae__cache_content_hash(a, "same text", 9, ha);
  ae__cache_content_hash(a, "same text", 9, ha2);
  ae__cache_content_hash(b, "same text", 9, hb);
  CHECK(memcmp(ha, ha2, 16) == 0);
  CHECK(memcmp(ha, hb, 16) != 0);
  ae_cache_free(a);
  ae_cache_free(b);
}

static void test_content_sharing(void) {
  ae_cache *c = make(100, 1 << 20, AE_CACHE_LRU, 4, 1);
  REQUIRE(c);
  CHECK_OK(set_id(c, "k1", 7));
  uint64_t one = metrics(c).bytes;
  CHECK_OK(set_id(c, "k2", 7));
  ae_cache_metrics m = metrics(c);
  CHECK(m.entries == 2 && m.vectors == 1);
  /* the second key costs only its entry, not another vector */
  CHECK(m.bytes - one < one - DIM * sizeof(float));
  /* a third key with the same content hits through the content address */
  CHECK(get_id(c, "k3", 7) == AE_OK);
  CHECK(metrics(c).entries == 3 && metrics(c).vectors == 1);
  CHECK_OK(ae_cache_delete(c, "k1"));
  /* k1's block holds the shared vector: it stays, its bytes now the vector's */
  CHECK(accounting_exact(c, NULL, NULL));
  CHECK(metrics(c).vectors == 1 && metrics(c).entries == 2);
  CHECK(get_id(c, "k2", 7) == AE_OK);
  CHECK_OK(ae_cache_delete(c, "k2"));
  CHECK_OK(ae_cache_delete(c, "k3"));
  m = metrics(c);
  CHECK(m.vectors == 0 && m.bytes == 0 && m.entries == 0);
  /* same content, a different vector (caller re-embedded): the new one wins for the
   * key set, the old key keeps what it had */
  CHECK_OK(set_id(c, "x", 9));
  char content[128];
  content_for(9, content, sizeof content);
  float v[DIM], out[DIM];
  vec_for(10, v, DIM);
  CHECK_OK(ae_cache_set(c, "y", content, strlen(content), v, DIM));
  CHECK(ae_cache_get(c, "y", content, strlen(content), out, DIM) == AE_OK && vec_is(10, out, DIM));
  CHECK(ae_cache_get(c, "x", content, strlen(content), out, DIM) == AE_OK && vec_is(9, out, DIM));
  CHECK(metrics(c).vectors == 2);
  CHECK(accounting_exact(c, NULL, NULL));
  ae_cache_free(c);
}

static void test_lru_order(void) {
  ae_cache *c = make(3, 1 << 20, AE_CACHE_LRU, 1, 1);
  REQUIRE(c);
  CHECK_OK(set_id(c, "a", 1));
  CHECK_OK(set_id(c, "b", 2));
  CHECK_OK(set_id(c, "c", 3));
  CHECK(get_id(c, "a", 1) == AE_OK); /* a is now most recent: b is the LRU */
  CHECK_OK(set_id(c, "d", 4));
  CHECK(get_id(c, "b", 2) == AE_EMISS);
  CHECK(get_id(c, "a", 1) == AE_OK);
  CHECK(get_id(c, "c", 3) == AE_OK);
  CHECK(get_id(c, "d", 4) == AE_OK);
  ae_cache_metrics m = metrics(c);
  CHECK(m.entries == 3 && m.evictions == 1);
  ae_cache_free(c);
}

/* Exact LRU against a reference model over a long random sequence: hits are moved
 * to the head lazily (the hit log replays them in batches), so runs of hundreds of
 * hits between evictions, and single hits between evictions, must both leave exactly
 * the reference's order. Every get's outcome and every eviction must match. */
static void test_lru_matches_model(void) {
  enum { CAP = 40, KEYS = 70 };
  ae_cache *c = make(CAP, 1 << 24, AE_CACHE_LRU, 1, 1);
  REQUIRE(c);
  int order[CAP], n = 0; /* order[0] = most recent */
  uint64_t x = 12345;
  int mismatches = 0;
  char key[16];
  for (int step = 0; step < 40000; step++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    /* phases: long hit-only runs over resident keys, then mixed traffic */
    int k = (step / 2000) % 2 == 0 && n ? order[(x >> 8) % (uint64_t)n] : (int)(x % KEYS);
    snprintf(key, sizeof key, "m%d", k);
    int pos = -1;
    for (int i = 0; i < n; i++)
      if (order[i] == k) pos = i;
    int rc = get_id(c, key, (uint64_t)k);
    if ((rc == AE_OK) != (pos >= 0)) mismatches++;
    if (pos >= 0) {
      memmove(order + 1, order, (size_t)pos * sizeof *order);
      order[0] = k;
    } else {
      if (rc != AE_OK && set_id(c, key, (uint64_t)k) != AE_OK) mismatches++;
      if (n == CAP) n--; /* the model evicts its least recent */
      memmove(order + 1, order, (size_t)n * sizeof *order);
      order[0] = k;
      n++;
    }
  }
  CHECKF(mismatches == 0, "%d outcomes differ from the reference LRU", mismatches);
  ae_cache_metrics m = metrics(c);
  CHECK(m.entries == CAP);
  CHECK(accounting_exact(c, NULL, NULL));
  ae_cache_free(c);
}

static void test_byte_limit(void) {
  /* room for exactly 5 entries of this shape */
  ae_cache *probe = make(100, 1 << 20, AE_CACHE_LRU, 1, 1);
  REQUIRE(probe);
  CHECK_OK(set_id(probe, "k00", 0));
  uint64_t per = metrics(probe).bytes;
  ae_cache_free(probe);
  ae_cache *c = make(100, per * 5, AE_CACHE_LRU, 1, 1);
  REQUIRE(c);
  char key[16];
  for (int i = 0; i < 20; i++) {
    snprintf(key, sizeof key, "k%02d", i);
    CHECK_OK(set_id(c, key, (uint64_t)i));
    ae_cache_metrics m = metrics(c);
    CHECK(m.bytes <= per * 5);
    CHECK(m.entries == (i < 5 ? (uint64_t)i + 1 : 5));
  }
  CHECK(get_id(c, "k19", 19) == AE_OK && get_id(c, "k15", 15) == AE_OK);
  CHECK(get_id(c, "k14", 14) == AE_EMISS);
  /* an entry bigger than the whole limit is refused */
  float bigv[DIM * 64];
  vec_for(1, bigv, DIM * 64);
  CHECK(ae_cache_set(c, "huge", "x", 1, bigv, DIM * 64) == AE_ERANGE);
  CHECK(accounting_exact(c, NULL, NULL));
  ae_cache_free(c);
}

/* Random sets, gets (matching or changed content), deletes, expiries, shrinks over a
 * small key space: after every step the limits hold; periodically the counters equal
 * a recount from scratch; every hit returns the vector of its content. */
static void random_sequence(int policy, unsigned shards, size_t max_entries, size_t max_bytes,
                            uint64_t seed) {
  ae_cache_config cfg = test_cache_config(max_entries, max_bytes, policy, shards, NULL);
  cfg.ttl_seconds = 5;
  ae_cache *c = NULL;
  CHECK_OK(ae_cache_new(&cfg, FP_A, &c));
  REQUIRE(c);
  ae__cache_set_clock(c, fake_clock, NULL);
  uint64_t x = seed;
  int wrong = 0, over = 0, drift = 0;
  char key[32];
  for (int step = 0; step < 20000; step++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int k = (int)(x % 64), op = (int)((x >> 8) % 100);
    uint64_t id = (uint64_t)k * 3 + ((x >> 20) % 3); /* some contents shared by keys */
    if ((x >> 30) % 5 == 0) id = (x >> 33) % 10;     /* popular shared contents */
    snprintf(key, sizeof key, "key/%d", k);
    if (op < 45) {
      int rc = set_id(c, key, id);
      if (rc) wrong++;
    } else if (op < 90) {
      int rc = get_id(c, key, id);
      if (rc != AE_OK && rc != AE_EMISS) wrong++;
    } else if (op < 95) {
      ae_cache_delete(c, key);
    } else if (op < 98) {
      atomic_fetch_add(&fake_now_ns, 1000000000ull); /* 1 s */
      ae_cache_maintain(c);
    } else {
      ae_cache_shrink(c, 0.5);
    }
    ae_cache_metrics m;
    ae_cache_metrics_get(c, &m);
    if (m.entries > max_entries || m.bytes > max_bytes) over++;
    if (step % 97 == 0 && !accounting_exact(c, NULL, NULL)) drift++;
  }
  uint64_t got, want;
  CHECKF(accounting_exact(c, &got, &want), "bytes %llu recount %llu", (unsigned long long)got,
         (unsigned long long)want);
  CHECKF(wrong == 0, "%d wrong results (policy %d shards %u)", wrong, policy, shards);
  CHECKF(over == 0, "%d limit violations", over);
  CHECKF(drift == 0, "%d accounting drifts", drift);
  ae_cache_free(c);
}

static void test_random_sequences(void) {
  /* byte limits that bind (room for ~20 entries of 16 floats) and that do not */
  random_sequence(AE_CACHE_LRU, 1, 32, 4000, 11);
  random_sequence(AE_CACHE_LRU, 4, 40, 1 << 20, 12);
  random_sequence(AE_CACHE_TINYLFU, 1, 32, 4000, 13);
  random_sequence(AE_CACHE_TINYLFU, 4, 40, 6000, 14);
  random_sequence(AE_CACHE_TINYLFU, 8, 17, 1 << 20, 15);
}

static void test_tinylfu_scan_resistance(void) {
  for (int policy = 0; policy < 2; policy++) {
    ae_cache *c = make(200, 1 << 22, policy, 1, 1);
    REQUIRE(c);
    char key[32];
    /* a hot set of 150 keys, each read several times */
    for (int round = 0; round < 5; round++)
      for (int i = 0; i < 150; i++) {
        snprintf(key, sizeof key, "hot/%d", i);
        if (get_id(c, key, (uint64_t)i) == AE_EMISS) set_id(c, key, (uint64_t)i);
      }
    /* a scan of 2000 keys seen once */
    for (int i = 0; i < 2000; i++) {
      snprintf(key, sizeof key, "scan/%d", i);
      if (get_id(c, key, 100000 + (uint64_t)i) == AE_EMISS) set_id(c, key, 100000 + (uint64_t)i);
    }
    int hot_hits = 0;
    for (int i = 0; i < 150; i++) {
      snprintf(key, sizeof key, "hot/%d", i);
      hot_hits += get_id(c, key, (uint64_t)i) == AE_OK;
    }
    if (policy == AE_CACHE_TINYLFU) CHECKF(hot_hits >= 140, "tinylfu kept %d/150 hot keys", hot_hits);
    else CHECKF(hot_hits == 0, "lru kept %d/150 hot keys after the scan", hot_hits);
    CHECK(metrics(c).entries <= 200);
    CHECK(accounting_exact(c, NULL, NULL));
    ae_cache_free(c);
  }
}

static void test_ttl_and_sweep(void) {
  ae_cache_config cfg;
  ae_cache_config_default(&cfg);
  cfg.max_entries = 5000;
  cfg.ttl_seconds = 10;
  cfg.maintenance_interval_ms = 0;
  ae_cache *c = NULL;
  CHECK_OK(ae_cache_new(&cfg, FP_A, &c));
  REQUIRE(c);
  ae__cache_set_clock(c, fake_clock, NULL);
  CHECK_OK(set_id(c, "t", 1));
  atomic_fetch_add(&fake_now_ns, 9 * 1000000000ull);
  CHECK(get_id(c, "t", 1) == AE_OK);
  CHECK_OK(set_id(c, "t", 1)); /* a set refreshes the stamp */
  atomic_fetch_add(&fake_now_ns, 9 * 1000000000ull);
  CHECK(get_id(c, "t", 1) == AE_OK);
  atomic_fetch_add(&fake_now_ns, 1 * 1000000000ull);
  CHECK(get_id(c, "t", 1) == AE_EMISS);
  CHECK(metrics(c).expirations == 1);
  /* the sweep: bounded work per step, everything expired in the end */
  char key[32];
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof key, "s/%d", i);
    set_id(c, key, (uint64_t)i);
  }
  atomic_fetch_add(&fake_now_ns, 5 * 1000000000ull);
  for (int i = 1000; i < 1100; i++) { /* younger: must survive */
    snprintf(key, sizeof key, "s/%d", i);
    set_id(c, key, (uint64_t)i);
  }
  atomic_fetch_add(&fake_now_ns, 6 * 1000000000ull);
  CHECK_OK(ae_cache_maintain(c));
  uint64_t after_one = metrics(c).entries;
  CHECK(after_one >= 1100 - 256 && after_one < 1100);
  for (int i = 0; i < 10; i++) ae_cache_maintain(c);
  CHECK(metrics(c).entries == 100);
  CHECK(get_id(c, "s/1050", 1050) == AE_OK);
  CHECK(accounting_exact(c, NULL, NULL));
  ae_cache_free(c);
}

static void test_background_thread(void) {
  ae_cache_config cfg;
  ae_cache_config_default(&cfg);
  cfg.ttl_seconds = 1;
  cfg.maintenance_interval_ms = 5;
  ae_cache *c = NULL;
  CHECK_OK(ae_cache_new(&cfg, FP_A, &c));
  REQUIRE(c);
  ae__cache_set_clock(c, fake_clock, NULL);
  char key[32];
  for (int i = 0; i < 300; i++) {
    snprintf(key, sizeof key, "bg/%d", i);
    set_id(c, key, (uint64_t)i);
  }
  atomic_fetch_add(&fake_now_ns, 2 * 1000000000ull);
  /* the expiry itself runs on the fake clock; only the thread's wake-ups are real:
   * wait for the event (no entries left), up to 60 s of wall time on a loaded machine */
  uint64_t w0 = ae__now_ns();
  while (metrics(c).entries > 0 && ae__now_ns() - w0 < 60000000000ull) usleep(2000);
  CHECKF(metrics(c).entries == 0, "thread left %llu entries",
         (unsigned long long)metrics(c).entries);
  CHECK(metrics(c).expirations == 300);
  ae_cache_free(c);
  /* free with the default 5-minute interval must not wait for it: anything well under
   * the 300 s interval shows that (60 s leaves room for a loaded machine) */
  ae_cache_config_default(&cfg);
  CHECK(cfg.maintenance_interval_ms >= 300000);
  CHECK_OK(ae_cache_new(&cfg, FP_A, &c));
  uint64_t t0 = ae__now_ns();
  ae_cache_free(c);
  CHECKF(ae__now_ns() - t0 < 60000000000ull, "free took %.3f s", (ae__now_ns() - t0) / 1e9);
}

static void test_shrink(void) {
  ae_cache *c = make(400, 1 << 20, AE_CACHE_TINYLFU, 4, 1);
  REQUIRE(c);
  char key[32];
  for (int i = 0; i < 400; i++) {
    snprintf(key, sizeof key, "sh/%d", i);
    set_id(c, key, (uint64_t)i);
  }
  CHECK_OK(ae_cache_shrink(c, 0.5));
  ae_cache_metrics m = metrics(c);
  CHECK(m.entries <= 200 && m.bytes <= (1 << 20) / 2);
  CHECK(m.entries > 0);
  CHECK(ae_cache_shrink(c, 1.5) == AE_EINVAL);
  CHECK_OK(ae_cache_shrink(c, 0));
  CHECK(metrics(c).entries == 0 && metrics(c).bytes == 0);
  ae_cache_free(c);
}

static void test_bad_input(void) {
  ae_cache *c = make(10, 1 << 20, AE_CACHE_LRU, 1, 1);
  REQUIRE(c);
  float v[4] = {1, 2, 3, 4};
  CHECK(ae_cache_set(c, "k", "x", 1, v, 0) == AE_EINVAL);
  CHECK(strstr(ae_last_error(), "dim 0") != NULL);
  v[2] = NAN;
  CHECK(ae_cache_set(c, "k", "x", 1, v, 4) == AE_EINVAL);
  CHECK(strstr(ae_last_error(), "NaN") != NULL && strstr(ae_last_error(), "'k'") != NULL);
  v[2] = INFINITY;
  CHECK(ae_cache_set(c, "k", "x", 1, v, 4) == AE_EINVAL);
  CHECK(ae_cache_set(c, NULL, "x", 1, v, 4) == AE_EINVAL);
  CHECK(ae_cache_set(NULL, "k", "x", 1, v, 4) == AE_EINVAL);
  CHECK(ae_cache_get(c, "k", "x", 1, v, 0) == AE_EINVAL);
  CHECK(metrics(c).entries == 0 && metrics(c).bytes == 0);
  /* empty content is valid content */
  v[2] = 3;
  CHECK_OK(ae_cache_set(c, "empty", "", 0, v, 4));
  float o[4];
  CHECK(ae_cache_get(c, "empty", NULL, 0, o, 4) == AE_OK && o[3] == 4);
  ae_cache_free(c);
}

static void test_metrics_json(void) {
  ae_cache *c = make(10, 1 << 20, AE_CACHE_LRU, 1, 1);
  REQUIRE(c);
  ae_cache_metrics m = metrics(c);
  CHECK(m.performance_score == 0 && m.requests == 0);
  set_id(c, "a", 1);
  for (int i = 0; i < 8; i++) { /* 16 gets: one of them is timed (1-in-16 sample) */
    get_id(c, "a", 1);
    get_id(c, "b", 2);
  }
  m = metrics(c);
  double want = 100.0 * (0.6 * m.hit_ratio + 0.2 * m.memory_efficiency +
                         0.2 * 1000.0 / (1000.0 + m.average_access_time_ns));
  CHECK(fabs(m.performance_score - want) < 1e-9);
  CHECK(m.memory_efficiency > 0 && m.memory_efficiency < 1);
  CHECK(m.average_access_time_ns > 0);
  char *js = ae_cache_metrics_json(c);
  REQUIRE(js);
  json_error_t err;
  json_t *o = json_loads(js, 0, &err);
  CHECKF(o != NULL, "bad JSON %s: %s", js, err.text);
  if (o) {
    CHECK(json_integer_value(json_object_get(o, "requests")) == 16);
    CHECK(json_integer_value(json_object_get(o, "hits")) == 8);
    CHECK(fabs(json_real_value(json_object_get(o, "hitRatio")) - 0.5) < 1e-9);
    const char *names[] = {"missRatio", "averageAccessTime", "entries", "bytes", "evictions",
                           "expirations", "invalidations", "memoryEfficiency",
                           "performanceScore", "persistEnabled", "persistError"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
      CHECKF(json_object_get(o, names[i]) != NULL, "missing %s", names[i]);
    json_decref(o);
  }
  ae_free(js);
  ae_cache_free(c);
}

static void test_get_many_memory(void) {
  ae_cache *c = make(100, 1 << 20, AE_CACHE_LRU, 2, 1);
  REQUIRE(c);
  set_id(c, "m0", 0);
  set_id(c, "m2", 2);
  char contents[3][128];
  const char *keys[3] = {"m0", "m1", "m2"};
  const char *cs[3];
  size_t lens[3];
  for (int i = 0; i < 3; i++) {
    content_for((uint64_t)i, contents[i], sizeof contents[i]);
    cs[i] = contents[i];
    lens[i] = strlen(contents[i]);
  }
  float out[3 * DIM];
  int st[3];
  size_t hits = 0;
  CHECK_OK(ae_cache_get_many(c, 3, keys, cs, lens, out, DIM, st, &hits));
  CHECK(hits == 2 && st[0] == AE_OK && st[1] == AE_EMISS && st[2] == AE_OK);
  CHECK(vec_is(0, out, DIM) && vec_is(2, out + 2 * DIM, DIM));
  ae_cache_free(c);
}

/* get_many over several blocks and shards equals single gets in item order: hits,
 * misses, invalidations (a key asked with edited content, then again with its new
 * content), repeated keys, hits through another key's identical content, NULL items.
 * Two caches get the same history; A answers by batch, B by single gets. */
static void test_get_many_matches_single(int policy) {
  ae_cache *a = make(5000, 64 << 20, policy, 8, 1), *b = make(5000, 64 << 20, policy, 8, 1);
  REQUIRE(a && b);
  char key[32];
  for (int d = 0; d < 400; d++) {
    snprintf(key, sizeof key, "g%d", d);
    set_id(a, key, (uint64_t)d);
    set_id(b, key, (uint64_t)d);
  }
  enum { N = 700 };
  static char kb[N][32], cb[N][128];
  static const char *keys[N], *cs[N];
  static size_t lens[N];
  static float out[N * DIM];
  static int st[N];
  uint64_t x = 12345;
  for (int i = 0; i < N; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int d = (int)(x % 500), kind = (int)(x >> 20) % 10;
    uint64_t id = (uint64_t)d;
    if (kind == 0 && d < 50) snprintf(kb[i], sizeof kb[i], "dup%d", d); /* shares g%d's content */
    else snprintf(kb[i], sizeof kb[i], "g%d", d);
    if (kind == 1 && d >= 100) id = (uint64_t)d + 1000; /* edited: invalidates g%d */
    content_for(id, cb[i], sizeof cb[i]);
    keys[i] = kind == 2 && i % 7 == 0 ? NULL : kb[i];
    cs[i] = cb[i];
    lens[i] = strlen(cb[i]);
  }
  size_t hits = 0, want_hits = 0;
  CHECK_OK(ae_cache_get_many(a, N, keys, cs, lens, out, DIM, st, &hits));
  int differ = 0, nulls = 0;
  for (int i = 0; i < N; i++) {
    float v[DIM];
    if (!keys[i]) {
      nulls++;
      differ += st[i] != AE_EINVAL;
      continue;
    }
    int rc = ae_cache_get(b, keys[i], cs[i], lens[i], v, DIM);
    want_hits += rc == AE_OK;
    differ += rc != st[i] || (rc == AE_OK && memcmp(v, out + (size_t)i * DIM, sizeof v) != 0);
  }
  CHECKF(differ == 0, "%d of %d items differ from single gets", differ, N);
  CHECK(nulls > 0 && hits == want_hits && hits > N / 2 && hits < (size_t)N - nulls);
  ae_cache_metrics ma = metrics(a), mb = metrics(b);
  CHECK(ma.hits == mb.hits && ma.misses == mb.misses && ma.invalidations == mb.invalidations);
  CHECK(ma.invalidations > 0 && ma.entries == mb.entries && ma.bytes == mb.bytes);
  CHECK(accounting_exact(a, NULL, NULL));
  ae_cache_free(a);
  ae_cache_free(b);
}

int main(void) {
  test_defaults();
  test_hit_miss_validation();
  test_fingerprint_in_key();
  test_content_sharing();
  test_lru_order();
  test_lru_matches_model();
  test_byte_limit();
  test_random_sequences();
  test_tinylfu_scan_resistance();
  test_ttl_and_sweep();
  test_background_thread();
  test_shrink();
  test_bad_input();
  test_metrics_json();
  test_get_many_memory();
  test_get_many_matches_single(AE_CACHE_LRU);
  test_get_many_matches_single(AE_CACHE_TINYLFU);
  TEST_DONE();
}
