// ctest-labels: tokenizer;tsan
// ctest-timeout: 300
/* Concurrent encodes on one tokenizer (read-only after load) give the same ids as
 * sequential ones. Run under TSan by `make test`. Uses the MiniLM tokenizer and the
 * committed extra cases when ../shared exists, else the tiny tokenizer. */
#include "common/jsonl.h"
#include "tokenizer/tokenizer.h"
#include "test.h"

#include <pthread.h>

#define THREADS 4

typedef struct {
  const ae_tokenizer *tok;
  char **texts;
  size_t *lens, n;
  int32_t **want;
  size_t *want_n;
  size_t max_len;
  int seed, bad;
} job;

static void *worker(void *arg) {
  job *j = arg;
  for (int round = 0; round < 3; round++)
    for (size_t k = 0; k < j->n; k++) {
      size_t i = (k * 7 + (size_t)j->seed * 13 + (size_t)round) % j->n;
      int32_t *ids;
      size_t n;
      if (ae_tokenizer_encode(j->tok, j->texts[i], j->lens[i], 0, &ids, &n, NULL)) {
        j->bad++;
        continue;
      }
      if (n != j->want_n[i] || memcmp(ids, j->want[i], n * sizeof *ids)) j->bad++;
      ae_free(ids);
    }
  return NULL;
}

int main(void) {
  const char *src = getenv("AE_SOURCE_DIR");
  const char *shared = test_shared_dir();
  char dir[4200], path[4400];
  if (shared) {
    snprintf(dir, sizeof dir, "%s/models/all-MiniLM-L6-v2", shared);
    snprintf(path, sizeof path, "%s/tests/tokenizer/data/extra-cases.jsonl", src ? src : ".");
  } else {
    printf("note: ../shared not found, using the tiny tokenizer\n");
    snprintf(dir, sizeof dir, "%s/tests/tokenizer/data/tiny", src ? src : ".");
    snprintf(path, sizeof path, "%s/tests/tokenizer/data/tiny-cases.jsonl", src ? src : ".");
  }
  ae_tokenizer *tok;
  CHECK_OK(ae_tokenizer_load(dir, &tok));
  REQUIRE(tok);
  FILE *f = fopen(path, "r");
  REQUIRE(f);
  ae_jsonl *r;
  CHECK_OK(ae_jsonl_open(f, path, &r));
  size_t n = 0, cap = 1024;
  char **texts = malloc(cap * sizeof *texts);
  size_t *lens = malloc(cap * sizeof *lens);
  json_t *v;
  size_t line;
  while (ae_jsonl_next(r, &v, &line) == AE_OK && n < cap) {
    json_t *t = json_object_get(v, "text");
    lens[n] = json_string_length(t);
    texts[n] = malloc(lens[n] + 1);
    memcpy(texts[n], json_string_value(t), lens[n] + 1);
    n++;
    json_decref(v);
  }
  ae_jsonl_close(r);
  fclose(f);
  REQUIRE(n > 10);
  int32_t **want = malloc(n * sizeof *want);
  size_t *want_n = malloc(n * sizeof *want_n);
  for (size_t i = 0; i < n; i++) CHECK_OK(ae_tokenizer_encode(tok, texts[i], lens[i], 0, &want[i], &want_n[i], NULL));
  job jobs[THREADS];
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; i++) {
    jobs[i] = (job){tok, texts, lens, n, want, want_n, 0, i, 0};
    pthread_create(&th[i], NULL, worker, &jobs[i]);
  }
  int bad = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    bad += jobs[i].bad;
  }
  printf("%d threads x %zu texts x 3 rounds: %d mismatches\n", THREADS, n, bad);
  CHECK(bad == 0);
  for (size_t i = 0; i < n; i++) { free(texts[i]); ae_free(want[i]); }
  free(texts);
  free(lens);
  free(want);
  free(want_n);
  ae_tokenizer_free(tok);
  TEST_DONE();
}
