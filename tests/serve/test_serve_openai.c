// ctest-labels: tsan
// ctest-timeout: 400
/* The official `openai` npm client (tests/serve/node, pinned by its package-lock.json,
 * installed with `npm ci`) against astembed serve: strings one by one with the
 * client's default encoding (base64, decoded by the client), arrays as float and as
 * base64, arrays with the default; every vector equals `astembed encode`'s for the
 * same text within 1e-6, in input order, with usage counted. SKIP (77) when node or
 * npm or the registry is not available. */
#include "serve_test_util.h"
#include <jansson.h>

static const char *TEXTS[] = {"def read_file(path): return open(path).read()", "class LRUCache: evicts the oldest",
                              "hello world", "numpy array reshape", "", "unicode: caf\xc3\xa9 \xe2\x86\x92 \xe6\x97\xa5\xe6\x9c\xac"};
#define NT 6

int main(void) {
  if (system("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1")) {
    printf("SKIP: node or npm missing\n");
    return 77;
  }
  const char *src = getenv("AE_SOURCE_DIR") ? getenv("AE_SOURCE_DIR") : ".";
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "cd %s/tests/serve/node && { [ -f node_modules/openai/package.json ] || "
           "timeout 300 npm ci --no-audit --no-fund >/dev/null 2>&1; }", src);
  if (system(cmd)) { printf("SKIP: npm ci failed (registry unreachable?)\n"); return 77; }
  st_setup("openai");

  /* the reference: astembed encode */
  char in[400], out[400], texts[400], res[400];
  snprintf(in, sizeof in, "%s/enc.jsonl", st_tmp);
  snprintf(out, sizeof out, "%s/enc.out", st_tmp);
  snprintf(texts, sizeof texts, "%s/texts.json", st_tmp);
  snprintf(res, sizeof res, "%s/client.json", st_tmp);
  FILE *f = fopen(in, "w");
  json_t *arr = json_array();
  for (int i = 0; i < NT; i++) {
    json_t *j = json_pack("{s:i,s:s}", "id", i, "text", TEXTS[i]);
    char *s = json_dumps(j, JSON_COMPACT);
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(j);
    json_array_append_new(arr, json_string(TEXTS[i]));
  }
  fclose(f);
  json_dump_file(arr, texts, JSON_COMPACT);
  json_decref(arr);
  snprintf(cmd, sizeof cmd, "%s encode --model %s/model < %s > %s", st_bin(), st_tmp, in, out);
  REQUIRE(system(cmd) == 0);
  char *enc = st_slurp(out, NULL);
  double ref[NT][64];
  int dim = 0, row = 0;
  char *save = NULL;
  for (char *line = strtok_r(enc, "\n", &save); line && row < NT; line = strtok_r(NULL, "\n", &save), row++) {
    json_t *j = json_loads(line, 0, NULL);
    json_t *e = json_object_get(j, "embedding");
    dim = (int)json_array_size(e);
    for (int c = 0; c < dim && c < 64; c++) ref[row][c] = json_number_value(json_array_get(e, (size_t)c));
    json_decref(j);
  }
  free(enc);
  REQUIRE(row == NT && dim == 64);

  st_server s;
  REQUIRE(st_start(&s, "--api-key k-123") == 0);
  snprintf(cmd, sizeof cmd, "timeout 120 node %s/tests/serve/node/openai_client.js http://127.0.0.1:%d/v1 k-123 %s %s",
           src, s.port, texts, res);
  CHECK(system(cmd) == 0);
  json_t *r = json_load_file(res, 0, NULL);
  REQUIRE(r);
  const char *modes[] = {"single", "float", "base64", "default"};
  for (int m = 0; m < 4; m++) {
    json_t *vs = json_object_get(r, modes[m]);
    CHECKF(json_array_size(vs) == NT, "%s: %zu vectors", modes[m], json_array_size(vs));
    double worst = 0;
    for (int i = 0; i < NT && i < (int)json_array_size(vs); i++) {
      json_t *v = json_array_get(vs, (size_t)i);
      CHECK(json_array_size(v) == (size_t)dim);
      for (int c = 0; c < dim; c++) {
        double d = fabs(json_number_value(json_array_get(v, (size_t)c)) - ref[i][c]);
        if (d > worst) worst = d;
      }
    }
    CHECKF(worst <= 1e-6, "%s: max |diff| %g against astembed encode", modes[m], worst);
    printf("openai client, %s: max |diff| %.3g\n", modes[m], worst);
  }
  json_t *idx = json_object_get(r, "indices");
  for (int i = 0; i < NT; i++) CHECK(json_integer_value(json_array_get(idx, (size_t)i)) == i);
  CHECK(!strcmp(json_string_value(json_object_get(r, "model")), "astembed-test"));
  CHECK(json_integer_value(json_object_get(json_object_get(r, "usage"), "prompt_tokens")) > NT * 2);
  json_decref(r);
  /* a wrong key is refused through the client too */
  snprintf(cmd, sizeof cmd, "timeout 120 node %s/tests/serve/node/openai_client.js http://127.0.0.1:%d/v1 wrong %s %s.x "
           "2>/dev/null", src, s.port, texts, res);
  CHECK(system(cmd) != 0);
  CHECK(st_stop(&s, 30) == 0);
  st_cleanup();
  TEST_DONE();
}
