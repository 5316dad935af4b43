// ctest-labels: tokenizer
// ctest-timeout: 180
/* The compiled tokenizer (ae_tokenizer_load_cached): a tokenizer rebuilt from its
 * compiled file gives the same ids as the parsed one (3,000 MiniLM reference cases,
 * tokenizer.json and vocab.txt folders, the tiny tokenizer's added-token cases);
 * truncated, bit-flipped and re-sealed (checksum recomputed) files are rejected or
 * yield a safe tokenizer, never a crash, and the load still succeeds by parsing; an
 * edited tokenizer gets another key; an unusable cache folder never fails a load;
 * allocation failures anywhere on the cached path give AE_OK or AE_ENOMEM and leak
 * nothing. */
#define _GNU_SOURCE
#include "common/jsonl.h"
#include "tokenizer/tokenizer.h"
#include "common/loadcache.h"
#include "test.h"
#include "failalloc.h"

#include <dirent.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb; (void)flag; (void)f;
  return remove(p);
}
static void rm_rf(const char *d) { nftw(d, rm_one, 16, FTW_DEPTH | FTW_PHYS); }

static char *tmp_dir(void) {
  char *d = strdup("/tmp/ae-tokc-test-XXXXXX");
  if (!mkdtemp(d)) { perror("mkdtemp"); exit(1); }
  return d;
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name) {
  char a[4400], b[4400];
  snprintf(a, sizeof a, "%s/%s", from_dir, name);
  snprintf(b, sizeof b, "%s/%s", to_dir, name);
  FILE *in = fopen(a, "rb"), *out = fopen(b, "wb");
  REQUIRE(in && out);
  char buf[65536];
  size_t k;
  while ((k = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, k, out);
  fclose(in);
  fclose(out);
}

/* The one compiled file in cache (path into buf), or 0 when there is none. */
static int compiled_path(const char *cache, char *buf, size_t cap) {
  DIR *d = opendir(cache);
  if (!d) return 0;
  struct dirent *e;
  int found = 0;
  while ((e = readdir(d)))
    if (strstr(e->d_name, ".aetok") && !strstr(e->d_name, ".tmp")) {
      snprintf(buf, cap, "%s/%s", cache, e->d_name);
      found++;
    }
  closedir(d);
  return found == 1;
}

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *b = malloc((size_t)n + 1);
  *len = fread(b, 1, (size_t)n, f);
  fclose(f);
  return b;
}

static void spit(const char *path, const uint8_t *b, size_t len) {
  FILE *f = fopen(path, "wb");
  REQUIRE(f);
  fwrite(b, 1, len, f);
  fclose(f);
}

/* Same ids from both tokenizers (and, when want is an array, the reference ids). */
static int same_encoding(const ae_tokenizer *a, const ae_tokenizer *b, const char *text,
                         size_t len, json_t *want) {
  int32_t *x = NULL, *y = NULL;
  size_t nx = 0, ny = 0;
  int ra = ae_tokenizer_encode(a, text, len, 0, &x, &nx, NULL);
  int rb = ae_tokenizer_encode(b, text, len, 0, &y, &ny, NULL);
  int same = ra == rb && nx == ny && (!nx || !memcmp(x, y, nx * sizeof *x));
  if (same && json_is_array(want)) {
    same = json_array_size(want) == nx;
    for (size_t i = 0; same && i < nx; i++) same = x[i] == (int32_t)json_integer_value(json_array_get(want, i));
  }
  ae_free(x);
  ae_free(y);
  return same;
}

/* Every case of a JSONL file through both tokenizers; returns the cases run. */
static size_t compare_cases(const ae_tokenizer *a, const ae_tokenizer *b, const char *path,
                            int check_ref) {
  FILE *f = fopen(path, "r");
  if (!f) { fprintf(stderr, "cannot open %s\n", path); t_fail++; return 0; }
  ae_jsonl *r;
  CHECK_OK(ae_jsonl_open(f, path, &r));
  json_t *v;
  size_t line, cases = 0, bad = 0;
  while (ae_jsonl_next(r, &v, &line) == 0) {
    json_t *text = json_object_get(v, "text");
    if (json_is_string(text)) {
      cases++;
      if (!same_encoding(a, b, json_string_value(text), json_string_length(text),
                         check_ref ? json_object_get(v, "ids") : NULL) && ++bad <= 3)
        fprintf(stderr, "%s:%zu: the compiled tokenizer differs\n", path, line);
    }
    json_decref(v);
  }
  ae_jsonl_close(r);
  fclose(f);
  CHECKF(bad == 0, "%s: %zu of %zu cases differ", path, bad, cases);
  return cases;
}

