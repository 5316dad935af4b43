/* Tokenizer throughput on real code: the CPython stdlib annotations of
 * ../shared/testdata (text = signature + " " + summary + " " + sourceSnippet), tokenized
 * with the MiniLM tokenizer. Prints MB/s and tokens/s per configuration as the median
 * of several runs, for one thread and for all CPUs sharing one tokenizer.
 *
 * usage: bench_tokenizer [--runs N] [--model DIR] [--data FILE] [--limit N] */
#include "common/common.h"
#include "common/jsonl.h"
#include "tokenizer/tokenizer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
  char **texts;
  size_t *lens;
  size_t n;
  size_t bytes;
} corpus;

static int load_corpus(const char *path, size_t limit, corpus *c) {
  FILE *f = fopen(path, "r");
  if (!f) { fprintf(stderr, "bench_tokenizer: cannot open %s\n", path); return -1; }
  ae_jsonl *r;
  if (ae_jsonl_open(f, path, &r)) { fclose(f); return -1; }
  json_t *v;
  size_t line, cap = 0;
  int rc;
  memset(c, 0, sizeof *c);
  while ((rc = ae_jsonl_next(r, &v, &line)) != 1 && c->n < limit) {
    if (rc) continue;
    const char *parts[3] = {json_string_value(json_object_get(v, "signature")),
                            json_string_value(json_object_get(v, "summary")),
                            json_string_value(json_object_get(v, "sourceSnippet"))};
    size_t len = 0;
    for (int i = 0; i < 3; i++) len += (parts[i] ? strlen(parts[i]) : 0) + 1;
    char *t = malloc(len + 1), *p = t;
    for (int i = 0; i < 3; i++) {
      if (i) *p++ = ' ';
      size_t k = parts[i] ? strlen(parts[i]) : 0;
      memcpy(p, parts[i] ? parts[i] : "", k);
      p += k;
    }
    *p = 0;
    if (c->n == cap) {
      cap = cap ? cap * 2 : 1024;
      c->texts = realloc(c->texts, cap * sizeof *c->texts);
      c->lens = realloc(c->lens, cap * sizeof *c->lens);
    }
    c->texts[c->n] = t;
    c->lens[c->n++] = (size_t)(p - t);
    c->bytes += (size_t)(p - t);
    json_decref(v);
  }
  ae_jsonl_close(r);
  fclose(f);
  return 0;
}

typedef struct {
  const ae_tokenizer *tok;
  const corpus *c;
  size_t first, step, max_len;
  size_t tokens;
} job;

static void *run_job(void *arg) {
  job *j = arg;
  j->tokens = 0;
  for (size_t i = j->first; i < j->c->n; i += j->step) {
    int32_t *ids;
    size_t n;
    if (ae_tokenizer_encode(j->tok, j->c->texts[i], j->c->lens[i], j->max_len, &ids, &n, NULL)) {
      fprintf(stderr, "encode failed: %s\n", ae_last_error());
      exit(1);
    }
    j->tokens += n;
    ae_free(ids);
  }
  return NULL;
}

static double cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One pass over the corpus with `threads` threads; returns wall seconds, sets *tokens
 * and *cpu (process CPU seconds: on a shared machine the wall clock also counts time
 * the threads spent waiting for a core). */
static double one_pass(const ae_tokenizer *tok, const corpus *c, int threads, size_t max_len,
                       size_t *tokens, double *cpu) {
  job jobs[64];
  pthread_t th[64];
  double c0 = cpu_seconds();
  double t0 = ae__now_ms();
  for (int i = 0; i < threads; i++) {
    jobs[i] = (job){tok, c, (size_t)i, (size_t)threads, max_len, 0};
    if (threads > 1) pthread_create(&th[i], NULL, run_job, &jobs[i]);
    else run_job(&jobs[i]);
  }
  *tokens = 0;
  for (int i = 0; i < threads; i++) {
    if (threads > 1) pthread_join(th[i], NULL);
    *tokens += jobs[i].tokens;
  }
  double wall = (ae__now_ms() - t0) / 1e3;
  *cpu = cpu_seconds() - c0;
  return wall;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *src = getenv("AE_SOURCE_DIR");
  char model[4096], data[4096];
  snprintf(model, sizeof model, "%s/../shared/models/all-MiniLM-L6-v2", src ? src : ".");
  snprintf(data, sizeof data, "%s/../shared/testdata/cpython-stdlib-annotations.jsonl",
           src ? src : ".");
  int runs = 7;
  size_t limit = (size_t)-1;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--model")) snprintf(model, sizeof model, "%s", argv[i + 1]);
    else if (!strcmp(argv[i], "--data")) snprintf(data, sizeof data, "%s", argv[i + 1]);
    else if (!strcmp(argv[i], "--limit")) limit = (size_t)atol(argv[i + 1]);
  }
  if (runs < 1 || runs > 99) runs = 7;
  ae_tokenizer *tok;
  double t0 = ae__now_ms();
  if (ae_tokenizer_load(model, &tok)) {
    fprintf(stderr, "bench_tokenizer: %s\n", ae_last_error());
    return 1;
  }
  double load_ms = ae__now_ms() - t0;
  corpus c;
  if (load_corpus(data, limit, &c)) return 1;
  int cpus = ae__cpu_count() > 64 ? 64 : ae__cpu_count();
  printf("tokenizer: %s (loaded in %.1f ms)\n", model, load_ms);
  printf("corpus: %zu texts, %.2f MB (signature + summary + sourceSnippet)\n", c.n,
         (double)c.bytes / 1e6);
  printf("median of %d runs\n\n", runs);
  printf("MB/s, texts/s and tokens/s use the wall clock; \"MB/cpu-s\" divides by the CPU\n"
         "time all threads used (speed per busy core, robust on a shared machine).\n\n");
  printf("%-8s %-10s %10s %10s %12s %14s %12s\n", "threads", "max_len", "MB/s", "MB/cpu-s",
         "texts/s", "tokens/s", "tokens");
  size_t max_lens[2] = {0, 256};
  int thread_counts[2] = {1, cpus};
  for (int ti = 0; ti < (cpus > 1 ? 2 : 1); ti++) {
    for (int mi = 0; mi < 2; mi++) {
      double secs[99], cpus[99];
      size_t tokens = 0;
      one_pass(tok, &c, thread_counts[ti], max_lens[mi], &tokens, &cpus[0]); /* warm-up */
      for (int r = 0; r < runs; r++)
        secs[r] = one_pass(tok, &c, thread_counts[ti], max_lens[mi], &tokens, &cpus[r]);
      qsort(secs, (size_t)runs, sizeof *secs, cmp_double);
      qsort(cpus, (size_t)runs, sizeof *cpus, cmp_double);
      double s = secs[runs / 2], cs = cpus[runs / 2];
      char ml[16];
      snprintf(ml, sizeof ml, "%zu", max_lens[mi]);
      printf("%-8d %-10s %10.1f %10.1f %12.0f %14.0f %12zu\n", thread_counts[ti],
             max_lens[mi] ? ml : "none", (double)c.bytes / 1e6 / s,
             (double)c.bytes / 1e6 / cs, (double)c.n / s,
             (double)tokens / s, tokens);
    }
  }
  for (size_t i = 0; i < c.n; i++) free(c.texts[i]);
  free(c.texts);
  free(c.lens);
  ae_tokenizer_free(tok);
  return 0;
}
