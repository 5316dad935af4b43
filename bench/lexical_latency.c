/* End-to-end latency of `astembed query --mode lexical` (a fresh process per query,
 * as a user runs it) over the CPython stdlib annotations indexed with
 * `astembed embed --lexical-only`, against a peer measured in the same run on the same
 * queries: the sqlite3 shell answering the plain FTS5 query (unicode61 tokenizer,
 * default bm25(), the OR of the query's words) from a fresh process too. Queries are
 * annotation summaries of at least 3 words, spread over the corpus; astembed and the
 * peer alternate per query so both see the same machine load.
 *
 * Prints p50 and p95 of each and the p50 ratio. Exit status = the verdict: 0 when
 * astembed's p50 is within 3x the peer's (a lexical query costs process start, one
 * read-only open and one FTS5 query; no model is loaded), 3 when not, 1 on error.
 *
 * usage: bench_lexical_latency [--queries N] [--data FILE] [--bin PATH] [--work DIR]
 */
#define _GNU_SOURCE
#include "common/common.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs argv with stdout/stderr to /dev/null; wall milliseconds, -1 on failure. */
static double timed(char *const argv[]) {
  double t0 = ae__now_ms();
  pid_t pid = fork();
  if (pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execvp(argv[0], argv);
    _exit(127);
  }
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) return -1;
  return ae__now_ms() - t0;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p) {
  qsort(v, n, sizeof *v, cmp_d);
  size_t i = (size_t)(p * (double)(n - 1) + 0.5);
  return v[i < n ? i : n - 1];
}

static int words(const char *s) {
  int n = 0, in = 0;
  for (; *s; s++) {
    int w = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z');
    n += w && !in;
    in = w;
  }
  return n;
}

/* the plain query: OR of the distinct ASCII-alphanumeric words, quoted */
static void plain_expr(const char *t, char *out, size_t cap) {
  size_t len = 0;
  out[0] = 0;
  while (*t) {
    while (*t && !((*t | 32) >= 'a' && (*t | 32) <= 'z') && !(*t >= '0' && *t <= '9')) t++;
    const char *s = t;
    while (((*t | 32) >= 'a' && (*t | 32) <= 'z') || (*t >= '0' && *t <= '9')) t++;
    if (t > s && len + (size_t)(t - s) + 8 < cap)
      len += (size_t)snprintf(out + len, cap - len, "%s\"%.*s\"", len ? " OR " : "", (int)(t - s), s);
  }
}

int main(int argc, char **argv) {
  const char *data = "../shared/testdata/cpython-stdlib-annotations.jsonl", *bin = "build/astembed";
  const char *work = "build/bench-latency";
  size_t nq = 200;
  for (int i = 1; i < argc; i++) {
    if (i + 1 < argc && !strcmp(argv[i], "--queries")) nq = (size_t)atol(argv[++i]);
    else if (i + 1 < argc && !strcmp(argv[i], "--data")) data = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--bin")) bin = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--work")) work = argv[++i];
    else { fprintf(stderr, "usage: bench_lexical_latency [--queries N] [--data FILE] [--bin PATH] [--work DIR]\n"); return 1; }
  }
  if (!ae__file_exists(data)) { fprintf(stderr, "bench_lexical_latency: %s missing (../shared)\n", data); return 1; }
  if (nq < 20) nq = 20;
  mkdir(work, 0777);
  char db[4096], plain[4096];
  snprintf(db, sizeof db, "%s/index.db", work);
  snprintf(plain, sizeof plain, "%s/plain.db", work);
  unlink(db);
  unlink(plain);
  char *embed[] = {(char *)bin, "embed", "--lexical-only", "--input", (char *)data, "--db", db, NULL};
  double t_embed = timed(embed);
  if (t_embed < 0) { fprintf(stderr, "bench_lexical_latency: %s embed --lexical-only failed\n", bin); return 1; }

  ae_annotation_set *set;
  if (ae_annotations_load_jsonl(data, NULL, NULL, &set)) { fprintf(stderr, "%s\n", ae_last_error()); return 1; }
  size_t n = ae_annotation_set_count(set);
  const ae_annotation *a = ae_annotation_set_items(set);
  sqlite3 *p;
  sqlite3_stmt *st;
  if (sqlite3_open(plain, &p) || sqlite3_exec(p, "CREATE VIRTUAL TABLE p USING fts5(signature, summary, code,"
                                              " path, type); BEGIN", NULL, NULL, NULL) ||
      sqlite3_prepare_v2(p, "INSERT INTO p VALUES (?,?,?,?,?)", -1, &st, NULL)) {
    fprintf(stderr, "bench_lexical_latency: %s: %s\n", plain, sqlite3_errmsg(p));
    return 1;
  }
  for (size_t i = 0; i < n; i++) {
    const char *v[5] = {a[i].signature, a[i].summary, a[i].snippet, a[i].file_path, a[i].node_type};
    for (int k = 0; k < 5; k++) sqlite3_bind_text(st, k + 1, v[k], -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_exec(p, "COMMIT", NULL, NULL, NULL);
  sqlite3_close(p);

  size_t cand = 0;
  for (size_t i = 0; i < n; i++) cand += words(a[i].summary) >= 3;
  size_t step = cand > nq ? cand / nq : 1, k = 0, seen = 0;
  double *ta = calloc(nq, sizeof *ta), *tp = calloc(nq, sizeof *tp);
  for (size_t i = 0; i < n && k < nq; i++) {
    if (words(a[i].summary) < 3 || a[i].summary[0] == '-' || seen++ % step) continue;
    char sql[4096], expr[3000];
    plain_expr(a[i].summary, expr, sizeof expr);
    snprintf(sql, sizeof sql, "SELECT rowid, signature FROM p WHERE p MATCH '%s' ORDER BY bm25(p) LIMIT 10", expr);
    char *q[] = {(char *)bin, "query", (char *)a[i].summary, "--mode", "lexical", "--db", db, "--format", "json", NULL};
    char *peer[] = {"sqlite3", plain, sql, NULL};
    ta[k] = timed(q);
    tp[k] = timed(peer);
    if (ta[k] < 0 || tp[k] < 0) {
      fprintf(stderr, "bench_lexical_latency: a query failed (%s): '%s'\n", ta[k] < 0 ? "astembed" : "sqlite3",
              a[i].summary);
      return 1;
    }
    k++;
  }
  double a50 = pct(ta, k, 0.5), a95 = pct(ta, k, 0.95), p50 = pct(tp, k, 0.5), p95 = pct(tp, k, 0.95);
  printf("lexical query latency, end to end, %zu queries over %zu annotations (indexed in %.1f s)\n",
         k, n, t_embed / 1000);
  printf("%-44s %8s %8s\n", "", "p50 ms", "p95 ms");
  printf("%-44s %8.1f %8.1f\n", "astembed query --mode lexical", a50, a95);
  printf("%-44s %8.1f %8.1f\n", "peer: sqlite3 shell, plain FTS5 bm25 query", p50, p95);
  double ratio = p50 > 0 ? a50 / p50 : 0;
  printf("p50 ratio astembed/peer %.2f (target <= 3.00): %s\n", ratio, ratio <= 3.0 ? "PASS" : "FAIL");
  ae_annotation_set_free(set);
  free(ta);
  free(tp);
  return ratio <= 3.0 ? 0 : 3;
}
