/* Belady's offline optimum for a cache of cap keys, used by bench_cache as the
 * ceiling for its trace replays and checked against a brute-force search in
 * tests/cache/test_belady.c. Header-only: benchmark and test code, not the library. */
#ifndef AE_CACHE_BELADY_H
#define AE_CACHE_BELADY_H
#include <stdint.h>
#include <stdlib.h>

/* Belady's MIN with bypass: on a miss with a full cache, evict the resident whose
 * next use is farthest, or skip the newcomer when its own next use is farther.
 * Max-heap of (next use, key) with lazy deletion of stale pairs. */
typedef struct { uint32_t next, key; } ae__belady_ent;

static inline void ae__belady_heap_push(ae__belady_ent *h, size_t *n, ae__belady_ent e) {
  size_t i = (*n)++;
  while (i && h[(i - 1) / 2].next < e.next) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = e;
}
static inline ae__belady_ent ae__belady_heap_pop(ae__belady_ent *h, size_t *n) {
  ae__belady_ent top = h[0], last = h[--*n];
  size_t i = 0;
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    ae__belady_ent best = last;
    if (l < *n && h[l].next > best.next) { m = l; best = h[l]; }
    if (r < *n && h[r].next > best.next) { m = r; best = h[r]; }
    if (m == i) break;
    h[i] = h[m];
    i = m;
  }
  if (*n) h[i] = last;
  return top;
}

static inline double ae__belady_hit_ratio(const uint32_t *trace, size_t n, uint32_t nkeys, size_t cap) {
  uint32_t *next = malloc(n * sizeof *next), *last = malloc(nkeys * sizeof *last);
  uint32_t *cur = malloc(nkeys * sizeof *cur);
  uint8_t *in = calloc(nkeys, 1);
  ae__belady_ent *heap = malloc((n + 1) * sizeof *heap);
  for (uint32_t k = 0; k < nkeys; k++) last[k] = UINT32_MAX;
  for (size_t i = n; i-- > 0;) {
    next[i] = last[trace[i]];
    last[trace[i]] = (uint32_t)i;
  }
  size_t hn = 0, size = 0, hits = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t k = trace[i];
    if (in[k]) {
      hits++;
      cur[k] = next[i];
      ae__belady_heap_push(heap, &hn, (ae__belady_ent){next[i], k});
      continue;
    }
    if (size < cap) {
      in[k] = 1;
      size++;
      cur[k] = next[i];
      ae__belady_heap_push(heap, &hn, (ae__belady_ent){next[i], k});
      continue;
    }
    while (hn && (!in[heap[0].key] || cur[heap[0].key] != heap[0].next)) ae__belady_heap_pop(heap, &hn);
    if (hn && heap[0].next > next[i]) {
      ae__belady_ent v = ae__belady_heap_pop(heap, &hn);
      in[v.key] = 0;
      in[k] = 1;
      cur[k] = next[i];
      ae__belady_heap_push(heap, &hn, (ae__belady_ent){next[i], k});
    }
  }
  free(next); free(last); free(cur); free(in); free(heap);
  return (double)hits / (double)n;
}

#endif
