/* The MCP server's tools: what an assistant can ask the index.
 *
 * Five tools, one table (name, description, input schema, output schema, handler):
 *   query_ast_context    lexical, vector or hybrid search: the hits of
 *                        `astembed query --format json`
 *   get_node_details     everything the index holds on one node
 *   list_recent_changes  nodes most recently added or re-embedded
 *   ast_file_query       every node of one file, in line order
 *   index_status         what `astembed stats --json` reports
 * Every result comes twice: a text block written for a model to read, and the same
 * facts as structuredContent matching the tool's outputSchema (clients validate it).
 * Bad arguments are tool execution errors (isError with a sentence naming the
 * argument), so a model can correct itself; an unknown tool is a protocol error,
 * decided in server.c before a call is queued.
 *
 * Size. Clients cap a tool result at about 25,000 tokens. Every free text is cut at a
 * fixed number of bytes on a character boundary and says so ("... [cut]"), snippets
 * show a few lines, lists are capped, and a result whose JSON still exceeds
 * RESULT_BUDGET bytes drops trailing entries and sets "truncated".
 *
 * Shared state and threads. Tool calls run on several worker threads. The index is
 * one read-only store handle behind store_mu (SQLite handles are single-threaded
 * here, and the search matrix lives in the handle); the encoder is one object behind
 * enc_mu (it runs one embed at a time). A search embeds the query under enc_mu and
 * scores under store_mu, so one call's embedding overlaps another's scoring, and a
 * quick lookup is not held up by a slow search's embedding.
 *
 * Loading. Nothing is loaded until a call needs it: the store is opened by the first
 * tool call (a missing index is a tool error, and a later call retries, so the server
 * can start before `astembed embed` has run), the model by the first vector or
 * hybrid search; a lexical search never loads it, so an index built with
 * `embed --lexical-only` is served with no model at all. The model is the one given,
 * else the one the index records; when the index records a different model later
 * (re-embedded with another one), the next search loads that.
 *
 * Staying current. Every search goes through ae_store_search_ex, which reads the
 * index's generation counter in the same read transaction as the vectors and
 * rebuilds its matrix when the generation moved, and reads the lexical index and
 * every hit in one read transaction; `astembed embed` writes each batch (vectors and
 * lexical rows together) in one transaction, so a search never sees half a batch,
 * and a hit whose node a writer deleted meanwhile is left out.
 */
#define _GNU_SOURCE
#include "mcp/mcp.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#define RESULT_BUDGET 60000   /* bytes of structured JSON per result (~15k tokens) */
#define MAX_QUERY_BYTES 4096
#define CUT_LINE 200
#define CUT_SIGNATURE 300
#define CUT_SUMMARY 600
#define CUT_SNIPPET_FULL 12000
#define SNIPPET_LINES 3
#define FILE_NODES_MAX 500
#define RECENT_MAX 200

struct ae__mcp_tools {
  char *db, *model, *fallback, *cache_dir;
  int threads, verbose;
  pthread_mutex_t store_mu, enc_mu;
  ae_store *store;
  ae_encoder *enc;
  char *enc_dir;            /* the folder enc was loaded from */
  uint8_t fp[16], fp_bf16[16];
  int have_bf16;
};

/* ---- strings -------------------------------------------------------------------- */

json_t *ae__mcp_jstr(const char *s, size_t n) {
  json_t *j = json_stringn(s, n);
  if (j) return j;
  /* invalid UTF-8: replace each bad byte by U+FFFD */
  char *buf = ae__malloc(n * 3 + 1);
  if (!buf) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
    if (k <= 0 || c == 0) { memcpy(buf + o, "\xEF\xBF\xBD", 3); o += 3; i++; continue; }
    memcpy(buf + o, s + i, (size_t)k);
    o += (size_t)k;
    i += (size_t)k;
  }
  j = json_stringn(buf, o);
  ae__free(buf);
  return j;
}

/* s cut to at most max bytes on a character boundary; the cut says so. */
static json_t *cut(const char *s, size_t max, int *was_cut) {
  size_t n = strlen(s);
  if (n <= max) return ae__mcp_jstr(s, n);
  while (max && ((unsigned char)s[max] & 0xC0) == 0x80) max--;
  if (was_cut) *was_cut = 1;
  char *buf = ae__malloc(max + 16);
  if (!buf) return NULL;
  memcpy(buf, s, max);
  memcpy(buf + max, " ... [cut]", 11);
  json_t *j = ae__mcp_jstr(buf, max + 10);
  ae__free(buf);
  return j;
}

static void iso_time(int64_t t, char out[32]) {
  time_t tt = (time_t)t;
  struct tm tm;
  if (!gmtime_r(&tt, &tm)) { snprintf(out, 32, "1970-01-01T00:00:00Z"); return; }
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ISO 8601: YYYY-MM-DD, optionally THH:MM[:SS[.fff]] and Z or +HH:MM / -HH:MM (no
 * zone = UTC). 0 on success. */
static int parse_iso(const char *s, int64_t *out) {
  int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
  if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) return -1;
  const char *p = s + n;
  if (*p == 'T' || *p == 't' || *p == ' ') {
    int k = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &k) != 2 || k != 5) return -1;
    p += 1 + k;
    if (*p == ':') {
      if (sscanf(p + 1, "%2d%n", &sec, &k) != 1 || k != 2) return -1;
      p += 1 + k;
      if (*p == '.') { p++; if (*p < '0' || *p > '9') return -1; while (*p >= '0' && *p <= '9') p++; }
    }
  }
  int off = 0;
  if (*p == 'Z' || *p == 'z') p++;
  else if (*p == '+' || *p == '-') {
    int oh, om, k = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59) return -1;
    off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
    p += 1 + k;
  }
  if (*p) return -1;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 || y < 1970) return -1;
  struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi, .tm_sec = sec};
  *out = (int64_t)timegm(&tm) - off;
  return 0;
}

