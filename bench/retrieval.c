/* Retrieval quality of the search modes on a docstring -> code set (the CodeSearchNet
 * protocol) built from ../shared/testdata/cpython-stdlib-annotations.jsonl:
 *
 *   - document: every annotation, with its summary blanked and the docstring (the
 *     first string literal of the body) removed from its snippet, indexed through the
 *     real store (ae_store_put: annotations + the lexical index);
 *   - query: the summary of an annotation that has one of at least 3 words; the one
 *     relevant document is that annotation;
 *   - split: queries are divided by top-level package (first path component, hashed)
 *     into a tuning half (0), on which the bm25 weights were chosen (--tune prints the
 *     grid), and a held-out half (1); both are reported.
 *
 * Metrics @10: MRR, Recall, nDCG (one relevant document: 1/log2(1 + rank)). Rows:
 * lexical (astcode tokenizer, tuned bm25 weights, what `query --mode lexical` runs),
 * lexical with all weights 1 (what the tuning adds), plain FTS5 bm25() with the
 * default unicode61 tokenizer over the same columns and the same OR-of-words query
 * (the baseline), and random ranking; vector and hybrid when ASTEMBED_MODEL (or
 * --model) is a real model, else shown as "random weights: not meaningful".
 *
 * Exit status = the verdict: 0 when lexical beats plain BM25 by >= 10% relative
 * MRR@10 on the held-out half, 3 when not, 1 on error.
 *
 * usage: bench_retrieval [--data FILE] [--queries N per half] [--model DIR] [--tune]
 *                        [--work DIR]
 */
#define _GNU_SOURCE
#include "store/lexical.h"
#include "common/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  ae_annotation a;       /* the document: summary "", docstring removed */
  char *snippet;         /* owned */
  const char *query;     /* the original summary */
  int half;              /* 0 tuning, 1 held out */
  int64_t rowid;         /* in the bench index */
} item;

typedef struct { double mrr, recall, ndcg; int n; } metrics;

static void add_rank(metrics *m, int rank) {
  m->n++;
  if (rank >= 1 && rank <= 10) {
    m->mrr += 1.0 / rank;
    m->recall += 1;
    m->ndcg += 1.0 / log2(1.0 + rank);
  }
}

/* ---- the document: the docstring out of the snippet --------------------------------- */

/* Length of the string literal at s (prefix letters, then ''' """ ' or "), 0 if none. */
static size_t string_literal(const char *s) {
  const char *p = s;
  while (*p && strchr("rRuUbBfF", *p) && p - s < 2) p++;
  char q = *p;
  if (q != '"' && q != '\'') return 0;
  int triple = p[1] == q && p[2] == q;
  p += triple ? 3 : 1;
  while (*p) {
    if (*p == '\\' && p[1]) { p += 2; continue; }
    if (*p == q && (!triple || (p[1] == q && p[2] == q))) return (size_t)(p + (triple ? 3 : 1) - s);
    if (!triple && *p == '\n') return 0;
    p++;
  }
  return 0;
}

/* The snippet without its docstring: the first statement after the header's ':' at
 * bracket depth 0, when that statement is a string literal. */
static char *strip_docstring(const char *code) {
  const char *p = code;
  int depth = 0;
  while (*p) {
    size_t lit = (*p == '"' || *p == '\'') ? string_literal(p) : 0;
    if (lit) { p += lit; continue; }
    if (*p == '(' || *p == '[' || *p == '{') depth++;
    else if ((*p == ')' || *p == ']' || *p == '}') && depth > 0) depth--;
    else if (*p == ':' && depth == 0) break;
    p++;
  }
  if (!*p) return strdup(code);
  const char *body = p + 1;
  while (*body == ' ' || *body == '\t' || *body == '\n' || *body == '\r') body++;
  size_t lit = string_literal(body);
  if (!lit) return strdup(code);
  size_t head = (size_t)(body - code), tail = strlen(body + lit);
  char *out = malloc(head + tail + 1);
  memcpy(out, code, head);
  memcpy(out + head, body + lit, tail + 1);
  return out;
}

static int words(const char *s) {
  int n = 0, in = 0;
  for (; *s; s++) {
    int w = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z');
    if (w && !in) n++;
    in = w;
  }
  return n;
}

/* top-level package: "urllib/parse.py" -> urllib, "typing.py" -> typing */
static int half_of(const char *path) {
  size_t n = strcspn(path, "/");
  if (!path[n] && n > 3 && !strcmp(path + n - 3, ".py")) n -= 3;
  uint8_t h[16];
  ae_text_hash(path, n, h);
  return h[0] & 1;
}

