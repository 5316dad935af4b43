/* Allocation-failure injection for tests: an ae_allocator whose k-th call fails
 * (fa_fail_at = k; 0 = never) and that counts live blocks, so leaks show up without
 * ASan as well. Install with ae_set_allocator(&fa_allocator). The counters are
 * atomic: the library allocates from several threads (tokenizer thread, workers). */
#ifndef AE_TEST_FAILALLOC_H
#define AE_TEST_FAILALLOC_H
#include <stdatomic.h>
#include <stdlib.h>
#include "astembed.h"

static _Atomic long fa_fail_at, fa_calls, fa_live;

static void *fa_malloc(size_t n, void *ud) {
  (void)ud;
  if (++fa_calls == fa_fail_at) return NULL;
  void *p = malloc(n);
  if (p) fa_live++;
  return p;
}
static void *fa_realloc(void *p, size_t n, void *ud) {
  (void)ud;
  if (++fa_calls == fa_fail_at) return NULL;
  void *q = realloc(p, n);
  if (q && !p) fa_live++;
  return q;
}
static void fa_free(void *p, void *ud) {
  (void)ud;
  if (p) fa_live--;
  free(p);
}
static const ae_allocator fa_allocator = {fa_malloc, fa_realloc, fa_free, NULL};
#endif
