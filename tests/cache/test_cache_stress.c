// ctest-labels: tsan
// ctest-timeout: 300
/* Concurrent stress: real threads doing sets, gets (matching and changed content),
 * get_many, deletes, shrinks and maintenance on one cache with a maintenance thread
 * running, under limits that bind (so eviction and cross-shard stealing happen).
 * Every hit must carry its content's vector; the limits must hold whenever sampled;
 * at the end the counters equal a recount. Runs in the tsan build too. */
#define _GNU_SOURCE
#include "astembed.h"
#include "cache_test_util.h"
#include "test.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define DIM 32
#define THREADS 4
#define KEYS 512

typedef struct {
  ae_cache *c;
  uint64_t seed;
  int ops;
  size_t max_entries, max_bytes;
  _Atomic int *wrong, *over;
} worker_arg;

static void *worker(void *p) {
  worker_arg *a = p;
  uint64_t x = a->seed;
  char key[32], content[128];
  float v[DIM];
  for (int i = 0; i < a->ops; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    int k = (int)(x % KEYS), op = (int)((x >> 10) % 1000);
    uint64_t id = (uint64_t)k * 2 + ((x >> 24) & 1);
    if ((x >> 40) % 7 == 0) id = (x >> 45) % 16; /* shared contents */
    snprintf(key, sizeof key, "stress/%d", k);
    content_for(id, content, sizeof content);
    if (op < 400) {
      vec_for(id, v, DIM);
      int rc = ae_cache_set(a->c, key, content, strlen(content), v, DIM);
      if (rc) atomic_fetch_add(a->wrong, 1);
    } else if (op < 900) {
      int rc = ae_cache_get(a->c, key, content, strlen(content), v, DIM);
      if (rc == AE_OK ? !vec_is(id, v, DIM) : rc != AE_EMISS) atomic_fetch_add(a->wrong, 1);
    } else if (op < 960) {
      ae_cache_delete(a->c, key);
    } else if (op < 990) {
      const char *keys[4], *cs[4];
      char kb[4][32], cb[4][128];
      size_t lens[4];
      uint64_t ids[4];
      for (int j = 0; j < 4; j++) {
        ids[j] = (uint64_t)((k + j) % KEYS) * 2;
        snprintf(kb[j], sizeof kb[j], "stress/%d", (k + j) % KEYS);
        content_for(ids[j], cb[j], sizeof cb[j]);
        keys[j] = kb[j];
        cs[j] = cb[j];
        lens[j] = strlen(cb[j]);
      }
      float out[4 * DIM];
      int st[4];
      ae_cache_get_many(a->c, 4, keys, cs, lens, out, DIM, st, NULL);
      for (int j = 0; j < 4; j++)
        if (st[j] == AE_OK ? !vec_is(ids[j], out + j * DIM, DIM) : st[j] != AE_EMISS)
          atomic_fetch_add(a->wrong, 1);
    } else if (op < 995) {
      ae_cache_shrink(a->c, 0.7);
    } else {
      ae_cache_maintain(a->c);
    }
    if (i % 64 == 0) {
      ae_cache_metrics m;
      ae_cache_metrics_get(a->c, &m);
      if (m.entries > a->max_entries || m.bytes > a->max_bytes) atomic_fetch_add(a->over, 1);
    }
  }
  return NULL;
}

static void run(int policy, unsigned shards, size_t max_entries, size_t max_bytes,
                const char *persist, int ops) {
  ae_cache_config cfg = test_cache_config(max_entries, max_bytes, policy, shards, persist);
  cfg.maintenance_interval_ms = 1;
  cfg.persist_batch_count = 64;
  cfg.persist_batch_ms = 5;
  ae_cache *c = NULL;
  CHECK_OK(ae_cache_new(&cfg, FP_A, &c));
  REQUIRE(c);
  if (persist) CHECK_OK(ae_cache_persist_status(c));
  _Atomic int wrong = 0, over = 0;
  pthread_t th[THREADS];
  worker_arg args[THREADS];
  for (int t = 0; t < THREADS; t++) {
    args[t] = (worker_arg){c, 0x9E3779B97F4A7C15ull * (uint64_t)(t + 1) + (uint64_t)policy, ops,
                           max_entries, max_bytes, &wrong, &over};
    REQUIRE(pthread_create(&th[t], NULL, worker, &args[t]) == 0);
  }
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);
  CHECKF(atomic_load(&wrong) == 0, "%d wrong results (policy %d, shards %u, persist %s)",
         atomic_load(&wrong), policy, shards, persist ? "on" : "off");
  CHECKF(atomic_load(&over) == 0, "%d limit violations", atomic_load(&over));
  uint64_t got, want;
  CHECKF(accounting_exact(c, &got, &want), "bytes %llu, recount %llu", (unsigned long long)got,
         (unsigned long long)want);
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  CHECK(m.requests > 0 && m.hits > 0 && m.evictions > 0);
  if (persist) CHECK(m.persist_writes > 0 && m.persist_errors == 0);
  ae_cache_free(c);
}

int main(void) {
  /* ~KEYS/4 entries fit by count; bytes bind around 150 entries of 32 floats */
  size_t per = 300;
  run(AE_CACHE_LRU, 4, KEYS / 4, per * 150, NULL, 20000);
  run(AE_CACHE_TINYLFU, 8, KEYS / 4, per * 150, NULL, 20000);
  run(AE_CACHE_LRU, 1, 64, 1 << 20, NULL, 10000);
  char dir[] = "/tmp/ae_cache_stress_XXXXXX";
  REQUIRE(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/cache.db", dir);
  run(AE_CACHE_TINYLFU, 4, KEYS / 4, per * 150, path, 5000);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  TEST_DONE();
}