/* ---- runs ----------------------------------------------------------------------------- */

typedef struct {
  item *it;
  size_t n;
  size_t *queries[2];    /* item indexes of each half's queries */
  size_t nq[2];
} corpus;

/* Lexical run over one half with weights w: the rank of each query's document. */
static int run_lexical(ae_store *s, const corpus *c, int half, const double w[5], int stop,
                       size_t limit, metrics *m) {
  memset(m, 0, sizeof *m);
  ae_search_options o;
  ae_search_options_default(&o);
  size_t nq = c->nq[half] < limit ? c->nq[half] : limit;
  for (size_t qi = 0; qi < nq; qi++) {
    const item *q = &c->it[c->queries[half][qi]];
    int terms;
    char *match = ae__lex_match_expr_ex(q->query, stop, &terms);
    ae__cand *cand = NULL;
    size_t n = 0;
    int rc = match ? ae__lex_top(s, match, w, 10, &o, &cand, &n) : AE_ENOMEM;
    ae__free(match);
    if (rc) { fprintf(stderr, "bench_retrieval: lexical search: %s\n", ae_last_error()); return -1; }
    int rank = 0;
    for (size_t i = 0; i < n && !rank; i++) if (cand[i].key == q->rowid) rank = (int)i + 1;
    ae__free(cand);
    add_rank(m, rank);
  }
  return 0;
}

/* The baseline: FTS5 with unicode61 over the same columns, default bm25(), the query
 * as the OR of its distinct words (unicode61 splits it the same way). */
static int build_plain(sqlite3 **out, const corpus *c) {
  sqlite3 *db;
  if (sqlite3_open(":memory:", &db) != SQLITE_OK) return -1;
  char *err = NULL;
  if (sqlite3_exec(db, "CREATE VIRTUAL TABLE p USING fts5(signature, summary, code, path, type,"
                   " tokenize='unicode61'); BEGIN", NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "bench_retrieval: %s\n", err);
    return -1;
  }
  sqlite3_stmt *st;
  sqlite3_prepare_v2(db, "INSERT INTO p(rowid, signature, summary, code, path, type) VALUES (?,?,?,?,?,?)",
                     -1, &st, NULL);
  for (size_t i = 0; i < c->n; i++) {
    const ae_annotation *a = &c->it[i].a;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)i + 1);
    const char *v[5] = {a->signature, a->summary, a->snippet, a->file_path, a->node_type};
    for (int k = 0; k < 5; k++) sqlite3_bind_text(st, 2 + k, v[k], -1, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  *out = db;
  return 0;
}

/* unicode61's token characters, as far as this corpus goes: ASCII letters and digits
 * and every non-ASCII byte ('_' separates). */
static int word_byte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static char *plain_expr(const char *text) {
  size_t cap = strlen(text) * 8 + 16, len = 0;
  char *out = malloc(cap);
  out[0] = 0;
  const unsigned char *p = (const unsigned char *)text;
  char seen[64][64];
  int ns = 0;
  while (*p) {
    while (*p && !(word_byte(*p))) p++;
    const unsigned char *s = p;
    while (*p && word_byte(*p)) p++;
    size_t n = (size_t)(p - s);
    if (!n || n >= 64) continue;
    char w[64];
    for (size_t i = 0; i < n; i++) w[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + 32 : s[i]);
    w[n] = 0;
    int dup = 0;
    for (int i = 0; i < ns && !dup; i++) dup = !strcmp(seen[i], w);
    if (dup || ns == 64) continue;
    strcpy(seen[ns++], w);
    len += (size_t)snprintf(out + len, cap - len, "%s\"%s\"", len ? " OR " : "", w);
  }
  return out;
}

static int run_plain(sqlite3 *db, const corpus *c, int half, size_t limit, metrics *m) {
  memset(m, 0, sizeof *m);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT rowid FROM p WHERE p MATCH ?1 ORDER BY bm25(p) LIMIT 10", -1, &st, NULL))
    return -1;
  size_t nq = c->nq[half] < limit ? c->nq[half] : limit;
  for (size_t qi = 0; qi < nq; qi++) {
    size_t want = c->queries[half][qi];
    char *e = plain_expr(c->it[want].query);
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, e, -1, SQLITE_TRANSIENT);
    free(e);
    int rank = 0, r = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      r++;
      if (!rank && sqlite3_column_int64(st, 0) == (sqlite3_int64)want + 1) rank = r;
    }
    add_rank(m, rank);
  }
  sqlite3_finalize(st);
  return 0;
}