/* ---- results -------------------------------------------------------------------- */

typedef struct { char *p; size_t n, cap; } sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = b->p ? vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap) : -2;
    va_end(ap);
    if (k >= 0 && (size_t)k < b->cap - b->n) { b->n += (size_t)k; return; }
    size_t need = b->cap * 2 + (k > 0 ? (size_t)k : 0) + 256;
    char *np = ae__realloc(b->p, need);
    if (!np) return;
    b->p = np;
    b->cap = need;
  }
}

static json_t *text_result(const char *text, int is_error) {
  json_t *r = json_object(), *content = json_array(), *block = json_object();
  json_object_set_new(block, "type", json_string("text"));
  json_object_set_new(block, "text", ae__mcp_jstr(text, strlen(text)));
  json_array_append_new(content, block);
  json_object_set_new(r, "content", content);
  json_object_set_new(r, "isError", json_boolean(is_error));
  return r;
}

static json_t *tool_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *tool_error(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return text_result(msg, 1);
}

static json_t *lib_error(const char *what, int rc) {
  const char *d = ae_last_error();
  return tool_error("%s: %s%s%s", what, ae_strerror(rc), d && *d ? ": " : "", d ? d : "");
}

/* text + structuredContent (when the client's revision has it). sb is consumed. */
static json_t *finish(sbuf *sb, json_t *structured, int with_structured) {
  json_t *r = text_result(sb->p ? sb->p : "", 0);
  ae__free(sb->p);
  if (with_structured) json_object_set_new(r, "structuredContent", structured);
  else json_decref(structured);
  return r;
}

/* Drops trailing entries of arr until obj's JSON fits the budget; sets "truncated". */
static void fit_budget(json_t *obj, json_t *arr) {
  for (;;) {
    char *s = json_dumps(obj, JSON_COMPACT);
    size_t n = s ? strlen(s) : 0;
    free(s);
    if (n <= RESULT_BUDGET || json_array_size(arr) == 0) return;
    json_array_remove(arr, json_array_size(arr) - 1);
    json_object_set_new(obj, "truncated", json_true());
  }
}

/* ---- arguments ------------------------------------------------------------------- */

/* Optional string argument: NULL when absent; *bad set (with a message) when present
 * but not a string. */
static const char *arg_str(json_t *args, const char *key, json_t **bad) {
  json_t *v = json_object_get(args, key);
  if (!v || json_is_null(v)) return NULL;
  if (!json_is_string(v)) { if (!*bad) *bad = tool_error("argument '%s' must be a string", key); return NULL; }
  return json_string_value(v);
}

static long arg_int(json_t *args, const char *key, long def, long lo, long hi, json_t **bad) {
  json_t *v = json_object_get(args, key);
  if (!v || json_is_null(v)) return def;
  double x;
  if (json_is_integer(v)) x = (double)json_integer_value(v);
  else if (json_is_real(v) && floor(json_real_value(v)) == json_real_value(v)) x = json_real_value(v);
  else { if (!*bad) *bad = tool_error("argument '%s' must be an integer in [%ld, %ld]", key, lo, hi); return def; }
  if (x < lo || x > hi) {
    if (!*bad) *bad = tool_error("argument '%s' must be an integer in [%ld, %ld] (got %.0f)", key, lo, hi, x);
    return def;
  }
  return (long)x;
}

/* Arguments the schema does not name are refused, so a misspelt one is not silently
 * ignored. */
static json_t *check_keys(json_t *args, const char *const *known) {
  const char *k;
  json_t *v;
  json_object_foreach(args, k, v) {
    int ok = 0;
    for (const char *const *p = known; *p; p++) if (!strcmp(*p, k)) ok = 1;
    if (!ok) {
      sbuf sb = {0};
      sb_add(&sb, "unknown argument '%s' (this tool takes:", k);
      for (const char *const *p = known; *p; p++) sb_add(&sb, " %s", *p);
      sb_add(&sb, ")");
      json_t *r = text_result(sb.p ? sb.p : "unknown argument", 1);
      ae__free(sb.p);
      return r;
    }
  }
  return NULL;
}

/* ---- shared state --------------------------------------------------------------- */

/* Opens the index on first use (under store_mu). */
static int need_store(ae__mcp_tools *t) {
  if (t->store) return AE_OK;
  return ae_store_open(t->db, 1, &t->store);
}

