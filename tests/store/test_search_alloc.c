/* ae_store_search under allocation failures: failing the k-th allocation of a search
 * (query copy, scores, heap, hits, the strings of each hit), for every k, gives
 * AE_ENOMEM or AE_OK and leaks nothing, including the strings of a hit that was
 * being filled when an allocation failed. The same for ae_store_search_ex in lexical
 * and in hybrid mode with a filter (MATCH expression, candidate lists, fusion). */
#include "astembed.h"
#include "test.h"
#include "failalloc.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define DIM 16
static const uint8_t FP[16] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6};

int main(void) {
  char dir[] = "/tmp/ae-search-alloc-XXXXXX", path[128], cmd[160];
  REQUIRE(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/s.db", dir);
  ae_store *s;
  CHECK_OK(ae_store_open(path, 0, &s));
  CHECK_OK(ae_store_register_model(s, FP, "tiny", NULL, DIM));
  CHECK_OK(ae_store_begin(s));
  for (int i = 0; i < 200; i++) {
    char id[32], file[32], text[64], sig[32];
    snprintf(id, sizeof id, "n%d", i);
    snprintf(file, sizeof file, "f%d.py", i % 5);
    snprintf(text, sizeof text, "text %d", i);
    snprintf(sig, sizeof sig, "def f%d()", i);
    ae_annotation a = {.node_id = id, .file_path = file, .start_line = i, .end_line = i + 1,
                       .node_type = "function", .language = "python", .signature = sig,
                       .summary = "s", .snippet = "x = 1\ny = 2"};
    float v[DIM];
    for (int d = 0; d < DIM; d++) v[d] = (float)((i * 7 + d * 3) % 11) - 5.0f;
    uint8_t h[16];
    ae_text_hash(text, strlen(text), h);
    CHECK_OK(ae_store_put(s, &a, h, FP, v, DIM, 0));
  }
  CHECK_OK(ae_store_commit(s));
  size_t rows = 0;
  CHECK_OK(ae_store_matrix_rows(s, FP, &rows));
  CHECK(rows == 200);
  float q[DIM];
  for (int d = 0; d < DIM; d++) q[d] = (float)(d % 5) - 2.0f;
  ae_search_hit *warm = NULL;
  size_t nwarm = 0;
  CHECK_OK(ae_store_search(s, FP, q, DIM, 10, -1, &warm, &nwarm)); /* matrix cached */
  CHECK(nwarm == 10);
  ae_search_hits_free(warm, nwarm);
  long k;
  for (k = 1; k < 10000; k++) {
    fa_fail_at = k;
    fa_calls = fa_live = 0;
    ae_search_hit *h = NULL;
    size_t n = 0;
    ae_set_allocator(&fa_allocator);
    int rc = ae_store_search(s, FP, q, DIM, 10, -1, &h, &n);
    size_t got = n;
    ae_search_hits_free(h, n);
    ae_set_allocator(NULL);
    CHECKF(fa_live == 0, "k=%ld: %ld blocks leaked", k, fa_live);
    CHECKF(rc == AE_OK || rc == AE_ENOMEM, "k=%ld: status %d", k, rc);
    if (rc == AE_OK) CHECK(got == 10);
    if (rc == AE_OK && fa_calls < k) break;
  }
  printf("search: %ld allocations swept\n", k - 1);
  CHECK(k > 10);
  for (int mode = AE_SEARCH_HYBRID; mode <= AE_SEARCH_LEXICAL; mode += AE_SEARCH_LEXICAL) {
    ae_search_options o;
    ae_search_options_default(&o);
    o.mode = mode;
    o.path_glob = mode == AE_SEARCH_HYBRID ? "f1.*" : NULL;
    for (k = 1; k < 10000; k++) {
      fa_fail_at = k;
      fa_calls = fa_live = 0;
      ae_search_hit *h = NULL;
      size_t n = 0;
      ae_set_allocator(&fa_allocator);
      int rc = ae_store_search_ex(s, &o, "def f1 f2", FP, q, DIM, &h, &n);
      size_t got = n;
      ae_search_hits_free(h, n);
      ae_set_allocator(NULL);
      CHECKF(fa_live == 0, "%s k=%ld: %ld blocks leaked", ae_search_mode_name(mode), k, fa_live);
      CHECKF(rc == AE_OK || rc == AE_ENOMEM, "%s k=%ld: status %d", ae_search_mode_name(mode), k, rc);
      if (rc == AE_OK) CHECK(got == 10);
      if (rc == AE_OK && fa_calls < k) break;
    }
    printf("%s search: %ld allocations swept\n", ae_search_mode_name(mode), k - 1);
    CHECK(k > 10);
  }
  ae_store_close(s);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", dir);
  TEST_DONE();
}
