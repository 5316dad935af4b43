// ctest-labels: tokenizer
// ctest-timeout: 300
/* Structured fuzzing of the loader, deterministic so it runs in CI (ASan+UBSan by
 * `make test`): the tiny tokenizer.json is mutated a few thousand times - one value
 * anywhere in the document replaced by a value of another type or an odd one, a member
 * deleted, or the text cut short - and each result must load or be refused with an
 * error naming tokenizer.json; whatever loads must encode within its contract. */
#define _GNU_SOURCE
#include "tokenizer/tokenizer.h"
#include "test.h"

#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) { /* xorshift64* */
  g_rng ^= g_rng >> 12; g_rng ^= g_rng << 25; g_rng ^= g_rng >> 27;
  return g_rng * 2685821657736338717ull;
}

/* Every (container, key or index) in the document, preorder. */
typedef struct { json_t *parent; const char *key; size_t index; } slot;
static slot g_slots[4096];
static size_t g_n;

static void collect(json_t *v) {
  if (json_is_object(v)) {
    const char *k;
    json_t *c;
    json_object_foreach(v, k, c) {
      if (g_n < 4096) g_slots[g_n++] = (slot){v, k, 0};
      collect(c);
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (g_n < 4096) g_slots[g_n++] = (slot){v, NULL, i};
      collect(json_array_get(v, i));
    }
  }
}

static json_t *odd_value(void) {
  switch (rnd() % 14) {
  case 0: return json_null();
  case 1: return json_true();
  case 2: return json_false();
  case 3: return json_integer(0);
  case 4: return json_integer(-1);
  case 5: return json_integer((json_int_t)1 << 40);
  case 6: return json_real(1e30);
  case 7: return json_string("");
  case 8: return json_string("[UNK]");
  case 9: return json_string("BPE");
  case 10: return json_array();
  case 11: return json_object();
  case 12: return json_integer(3);
  default: return json_string("##");
  }
}

static void check_encodes(const ae_tokenizer *t) {
  static const char *texts[] = {"", "hello world", "a[MASK]b <ent> Hi Tag", "xxxxxxx \xc3\xa9\xe4\xb8\xad",
                                "\xff\xfe ab c", "b c b\tc"};
  size_t vocab = ae_tokenizer_vocab_size(t);
  for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
    for (size_t max_len = 0; max_len < 6; max_len += 5) {
      int32_t *ids;
      size_t n;
      int rc = ae_tokenizer_encode(t, texts[i], strlen(texts[i]), max_len, &ids, &n, NULL);
      if (rc == AE_ERANGE) continue; /* max_len below the special tokens */
      CHECK(rc == AE_OK);
      if (rc) continue;
      int in_range = !max_len || n <= max_len;
      for (size_t k = 0; k < n; k++) in_range &= ids[k] >= 0 && (size_t)ids[k] < vocab;
      CHECK(in_range);
      ae_free(ids);
    }
}

int main(void) {
  const char *src = getenv("AE_SOURCE_DIR");
  char path[4400], tmp[] = "/tmp/ae-test-tokmut-XXXXXX", out[4400];
  snprintf(path, sizeof path, "%s/tests/tokenizer/data/tiny/tokenizer.json", src ? src : ".");
  REQUIRE(mkdtemp(tmp));
  snprintf(out, sizeof out, "%s/tokenizer.json", tmp);
  json_error_t err;
  json_t *orig = json_load_file(path, 0, &err);
  REQUIRE(orig);
  int loaded = 0, refused = 0;
  for (int iter = 0; iter < 3000; iter++) {
    json_t *doc = json_deep_copy(orig);
    int edits = 1 + (int)(rnd() % 3);
    for (int e = 0; e < edits; e++) {
      g_n = 0;
      collect(doc);
      if (!g_n) break;
      slot s = g_slots[rnd() % g_n];
      int del = rnd() % 5 == 0;
      if (s.key) {
        if (del) json_object_del(s.parent, s.key);
        else json_object_set_new(s.parent, s.key, odd_value());
      } else {
        if (del) json_array_remove(s.parent, s.index);
        else json_array_set_new(s.parent, s.index, odd_value());
      }
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    REQUIRE(text);
    size_t len = strlen(text);
    if (iter % 10 == 9) len = rnd() % len; /* cut short */
    FILE *f = fopen(out, "w");
    REQUIRE(f);
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
    ae_tokenizer *t = NULL;
    int rc = ae_tokenizer_load(tmp, &t);
    if (rc == AE_OK) {
      loaded++;
      check_encodes(t);
      ae_tokenizer_free(t);
    } else {
      refused++;
      int named = t == NULL && strstr(ae_last_error(), "tokenizer.json") != NULL &&
                  (rc == AE_EFORMAT || rc == AE_EUNSUPPORTED);
      CHECKF(named, "iteration %d: rc %d: %s", iter, rc, ae_last_error());
    }
  }
  printf("3000 mutated tokenizer.json files: %d loaded and encoded, %d refused with an error\n",
         loaded, refused);
  CHECK(loaded > 100 && refused > 100);
  json_decref(orig);
  unlink(out);
  rmdir(tmp);
  TEST_DONE();
}
