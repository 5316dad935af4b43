/* bench_cache's Belady optimum (src/cache/belady.h: evict the farthest next use, or
 * bypass the newcomer when its own next use is farther) against an exhaustive
 * search over every admission and eviction choice on small random traces: the two
 * must give the same number of hits, for every cache size. Also a few traces whose
 * optimum is known by hand. */
#include "cache/belady.h"
#include "test.h"
#include <string.h>

#define MAXN 18
#define MAXK 7

/* Most hits from position i on with the cached set `set` (bit k = key k cached),
 * trying everything at a miss: bypass, insert into free room, or evict any one
 * resident for the newcomer. Memoised on (i, set). */
static int memo[MAXN + 1][1 << MAXK];
static const uint32_t *g_trace;
static size_t g_n, g_cap;

static int best_from(size_t i, unsigned set) {
  if (i == g_n) return 0;
  if (memo[i][set] >= 0) return memo[i][set];
  unsigned k = 1u << g_trace[i];
  int best;
  if (set & k) {
    best = 1 + best_from(i + 1, set);
  } else {
    best = best_from(i + 1, set); /* bypass */
    if ((size_t)__builtin_popcount(set) < g_cap) {
      int b = best_from(i + 1, set | k);
      if (b > best) best = b;
    } else {
      for (unsigned v = 0; v < MAXK; v++)
        if (set & (1u << v)) {
          int b = best_from(i + 1, (set & ~(1u << v)) | k);
          if (b > best) best = b;
        }
    }
  }
  return memo[i][set] = best;
}

static int brute_force(const uint32_t *trace, size_t n, size_t cap) {
  memset(memo, -1, sizeof memo);
  g_trace = trace;
  g_n = n;
  g_cap = cap;
  return best_from(0, 0);
}

static int belady_hits(const uint32_t *trace, size_t n, uint32_t nkeys, size_t cap) {
  return (int)(ae__belady_hit_ratio(trace, n, nkeys, cap) * (double)n + 0.5);
}

int main(void) {
  /* by hand: cap 2 over a b c a b c a b c: keep a and b, bypass c every time (its
   * next use is always the farthest): hits at a, b of rounds 2 and 3 = 4; LRU gets 0 */
  uint32_t cyc[] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
  CHECK(belady_hits(cyc, 9, 3, 2) == brute_force(cyc, 9, 2));
  CHECK(belady_hits(cyc, 9, 3, 2) == 4);
  uint32_t one[] = {0, 0, 0, 0};
  CHECK(belady_hits(one, 4, 1, 1) == 3);
  /* bypass matters: with cap 1, admitting the one-off key 1 would lose key 0's hits */
  uint32_t byp[] = {0, 1, 0, 2, 0};
  CHECK(belady_hits(byp, 5, 3, 1) == 2);

  uint64_t x = 0x9E3779B97F4A7C15ull;
  int differ = 0, cases = 0;
  uint32_t trace[MAXN];
  for (int round = 0; round < 3000; round++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    size_t n = 4 + x % (MAXN - 3);
    uint32_t nkeys = 2 + (uint32_t)((x >> 8) % (MAXK - 1));
    for (size_t i = 0; i < n; i++) {
      x ^= x << 13; x ^= x >> 7; x ^= x << 17;
      /* skewed, so both hits and contention happen */
      uint32_t r = (uint32_t)(x >> 20) % (nkeys * nkeys);
      uint32_t k = 0;
      while ((k + 1) * (k + 1) <= r) k++;
      trace[i] = nkeys - 1 - k;
    }
    for (size_t cap = 1; cap < nkeys; cap++) {
      int want = brute_force(trace, n, cap), got = belady_hits(trace, n, nkeys, cap);
      cases++;
      if (got != want) {
        if (differ++ < 5) {
          fprintf(stderr, "cap %zu, trace", cap);
          for (size_t i = 0; i < n; i++) fprintf(stderr, " %u", trace[i]);
          fprintf(stderr, ": belady %d, exhaustive %d\n", got, want);
        }
      }
    }
  }
  CHECKF(differ == 0, "%d of %d traces differ from the exhaustive optimum", differ, cases);
  TEST_DONE();
}