/* Loads (or reloads) the encoder for model dir (under enc_mu). */
static int need_encoder(ae__mcp_tools *t, const char *dir) {
  if (t->enc && !strcmp(t->enc_dir, dir)) return AE_OK;
  ae_encoder_free(t->enc);
  ae__free(t->enc_dir);
  t->enc = NULL;
  t->enc_dir = NULL;
  /* one short text per call: the weights are read in place (no prepack), which also
   * computes in f32 whatever precision the index was embedded at */
  ae_encoder_options eo = {.threads = t->threads > 0 ? t->threads : 1, .prepack = AE_PREPACK_OFF,
                           .cache_dir = t->cache_dir};
  double t0 = ae__now_ms();
  int rc = ae_encoder_load(dir, &eo, &t->enc);
  if (rc) return rc;
  if (!(t->enc_dir = ae__strdup(dir))) { ae_encoder_free(t->enc); t->enc = NULL; return AE_ENOMEM; }
  ae_encoder_fingerprint(t->enc, t->fp);
  t->have_bf16 = ae_encoder_fingerprint_as(t->enc, "bf16", t->fp_bf16) == AE_OK;
  fprintf(stderr, "astembed mcp: loaded model %s (%.0f ms)\n", dir, ae__now_ms() - t0);
  return AE_OK;
}

/* ---- query_ast_context ------------------------------------------------------------ */

/* The query's vector under model dir, loading it on first use (under enc_mu), and
 * the fingerprint the index's vectors of that model are stored under. NULL on
 * success, else the tool error. */
static json_t *embed_query(ae__mcp_tools *t, const char *query, const char *dir, int have_rec,
                           const uint8_t fp_rec[16], float **q_out, int *dim_out, uint8_t fp[16]) {
  pthread_mutex_lock(&t->enc_mu);
  int rc = need_encoder(t, dir);
  int dim = rc ? 0 : ae_encoder_dim(t->enc);
  float *q = rc ? NULL : ae__malloc((size_t)dim * sizeof(float));
  if (!rc && !q) rc = AE_ENOMEM;
  if (!rc) {
    size_t len = strlen(query);
    int st = AE_OK;
    rc = ae_encoder_embed_texts(t->enc, &query, &len, 1, q, &st);
    if (!rc) rc = st;
    memcpy(fp, t->fp, 16);
    /* the index's vectors may be the bf16 ones of the same model (same query vector) */
    if (have_rec && memcmp(fp, fp_rec, 16) && t->have_bf16 && !memcmp(t->fp_bf16, fp_rec, 16))
      memcpy(fp, fp_rec, 16);
  }
  pthread_mutex_unlock(&t->enc_mu);
  if (rc) {
    json_t *e = lib_error(q ? "embedding the query" : "loading the model", rc);
    ae__free(q);
    return e;
  }
  *q_out = q;
  *dim_out = dim;
  return NULL;
}

/* The hits as `astembed query --format json` writes them (ae_search_hits_json, the
 * one writer behind query and serve's /search), then cut for an assistant: signature
 * and summary at fixed sizes, each snippet line at CUT_LINE, all saying so. An
 * identifier the shared writer could not store (invalid UTF-8) is written with U+FFFD. */
static json_t *hits_json(const char *query, int mode, const char *model, const ae_search_hit *hits, size_t n) {
  char *js = ae_search_hits_json(query, mode, model, hits, n, SNIPPET_LINES);
  json_t *root = js ? json_loads(js, 0, NULL) : NULL;
  ae_free(js);
  json_t *arr = json_object_get(root, "results");
  if (!json_is_array(arr) || json_array_size(arr) != n) { json_decref(root); return NULL; }
  for (size_t i = 0; i < n; i++) {
    const ae_search_hit *h = &hits[i];
    json_t *r = json_array_get(arr, i), *lines = json_object_get(r, "snippet"), *line;
    json_object_set_new(r, "signature", cut(h->signature, CUT_SIGNATURE, NULL));
    json_object_set_new(r, "summary", cut(h->summary, CUT_SUMMARY, NULL));
    const struct { const char *key, *val; } ids[] = {
      {"nodeId", h->node_id}, {"file", h->file_path}, {"nodeType", h->node_type}, {"language", h->language}};
    for (size_t j = 0; j < sizeof ids / sizeof ids[0]; j++)
      if (!json_object_get(r, ids[j].key))
        json_object_set_new(r, ids[j].key, ae__mcp_jstr(ids[j].val ? ids[j].val : "", ids[j].val ? strlen(ids[j].val) : 0));
    size_t j;
    json_array_foreach(lines, j, line)
      if (json_string_length(line) > CUT_LINE) json_array_set_new(lines, j, cut(json_string_value(line), CUT_LINE, NULL));
  }
  return root;
}

/* The text block: a header line, then per hit its place, ranks, signature, summary,
 * snippet lines and nodeId (for get_node_details). */