/* Random ranking: the relevant document's rank uniform over the corpus. */
static void run_random(const corpus *c, int half, size_t limit, metrics *m) {
  memset(m, 0, sizeof *m);
  uint64_t x = 0x9E3779B97F4A7C15ull + (uint64_t)half;
  size_t nq = c->nq[half] < limit ? c->nq[half] : limit;
  for (size_t qi = 0; qi < nq; qi++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    add_rank(m, 1 + (int)(x % c->n));
  }
}

/* ---- model modes ------------------------------------------------------------------- */

/* Vector and hybrid through ae_store_search_ex, after embedding every document with
 * the production text (ae_annotation_text) into the bench index. */
static int embed_corpus(ae_store *s, ae_encoder *enc, const corpus *c, uint8_t fp[16]) {
  ae_encoder_fingerprint(enc, fp);
  int dim = ae_encoder_dim(enc);
  if (ae_store_register_model(s, fp, "bench", "", dim)) return -1;
  ae_text_options to;
  ae_text_options_default(&to);
  enum { B = 64 };
  float *v = malloc((size_t)B * dim * sizeof(float));
  for (size_t i = 0; i < c->n; i += B) {
    size_t m = c->n - i < B ? c->n - i : B;
    char *t[B]; size_t len[B]; int st[B]; uint8_t h[B][16];
    for (size_t k = 0; k < m; k++) {
      if (ae_annotation_text(&c->it[i + k].a, &to, &t[k], &len[k], NULL)) { t[k] = strdup(" "); len[k] = 1; }
      ae_text_hash(t[k], len[k], h[k]);
    }
    int rc = ae_encoder_embed_texts(enc, (const char *const *)t, len, m, v, st);
    if (!rc) rc = ae_store_begin(s);
    for (size_t k = 0; k < m && !rc; k++) rc = ae_store_put(s, &c->it[i + k].a, h[k], fp, v + k * dim, dim, -1);
    if (!rc) rc = ae_store_commit(s);
    for (size_t k = 0; k < m; k++) ae_free(t[k]);
    if (rc) { free(v); fprintf(stderr, "bench_retrieval: embedding: %s\n", ae_last_error()); return -1; }
    if (i % 2048 == 0) fprintf(stderr, "\rembedded %zu/%zu", i, c->n);
  }
  fprintf(stderr, "\n");
  free(v);
  return 0;
}

static int run_model(ae_store *s, ae_encoder *enc, const uint8_t fp[16], const corpus *c, int half,
                     int mode, size_t limit, metrics *m) {
  memset(m, 0, sizeof *m);
  ae_search_options o;
  ae_search_options_default(&o);
  o.mode = mode;
  int dim = ae_encoder_dim(enc);
  float *q = malloc((size_t)dim * sizeof(float));
  size_t nq = c->nq[half] < limit ? c->nq[half] : limit;
  for (size_t qi = 0; qi < nq; qi++) {
    const item *it = &c->it[c->queries[half][qi]];
    size_t len = strlen(it->query);
    int st;
    ae_search_hit *h = NULL;
    size_t n = 0;
    int rc = ae_encoder_embed_texts(enc, &it->query, &len, 1, q, &st);
    if (!rc) rc = ae_store_search_ex(s, &o, it->query, fp, q, dim, &h, &n);
    if (rc) { free(q); fprintf(stderr, "bench_retrieval: search: %s\n", ae_last_error()); return -1; }
    int rank = 0;
    for (size_t i = 0; i < n && !rank; i++) if (!strcmp(h[i].node_id, it->a.node_id)) rank = (int)i + 1;
    ae_search_hits_free(h, n);
    add_rank(m, rank);
  }
  free(q);
  return 0;
}

/* ---- main ---------------------------------------------------------------------------- */

static void row(const char *name, const metrics m[2]) {
  printf("%-34s", name);
  for (int h = 0; h < 2; h++)
    printf(" | %6.4f %6.4f %6.4f", m[h].n ? m[h].mrr / m[h].n : 0, m[h].n ? m[h].recall / m[h].n : 0,
           m[h].n ? m[h].ndcg / m[h].n : 0);
  printf("\n");
}

static double mrr(const metrics *m) { return m->n ? m->mrr / m->n : 0; }

/* The grid behind ae__lex_bm25_weights (summary is blank in every document here, so
 * its weight cannot change a ranking of this set: it is left at the signature's). */
