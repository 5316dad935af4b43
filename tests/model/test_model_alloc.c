/* Allocation failures: failing the k-th allocation of a load or an init-random, for
 * every k, gives AE_ENOMEM (never a crash or another status) and leaks nothing. The
 * hook counts live blocks, so leaks show up without ASan as well. */
#include "model_test_util.h"
#include "test.h"
#include "failalloc.h"

/* Runs op with the k-th allocation failing for k = 1, 2, ... until op succeeds.
 * Returns how many allocations a successful run made. */
static long sweep(const char *what, int (*op)(void *), void *arg) {
  long k;
  for (k = 1; k < 10000; k++) {
    fa_fail_at = k;
    fa_calls = fa_live = 0;
    ae_set_allocator(&fa_allocator);
    int rc = op(arg);
    ae_set_allocator(NULL);
    CHECKF(fa_live == 0, "%s: k=%ld: %ld blocks leaked", what, k, fa_live);
    if (rc == AE_OK && fa_calls < k) break;
    CHECKF(rc == AE_ENOMEM, "%s: k=%ld: status %d (%s) %s", what, k, rc, ae_strerror(rc), ae_last_error());
    if (rc == AE_ENOMEM) CHECK(strstr(ae_last_error(), "out of memory") != NULL);
  }
  return k - 1;
}

static int op_load(void *dir) {
  ae__bert_model *m = NULL;
  int rc = ae__bert_load(dir, 0, &m);
  ae__bert_free(m);
  return rc;
}

typedef struct { const char *like, *out; } pair;
static int op_init(void *arg) {
  pair *p = arg;
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.dtype = "F16";
  o.pooling = AE_POOL_CLS; /* writes modules.json and 1_Pooling too */
  return ae_model_init_random_opts(p->like, p->out, &o);
}

int main(void) {
  char *d16 = make_model(NULL, "F16", 4, 0), *d32 = make_model(NULL, "F32", 4, 1);
  write_text(d16, "sentence_bert_config.json", "{\"max_seq_length\": 16}");
  write_text(d16, "modules.json", "[{\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
             "{\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]");
  long n16 = sweep("load F16", op_load, d16), n32 = sweep("load F32", op_load, d32);
  printf("load: %ld (F16) and %ld (F32) allocations swept\n", n16, n32);
  CHECK(n16 >= 5 && n32 >= 4);
  char *like = tmp_dir(), *out = tmp_dir();
  write_text(like, "config.json", tiny_config);
  write_text(like, "vocab.txt", "[PAD]\n[UNK]\n");
  pair p = {like, out};
  long ni = sweep("init-random", op_init, &p);
  printf("init-random: %ld allocations swept\n", ni);
  CHECK(ni >= 5);
  char cmd[4300];
  snprintf(cmd, sizeof cmd, "ls -d %s.tmp.* >/dev/null 2>&1", out);
  CHECK(system(cmd) != 0);  /* each failed init-random removed its temporary folder */
  ae__bert_model *m;
  CHECK_OK(ae__bert_load(out, 0, &m));
  CHECK(m && m->pooling == AE_POOL_CLS);
  ae__bert_free(m);
  rm_rf(d16); rm_rf(d32); rm_rf(like); rm_rf(out);
  free(d16); free(d32); free(like); free(out);
  TEST_DONE();
}