static void hits_text(sbuf *sb, json_t *root, const char *query, const char *mode, const char *why) {
  json_t *arr = json_object_get(root, "results"), *searched = json_object_get(root, "searched");
  size_t n = json_array_size(arr);
  sb_add(sb, "%zu result%s for \"%s\" (%s search", n, n == 1 ? "" : "s", query, mode);
  if (searched) sb_add(sb, " over %lld indexed vectors", (long long)json_integer_value(searched));
  sb_add(sb, ")%s\n", json_is_true(json_object_get(root, "truncated")) ? "; more were cut to fit" : "");
  if (why) sb_add(sb, "Mode: %s (pass mode to choose).\n", why);
  size_t i;
  json_t *r;
  json_array_foreach(arr, i, r) {
    int sl = (int)json_integer_value(json_object_get(r, "startLine"));
    int el = (int)json_integer_value(json_object_get(r, "endLine"));
    json_int_t lr = json_integer_value(json_object_get(r, "lexicalRank"));
    json_int_t vr = json_integer_value(json_object_get(r, "vectorRank"));
    const char *lang = json_string_value(json_object_get(r, "language"));
    const char *sig = json_string_value(json_object_get(r, "signature"));
    const char *sum = json_string_value(json_object_get(r, "summary"));
    sb_add(sb, "\n%zu. %s:%d", i + 1, json_string_value(json_object_get(r, "file")), sl);
    if (el > sl) sb_add(sb, "-%d", el);
    sb_add(sb, "  %s%s%s%s  (score %.4f", json_string_value(json_object_get(r, "nodeType")),
           lang && *lang ? " (" : "", lang && *lang ? lang : "", lang && *lang ? ")" : "",
           json_real_value(json_object_get(r, "score")));
    if (lr && vr) sb_add(sb, "; lexical #%lld, vector #%lld", (long long)lr, (long long)vr);
    else if (!strcmp(mode, "hybrid")) sb_add(sb, "; %s #%lld only", lr ? "lexical" : "vector", (long long)(lr ? lr : vr));
    sb_add(sb, ")\n");
    if (sig && *sig) sb_add(sb, "   %s\n", sig);
    if (sum && *sum) sb_add(sb, "   Summary: %s\n", sum);
    size_t j;
    json_t *line;
    json_array_foreach(json_object_get(r, "snippet"), j, line) sb_add(sb, "   | %s\n", json_string_value(line));
    sb_add(sb, "   nodeId: %s\n", json_string_value(json_object_get(r, "nodeId")));
  }
}

/* Lexical, vector or hybrid search through ae_store_search_ex, as `astembed query`
 * does it: without a mode the index chooses (ae_store_default_mode: hybrid with a
 * real model's vectors, lexical with none or a random-weight model's), the filters
 * are applied inside the search (SQL on the lexical side, a row mask on the vector
 * side), and lexical mode never touches the encoder. Vector and hybrid embed the
 * query under enc_mu first, then search under store_mu. */
static json_t *tool_query(ae__mcp_tools *t, json_t *args, int structured, const volatile int *cancelled) {
  static const char *const known[] = {"query", "maxResults", "mode", "language", "path", "nodeType", NULL};
  json_t *bad = check_keys(args, known);
  if (bad) return bad;
  json_t *qv = json_object_get(args, "query");
  if (!json_is_string(qv) || !*json_string_value(qv))
    return tool_error("argument 'query' is required: a non-empty string saying what code to find");
  const char *query = json_string_value(qv);
  if (strlen(query) > MAX_QUERY_BYTES)
    return tool_error("argument 'query' is %zu bytes; the limit is %d", strlen(query), MAX_QUERY_BYTES);
  ae_search_options so;
  ae_search_options_default(&so);
  so.k = (size_t)arg_int(args, "maxResults", 10, 1, 50, &bad);
  const char *mode_s = arg_str(args, "mode", &bad);
  so.language = arg_str(args, "language", &bad);
  so.path_glob = arg_str(args, "path", &bad);
  so.node_type = arg_str(args, "nodeType", &bad);
  if (bad) return bad;
  int mode = -1;
  if (mode_s && (mode = ae_search_mode_parse(mode_s)) < 0)
    return tool_error("argument 'mode' must be one of hybrid, vector, lexical (got '%s')", mode_s);

  /* the mode (given, else the index's default) and, unless lexical, the model:
   * given, else recorded by the index, else the fallback */
  const char *why = NULL;
  char *recorded = NULL;
  uint8_t fp_rec[16];
  int have_rec = 0;
  pthread_mutex_lock(&t->store_mu);
  int rc = need_store(t);
  if (!rc && mode < 0) mode = ae_store_default_mode(t->store, &why);
  if (!rc && mode != AE_SEARCH_LEXICAL) have_rec = ae_store_model(t->store, NULL, &recorded, fp_rec, NULL) == AE_OK;
  pthread_mutex_unlock(&t->store_mu);
  if (rc) return lib_error("opening the index", rc);
  so.mode = mode;
  const char *dir = NULL;
  float *q = NULL;
  int dim = 0;
  uint8_t fp[16];
  double t0 = ae__now_ms();
  if (mode != AE_SEARCH_LEXICAL) {
    dir = t->model ? t->model : have_rec && recorded && *recorded ? recorded : t->fallback;
    if (!dir) {
      ae_free(recorded);
      return tool_error("%s search needs a model: the index records none and the server was started without "
                        "--model (mode 'lexical' needs none)", ae_search_mode_name(mode));
    }
    json_t *e = embed_query(t, query, dir, have_rec, fp_rec, &q, &dim, fp);
    if (e) { ae_free(recorded); return e; }
    if (*cancelled) { ae__free(q); ae_free(recorded); return NULL; }
  }

  ae_search_hit *hits = NULL;
  size_t nh = 0, rows = 0;
  double t1 = ae__now_ms();
  pthread_mutex_lock(&t->store_mu);
  rc = q ? ae_store_matrix_rows(t->store, fp, &rows) : AE_OK;
  if (!rc) rc = ae_store_search_ex(t->store, &so, query, q ? fp : NULL, q, dim, &hits, &nh);
  pthread_mutex_unlock(&t->store_mu);
  if (t->verbose)
    fprintf(stderr, "astembed mcp: query_ast_context: embed %.2f ms, search %.2f ms over %zu vectors (%s)\n",
            t1 - t0, ae__now_ms() - t1, rows, ae_search_mode_name(mode));
  ae__free(q);
  if (rc) { ae_free(recorded); return lib_error("searching", rc); }

  json_t *root = hits_json(query, mode, dir, hits, nh);
  ae_search_hits_free(hits, nh);
  ae_free(recorded);
  if (!root) return tool_error("writing the hits: out of memory");
  json_t *arr = json_object_get(root, "results");
  if (dir) json_object_set_new(root, "searched", json_integer((json_int_t)rows));
  json_object_set_new(root, "truncated", json_false());
  fit_budget(root, arr);
  sbuf sb = {0};
  hits_text(&sb, root, query, ae_search_mode_name(mode), why);
  return finish(&sb, root, structured);
}

