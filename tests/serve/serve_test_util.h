/* Helpers of the astembed serve tests: a small random-weight model, the built
 * astembed binary started as a server on a random 127.0.0.1 port, curl (the command)
 * against it, bounded waits. Every request goes to 127.0.0.1 only. */
#ifndef AE_SERVE_TEST_UTIL_H
#define AE_SERVE_TEST_UTIL_H
#define _GNU_SOURCE
#include "model/model.h"
#include "test.h"

#include <jansson.h>

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char st_tmp[256];

/* Under ThreadSanitizer the encoder runs on one thread: libgomp is not instrumented,
 * so its thread team would be reported as racing; the server's own threads (HTTP,
 * batcher) are what the TSan pass checks. */
#if defined(__SANITIZE_THREAD__)
#define ST_THREADS " --threads 1"
#else
#define ST_THREADS ""
#endif

static const char *st_bin(void) {
  static char b[4200];
  const char *d = getenv("AE_BUILD_DIR");
  snprintf(b, sizeof b, "%s/astembed", d ? d : "build");
  return b;
}

/* A 2-layer, 64-wide random-weight model of MiniLM's tokenizer, in st_tmp/model.
 * Skips (exit 77) without ../shared or curl. */
static void st_setup(const char *tag) {
  setenv("ASTEMBED_CACHE_DIR", "off", 1);
#if defined(__SANITIZE_THREAD__)
  setenv("OMP_NUM_THREADS", "1", 1);   /* see ST_THREADS */
#endif
  const char *sh = test_shared_dir();
  if (!sh) { printf("SKIP: ../shared missing (needs the MiniLM tokenizer files)\n"); exit(77); }
  if (access("/usr/bin/curl", X_OK)) { printf("SKIP: /usr/bin/curl missing\n"); exit(77); }
  snprintf(st_tmp, sizeof st_tmp, "/tmp/ae-serve-%s-XXXXXX", tag);
  if (!mkdtemp(st_tmp)) { perror("mkdtemp"); exit(1); }
  char like[4200], model[4200];
  snprintf(like, sizeof like, "%s/models/all-MiniLM-L6-v2", sh);
  snprintf(model, sizeof model, "%s/model", st_tmp);
  ae_model_random_options o;
  ae_model_random_options_default(&o);
  o.layers = 2; o.hidden = 64; o.heads = 4; o.intermediate = 128; o.seed = 7;
  if (ae_model_init_random_opts(like, model, &o)) { fprintf(stderr, "init-random: %s\n", ae_last_error()); exit(1); }
}

static char *st_slurp(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long len = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *b = malloc((size_t)len + 1);
  size_t got = fread(b, 1, (size_t)len, f);
  b[got] = 0;
  if (n) *n = got;
  fclose(f);
  return b;
}

typedef struct { pid_t pid; int port; char log[300]; } st_server;

/* Starts `astembed serve --model st_tmp/model --port 0 EXTRA...` and waits (at most
 * 60 s) for its "listening on" line. */
