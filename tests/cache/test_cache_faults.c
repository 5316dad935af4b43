// ctest-timeout: 180
/* Allocation failures injected through ae_set_allocator: for every k, the k-th
 * allocation of a set/get workload fails. Each set must return AE_OK or AE_ENOMEM
 * (with a message), every later get must be a miss or the exact vector of its
 * content, the accounting must still equal a recount, and after ae_cache_free no
 * allocation may be left (counted here, and by ASan in the sanitizer build). Runs
 * with and without the persistent tier, LRU and W-TinyLFU. */
#define _GNU_SOURCE
#include "astembed.h"
#include "cache_test_util.h"
#include "failalloc.h"
#include "test.h"
#include <stdlib.h>
#include <unistd.h>

#define DIM 24


typedef struct { int set_fail_ok, bad_status, wrong_vec, drift, missing_msg; } outcome;

static void workload(ae_cache *c, outcome *o) {
  char key[32], content[128];
  float v[DIM];
  for (int i = 0; i < 80; i++) {
    int k = (i * 7) % 23;
    uint64_t id = (uint64_t)(i % 3 == 0 ? k % 5 : k + 100 * (i / 40)); /* shared + changed */
    snprintf(key, sizeof key, "fault/%d", k);
    content_for(id, content, sizeof content);
    if (i % 2 == 0) {
      vec_for(id, v, DIM);
      int rc = ae_cache_set(c, key, content, strlen(content), v, DIM);
      if (rc == AE_ENOMEM) {
        o->set_fail_ok++;
        if (!strstr(ae_last_error(), "out of memory")) o->missing_msg++;
      } else if (rc != AE_OK) {
        o->bad_status++;
      }
    } else {
      int rc = ae_cache_get(c, key, content, strlen(content), v, DIM);
      if (rc == AE_OK && !vec_is(id, v, DIM)) o->wrong_vec++;
      else if (rc != AE_OK && rc != AE_EMISS) o->bad_status++;
    }
    if (i % 16 == 15) {
      const char *keys[3] = {"fault/1", "fault/2", "fault/3"};
      char cb[3][128];
      const char *cs[3] = {cb[0], cb[1], cb[2]};
      size_t lens[3];
      for (int j = 0; j < 3; j++) {
        content_for((uint64_t)(j + 1), cb[j], sizeof cb[j]);
        lens[j] = strlen(cb[j]);
      }
      float out[3 * DIM];
      int st[3];
      ae_cache_get_many(c, 3, keys, cs, lens, out, DIM, st, NULL);
      for (int j = 0; j < 3; j++)
        if (st[j] == AE_OK && !vec_is((uint64_t)(j + 1), out + j * DIM, DIM)) o->wrong_vec++;
    }
  }
}

/* After the faults: every key read back is a miss or exact; accounting exact. */
static void verify(ae_cache *c, outcome *o) {
  char key[32], content[128];
  float v[DIM];
  for (int k = 0; k < 23; k++)
    for (uint64_t id = 0; id < 200; id++) {
      if (id != (uint64_t)k % 5 && id != (uint64_t)k && id != (uint64_t)k + 100) continue;
      snprintf(key, sizeof key, "fault/%d", k);
      content_for(id, content, sizeof content);
      int rc = ae_cache_get(c, key, content, strlen(content), v, DIM);
      if (rc == AE_OK && !vec_is(id, v, DIM)) o->wrong_vec++;
    }
  if (!accounting_exact(c, NULL, NULL)) o->drift++;
}

static void run_all(int policy, const char *persist) {
  int runs = 0, fails_seen = 0;
  outcome total = {0};
  for (long k = 1;; k++) {
    if (persist) unlink(persist);
    ae_set_allocator(&fa_allocator);
    fa_live = 0;
    fa_fail_at = 0;
    /* 2200 bytes bind: about 11 entries */
    ae_cache_config cfg = test_cache_config(12, 2200, policy, 2, persist);
    cfg.persist_batch_count = 8;
    ae_cache *c = NULL;
    if (ae_cache_new(&cfg, FP_A, &c) != AE_OK) {
      t_fail++;
      break;
    }
    /* the k-th allocation of the workload fails */
    fa_calls = 0;
    fa_fail_at = k;
    workload(c, &total);
    fa_fail_at = 0;
    int hit_fault = fa_calls >= k;
    verify(c, &total);
    ae_cache_free(c);
    ae_set_allocator(NULL);
    CHECKF(fa_live == 0, "k=%ld: %ld allocations leaked", k, fa_live);
    runs++;
    fails_seen += hit_fault;
    if (!hit_fault) break; /* k is past the workload's last allocation */
  }
  fprintf(stderr, "  policy %d persist %s: %d runs, %d with an injected failure, %d sets failed\n",
          policy, persist ? "on" : "off", runs, fails_seen, total.set_fail_ok);
  CHECK(runs > 20 && total.set_fail_ok > 0);
  CHECKF(total.bad_status == 0, "%d unexpected statuses", total.bad_status);
  CHECKF(total.wrong_vec == 0, "%d wrong vectors", total.wrong_vec);
  CHECKF(total.drift == 0, "%d accounting drifts", total.drift);
  CHECKF(total.missing_msg == 0, "%d ENOMEM without a message", total.missing_msg);
}

int main(void) {
  run_all(AE_CACHE_LRU, NULL);
  run_all(AE_CACHE_TINYLFU, NULL);
  char dir[] = "/tmp/ae_cache_faults_XXXXXX";
  REQUIRE(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/cache.db", dir);
  run_all(AE_CACHE_LRU, path);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  CHECK(system(cmd) == 0);
  TEST_DONE();
}