/* ---- node listings ----------------------------------------------------------------- */

static json_t *node_json(const ae_node *n, int full, int *snippet_cut) {
  char when[32];
  iso_time(n->updated_at, when);
  json_t *o = json_object();
  json_object_set_new(o, "nodeId", ae__mcp_jstr(n->node_id, strlen(n->node_id)));
  json_object_set_new(o, "file", ae__mcp_jstr(n->file_path, strlen(n->file_path)));
  json_object_set_new(o, "startLine", json_integer(n->start_line));
  json_object_set_new(o, "endLine", json_integer(n->end_line));
  json_object_set_new(o, "nodeType", ae__mcp_jstr(n->node_type, strlen(n->node_type)));
  json_object_set_new(o, "language", ae__mcp_jstr(n->language, strlen(n->language)));
  json_object_set_new(o, "signature", cut(n->signature, CUT_SIGNATURE, NULL));
  json_object_set_new(o, "summary", cut(n->summary, full ? CUT_SNIPPET_FULL : CUT_SUMMARY / 3, NULL));
  json_object_set_new(o, "updatedAt", json_string(when));
  if (full) {
    json_object_set_new(o, "snippet", cut(n->snippet, CUT_SNIPPET_FULL, snippet_cut));
    json_object_set_new(o, "vectors", json_integer(n->vectors));
    json_object_set_new(o, "currentVectors", json_integer(n->current_vectors));
  }
  return o;
}

static void node_line(sbuf *sb, json_t *o) {
  int sl = (int)json_integer_value(json_object_get(o, "startLine"));
  int el = (int)json_integer_value(json_object_get(o, "endLine"));
  const char *sig = json_string_value(json_object_get(o, "signature"));
  sb_add(sb, "- %s:%d", json_string_value(json_object_get(o, "file")), sl);
  if (el > sl) sb_add(sb, "-%d", el);
  sb_add(sb, "  %s  %s  (nodeId %s, changed %s)\n", json_string_value(json_object_get(o, "nodeType")),
         sig && *sig ? sig : "", json_string_value(json_object_get(o, "nodeId")),
         json_string_value(json_object_get(o, "updatedAt")));
}

static json_t *tool_details(ae__mcp_tools *t, json_t *args, int structured, const volatile int *cancelled) {
  static const char *const known[] = {"nodeId", NULL};
  json_t *bad = check_keys(args, known);
  if (bad) return bad;
  json_t *idv = json_object_get(args, "nodeId");
  if (!json_is_string(idv) || !*json_string_value(idv))
    return tool_error("argument 'nodeId' is required: a node id as returned by query_ast_context");
  ae_node n;
  pthread_mutex_lock(&t->store_mu);
  int rc = need_store(t);
  if (!rc) rc = ae_store_node_get(t->store, json_string_value(idv), &n);
  pthread_mutex_unlock(&t->store_mu);
  if (rc == AE_ENOTFOUND && t->store)
    return tool_error("no node '%s' in the index (node ids come from query_ast_context or ast_file_query)",
                      json_string_value(idv));
  if (rc) return lib_error("reading the node", rc);
  int snippet_cut = 0;
  json_t *o = node_json(&n, 1, &snippet_cut);
  ae_node_clear(&n);
  json_object_set_new(o, "snippetTruncated", json_boolean(snippet_cut));
  sbuf sb = {0};
  int sl = (int)json_integer_value(json_object_get(o, "startLine"));
  int el = (int)json_integer_value(json_object_get(o, "endLine"));
  sb_add(&sb, "%s  %s:%d-%d  (%s%s%s)\n", json_string_value(json_object_get(o, "nodeType")),
         json_string_value(json_object_get(o, "file")), sl, el, json_string_value(json_object_get(o, "language")),
         *json_string_value(json_object_get(o, "language")) ? ", " : "", json_string_value(json_object_get(o, "nodeId")));
  sb_add(&sb, "Signature: %s\nSummary: %s\nChanged: %s; vectors: %d (%d current)\n",
         json_string_value(json_object_get(o, "signature")), json_string_value(json_object_get(o, "summary")),
         json_string_value(json_object_get(o, "updatedAt")),
         (int)json_integer_value(json_object_get(o, "vectors")),
         (int)json_integer_value(json_object_get(o, "currentVectors")));
  sb_add(&sb, "Code%s:\n%s\n", snippet_cut ? " (cut)" : "", json_string_value(json_object_get(o, "snippet")));
  return finish(&sb, o, structured);
}

