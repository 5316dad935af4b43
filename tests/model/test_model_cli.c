/* astembed model init-random / info: exit codes (0 ok, 1 failure, 2 usage), the
 * folder written, and info's text and --json output. */
#include "model_test_util.h"
#include "test.h"
#include <dirent.h>
#include <sys/wait.h>

static char cli[4096];

/* Runs "astembed ARGS", capturing stdout into out (may be NULL); returns the exit code. */
static int run(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int run(char *out, size_t cap, const char *fmt, ...) {
  char args[8192], cmd[12400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(args, sizeof args, fmt, ap);
  va_end(ap);
  snprintf(cmd, sizeof cmd, "%s %s 2>/dev/null", cli, args);
  FILE *p = popen(cmd, "r");
  if (!p) return -1;
  size_t n = 0;
  char sink[4096];
  while (1) {
    size_t r = out ? fread(out + n, 1, cap - 1 - n, p) : fread(sink, 1, sizeof sink, p);
    if (!r) break;
    if (out) n += r;
  }
  if (out) out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Entries of dir (not . and ..). */
static int entries(const char *dir) {
  DIR *d = opendir(dir);
  int n = 0;
  for (struct dirent *e; d && (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
  if (d) closedir(d);
  return n;
}

static int fingerprint_of(const char *dir, char fp[33]) {
  ae__bert_model *m;
  if (ae__bert_load(dir, 0, &m)) return 0;
  for (int i = 0; i < 16; i++) snprintf(fp + 2 * i, 3, "%02x", m->fingerprint[i]);
  ae__bert_free(m);
  return 1;
}

/* init-random writes a temporary folder beside --out and renames it into place: a
 * failure half way (a malformed modules.json, read after config.json is written) leaves
 * nothing, an existing model folder stays as it was, a folder that holds no model is
 * refused; a success replaces the old model whole. out holds a model. */
static void placement(const char *like, const char *out) {
  char *bad = tmp_dir(), *parent = tmp_dir(), target[4200], now[33], fp[33];
  REQUIRE(fingerprint_of(out, fp));
  write_text(bad, "config.json", tiny_config);
  write_text(bad, "modules.json", "{not json");
  snprintf(target, sizeof target, "%s/new/model", parent);
  CHECK(run(NULL, 0, "model init-random --like %s --out %s", bad, target) == 1);
  snprintf(target, sizeof target, "%s/new", parent);
  CHECKF(entries(target) == 0, "%d entries left in %s after a failed init-random", entries(target), target);
  CHECK(run(NULL, 0, "model init-random --like %s --out %s --seed 9", bad, out) == 1);
  CHECK(fingerprint_of(out, now) && !strcmp(now, fp));          /* the old model, untouched */
  CHECK(entries(parent) == 1);
  write_text(parent, "notes.txt", "mine");                         /* no config.json: refused */
  CHECK(run(NULL, 0, "model init-random --like %s --out %s", like, parent) == 1);
  CHECK(entries(parent) == 2);
  CHECK(run(NULL, 0, "model init-random --like %s --out %s --seed 9", like, out) == 0);
  CHECK(fingerprint_of(out, now) && strcmp(now, fp) != 0);         /* replaced whole */
  char cmd[8600];
  snprintf(cmd, sizeof cmd, "ls -d %s.tmp.* >/dev/null 2>&1", out);
  CHECK(system(cmd) != 0);                                         /* no temporary left */
  rm_rf(bad); rm_rf(parent);
  free(bad); free(parent);
}

int main(void) {
  /* the CLI's load cache would default to ~/.cache/astembed: not this test's business */
  setenv("ASTEMBED_CACHE_DIR", "off", 1);
  const char *bd = getenv("AE_BUILD_DIR");
  snprintf(cli, sizeof cli, "%s/astembed", bd ? bd : "build");
  if (access(cli, X_OK)) TEST_SKIP("%s not built", cli);
  char *like = tmp_dir(), *out = tmp_dir();
  write_text(like, "config.json", tiny_config);
  static char buf[1 << 16];
  CHECK(run(buf, sizeof buf, "model --help") == 0 && strstr(buf, "init-random"));
  CHECK(run(NULL, 0, "model") == 2);
  CHECK(run(NULL, 0, "model frobnicate") == 2);
  CHECK(run(NULL, 0, "model init-random --like %s", like) == 2);
  CHECK(run(NULL, 0, "model init-random --like %s --out %s --dtype F8", like, out) == 2);
  CHECK(run(NULL, 0, "model init-random --like %s --out %s --layers x", like, out) == 2);
  CHECK(run(NULL, 0, "model init-random --like %s --out %s --pooling sum", like, out) == 2);
  CHECK(run(NULL, 0, "model init-random --like %s/nope --out %s", like, out) == 1);
  CHECK(run(NULL, 0, "model init-random --like %s --out %s --heads 5", like, out) == 1);
  CHECK(run(NULL, 0, "model info --model %s/nope", like) == 1);
  CHECK(run(NULL, 0, "model info") == 2 || getenv("ASTEMBED_MODEL"));
  CHECK(run(NULL, 0, "model init-random --like %s --out %s --seed 3 --dtype F16 --layers 1 --hidden 16 "
            "--heads 2 --intermediate 24 --pooling max --normalize --max-seq-length 12 --bert-prefix "
            "--act relu", like, out) == 0);
  CHECK(run(buf, sizeof buf, "model info --model %s", out) == 0);
  CHECK(strstr(buf, "1 layers, hidden 16, 2 heads, intermediate 24, relu") != NULL);
  CHECK(strstr(buf, "F16 (bert. prefix)") && strstr(buf, "max, L2-normalised") && strstr(buf, "12 tokens"));
  CHECK(run(buf, sizeof buf, "model info --model %s --json --max-length 20", out) == 0);
  json_t *j = json_loads(buf, 0, NULL);
  REQUIRE(j);
  CHECK(json_integer_value(json_object_get(j, "hidden_size")) == 16);
  CHECK(json_integer_value(json_object_get(j, "max_length")) == 20);
  CHECK(!strcmp(json_string_value(json_object_get(j, "pooling")), "max"));
  CHECK(json_is_true(json_object_get(j, "normalize")));
  CHECK(!strcmp(json_string_value(json_object_get(j, "dtype")), "F16"));
  CHECK(strlen(json_string_value(json_object_get(j, "fingerprint"))) == 32);
  ae__bert_model *m;
  CHECK_OK(ae__bert_load(out, 20, &m));
  CHECK(json_integer_value(json_object_get(j, "parameters")) == m->n_params);
  char fp[33];
  for (int i = 0; i < 16; i++) snprintf(fp + 2 * i, 3, "%02x", m->fingerprint[i]);
  CHECK(!strcmp(fp, json_string_value(json_object_get(j, "fingerprint"))));
  ae__bert_free(m);
  json_decref(j);
  CHECK(run(NULL, 0, "model info --model %s --max-length 41", out) == 1);
  placement(like, out);
  rm_rf(like); rm_rf(out);
  free(like); free(out);
  TEST_DONE();
}
