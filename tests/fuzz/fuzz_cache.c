/* libFuzzer target: the input is a program of cache operations (set, get with the
 * same or changed content, delete, shrink, clock steps, maintenance) over a tiny key
 * and content space, on a cache whose policy, shard count and limits also come from
 * the input. After every operation the limits must hold; at the end the counters
 * must equal a recount, and every hit must have returned its content's vector. */
#include "astembed.h"
#include "cache/cache_internal.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 8

static _Atomic uint64_t now_ns = 1;
static uint64_t clock_fn(void *ud) { (void)ud; return atomic_load(&now_ns); }

static void vec_for(unsigned id, float *v) {
  for (int i = 0; i < DIM; i++) v[i] = (float)(id * 31 + (unsigned)i) * 0.25f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 4) return 0;
  static const uint8_t fp[16] = {7};
  ae_cache_config cfg;
  ae_cache_config_default(&cfg);
  cfg.policy = data[0] & 1;
  cfg.shards = 1u << (data[0] >> 1 & 3);
  cfg.max_entries = 1 + data[1] % 24;
  cfg.max_bytes = 200 + (size_t)data[2] * 8;
  cfg.ttl_seconds = data[3] % 4;
  cfg.enable_content_validation = data[3] >> 7;
  cfg.maintenance_interval_ms = 0;
  ae_cache *c = NULL;
  if (ae_cache_new(&cfg, fp, &c) != AE_OK) return 0;
  ae__cache_set_clock(c, clock_fn, NULL);
  char key[16], content[16];
  float v[DIM], out[DIM];
  for (size_t i = 4; i + 1 < size; i += 2) {
    unsigned op = data[i] & 7, k = data[i] >> 3 & 15, id = data[i + 1] % 12;
    snprintf(key, sizeof key, "k%u", k);
    int len = snprintf(content, sizeof content, "c%u", id);
    switch (op) {
    case 0: case 1: case 2:
      vec_for(id, v);
      if (ae_cache_set(c, key, content, (size_t)len, v, DIM) != AE_OK &&
          cfg.max_bytes >= 400) abort(); /* room for one entry: a set cannot fail */
      break;
    case 3: case 4:
      if (ae_cache_get(c, key, content, (size_t)len, out, DIM) == AE_OK &&
          cfg.enable_content_validation) {
        vec_for(id, v);
        if (memcmp(v, out, sizeof v)) abort(); /* a hit is its content's vector */
      }
      break;
    case 5: ae_cache_delete(c, key); break;
    case 6: atomic_fetch_add(&now_ns, (uint64_t)id * 250000000ull); ae_cache_maintain(c); break;
    case 7: ae_cache_shrink(c, (double)id / 11.0); break;
    }
    ae_cache_metrics m;
    ae_cache_metrics_get(c, &m);
    if (m.entries > cfg.max_entries || m.bytes > cfg.max_bytes) abort();
  }
  ae_cache_metrics m;
  ae_cache_metrics_get(c, &m);
  uint64_t n, b;
  ae__cache_recount(c, &n, &b);
  if (n != m.entries || b != m.bytes) abort();
  ae_cache_free(c);
  return 0;
}