static json_t *node_list_result(const char *title, json_t *extra, ae_node *v, size_t n, int more, int structured) {
  json_t *root = extra, *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, node_json(&v[i], 0, NULL));
  json_object_set_new(root, "nodes", arr);
  json_object_set_new(root, "truncated", json_boolean(more));
  fit_budget(root, arr);
  sbuf sb = {0};
  size_t shown = json_array_size(arr);
  sb_add(&sb, "%s: %zu node%s%s\n", title, shown, shown == 1 ? "" : "s",
         json_is_true(json_object_get(root, "truncated")) ? " (more exist; narrow the request)" : "");
  size_t i;
  json_t *o;
  json_array_foreach(arr, i, o) node_line(&sb, o);
  return finish(&sb, root, structured);
}

static json_t *tool_recent(ae__mcp_tools *t, json_t *args, int structured, const volatile int *cancelled) {
  static const char *const known[] = {"since", "limit", NULL};
  json_t *bad = check_keys(args, known);
  if (bad) return bad;
  const char *since = arg_str(args, "since", &bad);
  long limit = arg_int(args, "limit", 20, 1, RECENT_MAX, &bad);
  if (bad) return bad;
  int64_t from = 0;
  if (since && parse_iso(since, &from))
    return tool_error("argument 'since' must be an ISO 8601 time such as 2026-01-31 or 2026-01-31T12:00:00Z (got '%s')", since);
  ae_node *v = NULL;
  size_t n = 0;
  int more = 0;
  pthread_mutex_lock(&t->store_mu);
  int rc = need_store(t);
  if (!rc) rc = ae_store_recent_nodes(t->store, from, (size_t)limit, &v, &n, &more);
  pthread_mutex_unlock(&t->store_mu);
  if (rc) return lib_error("reading recent changes", rc);
  json_t *root = json_object();
  char when[32];
  iso_time(from, when);
  json_object_set_new(root, "since", json_string(when));
  char title[80];
  snprintf(title, sizeof title, "Most recently changed since %s", when);
  json_t *r = node_list_result(title, root, v, n, more, structured);
  ae_nodes_free(v, n);
  return r;
}

static json_t *tool_file(ae__mcp_tools *t, json_t *args, int structured, const volatile int *cancelled) {
  static const char *const known[] = {"filePath", "nodeType", NULL};
  json_t *bad = check_keys(args, known);
  if (bad) return bad;
  json_t *pv = json_object_get(args, "filePath");
  if (!json_is_string(pv) || !*json_string_value(pv))
    return tool_error("argument 'filePath' is required: a file path as the index stores it (see query results)");
  const char *type = arg_str(args, "nodeType", &bad);
  if (bad) return bad;
  ae_node *v = NULL;
  size_t n = 0;
  int more = 0;
  pthread_mutex_lock(&t->store_mu);
  int rc = need_store(t);
  if (!rc) rc = ae_store_file_nodes(t->store, json_string_value(pv), type, FILE_NODES_MAX, &v, &n, &more);
  pthread_mutex_unlock(&t->store_mu);
  if (rc) return lib_error("reading the file's nodes", rc);
  json_t *root = json_object();
  json_object_set_new(root, "filePath", json_copy(pv));
  sbuf title = {0};
  sb_add(&title, "%s%s%s", json_string_value(pv), type ? ", node type " : "", type ? type : "");
  json_t *r = node_list_result(title.p ? title.p : "", root, v, n, more, structured);
  ae__free(title.p);
  ae_nodes_free(v, n);
  return r;
}

static json_t *tool_status(ae__mcp_tools *t, json_t *args, int structured, const volatile int *cancelled) {
  static const char *const known[] = {NULL};
  json_t *bad = check_keys(args, known);
  if (bad) return bad;
  char *js = NULL;
  pthread_mutex_lock(&t->store_mu);
  int rc = need_store(t);
  if (!rc) rc = ae_store_stats_json(t->store, t->db, &js);
  pthread_mutex_unlock(&t->store_mu);
  if (rc) return lib_error("reading the index", rc);
  json_t *o = json_loads(js, 0, NULL);
  sbuf sb = {0};
  sb_add(&sb, "Index %s:\n%s\n", t->db, js);
  ae_free(js);
  if (!o) { ae__free(sb.p); return tool_error("reading the index: out of memory"); }
  return finish(&sb, o, structured);
}

/* ---- the table -------------------------------------------------------------------- */

typedef json_t *(*tool_fn)(ae__mcp_tools *, json_t *, int, const volatile int *);

#define NODE_PROPS                                                                                  \
  "\"nodeId\":{\"type\":\"string\"},\"file\":{\"type\":\"string\"},\"startLine\":{\"type\":\"integer\"}," \
  "\"endLine\":{\"type\":\"integer\"},\"nodeType\":{\"type\":\"string\"},\"language\":{\"type\":\"string\"}," \
  "\"signature\":{\"type\":\"string\"},\"summary\":{\"type\":\"string\"},\"updatedAt\":{\"type\":\"string\"}"
