// ctest-labels: tokenizer;cli
// ctest-timeout: 120
/* End to end: build/astembed tokenize on JSONL with good and bad lines, the exit
 * status, --max-length, the default max length from the model folder, usage errors. */
#define _GNU_SOURCE
#include "test.h"

#include <jansson.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_bin[4200], g_tmp[4096], g_tiny[4200];

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  REQUIRE(f);
  fputs(text, f);
  fclose(f);
}

/* Runs astembed with args, stdin from `input`; returns the exit status and the
 * stdout lines (caller frees with json_decref on each). */
static int run(const char *args, const char *input, json_t **lines, size_t *n_lines, size_t cap) {
  char in[4200], out[4200], cmd[32768];
  snprintf(in, sizeof in, "%s/in.jsonl", g_tmp);
  snprintf(out, sizeof out, "%s/out.jsonl", g_tmp);
  write_file(in, input);
  snprintf(cmd, sizeof cmd, "env -u ASTEMBED_MODEL '%s' %s < '%s' > '%s' 2>'%s/err.txt'", g_bin,
           args, in, out, g_tmp);
  int st = system(cmd);
  int rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  *n_lines = 0;
  FILE *f = fopen(out, "r");
  char *line = NULL;
  size_t lcap = 0;
  while (f && getline(&line, &lcap, f) > 0 && *n_lines < cap) {
    json_error_t err;
    lines[(*n_lines)++] = json_loads(line, 0, &err);
  }
  free(line);
  if (f) fclose(f);
  return rc;
}

static void free_lines(json_t **lines, size_t n) {
  for (size_t i = 0; i < n; i++) json_decref(lines[i]);
}

static size_t ids_len(json_t *line) { return json_array_size(json_object_get(line, "ids")); }
static long id_at(json_t *line, size_t i) {
  return (long)json_integer_value(json_array_get(json_object_get(line, "ids"), i));
}

static void test_lines(void) {
  json_t *lines[16];
  size_t n;
  char args[8400];
  snprintf(args, sizeof args, "tokenize --model '%s'", g_tiny);
  int rc = run(args,
               "{\"text\": \"hello world\"}\n"
               "\n"
               "{bad json\n"
               "{\"id\": 3}\n"
               "[1, 2]\n"
               "{\"text\": \"a[MASK]b\"}\n"
               "{\"text\": 7}\n"
               "{\"text\": \"\"}\n",
               lines, &n, 16);
  CHECK(rc == 1);
  CHECK(n == 7);
  if (n == 7) {
    CHECK(ids_len(lines[0]) == 4 && id_at(lines[0], 0) == 2 && id_at(lines[0], 1) == 11 &&
          id_at(lines[0], 2) == 12 && id_at(lines[0], 3) == 3);
    const char *e = json_string_value(json_object_get(lines[1], "error"));
    CHECK(e && strstr(e, "stdin:3") && strstr(e, "invalid JSON"));
    e = json_string_value(json_object_get(lines[2], "error"));
    CHECK(e && strstr(e, "stdin:4") && strstr(e, "\"text\""));
    CHECK(json_object_get(lines[3], "error") != NULL);
    CHECK(ids_len(lines[4]) == 5 && id_at(lines[4], 2) == 4);
    CHECK(json_object_get(lines[5], "error") != NULL);
    CHECK(ids_len(lines[6]) == 2);
  }
  free_lines(lines, n);

  rc = run(args, "{\"text\": \"a a a a a\"}\n{\"text\": \"b\"}\n", lines, &n, 16);
  CHECK(rc == 0 && n == 2 && ids_len(lines[0]) == 7 && ids_len(lines[1]) == 3);
  free_lines(lines, n);
  snprintf(args, sizeof args, "tokenize --model '%s' --max-length 4", g_tiny);
  rc = run(args, "{\"text\": \"a a a a a\"}\n{\"text\": \"b\"}\n", lines, &n, 16);
  CHECK(rc == 0 && n == 2 && ids_len(lines[0]) == 4 && id_at(lines[0], 3) == 3 &&
        ids_len(lines[1]) == 3);
  free_lines(lines, n);
  snprintf(args, sizeof args, "tokenize --model '%s' --max-length 1", g_tiny);
  rc = run(args, "{\"text\": \"a\"}\n", lines, &n, 16);
  CHECK(rc == 1 && n == 1 && json_object_get(lines[0], "error") != NULL);
  free_lines(lines, n);
}

/* Default truncation: sentence_bert_config.json, else tokenizer_config.json's
 * model_max_length, else config.json's max_position_embeddings (which also bounds). */