static void compare_vocab(const ae_tokenizer *a, const ae_tokenizer *b) {
  CHECK(ae_tokenizer_vocab_size(a) == ae_tokenizer_vocab_size(b));
  size_t bad = 0;
  for (int32_t id = 0; id < (int32_t)ae_tokenizer_vocab_size(a) + 2; id++) {
    const char *x = ae_tokenizer_id_to_token(a, id), *y = ae_tokenizer_id_to_token(b, id);
    if (!(x == y || (x && y && !strcmp(x, y)))) bad++;
  }
  CHECKF(bad == 0, "%zu ids map to other tokens", bad);
  CHECK(ae__tokenizer_model_max_length(a) == ae__tokenizer_model_max_length(b));
}

/* Parsed vs compiled for one folder: first cached load writes, second reads. */
static void parsed_vs_compiled(const char *dir, const char *cases, int check_ref, size_t min_cases) {
  char *cache = tmp_dir();
  ae_tokenizer *parsed = NULL, *first = NULL, *compiled = NULL;
  int hit = -1;
  CHECK_OK(ae_tokenizer_load(dir, &parsed));
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &first, &hit));
  CHECK(hit == 0);
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &compiled, &hit));
  CHECKF(hit == 1, "%s: the second load did not use the compiled file", dir);
  REQUIRE(parsed && first && compiled);
  compare_vocab(parsed, compiled);
  size_t n = compare_cases(parsed, compiled, cases, check_ref);
  printf("%s: %zu cases, parsed == compiled\n", dir, n);
  CHECK(n >= min_cases);
  ae_tokenizer_free(parsed);
  ae_tokenizer_free(first);
  ae_tokenizer_free(compiled);
  rm_rf(cache);
  free(cache);
}

static const char *probe_texts[] = {"Hello, world! [MASK] x", "ab c\xc3\xa9 tag [UNK]",
                                    "def parse_json(s): return json.loads(s)", ""};

/* A tokenizer from a hostile file must still be safe to use. */
static void exercise(const ae_tokenizer *t) {
  for (size_t i = 0; i < sizeof probe_texts / sizeof *probe_texts; i++) {
    int32_t *ids = NULL;
    size_t n = 0;
    ae_tokenizer_encode(t, probe_texts[i], strlen(probe_texts[i]), 0, &ids, &n, NULL);
    for (size_t k = 0; k < n; k++) (void)ae_tokenizer_id_to_token(t, ids[k]);
    ae_free(ids);
  }
  (void)ae_tokenizer_vocab_size(t);
}

/* Decodes data with the checksum recomputed, so the structural checks (not the
 * checksum) are what stands between the bytes and the tokenizer. */
static int decode_resealed(uint8_t *data, size_t len, const uint8_t key[16]) {
  if (len >= 56) {
    uint64_t body = len - 56, sum = XXH3_64bits(data + 56, body);
    memcpy(data + 32, &body, 8);
    memcpy(data + 40, &sum, 8);
  }
  ae_tokenizer *t = calloc(1, sizeof *t);
  int rc = ae__tok_compiled_decode(data, len, key, t);
  if (rc == AE_OK) {
    t->source = NULL;
    ae__tokenizer_build_tables(t);
    exercise(t);
  }
  /* ae_tokenizer_free releases through the library allocator: t came from calloc,
   * which is the same heap while no hook is set */
  ae_tokenizer_free(t);
  return rc;
}