static int tune(ae_store *s, const corpus *c, size_t limit) {
  static const double sig[] = {1, 2, 4, 8, 16}, path[] = {0, 1, 2, 4, 8};
  double best = -1, bw[5] = {0};
  int bstop = 1;
  printf("tuning on half 0, %zu queries: signature code path type stop-words -> MRR@10\n",
         c->nq[0] < limit ? c->nq[0] : limit);
  /* the grid over signature and path (code fixed at 1: only ratios matter), then the
   * best point with the type column weighted and with the stop words kept */
  for (int pass = 0; pass < 3; pass++) {
    size_t na = pass ? 1 : sizeof sig / sizeof *sig, np = pass ? 1 : sizeof path / sizeof *path;
    double base[5];
    memcpy(base, bw, sizeof base);
    for (size_t a = 0; a < na; a++)
      for (size_t p = 0; p < np; p++) {
        double w[5] = {sig[a], sig[a], 1, path[p], 0};
        int stop = 1;
        if (pass) memcpy(w, base, sizeof w);
        if (pass == 1) w[4] = 1;
        if (pass == 2) stop = 0;
        metrics m;
        if (run_lexical(s, c, 0, w, stop, limit, &m)) return -1;
        printf("  %4g %4g %4g %4g %d -> %.4f\n", w[0], w[2], w[3], w[4], stop, mrr(&m));
        fflush(stdout);
        if (mrr(&m) > best) { best = mrr(&m); memcpy(bw, w, sizeof bw); bstop = stop; }
      }
  }
  printf("best: signature %g summary %g code %g path %g type %g, stop words %s: MRR@10 %.4f\n",
         bw[0], bw[1], bw[2], bw[3], bw[4], bstop ? "dropped" : "kept", best);
  return 0;
}

