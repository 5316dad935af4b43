/* Helpers for the MCP server tests: a small real index (a random-weight model of
 * all-MiniLM-L6-v2's shape from examples/model-config, the first N example
 * annotations embedded by `astembed embed`), and `astembed mcp` as a child process
 * spoken to through pipes, one line at a time. */
#ifndef AE_MCP_TEST_UTIL_H
#define AE_MCP_TEST_UTIL_H
#include "astembed.h"
#include "test.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char mt_bin[512], mt_dir[64], mt_model[160], mt_db[160];

/* The astembed binary beside the test (SKIP when not built). */
static inline void mt_find_bin(void) {
  const char *bdir = getenv("AE_BUILD_DIR");
  snprintf(mt_bin, sizeof mt_bin, "%s/astembed", bdir ? bdir : "build");
  if (access(mt_bin, X_OK)) { printf("SKIP: %s not built\n", mt_bin); exit(77); }
  snprintf(mt_dir, sizeof mt_dir, "/tmp/ae_mcp_XXXXXX");
  if (!mkdtemp(mt_dir)) { perror("mkdtemp"); exit(1); }
}

static inline int mt_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int mt_sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Embeds annotation lines [from, to) of examples/annotations.jsonl into db. */
static inline int mt_embed(const char *db, int from, int to) {
  const char *src = getenv("AE_SOURCE_DIR");
  /* a fixture, not the code under test: under ThreadSanitizer the embed's OpenMP
   * teams (libgomp is not instrumented) would report races that are not there */
  return mt_sh("sed -n '%d,%dp' '%s/examples/annotations.jsonl' | TSAN_OPTIONS=report_bugs=0 '%s' embed --input - --db '%s' --model '%s'"
               " --no-progress --threads 2 --log-level error >/dev/null 2>>'%s/embed.log'",
               from + 1, to, src ? src : ".", mt_bin, db, mt_model, mt_dir);
}

/* mt_model and mt_db: the model folder and an index of the first n annotations. */
static inline void mt_build_index(int n) {
  const char *src = getenv("AE_SOURCE_DIR");
  char like[600];
  snprintf(like, sizeof like, "%s/examples/model-config/all-MiniLM-L6-v2", src ? src : ".");
  snprintf(mt_model, sizeof mt_model, "%s/model", mt_dir);
  snprintf(mt_db, sizeof mt_db, "%s/index.db", mt_dir);
  int rc = ae_model_init_random(like, mt_model, 7, "F32");
  if (rc) { fprintf(stderr, "init_random: %s\n", ae_last_error()); exit(1); }
  if (mt_embed(mt_db, 0, n)) { fprintf(stderr, "embed failed (see %s/embed.log)\n", mt_dir); exit(1); }
}

typedef struct {
  pid_t pid;
  int in, out;       /* our ends: write requests to in, read answers from out */
  char *buf;         /* unread bytes from out */
  size_t len, cap;
} mt_server;

/* Starts `astembed mcp ARGS...` (NULL-terminated). stderr goes to mt_dir/server.log. */
static inline mt_server mt_start(const char *const *args) {
  int to[2], from[2];
  if (pipe(to) || pipe(from)) { perror("pipe"); exit(1); }
  mt_server s = {0};
  s.pid = fork();
  if (s.pid == 0) {
    char log[200];
    snprintf(log, sizeof log, "%s/server.log", mt_dir);
    int e = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    dup2(to[0], 0);
    dup2(from[1], 1);
    if (e >= 0) dup2(e, 2);
    close(to[1]);
    close(from[0]);
    const char *argv[32] = {mt_bin, "mcp"};
    int n = 2;
    for (int i = 0; args && args[i] && n < 31; i++) argv[n++] = args[i];
    argv[n] = NULL;
    execv(mt_bin, (char **)argv);
    _exit(127);
  }
  close(to[0]);
  close(from[1]);
  s.in = to[1];
  s.out = from[0];
  signal(SIGPIPE, SIG_IGN);
  return s;
}

static inline int mt_write(mt_server *s, const char *data, size_t n) {
  while (n) {
    ssize_t k = write(s->in, data, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return -1;
    data += k;
    n -= (size_t)k;
  }
  return 0;
}

static inline int mt_send(mt_server *s, const char *line) {
  return mt_write(s, line, strlen(line)) || mt_write(s, "\n", 1) ? -1 : 0;
}

/* The next answer line as JSON, or NULL after timeout_ms without one (or at EOF). */
static inline json_t *mt_recv(mt_server *s, int timeout_ms) {
  for (;;) {
    char *nl = s->len ? memchr(s->buf, '\n', s->len) : NULL;
    if (nl) {
      size_t n = (size_t)(nl - s->buf);
      json_error_t e;
      json_t *j = json_loadb(s->buf, n, 0, &e);
      if (!j) fprintf(stderr, "server wrote a line that is not JSON: %.*s\n", (int)(n > 300 ? 300 : n), s->buf);
      memmove(s->buf, nl + 1, s->len - n - 1);
      s->len -= n + 1;
      return j ? j : json_string("<not json>");
    }
    struct pollfd p = {s->out, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r <= 0) return NULL;
    if (s->cap - s->len < 65536) {
      s->cap = s->cap ? s->cap * 2 : 1 << 17;
      s->buf = realloc(s->buf, s->cap);
    }
    ssize_t k = read(s->out, s->buf + s->len, s->cap - s->len);
    if (k <= 0) return NULL;
    s->len += (size_t)k;
  }
}

/* Sends a request and waits for the answer with the same id (other answers are
 * dropped, so use this only when nothing else is in flight). */
static inline json_t *mt_call(mt_server *s, const char *line, int timeout_ms) {
  json_t *req = json_loads(line, 0, NULL);
  json_t *id = req ? json_object_get(req, "id") : NULL;
  mt_send(s, line);
  for (;;) {
    json_t *r = mt_recv(s, timeout_ms);
    if (!r) { json_decref(req); return NULL; }
    if (!id || json_equal(json_object_get(r, "id"), id)) { json_decref(req); return r; }
    json_decref(r);
  }
}

/* Closes stdin and waits for the exit status (-1 when it had to be killed). */
static inline int mt_stop(mt_server *s) {
  close(s->in);
  int st = 0;
  for (int i = 0; i < 600; i++) {
    if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
      close(s->out);
      free(s->buf);
      return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    usleep(50000);
  }
  kill(s->pid, SIGKILL);
  waitpid(s->pid, &st, 0);
  close(s->out);
  free(s->buf);
  return -1;
}

/* VmRSS of a process in kB (-1 when unreadable). */
static inline long mt_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
  if (f) fclose(f);
  return kb;
}

static inline long mt_code(json_t *r) {
  return (long)json_integer_value(json_object_get(json_object_get(r, "error"), "code"));
}
#endif
