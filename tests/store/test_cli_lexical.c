// ctest-timeout: 300
/* The CLI's lexical side end to end: embed --lexical-only (no model), query with the
 * default mode (lexical, said on stderr) and every --mode, filters, JSON ranks, a
 * random-weight model's index still defaulting to lexical while --mode vector and
 * hybrid run, and the usage errors (exit status 2). */
#include "astembed.h"
#include "test.h"
#include "generator/gen_test_util.h"
#include <jansson.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], bin[512], db[160], errf[160], model[160];

static int run(const char *args, char **out) {
  char full[4096];
  snprintf(full, sizeof full, "%s %s 2>%s", bin, args, errf);
  FILE *p = popen(full, "r");
  if (!p) return -1;
  size_t cap = 1 << 16, len = 0, r;
  char *buf = malloc(cap);
  while ((r = fread(buf + len, 1, cap - len - 1, p)) > 0) {
    len += r;
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
  }
  buf[len] = 0;
  int st = pclose(p);
  if (out) *out = buf; else free(buf);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *err_text(void) {
  static char buf[1 << 14];
  FILE *f = fopen(errf, "r");
  size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
  buf[n] = 0;
  if (f) fclose(f);
  return buf;
}

/* query ARGS --format json: the parsed output (NULL on failure) */
static json_t *query(const char *args) {
  char cmd[1024], *out;
  snprintf(cmd, sizeof cmd, "query %s --db %s --format json", args, db);
  int rc = run(cmd, &out);
  json_t *j = rc == 0 ? json_loads(out, 0, NULL) : NULL;
  if (!j) fprintf(stderr, "query %s: status %d\n%s\n%s\n", args, rc, out, err_text());
  free(out);
  return j;
}

static const char *hit_str(json_t *j, size_t i, const char *k) {
  return json_string_value(json_object_get(json_array_get(json_object_get(j, "results"), i), k));
}

int main(void) {
  const char *bdir = getenv("AE_BUILD_DIR");
  snprintf(bin, sizeof bin, "%s/astembed", bdir ? bdir : "build");
  if (access(bin, X_OK)) TEST_SKIP("%s not built", bin);
  strcpy(dir, "/tmp/ae_clilex_XXXXXX");
  REQUIRE(mkdtemp(dir));
  snprintf(errf, sizeof errf, "%s/stderr.txt", dir);
  snprintf(db, sizeof db, "%s/index.db", dir);
  char cmd[1024], lcache[160];
  snprintf(lcache, sizeof lcache, "%s/loadcache", dir);
  setenv("ASTEMBED_CACHE_DIR", lcache, 1);

  /* no model at all */
  snprintf(cmd, sizeof cmd, "embed --lexical-only --input examples/annotations.jsonl --db %s --json", db);
  char *out;
  CHECK(run(cmd, &out) == 0);
  json_t *sum = json_loads(out, 0, NULL);
  free(out);
  CHECK(sum && json_integer_value(json_object_get(sum, "indexed")) == 404 &&
        json_integer_value(json_object_get(sum, "lexicalRows")) == 404);
  json_decref(sum);

  json_t *j = query("\"pack an IPv4 address into bytes\"");
  REQUIRE(j);
  CHECK(strstr(err_text(), "no vectors: lexical search"));
  CHECK(!strcmp(json_string_value(json_object_get(j, "mode")), "lexical"));
  json_t *r0 = json_array_get(json_object_get(j, "results"), 0);
  CHECK(json_integer_value(json_object_get(r0, "lexicalRank")) == 1 && json_is_null(json_object_get(r0, "vectorRank")));
  CHECKF(!strcmp(hit_str(j, 0, "signature"), "def v4_int_to_packed(address)"), "first hit %s",
         hit_str(j, 0, "signature"));
  json_decref(j);

  /* filters */
  j = query("\"parse\" --mode lexical --type class --path 'xml/*' --top 50");
  REQUIRE(j);
  size_t n = json_array_size(json_object_get(j, "results"));
  int ok = n > 0;
  for (size_t i = 0; i < n; i++)
    ok &= !strcmp(hit_str(j, i, "nodeType"), "class") && !strncmp(hit_str(j, i, "file"), "xml/", 4);
  CHECKF(ok, "%zu hits, not all classes under xml/", n);
  json_decref(j);
  j = query("\"parse\" --lang rust");
  REQUIRE(j);
  CHECK(json_array_size(json_object_get(j, "results")) == 0);
  json_decref(j);

  /* no model recorded: vector mode is a usage error naming the way out */
  snprintf(cmd, sizeof cmd, "query x --db %s --mode vector", db);
  unsetenv("ASTEMBED_MODEL");
  CHECK(run(cmd, NULL) == 2 && strstr(err_text(), "--mode lexical needs none"));
  snprintf(cmd, sizeof cmd, "query x --db %s --mode bm25", db);
  CHECK(run(cmd, NULL) == 2 && strstr(err_text(), "bad --mode"));
  snprintf(cmd, sizeof cmd, "embed --lexical-only --model /x --input examples/annotations.jsonl --db %s", db);
  CHECK(run(cmd, NULL) == 2 && strstr(err_text(), "--lexical-only uses no model"));

  /* a random-weight model (init-random leaves its marker): lexical stays the default,
   * the other modes run and report both ranks */
  snprintf(model, sizeof model, "%s/model", dir);
  make_tiny_minilm(model, (tiny_shape){.seed = 1, .layers = 1, .hidden = 32, .heads = 2,
                                       .intermediate = 64, .max_len = 64});
  CHECK(ae_model_is_random(model) == 1 && ae_model_is_random(dir) == 0);
  snprintf(cmd, sizeof cmd, "embed --input examples/annotations.jsonl --db %s --model %s --no-progress", db, model);
  CHECK(run(cmd, NULL) == 0);
  /* the generator's writes kept the lexical index in step */
  ae_store *st;
  uint64_t ann = 0, lex = 0;
  CHECK_OK(ae_store_open(db, 1, &st));
  CHECK_OK(ae_store_lexical_count(st, &ann, &lex));
  CHECK(ann == 404 && lex == 404);
  ae_store_close(st);
  j = query("\"parse a JSON document\"");
  REQUIRE(j);
  CHECK(strstr(err_text(), "random weights: lexical search"));
  CHECK(!strcmp(json_string_value(json_object_get(j, "mode")), "lexical"));
  json_decref(j);
  j = query("\"parse a JSON document\" --mode hybrid --top 20");
  REQUIRE(j);
  int both = 0;
  json_t *arr = json_object_get(j, "results");
  for (size_t i = 0; i < json_array_size(arr); i++) {
    json_t *h = json_array_get(arr, i);
    both += json_is_integer(json_object_get(h, "lexicalRank")) && json_is_integer(json_object_get(h, "vectorRank"));
  }
  CHECK(!strcmp(json_string_value(json_object_get(j, "mode")), "hybrid") && json_array_size(arr) == 20 && both > 0);
  json_decref(j);
  j = query("\"parse\" --mode vector --type class");
  REQUIRE(j);
  arr = json_object_get(j, "results");
  ok = json_array_size(arr) == 10;
  for (size_t i = 0; i < json_array_size(arr); i++) ok &= !strcmp(hit_str(j, i, "nodeType"), "class");
  CHECK(ok);
  json_decref(j);

  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd)) {}
  TEST_DONE();
}