int main(int argc, char **argv) {
  const char *data = "../shared/testdata/cpython-stdlib-annotations.jsonl", *model = getenv("ASTEMBED_MODEL");
  const char *work = "build/bench-retrieval";
  size_t limit = 600;
  int tuning = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--tune")) tuning = 1;
    else if (i + 1 < argc && !strcmp(argv[i], "--data")) data = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--model")) model = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--work")) work = argv[++i];
    else if (i + 1 < argc && !strcmp(argv[i], "--queries")) limit = (size_t)atol(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_retrieval [--data FILE] [--queries N] [--model DIR] [--tune] [--work DIR]\n");
      return 1;
    }
  }
  if (!ae__file_exists(data)) { fprintf(stderr, "bench_retrieval: %s missing (../shared)\n", data); return 1; }
  ae_annotation_set *set;
  if (ae_annotations_load_jsonl(data, NULL, NULL, &set)) {
    fprintf(stderr, "bench_retrieval: %s: %s\n", data, ae_last_error());
    return 1;
  }
  corpus c;
  memset(&c, 0, sizeof c);
  c.n = ae_annotation_set_count(set);
  c.it = calloc(c.n, sizeof *c.it);
  for (int h = 0; h < 2; h++) c.queries[h] = malloc(c.n * sizeof(size_t));
  const ae_annotation *src = ae_annotation_set_items(set);
  for (size_t i = 0; i < c.n; i++) {
    item *it = &c.it[i];
    it->a = src[i];
    it->snippet = strip_docstring(src[i].snippet);
    it->a.snippet = it->snippet;
    it->a.summary = "";
    it->query = src[i].summary;
    it->half = half_of(src[i].file_path);
    if (words(it->query) >= 3) c.queries[it->half][c.nq[it->half]++] = i;
  }
  size_t avail[2] = {c.nq[0], c.nq[1]};
  /* queries: a deterministic spread over each half (every k-th), at most limit */
  for (int h = 0; h < 2; h++) {
    size_t step = c.nq[h] > limit ? c.nq[h] / limit : 1, k = 0;
    for (size_t i = 0; i < c.nq[h] && k < limit; i += step) c.queries[h][k++] = c.queries[h][i];
    c.nq[h] = k;
  }
  mkdir(work, 0777);
  char path[4096];
  snprintf(path, sizeof path, "%s/index.db", work);
  unlink(path);
  ae_store *s;
  double t0 = ae__now_ms();
  if (ae_store_open(path, 0, &s)) { fprintf(stderr, "bench_retrieval: %s\n", ae_last_error()); return 1; }
  int rc = ae_store_begin(s);
  for (size_t i = 0; i < c.n && !rc; i++) {
    uint8_t h[16];
    ae_text_hash(c.it[i].a.node_id, strlen(c.it[i].a.node_id), h);
    rc = ae_store_put(s, &c.it[i].a, h, NULL, NULL, 0, -1);
  }
  if (!rc) rc = ae_store_commit(s);
  if (rc) { fprintf(stderr, "bench_retrieval: indexing: %s\n", ae_last_error()); return 1; }
  /* rowid of each document (a node id repeated in the input keeps its last row) */
  sqlite3_stmt *st;
  sqlite3_prepare_v2(s->db, "SELECT rowid FROM annotations WHERE node_id = ?1", -1, &st, NULL);
  for (size_t i = 0; i < c.n; i++) {
    sqlite3_reset(st);
    sqlite3_bind_text(st, 1, c.it[i].a.node_id, -1, SQLITE_STATIC);
    c.it[i].rowid = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  }
  sqlite3_finalize(st);
  printf("retrieval: %zu documents; queries (summaries of >= 3 words) %zu of %zu (half 0, tuning) +"
         " %zu of %zu (half 1, held out); indexed in %.1f s\n",
         c.n, c.nq[0], avail[0], c.nq[1], avail[1], (ae__now_ms() - t0) / 1000);
  sqlite3 *plain;
  if (build_plain(&plain, &c)) return 1;
  if (tuning) return tune(s, &c, limit) ? 1 : 0;

  printf("\n%-34s | %-20s | %-20s\n", "", "half 0 (tuning)", "half 1 (held out)");
  printf("%-34s | %6s %6s %6s | %6s %6s %6s\n", "mode", "MRR", "R@10", "nDCG", "MRR", "R@10", "nDCG");
  metrics lex[2], flat[2], base[2], rnd[2];
  double ones[5] = {1, 1, 1, 1, 1};
  double tq = ae__now_ms();
  for (int h = 0; h < 2; h++)
    if (run_lexical(s, &c, h, ae__lex_bm25_weights, 1, limit, &lex[h])) return 1;
  double t_lex = (ae__now_ms() - tq) / (double)(lex[0].n + lex[1].n);
  row("lexical (astcode, tuned bm25)", lex);
  for (int h = 0; h < 2; h++)
    if (run_lexical(s, &c, h, ones, 1, limit, &flat[h])) return 1;
  row("lexical, bm25 weights all 1", flat);
  tq = ae__now_ms();
  for (int h = 0; h < 2; h++)
    if (run_plain(plain, &c, h, limit, &base[h])) return 1;
  double t_base = (ae__now_ms() - tq) / (double)(base[0].n + base[1].n);
  row("plain FTS5 bm25, unicode61", base);
  for (int h = 0; h < 2; h++) run_random(&c, h, limit, &rnd[h]);
  row("random ranking", rnd);
  ae_encoder *enc = NULL;
  if (model && *model && !ae_model_is_random(model)) {
    ae_encoder_options eo = {.prepack = AE_PREPACK_AUTO};
    uint8_t fp[16];
    if (ae_encoder_load(model, &eo, &enc) || embed_corpus(s, enc, &c, fp)) {
      fprintf(stderr, "bench_retrieval: model %s: %s\n", model, ae_last_error());
      return 1;
    }
    metrics vm[2], hm[2];
    for (int h = 0; h < 2; h++)
      if (run_model(s, enc, fp, &c, h, AE_SEARCH_VECTOR, limit, &vm[h]) ||
          run_model(s, enc, fp, &c, h, AE_SEARCH_HYBRID, limit, &hm[h])) return 1;
    row("vector (exact cosine)", vm);
    row("hybrid (RRF k=60, 1:1)", hm);
    ae_encoder_free(enc);
  } else {
    const char *why = model && *model ? "random weights: not meaningful" : "random weights: not meaningful (no ASTEMBED_MODEL)";
    printf("%-34s | %s\n%-34s | %s\n", "vector", why, "hybrid", why);
  }
  double gain[2];
  for (int h = 0; h < 2; h++) gain[h] = mrr(&base[h]) > 0 ? mrr(&lex[h]) / mrr(&base[h]) - 1 : 0;
  printf("\nlexical vs plain BM25, relative MRR@10: half 0 %+.1f%%, half 1 (held out) %+.1f%%"
         " (target >= +10%%)\n", 100 * gain[0], 100 * gain[1]);
  printf("mean time per query: lexical %.2f ms, plain %.2f ms (ratio %.2f)\n", t_lex, t_base,
         t_base > 0 ? t_lex / t_base : 0);
  int pass = gain[0] >= 0.10 && gain[1] >= 0.10;
  printf("verdict: %s\n", pass ? "PASS" : "FAIL");
  sqlite3_close(plain);
  ae_store_close(s);
  return pass ? 0 : 3;
}
