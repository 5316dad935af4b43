/* Lexical and hybrid search over the index.
 *
 * Lexical: the FTS5 table `lexical` (columns signature, summary, code, path, type;
 * tokenizer astcode, see fts_tokenizer.c) is contentless (content=''): it holds only
 * the inverted index, keyed by annotations.lex_id, and triggers on `annotations`
 * insert, delete and re-insert its rows inside the statement that changes the
 * annotation, so the two can never be out of step after a commit, a rollback or a
 * kill. A query is turned into the OR of its distinct tokens (English function words
 * dropped: they match nearly every document and only cost time) and ranked by
 * bm25() with per-column weights (k_bm25_weights, tuned by bench/retrieval).
 *
 * Hybrid: reciprocal-rank fusion of the lexical and the vector list, each taken to
 * depth AE__RRF_DEPTH: score(d) = w_lex / (k + rank_lex(d)) + w_vec / (k + rank_vec(d)),
 * a missing rank adding nothing. RRF needs no score calibration between bm25 and
 * cosine, which live on unrelated scales.
 *
 * Every hit is read back inside one read transaction, by annotation rowid.
 */
#define _GNU_SOURCE
#include "store/lexical.h"
#include "store/store.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* bm25() weights in column order signature, summary, code, path, type. Chosen by
 * bench/retrieval on its tuning half (packages hashed to half 0), see README. */
const double ae__lex_bm25_weights[AE__LEX_COLUMNS] = {16.0, 16.0, 1.0, 4.0, 0.0};

/* RRF: k = 60 and equal weights (see README "Lexical and hybrid search" for why). */
#define AE__RRF_K 60.0
#define AE__RRF_W_LEX 1.0
#define AE__RRF_W_VEC 1.0
#define AE__RRF_DEPTH 100

void ae_search_options_default(ae_search_options *o) {
  memset(o, 0, sizeof *o);
  o->mode = AE_SEARCH_HYBRID;
  o->k = 10;
  o->min_score = -1;
}

static const char *const k_modes[] = {[AE_SEARCH_HYBRID] = "hybrid", [AE_SEARCH_VECTOR] = "vector",
                                       [AE_SEARCH_LEXICAL] = "lexical"};

int ae_search_mode_parse(const char *name) {
  for (int i = 0; name && i < 3; i++) if (!strcmp(name, k_modes[i])) return i;
  return -1;
}

const char *ae_search_mode_name(int mode) {
  return mode >= 0 && mode < 3 ? k_modes[mode] : "?";
}

static const char *nz(const char *s) { return s && *s ? s : NULL; }

int ae__search_filtered(const ae_search_options *o) {
  return nz(o->language) || nz(o->node_type) || nz(o->path_glob);
}

void ae__search_bind_filters(sqlite3_stmt *st, const ae_search_options *o) {
  const char *v[3] = {nz(o->language), nz(o->node_type), nz(o->path_glob)};
  for (int i = 0; i < 3; i++) {
    if (v[i]) sqlite3_bind_text(st, 2 + i, v[i], -1, SQLITE_STATIC);
    else sqlite3_bind_null(st, 2 + i);
  }
}

/* ---- the MATCH expression ------------------------------------------------------- */

/* Words that carry no meaning in a code search ("return the number of items"). */
static const char *const k_stop[] = {
  "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "if", "in", "into", "is",
  "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "will", "with",
};

static int is_stop(const char *t, int n) {
  for (size_t i = 0; i < sizeof k_stop / sizeof *k_stop; i++)
    if ((int)strlen(k_stop[i]) == n && !memcmp(k_stop[i], t, (size_t)n)) return 1;
  return 0;
}

#define MAX_TERMS 64

typedef struct {
  char *buf;
  size_t len, cap;
  int terms, stop, oom;
  char seen[MAX_TERMS][AE__LEX_MAX_TOKEN + 1];
} expr;

static int add_term(void *ctx, int flags, const char *t, int n, int s, int e) {
  (void)flags; (void)s; (void)e;
  expr *x = ctx;
  if (n <= 0 || x->terms >= MAX_TERMS || (x->stop && is_stop(t, n))) return 0;
  for (int i = 0; i < x->terms; i++)
    if ((int)strlen(x->seen[i]) == n && !memcmp(x->seen[i], t, (size_t)n)) return 0;
  memcpy(x->seen[x->terms], t, (size_t)n);
  x->seen[x->terms][n] = 0;
  size_t need = x->len + (size_t)n + 8;
  if (need > x->cap) {
    size_t cap = need * 2;
    char *b = ae__realloc(x->buf, cap);
    if (!b) { x->oom = 1; return 1; }
    x->buf = b;
    x->cap = cap;
  }
  /* tokens hold no '"' (not a word byte), so quoting is plain */
  x->len += (size_t)sprintf(x->buf + x->len, "%s\"%.*s\"", x->terms ? " OR " : "", n, t);
  x->terms++;
  return 0;
}

