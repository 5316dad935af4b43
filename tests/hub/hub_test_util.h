/* Shared by the hub tests: the loopback hub (hubserver.py) as a child process, the
 * astembed CLI run with an environment, and file checks. Every path lives under g_tmp. */
#ifndef AE_HUB_TEST_UTIL_H
#define AE_HUB_TEST_UTIL_H
#include "common/common.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define REPO "test-org/tiny-model"
#define FOLDER "models--test-org--tiny-model"
#define TOKEN "hf_SECRETtoken123456"

static char g_tmp[256], g_bin[PATH_MAX], g_script[PATH_MAX], g_model[400];

typedef struct {
  pid_t pid;
  int port;
  char log[400];
} hub;

static int hub_start(hub *h, const char *fault) {
  static int n;
  char port_file[450];
  snprintf(h->log, sizeof h->log, "%s/log-%s-%d", g_tmp, fault, n);
  snprintf(port_file, sizeof port_file, "%s/port-%s-%d", g_tmp, fault, n++);
  h->pid = fork();
  if (h->pid == 0) {
    execl("/usr/bin/python3", "python3", g_script, "--model", g_model, "--repo", REPO, "--fault", fault,
          "--log", h->log, "--token", TOKEN, "--port-file", port_file, (char *)NULL);
    _exit(127);
  }
  h->port = 0;
  for (int i = 0; i < 600 && h->port <= 0; i++) {   /* up to 60 s on a loaded machine */
    FILE *f = fopen(port_file, "r");
    if (f) {
      if (fscanf(f, "%d", &h->port) != 1) h->port = 0;
      fclose(f);
    }
    if (h->port <= 0) {
      if (waitpid(h->pid, NULL, WNOHANG) == h->pid) break;
      usleep(100000);
    }
  }
  if (h->port <= 0) {
    fprintf(stderr, "hub server (%s) did not start\n", fault);
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    return -1;
  }
  return 0;
}

static void hub_stop(hub *h) {
  kill(h->pid, SIGTERM);
  waitpid(h->pid, NULL, 0);
}

/* Runs `env ENV PROGRAM ARGS` in g_tmp (PROGRAM: astembed when NULL), stdout and
 * stderr into g_tmp/TAG.out and .err; the exit status. */
static int run_prog(const char *tag, const char *env, const char *program, const char *args) {
  char cmd[16384];
  snprintf(cmd, sizeof cmd,
           "cd %s && env HF_TOKEN= HF_HUB_OFFLINE= HF_ENDPOINT=http://127.0.0.1:1 ASTEMBED_CACHE_DIR=%s/lc "
           "ASTEMBED_HUB_BACKOFF_MS=10 HF_HUB_DOWNLOAD_TIMEOUT=5 HF_HUB_ETAG_TIMEOUT=5 %s %s %s >%s.out 2>%s.err",
           g_tmp, g_tmp, env, program ? program : g_bin, args, tag, tag);
  int st = system(cmd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run(const char *tag, const char *env, const char *args) {
  return run_prog(tag, env, NULL, args);
}

/* The file's bytes, NUL-terminated (free), or NULL. */
static char *slurp(const char *path, size_t *len) {
  char *d = NULL;
  size_t n = 0;
  if (ae__read_file(path, &d, &n)) return NULL;
  char *copy = malloc(n + 1);
  if (copy) { memcpy(copy, d, n + 1); if (len) *len = n; }
  ae__free(d);
  return copy;
}

/* Occurrences of needle in the file g_tmp/name (or an absolute path). */
__attribute__((unused)) static int count_in(const char *name, const char *needle) {
  char p[700];
  if (name[0] == '/') snprintf(p, sizeof p, "%s", name);
  else snprintf(p, sizeof p, "%s/%s", g_tmp, name);
  char *d = slurp(p, NULL);
  int n = 0;
  for (char *q = d; q && (q = strstr(q, needle)); q++) n++;
  free(d);
  return n;
}

static void show(const char *tag) {
  char p[700];
  snprintf(p, sizeof p, "%s/%s.err", g_tmp, tag);
  char *d = slurp(p, NULL);
  fprintf(stderr, "--- %s stderr:\n%s---\n", tag, d ? d : "(none)");
  free(d);
}

/* Sets g_bin, g_script, g_tmp (a new folder) and g_model (a random-weight model of
 * all-MiniLM-L6-v2's tokenizer with a tiny 1-layer, 32-wide shape). 0 or -1. */
static int hub_test_setup(void) {
  const char *bd = getenv("AE_BUILD_DIR"), *sd = getenv("AE_SOURCE_DIR");
  char rel[600];
  snprintf(rel, sizeof rel, "%s/astembed", bd ? bd : "build");
  if (!realpath(rel, g_bin)) return -1;
  snprintf(rel, sizeof rel, "%s/tests/hub/hubserver.py", sd ? sd : ".");
  if (!realpath(rel, g_script)) return -1;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/ae-hub-XXXXXX");
  if (!mkdtemp(g_tmp)) return -1;
  snprintf(g_model, sizeof g_model, "%s/model", g_tmp);
  char args[1200];
  snprintf(args, sizeof args, "model init-random --like %s/examples/model-config/all-MiniLM-L6-v2 --out %s "
           "--layers 1 --hidden 32 --heads 2 --intermediate 64 --seed 7", sd ? sd : ".", g_model);
  return run("init", "", args) == 0 ? 0 : -1;
}

/* 1 when `encode --model SPEC` (with ENV) gives byte-identical vectors to `encode
 * --model` the plain model folder, on two texts. */
static int same_vectors(const char *tag, const char *env, const char *spec) {
  char in[700], args[1400], out[2][800], t[2][64];
  snprintf(in, sizeof in, "%s/in.jsonl", g_tmp);
  FILE *f = fopen(in, "w");
  if (!f) return 0;
  fputs("{\"id\":\"a\",\"text\":\"def parse(path): return the value\"}\n"
        "{\"id\":\"b\",\"text\":\"class LRUCache: evicts the least recently used entry\"}\n", f);
  fclose(f);
  for (int i = 0; i < 2; i++) {
    snprintf(t[i], sizeof t[i], "%s-%s", tag, i ? "dir" : "name");
    snprintf(args, sizeof args, "encode --model %s <%s", i ? g_model : spec, in);
    if (run(t[i], env, args) != 0) { show(t[i]); return 0; }
    snprintf(out[i], sizeof out[i], "%s/%s.out", g_tmp, t[i]);
  }
  char *va = slurp(out[0], NULL), *vb = slurp(out[1], NULL);
  int same = va && vb && strlen(va) > 100 && !strcmp(va, vb);
  free(va);
  free(vb);
  return same;
}

/* 1 when no astembed run reported a sanitizer error (ASan exits 1, like a failure the
 * test expects, so its report is looked for in every stderr). */
static int no_sanitizer_reports(void) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "grep -l -e 'Sanitizer' -e 'runtime error:' %s/*.err >&2", g_tmp);
  return system(cmd) != 0;
}

/* Removes g_tmp when everything passed, else says where it is. */
static void hub_test_cleanup(int failed) {
  if (failed) { fprintf(stderr, "left %s for inspection\n", g_tmp); return; }
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
  if (system(cmd)) fprintf(stderr, "could not remove %s\n", g_tmp);
}
#endif
