// ctest-labels: tokenizer
// ctest-timeout: 120
/* Exactness against Hugging Face: every case of ../shared/testdata/
 * minilm-tokenizer-cases.jsonl (3,000 texts tokenized by the Rust tokenizers library,
 * truncation off) and the extra cases in tests/tokenizer/data/ must give the same ids.
 * On failure the first mismatches are printed with the text and both id lists. */
#include "common/jsonl.h"
#include "tokenizer/tokenizer.h"
#include "test.h"

static void print_ids(const char *label, const int32_t *ids, size_t n) {
  fprintf(stderr, "  %s (%zu):", label, n);
  for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
  fputc('\n', stderr);
}

/* Runs every {"text", "ids"} line of path; returns the number of cases. */
static size_t run_cases(const ae_tokenizer *tok, const char *path, size_t *mismatches) {
  FILE *f = fopen(path, "r");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); t_fail++; return 0; }
  ae_jsonl *r;
  CHECK_OK(ae_jsonl_open(f, path, &r));
  json_t *v;
  size_t line, cases = 0;
  int rc;
  while ((rc = ae_jsonl_next(r, &v, &line)) != 1) {
    if (rc) { CHECKF(0, "%s", ae_last_error()); continue; }
    json_t *text = json_object_get(v, "text"), *want = json_object_get(v, "ids");
    REQUIRE(json_is_string(text) && json_is_array(want));
    int32_t *ids;
    size_t n;
    int trunc;
    rc = ae_tokenizer_encode(tok, json_string_value(text), json_string_length(text), 0, &ids,
                             &n, &trunc);
    CHECK_OK(rc);
    int same = !rc && n == json_array_size(want) && !trunc;
    for (size_t i = 0; same && i < n; i++)
      same = ids[i] == (int32_t)json_integer_value(json_array_get(want, i));
    cases++;
    if (same) t_pass++;
    else {
      t_fail++;
      if (++*mismatches <= 5) {
        fprintf(stderr, "%s:%zu: mismatch for text %s\n", path, line,
                json_dumps(text, JSON_ENCODE_ANY | JSON_ENSURE_ASCII));
        int32_t *w = malloc((json_array_size(want) + 1) * sizeof *w);
        for (size_t i = 0; i < json_array_size(want); i++)
          w[i] = (int32_t)json_integer_value(json_array_get(want, i));
        print_ids("want", w, json_array_size(want));
        print_ids("got ", ids, n);
        free(w);
      }
    }
    ae_free(ids);
    json_decref(v);
  }
  ae_jsonl_close(r);
  fclose(f);
  return cases;
}

/* Cases of the tiny tokenizer in tests/tokenizer/data/tiny (added tokens with lstrip,
 * rstrip, single_word and normalized flags, BertProcessing, max_input_chars_per_word 5):
 * these need no ../shared. */
static void run_tiny(const char *src) {
  char dir[4200], path[4400];
  snprintf(dir, sizeof dir, "%s/tests/tokenizer/data/tiny", src);
  snprintf(path, sizeof path, "%s/tests/tokenizer/data/tiny-cases.jsonl", src);
  ae_tokenizer *tok;
  CHECK_OK(ae_tokenizer_load(dir, &tok));
  REQUIRE(tok);
  size_t bad = 0, n = run_cases(tok, path, &bad);
  printf("tiny-cases.jsonl: %zu of %zu cases match\n", n - bad, n);
  CHECK(n >= 50);
  ae_tokenizer_free(tok);
}

int main(void) {
  const char *src = getenv("AE_SOURCE_DIR");
  if (!src) src = ".";
  run_tiny(src);
  const char *shared = test_shared_dir();
  if (!shared) {
    printf("SKIP: ../shared not found: the 3,000 MiniLM reference cases were not run\n");
    TEST_DONE();
  }
  char dir[4200], path[4400];
  snprintf(dir, sizeof dir, "%s/models/all-MiniLM-L6-v2", shared);
  ae_tokenizer *tok;
  CHECK_OK(ae_tokenizer_load(dir, &tok));
  REQUIRE(tok);
  size_t bad = 0;
  snprintf(path, sizeof path, "%s/testdata/minilm-tokenizer-cases.jsonl", shared);
  size_t n = run_cases(tok, path, &bad);
  printf("minilm-tokenizer-cases.jsonl: %zu of %zu cases match\n", n - bad, n);
  CHECK(n == 3000);
  snprintf(path, sizeof path, "%s/tests/tokenizer/data/extra-cases.jsonl", src);
  size_t bad2 = 0, n2 = run_cases(tok, path, &bad2);
  printf("extra-cases.jsonl: %zu of %zu cases match\n", n2 - bad2, n2);
  CHECK(n2 >= 400);
  ae_tokenizer_free(tok);
  TEST_DONE();
}