char *ae__lex_match_expr_ex(const char *text, int stop_words, int *n_terms) {
  expr *x = ae__calloc(1, sizeof *x);
  if (!x) return NULL;
  x->stop = stop_words;
  x->buf = ae__strdup("");
  x->cap = 1;
  if (x->buf) ae__lex_tokenize(text, (int)strnlen(text, 1 << 20), add_term, x);
  char *out = x->oom ? NULL : x->buf;
  if (!out) ae__free(x->buf);
  *n_terms = x->terms;
  ae__free(x);
  return out;
}

char *ae__lex_match_expr(const char *text, int *n_terms) {
  return ae__lex_match_expr_ex(text, 1, n_terms);
}

/* ---- the lexical list --------------------------------------------------------------- */

int ae__lex_top(ae_store *s, const char *match, const double w[AE__LEX_COLUMNS], size_t k,
                const ae_search_options *o, ae__cand **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  if (s->no_lexical)
    return ae__error(AE_EUNSUPPORTED, "%s: this index has no usable lexical index (schema before 3, or built"
                     " by another tokenizer version): run 'astembed embed' on it once to upgrade it", s->path);
  if (!*match || k == 0) return AE_OK;
  char sql[640];
  snprintf(sql, sizeof sql, "SELECT a.rowid, bm25(lexical, %g, %g, %g, %g, %g) AS r"
           " FROM lexical JOIN annotations a ON a.lex_id = lexical.rowid"
           " WHERE lexical MATCH ?1" AE__SEARCH_FILTER_SQL " ORDER BY r LIMIT ?5",
           w[0], w[1], w[2], w[3], w[4]);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "lexical search");
  sqlite3_bind_text(st, 1, match, -1, SQLITE_STATIC);
  ae__search_bind_filters(st, o);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)k);
  ae__cand *c = ae__calloc(k, sizeof *c);
  size_t n = 0;
  int step = SQLITE_DONE;
  while (c && n < k && (step = sqlite3_step(st)) == SQLITE_ROW) {
    c[n].key = sqlite3_column_int64(st, 0);
    c[n].score = (float)-sqlite3_column_double(st, 1);   /* bm25(): lower is better */
    n++;
  }
  int rc = !c ? ae__error(AE_ENOMEM, "out of memory")
         : step != SQLITE_ROW && step != SQLITE_DONE ? ae__store_dberr(s, "lexical search") : AE_OK;
  sqlite3_finalize(st);
  if (rc) { ae__free(c); return rc; }
  *out = c;
  *n_out = n;
  return AE_OK;
}

/* ---- fusion ----------------------------------------------------------------------- */

typedef struct { int64_t key; double score; int lex, vec; } fused;

static int fused_cmp(const void *pa, const void *pb) {
  const fused *a = pa, *b = pb;
  if (a->score != b->score) return a->score > b->score ? -1 : 1;
  int ba = a->lex && (!a->vec || a->lex < a->vec) ? a->lex : a->vec;
  int bb = b->lex && (!b->vec || b->lex < b->vec) ? b->lex : b->vec;
  if (ba != bb) return ba < bb ? -1 : 1;
  return a->key < b->key ? -1 : a->key > b->key;
}

static fused *find(fused *f, size_t n, int64_t key) {
  for (size_t i = 0; i < n; i++) if (f[i].key == key) return &f[i];
  return NULL;
}

/* ---- hits --------------------------------------------------------------------------- */

/* One prepared statement serves every hit of a search (reset between rows). */
static int fill_hit(sqlite3_stmt *st, int64_t rowid, ae_search_hit *h) {
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, rowid);
  int rc = sqlite3_step(st) == SQLITE_ROW ? AE_OK : AE_ENOTFOUND;
  if (!rc) {
    char **f[] = {&h->node_id, &h->file_path, &h->node_type, &h->signature, &h->summary,
                  &h->snippet, &h->language};
    for (int i = 0; i < 7; i++) {
      const char *t = (const char *)sqlite3_column_text(st, i);
      *f[i] = ae__strdup(t ? t : "");
      if (!*f[i]) rc = AE_ENOMEM;
    }
    h->start_line = sqlite3_column_int(st, 7);
    h->end_line = sqlite3_column_int(st, 8);
  }
  return rc;
}