static void corruption(const char *src_dir) {
  char *dir = tmp_dir(), *cache = tmp_dir(), path[4400];
  copy_file(src_dir, dir, "tokenizer.json");
  ae_tokenizer *ref = NULL, *t = NULL;
  int hit;
  CHECK_OK(ae_tokenizer_load(dir, &ref));
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
  ae_tokenizer_free(t);
  REQUIRE(ref && compiled_path(cache, path, sizeof path));
  size_t len;
  uint8_t *good = slurp(path, &len), key[16];
  REQUIRE(good && len > 100);
  CHECK_OK(ae__tok_cache_key(dir, key));

  /* through the public path: truncations and flips, each followed by a load that
   * must succeed by parsing and give the reference ids */
  size_t loads = 0, fallbacks = 0;
  for (size_t cut = 0; cut < len; cut += 1 + len / 97) {
    spit(path, good, cut);
    t = NULL;
    hit = -1;
    CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
    loads++;
    fallbacks += hit == 0;
    if (t) CHECK(same_encoding(ref, t, probe_texts[0], strlen(probe_texts[0]), NULL));
    ae_tokenizer_free(t);
  }
  uint8_t *bad = malloc(len);
  for (size_t at = 0; at < len; at += 1 + len / 61) {
    memcpy(bad, good, len);
    bad[at] ^= 0x5A;
    spit(path, bad, len);
    t = NULL;
    CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
    loads++;
    fallbacks += hit == 0;
    if (t) CHECK(same_encoding(ref, t, probe_texts[1], strlen(probe_texts[1]), NULL));
    ae_tokenizer_free(t);
  }
  CHECKF(fallbacks == loads, "%zu of %zu corrupt files were used", loads - fallbacks, loads);
  /* the fallback rewrote a good file */
  t = NULL;
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
  CHECK(hit == 1);
  ae_tokenizer_free(t);

  /* re-sealed corruption, every byte: the validator alone */
  size_t accepted = 0, rejected = 0;
  for (size_t at = 56; at < len; at++) {
    for (int pat = 0; pat < 2; pat++) {
      memcpy(bad, good, len);
      bad[at] = pat ? (uint8_t)(bad[at] ^ 0x80) : 0xFF;
      if (decode_resealed(bad, len, key) == AE_OK) accepted++;
      else rejected++;
    }
  }
  for (size_t cut = 56; cut < len; cut++) {
    memcpy(bad, good, len);
    if (decode_resealed(bad, cut, key) == AE_OK) accepted++;
    else rejected++;
  }
  printf("corruption: %zu loads fell back to parsing; re-sealed: %zu rejected, %zu accepted "
         "(and used safely)\n", fallbacks, rejected, accepted);
  CHECK(rejected > 0);
  memcpy(bad, good, len);
  CHECK(decode_resealed(bad, len, key) == AE_OK);
  /* wrong key, wrong magic, wrong version */
  uint8_t other[16];
  memcpy(other, key, 16);
  other[3] ^= 1;
  memcpy(bad, good, len);
  CHECK(decode_resealed(bad, len, other) != AE_OK);
  bad[0] = 'X';
  CHECK(decode_resealed(bad, len, key) != AE_OK);
  memcpy(bad, good, len);
  bad[8] ^= 1;
  CHECK(decode_resealed(bad, len, key) != AE_OK);
  free(bad);
  free(good);
  ae_tokenizer_free(ref);
  rm_rf(dir); rm_rf(cache);
  free(dir); free(cache);
}

/* An edited tokenizer.json (one byte) or tokenizer_config.json gets another key and
 * so another compiled file. */
static void keys(const char *src_dir) {
  char *dir = tmp_dir(), *cache = tmp_dir(), p[4400];
  copy_file(src_dir, dir, "tokenizer.json");
  uint8_t k1[16], k2[16], k3[16];
  CHECK_OK(ae__tok_cache_key(dir, k1));
  CHECK_OK(ae__tok_cache_key(dir, k2));
  CHECK(!memcmp(k1, k2, 16));
  ae_tokenizer *t;
  int hit;
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
  ae_tokenizer_free(t);
  snprintf(p, sizeof p, "%s/tokenizer.json", dir);
  size_t len;
  uint8_t *b = slurp(p, &len);
  REQUIRE(b);
  b[len] = ' ';
  spit(p, b, len + 1); /* trailing space: same tokenizer, other bytes */
  free(b);
  CHECK_OK(ae__tok_cache_key(dir, k2));
  CHECK(memcmp(k1, k2, 16) != 0);
  t = NULL;
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
  CHECK(hit == 0);
  ae_tokenizer_free(t);
  snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
  spit(p, (const uint8_t *)"{\"model_max_length\": 77}", 24);
  CHECK_OK(ae__tok_cache_key(dir, k3));
  CHECK(memcmp(k3, k2, 16) != 0);
  t = NULL;
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
  CHECK(hit == 0 && t && ae__tokenizer_model_max_length(t) == 77);
  ae_tokenizer_free(t);
  t = NULL;
  CHECK_OK(ae__tokenizer_load_ex(dir, cache, &t, &hit));
  CHECK(hit == 1 && t && ae__tokenizer_model_max_length(t) == 77);
  ae_tokenizer_free(t);
  rm_rf(dir); rm_rf(cache);
  free(dir); free(cache);
}