static int st_start(st_server *s, const char *extra) {
  static int n;
  snprintf(s->log, sizeof s->log, "%s/server%d.log", st_tmp, n++);
  char cmd[8192];
  snprintf(cmd, sizeof cmd, "exec %s serve --model %s/model --port 0" ST_THREADS " %s 2>%s", st_bin(), st_tmp,
           extra ? extra : "", s->log);
  s->pid = fork();
  if (s->pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
  s->port = 0;
  for (int i = 0; i < 600 && !s->port; i++) {
    usleep(100000);
    char *log = st_slurp(s->log, NULL);
    const char *p = log ? strstr(log, "127.0.0.1:") : NULL;
    if (p) s->port = atoi(p + 10);
    free(log);
    int st;
    if (!s->port && waitpid(s->pid, &st, WNOHANG) == s->pid) { s->pid = 0; break; }
  }
  if (!s->port) {
    char *log = st_slurp(s->log, NULL);
    fprintf(stderr, "server did not start: %s\n", log ? log : "");
    free(log);
    return -1;
  }
  return 0;
}

/* Sends SIGTERM and waits at most secs for the exit; returns the exit status, or -1
 * (after SIGKILL) when it hung, -2 when it died of a signal. */
static int st_stop(st_server *s, int secs) {
  if (s->pid <= 0) return -3;
  kill(s->pid, SIGTERM);
  for (int i = 0; i < secs * 20; i++) {
    int st;
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      s->pid = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : -2;
    }
    usleep(50000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, NULL, 0);
  s->pid = 0;
  return -1;
}

/* curl: method, path, body (NULL = none; "@FILE" = a file), extra curl arguments.
 * The body lands in *out (malloc'd; may be NULL), the headers in *hdrs (may be NULL).
 * Returns the HTTP status (0 when no answer came). At most 60 s. */
static inline int st_curl(const st_server *s, const char *method, const char *path, const char *body, const char *extra,
                   char **out, char **hdrs) {
  static int n;
  char bodyf[400], outf[400], hdrf[400], codef[400], cmd[9000];
  int k = n++;
  snprintf(bodyf, sizeof bodyf, "%s/req%d.json", st_tmp, k);
  snprintf(outf, sizeof outf, "%s/resp%d", st_tmp, k);
  snprintf(hdrf, sizeof hdrf, "%s/hdr%d", st_tmp, k);
  snprintf(codef, sizeof codef, "%s/code%d", st_tmp, k);
  const char *data = "";
  char dataarg[500] = "";
  if (body && body[0] == '@') {
    snprintf(dataarg, sizeof dataarg, "--data-binary %s", body);
    data = dataarg;
  } else if (body) {
    FILE *f = fopen(bodyf, "wb");
    fputs(body, f);
    fclose(f);
    snprintf(dataarg, sizeof dataarg, "--data-binary @%s", bodyf);
    data = dataarg;
  }
  snprintf(cmd, sizeof cmd, "/usr/bin/curl -s -m 60 -X %s -H 'Content-Type: application/json' %s %s -D %s -o %s "
           "-w '%%{http_code}' http://127.0.0.1:%d%s > %s", method, data, extra ? extra : "", hdrf, outf, s->port,
           path, codef);
  if (system(cmd) < 0) return 0;
  char *code = st_slurp(codef, NULL);
  int c = code ? atoi(code) : 0;
  free(code);
  if (out) *out = st_slurp(outf, NULL);
  if (hdrs) *hdrs = st_slurp(hdrf, NULL);
  return c;
}

/* `astembed encode` on n texts: the vectors (malloc'd, n x *dim), or NULL. */
static inline float *st_encode(const char *const *texts, int n, int *dim) {
  char in[400], out[400], cmd[2000];
  snprintf(in, sizeof in, "%s/enc.jsonl", st_tmp);
  snprintf(out, sizeof out, "%s/enc.out", st_tmp);
  FILE *f = fopen(in, "w");
  for (int i = 0; i < n; i++) {
    json_t *j = json_pack("{s:i,s:s}", "id", i, "text", texts[i]);
    char *s = json_dumps(j, JSON_COMPACT);
    fprintf(f, "%s\n", s);
    free(s);
    json_decref(j);
  }
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s encode --model %s/model" ST_THREADS " < %s > %s", st_bin(), st_tmp, in, out);
  if (system(cmd)) return NULL;
  char *text = st_slurp(out, NULL), *save = NULL;
  float *v = NULL;
  int row = 0;
  for (char *line = strtok_r(text, "\n", &save); line && row < n; line = strtok_r(NULL, "\n", &save), row++) {
    json_t *j = json_loads(line, 0, NULL);
    json_t *e = json_object_get(j, "embedding");
    *dim = (int)json_array_size(e);
    if (!v) v = calloc((size_t)n * (size_t)*dim, sizeof *v);
    for (int c = 0; c < *dim; c++) v[row * *dim + c] = (float)json_number_value(json_array_get(e, (size_t)c));
    json_decref(j);
  }
  free(text);
  if (row != n) { free(v); return NULL; }
  return v;
}

/* Resident memory of a process in bytes (/proc/PID/statm). */
static inline long st_rss(pid_t pid) {
  char p[64];
  snprintf(p, sizeof p, "/proc/%d/statm", (int)pid);
  FILE *f = fopen(p, "r");
  long size = 0, res = 0;
  if (f) { if (fscanf(f, "%ld %ld", &size, &res) != 2) res = 0; fclose(f); }
  return res * sysconf(_SC_PAGESIZE);
}

static void st_cleanup(void) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", st_tmp);
  if (!getenv("AE_TEST_KEEP") && system(cmd)) {}
}
#endif