void ae_search_hits_free(ae_search_hit *hits, size_t n) {
  if (!hits) return;
  for (size_t i = 0; i < n; i++) {
    ae__free(hits[i].node_id); ae__free(hits[i].file_path); ae__free(hits[i].node_type);
    ae__free(hits[i].signature); ae__free(hits[i].summary); ae__free(hits[i].snippet);
    ae__free(hits[i].language);
  }
  ae__free(hits);
}

/* vectors.id -> annotations rowid (0 when the vector's annotation is gone). */
static int vector_keys(ae_store *s, ae__cand *c, size_t n) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT a.rowid FROM vectors v JOIN annotations a"
                         " ON a.node_id = v.node_id WHERE v.id = ?1", -1, &st, NULL) != SQLITE_OK)
    return ae__store_dberr(s, "reading hits");
  for (size_t i = 0; i < n; i++) {
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, c[i].key);
    c[i].key = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  }
  sqlite3_finalize(st);
  return AE_OK;
}

static int check_inputs(ae_store *s, const ae_search_options *o, const char *text,
                        const uint8_t *fp, const float *query, int dim) {
  if (o->mode < AE_SEARCH_HYBRID || o->mode > AE_SEARCH_LEXICAL)
    return ae__error(AE_EINVAL, "%s: unknown search mode %d", s->path, o->mode);
  if (o->mode != AE_SEARCH_VECTOR && (!text || !*text))
    return ae__error(AE_EINVAL, "%s: %s search needs the query text", s->path, ae_search_mode_name(o->mode));
  if (o->mode != AE_SEARCH_LEXICAL && (!fp || !query || dim <= 0))
    return ae__error(AE_EINVAL, "%s: %s search needs the model fingerprint and the query vector",
                     s->path, ae_search_mode_name(o->mode));
  return AE_OK;
}

int ae_store_search_ex(ae_store *s, const ae_search_options *o, const char *text,
                       const uint8_t *fp, const float *query, int dim,
                       ae_search_hit **hits, size_t *n_hits) {
  *hits = NULL;
  *n_hits = 0;
  int rc = check_inputs(s, o, text, fp, query, dim);
  if (rc) return rc;
  size_t k = o->k, depth = o->mode == AE_SEARCH_HYBRID ? (k > AE__RRF_DEPTH ? k : AE__RRF_DEPTH) : k;
  if (k == 0) return AE_OK;
  ae__cand *lex = NULL, *vec = NULL;
  size_t n_lex = 0, n_vec = 0, n_f = 0;
  fused *f = NULL;
  ae_search_hit *h = NULL;
  sqlite3_stmt *st = NULL;
  /* the matrix has its own read transaction: load it before ours */
  if (o->mode != AE_SEARCH_LEXICAL && (rc = ae__store_vector_top(s, fp, query, dim, depth, o, &vec, &n_vec)))
    return rc;
  if (sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
    ae__free(vec);
    return ae__store_dberr(s, "searching");
  }
  if (n_vec) rc = vector_keys(s, vec, n_vec);
  if (!rc && o->mode != AE_SEARCH_VECTOR) {
    int terms;
    char *match = ae__lex_match_expr(text, &terms);
    rc = match ? ae__lex_top(s, match, ae__lex_bm25_weights, depth, o, &lex, &n_lex)
               : ae__error(AE_ENOMEM, "out of memory");
    ae__free(match);
  }
  if (rc) goto out;
  f = ae__calloc(n_lex + n_vec + 1, sizeof *f);
  if (!f) { rc = ae__error(AE_ENOMEM, "out of memory"); goto out; }
  for (size_t i = 0; i < n_lex; i++) {
    double sc = o->mode == AE_SEARCH_HYBRID ? AE__RRF_W_LEX / (AE__RRF_K + (double)(i + 1)) : lex[i].score;
    f[n_f++] = (fused){lex[i].key, sc, (int)i + 1, 0};
  }
  for (size_t i = 0; i < n_vec; i++) {
    if (!vec[i].key) continue;   /* deleted by a writer meanwhile */
    double sc = o->mode == AE_SEARCH_HYBRID ? AE__RRF_W_VEC / (AE__RRF_K + (double)(i + 1)) : vec[i].score;
    fused *g = find(f, n_f, vec[i].key);
    if (g) { g->score += sc; g->vec = (int)i + 1; }
    else f[n_f++] = (fused){vec[i].key, sc, 0, (int)i + 1};
  }
  if (o->mode == AE_SEARCH_HYBRID) qsort(f, n_f, sizeof *f, fused_cmp);
  if (n_f > k) n_f = k;
  h = ae__calloc(n_f ? n_f : 1, sizeof *h);
  if (!h) { rc = ae__error(AE_ENOMEM, "out of memory"); goto out; }
  if (n_f && sqlite3_prepare_v2(s->db, "SELECT node_id, file_path, node_type, signature, summary,"
                                " snippet, language, start_line, end_line FROM annotations WHERE rowid = ?1",
                                -1, &st, NULL) != SQLITE_OK) {
    rc = ae__store_dberr(s, "reading hits");
    goto out;
  }
  size_t kept = 0;
  for (size_t i = 0; i < n_f && !rc; i++) {
    h[kept].score = (float)f[i].score;
    h[kept].lexical_rank = f[i].lex;
    h[kept].vector_rank = f[i].vec;
    rc = fill_hit(st, f[i].key, &h[kept]);
    if (rc == AE_ENOTFOUND) { rc = AE_OK; continue; }
    if (!rc) kept++;
  }
  /* on failure the entry being filled may hold some strings: free it too */
  if (rc) { ae_search_hits_free(h, kept < n_f ? kept + 1 : kept); h = NULL; goto out; }
  *hits = h;
  *n_hits = kept;
  h = NULL;
out:
  sqlite3_finalize(st);
  sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  ae__free(h);
  ae__free(f);
  ae__free(lex);
  ae__free(vec);
  return rc;
}