/* A cache folder that cannot exist (its parent is a file) or is a file: loads work. */
static void unusable_cache(const char *src_dir) {
  char *dir = tmp_dir(), cache[4400], file[4400];
  snprintf(file, sizeof file, "%s/plain-file", dir);
  spit(file, (const uint8_t *)"x", 1);
  snprintf(cache, sizeof cache, "%s/plain-file/cache", dir);
  const char *caches[] = {cache, file, "/proc/astembed-no-such-cache"};
  for (int i = 0; i < 3; i++) {
    ae_tokenizer *t = NULL;
    int hit = -1;
    CHECK_OK(ae__tokenizer_load_ex(src_dir, caches[i], &t, &hit));
    CHECK(t && hit == 0);
    ae_tokenizer_free(t);
  }
  ae_tokenizer *t = NULL;
  CHECK_OK(ae_tokenizer_load_cached(src_dir, NULL, &t));
  ae_tokenizer_free(t);
  rm_rf(dir);
  free(dir);
}

/* k-th allocation failing, on a miss (parse + write) and on a hit (read). */
static void alloc_sweep(const char *src_dir) {
  char *cache = tmp_dir();
  long runs[2] = {0, 0};
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) { /* make sure a good compiled file exists */
      ae_tokenizer *t;
      CHECK_OK(ae_tokenizer_load_cached(src_dir, cache, &t));
      ae_tokenizer_free(t);
    }
    for (long k = 1; k < 100000; k++) {
      if (pass == 0) { rm_rf(cache); mkdir(cache, 0700); }
      fa_fail_at = k;
      fa_calls = fa_live = 0;
      ae_tokenizer *t = NULL;
      int hit = -1;
      ae_set_allocator(&fa_allocator);
      int rc = ae__tokenizer_load_ex(src_dir, cache, &t, &hit);
      if (t) exercise(t);
      ae_tokenizer_free(t);
      ae_set_allocator(NULL);
      CHECKF(fa_live == 0, "alloc pass %d k=%ld: %ld blocks leaked", pass, k, fa_live);
      CHECKF(rc == AE_OK || rc == AE_ENOMEM, "alloc pass %d k=%ld: status %d", pass, k, rc);
      runs[pass] = k;
      if (rc == AE_OK && fa_calls < k) break;
    }
  }
  printf("allocation sweeps: %ld (miss) and %ld (hit) allocations\n", runs[0], runs[1]);
  CHECK(runs[0] > 10 && runs[1] > 5);
  rm_rf(cache);
  free(cache);
}

int main(void) {
  const char *src = getenv("AE_SOURCE_DIR");
  if (!src) src = ".";
  char tiny[4200], tiny_cases[4400];
  snprintf(tiny, sizeof tiny, "%s/tests/tokenizer/data/tiny", src);
  snprintf(tiny_cases, sizeof tiny_cases, "%s/tests/tokenizer/data/tiny-cases.jsonl", src);
  parsed_vs_compiled(tiny, tiny_cases, 1, 50);
  corruption(tiny);
  keys(tiny);
  unusable_cache(tiny);
  alloc_sweep(tiny);
  const char *shared = test_shared_dir();
  if (!shared) {
    printf("SKIP: ../shared not found: the 3,000 MiniLM reference cases were not run\n");
    TEST_DONE();
  }
  char minilm[4200], cases[4400];
  snprintf(minilm, sizeof minilm, "%s/models/all-MiniLM-L6-v2", shared);
  snprintf(cases, sizeof cases, "%s/testdata/minilm-tokenizer-cases.jsonl", shared);
  parsed_vs_compiled(minilm, cases, 1, 3000);
  /* the vocab.txt (+ tokenizer_config.json) folder of the same tokenizer */
  char *fb = tmp_dir();
  copy_file(minilm, fb, "vocab.txt");
  copy_file(minilm, fb, "tokenizer_config.json");
  copy_file(minilm, fb, "special_tokens_map.json");
  parsed_vs_compiled(fb, cases, 0, 3000);
  rm_rf(fb);
  free(fb);
  TEST_DONE();
}