static void test_default_max_length(void) {
  char dir[4300], path[4400], args[8400];
  snprintf(dir, sizeof dir, "%s/model", g_tmp);
  mkdir(dir, 0700);
  char *data;
  size_t len;
  snprintf(path, sizeof path, "%s/tokenizer.json", g_tiny);
  FILE *f = fopen(path, "r");
  REQUIRE(f);
  data = malloc(1 << 20);
  len = fread(data, 1, 1 << 20, f);
  fclose(f);
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  f = fopen(path, "w");
  fwrite(data, 1, len, f);
  fclose(f);
  free(data);
  const char *input = "{\"text\": \"a a a a a a a a a a a a a a a a a a a a\"}\n"; /* 20 */
  json_t *lines[4];
  size_t n;
  snprintf(args, sizeof args, "tokenize --model '%s'", dir);
  int rc = run(args, input, lines, &n, 4);
  CHECK(rc == 0 && n == 1 && ids_len(lines[0]) == 22); /* nothing says a limit */
  free_lines(lines, n);
  snprintf(path, sizeof path, "%s/config.json", dir);
  write_file(path, "{\"max_position_embeddings\": 12}");
  rc = run(args, input, lines, &n, 4);
  CHECK(rc == 0 && n == 1 && ids_len(lines[0]) == 12);
  free_lines(lines, n);
  snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
  write_file(path, "{\"model_max_length\": 10}");
  rc = run(args, input, lines, &n, 4);
  CHECK(rc == 0 && n == 1 && ids_len(lines[0]) == 10);
  free_lines(lines, n);
  snprintf(path, sizeof path, "%s/sentence_bert_config.json", dir);
  write_file(path, "{\"max_seq_length\": 8}");
  rc = run(args, input, lines, &n, 4);
  CHECK(rc == 0 && n == 1 && ids_len(lines[0]) == 8);
  free_lines(lines, n);
  write_file(path, "{\"max_seq_length\": 80}"); /* bounded by the 12 positions */
  rc = run(args, input, lines, &n, 4);
  CHECK(rc == 0 && n == 1 && ids_len(lines[0]) == 12);
  free_lines(lines, n);
  snprintf(args, sizeof args, "tokenize --model '%s' --max-length 0", dir);
  rc = run(args, input, lines, &n, 4);
  CHECK(rc == 0 && n == 1 && ids_len(lines[0]) == 22);
  free_lines(lines, n);
}

static void test_usage(void) {
  json_t *lines[4];
  size_t n;
  CHECK(run("tokenize --help", "", lines, &n, 4) == 0);
  CHECK(run("tokenize", "", lines, &n, 4) == 2);               /* no model */
  CHECK(run("tokenize --bogus", "", lines, &n, 4) == 2);
  char args[9000];
  snprintf(args, sizeof args, "tokenize --model '%s' --max-length -3", g_tiny);
  CHECK(run(args, "", lines, &n, 4) == 2);
  CHECK(run("tokenize --model /nonexistent/model", "{\"text\":\"a\"}\n", lines, &n, 4) == 1);
  char err[4400];
  snprintf(err, sizeof err, "%s/err.txt", g_tmp);
  FILE *f = fopen(err, "r");
  char buf[1024] = "";
  if (f) { size_t k = fread(buf, 1, sizeof buf - 1, f); buf[k] = 0; fclose(f); }
  CHECK(strstr(buf, "/nonexistent/model") != NULL);
  snprintf(args, sizeof args, "ASTEMBED_MODEL='%s' '%s' tokenize < /dev/null > /dev/null", g_tiny,
           g_bin);
  int st = system(args);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
  /* the CLI's load cache would default to ~/.cache/astembed: not this test's business */
  setenv("ASTEMBED_CACHE_DIR", "off", 1);
  const char *build = getenv("AE_BUILD_DIR");
  const char *src = getenv("AE_SOURCE_DIR");
  if (!build) {
    TEST_SKIP("AE_BUILD_DIR not set (run through ctest)");
  }
  snprintf(g_bin, sizeof g_bin, "%s/astembed", build);
  snprintf(g_tiny, sizeof g_tiny, "%s/tests/tokenizer/data/tiny", src ? src : ".");
  if (access(g_bin, X_OK)) {
    TEST_SKIP("%s not built", g_bin);
  }
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ae-test-tokcli-XXXXXX");
  REQUIRE(mkdtemp(g_tmp));
  test_lines();
  test_default_max_length();
  test_usage();
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_tmp);
  TEST_DONE();
}