int ae_store_search(ae_store *s, const uint8_t fp[16], const float *query, int dim,
                    size_t k, float min_score, ae_search_hit **hits, size_t *n_hits) {
  ae_search_options o;
  ae_search_options_default(&o);
  o.mode = AE_SEARCH_VECTOR;
  o.k = k;
  o.min_score = min_score;
  return ae_store_search_ex(s, &o, NULL, fp, query, dim, hits, n_hits);
}

/* ---- default mode and checks -------------------------------------------------------- */

/* Does the index hold a current vector of fp? One indexed probe, not a count. */
static int has_vectors(ae_store *s, const uint8_t fp[16]) {
  sqlite3_stmt *st;
  int r = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM vectors v JOIN annotations a ON a.node_id = v.node_id"
                         " AND a.text_hash = v.text_hash WHERE v.fingerprint = ?1 LIMIT 1", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_blob(st, 1, fp, 16, SQLITE_STATIC);
    r = sqlite3_step(st) == SQLITE_ROW;
  }
  sqlite3_finalize(st);
  return r;
}

int ae_store_default_mode(ae_store *s, const char **why) {
  char *dir = NULL;
  uint8_t fp[16];
  int dim;
  int have_model = ae_store_model(s, NULL, &dir, fp, &dim) == AE_OK;
  ae__clear_error();
  int vectors = have_model && has_vectors(s, fp);
  int random = vectors && ae_model_is_random(dir);
  ae__free(dir);
  int mode = AE_SEARCH_LEXICAL;
  const char *w;
  if (s->no_lexical && vectors) {
    mode = AE_SEARCH_VECTOR;   /* nothing else to search */
    w = "the index has no lexical index yet (schema before 3): vector search";
  } else if (!have_model) w = "the index holds no vectors: lexical search";
  else if (!vectors) w = "the index holds no vectors of its model: lexical search";
  else if (random) w = "the index's model has random weights: lexical search";
  else { mode = AE_SEARCH_HYBRID; w = "the index holds vectors of a real model: hybrid search"; }
  if (why) *why = w;
  return mode;
}

static int64_t one_int(ae_store *s, const char *sql, int *rc) {
  sqlite3_stmt *st;
  int64_t v = -1;
  if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    v = sqlite3_column_int64(st, 0);
  else if (!*rc) *rc = ae__store_dberr(s, "checking the lexical index");
  sqlite3_finalize(st);
  return v;
}

int ae_store_lexical_count(ae_store *s, uint64_t *annotations, uint64_t *indexed) {
  *annotations = *indexed = 0;
  if (s->no_lexical)
    return ae__error(AE_EUNSUPPORTED, "%s: no lexical index (schema before 3)", s->path);
  int rc = AE_OK;
  int64_t a = one_int(s, "SELECT count(*) FROM annotations", &rc);
  int64_t d = one_int(s, "SELECT count(*) FROM lexical_docsize", &rc);
  int64_t j = one_int(s, "SELECT count(*) FROM lexical_docsize d JOIN annotations a ON a.lex_id = d.id", &rc);
  if (rc) return rc;
  *annotations = (uint64_t)a;
  *indexed = (uint64_t)j;
  if (d != j)
    return ae__error(AE_EFORMAT, "%s: the lexical index has %lld rows of which %lld belong to an annotation",
                     s->path, (long long)d, (long long)j);
  return AE_OK;
}