#define NODE_REQ "\"nodeId\",\"file\",\"startLine\",\"endLine\",\"nodeType\",\"language\",\"signature\",\"summary\",\"updatedAt\""

static const struct {
  const char *name, *title, *description, *input, *output;
  tool_fn fn;
} k_tools[] = {
  {"query_ast_context", "Search the code index",
   "Find the functions, classes and other code nodes that best match a question or an identifier: by "
   "words and identifiers (lexical), by meaning (vector) or both fused (hybrid); returns file, lines, "
   "score, ranks, signature, summary and the first snippet lines of each hit.",
   "{\"type\":\"object\",\"properties\":{"
   "\"query\":{\"type\":\"string\",\"description\":\"What to look for, in words or code\"},"
   "\"maxResults\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":50,\"default\":10,\"description\":\"Hits to return\"},"
   "\"mode\":{\"type\":\"string\",\"enum\":[\"hybrid\",\"vector\",\"lexical\"],\"description\":"
   "\"lexical: words and identifiers (BM25, needs no model); vector: meaning (cosine); hybrid: both fused. "
   "Default: hybrid when the index holds a real model's vectors, else lexical\"},"
   "\"language\":{\"type\":\"string\",\"description\":\"Only nodes of this language as the index stores it, e.g. python\"},"
   "\"path\":{\"type\":\"string\",\"description\":\"Only files matching this glob (SQLite GLOB: case-sensitive, * also matches /), e.g. Lib/http/*\"},"
   "\"nodeType\":{\"type\":\"string\",\"description\":\"Only nodes of this type, e.g. function, class\"}},"
   "\"required\":[\"query\"],\"additionalProperties\":false}",
   "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"},"
   "\"mode\":{\"type\":\"string\",\"enum\":[\"hybrid\",\"vector\",\"lexical\"]},"
   "\"model\":{\"type\":[\"string\",\"null\"],\"description\":\"The model folder (null in lexical mode)\"},"
   "\"searched\":{\"type\":\"integer\",\"description\":\"Vectors ranked (vector and hybrid modes)\"},"
   "\"truncated\":{\"type\":\"boolean\"},"
   "\"results\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
   "\"rank\":{\"type\":\"integer\"},\"score\":{\"type\":\"number\",\"description\":"
   "\"lexical: BM25 relevance; vector: cosine; hybrid: the fused RRF score\"},"
   "\"lexicalRank\":{\"type\":[\"integer\",\"null\"],\"description\":\"Rank in the lexical list (null: not in it)\"},"
   "\"vectorRank\":{\"type\":[\"integer\",\"null\"],\"description\":\"Rank in the vector list (null: not in it)\"},"
   "\"nodeId\":{\"type\":\"string\"},"
   "\"file\":{\"type\":\"string\"},\"startLine\":{\"type\":\"integer\"},\"endLine\":{\"type\":\"integer\"},"
   "\"nodeType\":{\"type\":\"string\"},\"language\":{\"type\":\"string\"},"
   "\"signature\":{\"type\":\"string\"},\"summary\":{\"type\":\"string\"},"
   "\"snippet\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
   "\"required\":[\"rank\",\"score\",\"lexicalRank\",\"vectorRank\",\"nodeId\",\"file\",\"startLine\",\"endLine\","
   "\"nodeType\",\"language\",\"signature\",\"summary\",\"snippet\"]}}},"
   "\"required\":[\"query\",\"mode\",\"model\",\"truncated\",\"results\"]}",
   tool_query},
  {"get_node_details", "Show one indexed node",
   "Everything the index holds on one code node (file, lines, type, language, signature, summary, full "
   "code snippet, vectors) given its nodeId from another tool's results.",
   "{\"type\":\"object\",\"properties\":{\"nodeId\":{\"type\":\"string\",\"description\":\"The node's id, as returned by query_ast_context or ast_file_query\"}},"
   "\"required\":[\"nodeId\"],\"additionalProperties\":false}",
   "{\"type\":\"object\",\"properties\":{" NODE_PROPS ",\"snippet\":{\"type\":\"string\"},"
   "\"snippetTruncated\":{\"type\":\"boolean\"},\"vectors\":{\"type\":\"integer\"},\"currentVectors\":{\"type\":\"integer\"}},"
   "\"required\":[" NODE_REQ ",\"snippet\",\"snippetTruncated\",\"vectors\",\"currentVectors\"]}",
   tool_details},
  {"list_recent_changes", "List recently indexed changes",
   "The code nodes most recently added to the index or re-embedded because their code changed, newest "
   "first, optionally only those changed since a given time.",
   "{\"type\":\"object\",\"properties\":{"
   "\"since\":{\"type\":\"string\",\"description\":\"ISO 8601 time, e.g. 2026-01-31T12:00:00Z; only changes at or after it\"},"
   "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":200,\"default\":20,\"description\":\"Nodes to return\"}},"
   "\"additionalProperties\":false}",
   "{\"type\":\"object\",\"properties\":{\"since\":{\"type\":\"string\"},\"truncated\":{\"type\":\"boolean\"},"
   "\"nodes\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{" NODE_PROPS "},\"required\":[" NODE_REQ "]}}},"
   "\"required\":[\"since\",\"truncated\",\"nodes\"]}",
   tool_recent},
  {"ast_file_query", "List the nodes of a file",
   "Every indexed code node (functions, classes, ...) of one file in line order, optionally only one node "
   "type: an outline of the file.",
   "{\"type\":\"object\",\"properties\":{"
   "\"filePath\":{\"type\":\"string\",\"description\":\"The file's path as the index stores it (as in query results)\"},"
   "\"nodeType\":{\"type\":\"string\",\"description\":\"Only nodes of this type, e.g. function\"}},"
   "\"required\":[\"filePath\"],\"additionalProperties\":false}",
   "{\"type\":\"object\",\"properties\":{\"filePath\":{\"type\":\"string\"},\"truncated\":{\"type\":\"boolean\"},"
   "\"nodes\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{" NODE_PROPS "},\"required\":[" NODE_REQ "]}}},"
   "\"required\":[\"filePath\",\"truncated\",\"nodes\"]}",
   tool_file},
  {"index_status", "Describe the index",
   "What the code index holds: annotations, files, vectors, models, size and its generation (change counter).",
   "{\"type\":\"object\",\"additionalProperties\":false}",
   "{\"type\":\"object\",\"properties\":{\"db\":{\"type\":\"string\"},\"bytes\":{\"type\":\"integer\"},"
   "\"annotations\":{\"type\":\"integer\"},\"files\":{\"type\":\"integer\"},\"vectors\":{\"type\":\"integer\"},"
   "\"currentVectors\":{\"type\":\"integer\"},\"generation\":{\"type\":\"integer\"},\"models\":{\"type\":\"array\"}},"
   "\"required\":[\"db\",\"annotations\",\"files\",\"vectors\",\"currentVectors\",\"generation\",\"models\"]}",
   tool_status},
};
#define N_TOOLS (sizeof k_tools / sizeof k_tools[0])

