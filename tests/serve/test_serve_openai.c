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
  char texts[400], res[400];
  snprintf(texts, sizeof texts, "%s/texts.json", st_tmp);
  snprintf(res, sizeof res, "%s/client.json", st_tmp);
  json_t *arr = json_array();
  for (int i = 0; i < NT; i++) json_array_append_new(arr, json_string(TEXTS[i]));
  json_dump_file(arr, texts, JSON_COMPACT);
  json_decref(arr);
  int dim = 0;
  float *ref = st_encode(TEXTS, NT, &dim);
  REQUIRE(ref && dim == 64);

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
        double d = fabs(json_number_value(json_array_get(v, (size_t)c)) - ref[i * dim + c]);
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
  free(ref);
  st_cleanup();
  TEST_DONE();
}