json_t *ae__mcp_tools_list(int with_output) {
  json_t *arr = json_array();
  for (size_t i = 0; arr && i < N_TOOLS; i++) {
    json_t *t = json_object();
    json_object_set_new(t, "name", json_string(k_tools[i].name));
    if (with_output) json_object_set_new(t, "title", json_string(k_tools[i].title));
    json_object_set_new(t, "description", json_string(k_tools[i].description));
    json_object_set_new(t, "inputSchema", json_loads(k_tools[i].input, 0, NULL));
    if (with_output) json_object_set_new(t, "outputSchema", json_loads(k_tools[i].output, 0, NULL));
    json_t *ann = json_object();
    json_object_set_new(ann, "readOnlyHint", json_true());
    json_object_set_new(ann, "openWorldHint", json_false());
    json_object_set_new(t, "annotations", ann);
    json_array_append_new(arr, t);
  }
  return arr;
}

int ae__mcp_tool_exists(const char *name) {
  for (size_t i = 0; i < N_TOOLS; i++) if (!strcmp(k_tools[i].name, name)) return 1;
  return 0;
}

json_t *ae__mcp_tool_call(ae__mcp_tools *t, const char *name, json_t *args, int structured,
                          const volatile int *cancelled) {
  for (size_t i = 0; i < N_TOOLS; i++)
    if (!strcmp(k_tools[i].name, name)) {
      json_t *r = k_tools[i].fn(t, args, structured, cancelled);
      if (r && *cancelled) { json_decref(r); return NULL; }
      return r ? r : (*cancelled ? NULL : tool_error("%s: out of memory", name));
    }
  return tool_error("unknown tool '%s'", name);
}

int ae__mcp_tools_new(const ae_mcp_options *o, ae__mcp_tools **out) {
  ae__mcp_tools *t = ae__calloc(1, sizeof *t);
  if (!t) return ae__error(AE_ENOMEM, "out of memory");
  pthread_mutex_init(&t->store_mu, NULL);
  pthread_mutex_init(&t->enc_mu, NULL);
  t->db = ae__strdup(o->db_path && *o->db_path ? o->db_path : AE_STORE_DEFAULT_PATH);
  t->model = o->model ? ae__strdup(o->model) : NULL;
  t->fallback = o->fallback_model ? ae__strdup(o->fallback_model) : NULL;
  t->cache_dir = o->cache_dir ? ae__strdup(o->cache_dir) : NULL;
  t->threads = o->threads;
  t->verbose = o->verbose;
  if (!t->db || (o->model && !t->model) || (o->fallback_model && !t->fallback) || (o->cache_dir && !t->cache_dir)) {
    ae__mcp_tools_free(t);
    return ae__error(AE_ENOMEM, "out of memory");
  }
  *out = t;
  return AE_OK;
}

void ae__mcp_tools_free(ae__mcp_tools *t) {
  if (!t) return;
  ae_store_close(t->store);
  ae_encoder_free(t->enc);
  ae__free(t->enc_dir);
  ae__free(t->db);
  ae__free(t->model);
  ae__free(t->fallback);
  ae__free(t->cache_dir);
  pthread_mutex_destroy(&t->store_mu);
  pthread_mutex_destroy(&t->enc_mu);
  ae__free(t);
}
