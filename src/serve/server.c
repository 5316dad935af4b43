/* astembed serve: an embedding server whose batches form across requests.
 *
 * HTTP is libmicrohttpd's (no hand-written parser): an internal epoll polling thread
 * pool accepts connections, reads headers and bodies, and calls access_handler. The
 * handler does the cheap work on the HTTP thread (bounds, authentication, JSON
 * parsing, tokenizing each input once to count its tokens and find over-long ones)
 * and hands the inputs to the batcher (batcher.c): one bounded queue and one thread
 * that embeds inputs of many requests together through the generator's own path
 * (cache, length ordering, optimizer token budget, memory strategy).
 *
 * A request waiting for its vectors does not hold an HTTP thread: its connection is
 * suspended (MHD_suspend_connection) until the batcher's done hook resumes it, and
 * the handler, called again, writes the response. A per-request mutex orders the two:
 * the handler suspends only if the job has not finished yet, and the hook resumes only
 * a connection that was suspended, so a fast batch can never resume a connection
 * that is not (yet) suspended.
 *
 * Backpressure and bounds, all fixed at start:
 *   body          Content-Length over max_body_bytes: 413 before the body is read; a
 *                 chunked body is counted as it arrives and dropped past the bound
 *   inputs        max_inputs per request, max_input_bytes per input (413)
 *   tokens        the model's max length per input: /v1/embeddings truncates (as
 *                 `astembed encode` does), /embed truncates only with truncate:true,
 *                 else 413
 *   queue         max_queue inputs; a request that does not fit whole gets 429 with
 *                 Retry-After, so memory never grows with load
 *   connections   max_connections; each one's header buffer is bounded by
 *                 libmicrohttpd (CONNECTION_MEMORY_LIMIT), and an idle or slow one is
 *                 closed after timeout_s (CONNECTION_TIMEOUT)
 *
 * Shutdown (ae_server_stop, async-signal-safe: one write to a pipe): ae_server_run
 * wakes, quiesces the daemon (the listening socket closes, no new connections), marks
 * the server stopping (a request that arrives on an open connection now gets 503),
 * drains the batcher (every queued input is embedded and its connection resumed),
 * waits for the answers in flight to be written (at most timeout_s), and stops the
 * daemon. No connection is suspended at that point, as libmicrohttpd requires.
 *
 * Metrics: request counts by route and status and latency histograms per route are
 * kept here; the queue depth and the batch-size and token histograms by the batcher;
 * the PerformanceMetrics by the generator. /metrics writes all of them, the last two
 * through the one metrics table (src/common/metrics.c).
 */
#define _GNU_SOURCE
#include "serve/serve.h"
#include "common/metrics.h"
#include "common/strbuf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { R_EMBEDDINGS, R_EMBED, R_SEARCH, R_HEALTH, R_INFO, R_METRICS, R_OTHER, R_COUNT };
static const struct { const char *path, *method; } ROUTES[R_COUNT] = {
  {"/v1/embeddings", "POST"}, {"/embed", "POST"}, {"/search", "POST"},
  {"/health", "GET"}, {"/info", "GET"}, {"/metrics", "GET"}, {"other", NULL},
};
static const int CODES[] = {200, 400, 401, 404, 405, 413, 422, 429, 500, 503};
#define N_CODES ((int)(sizeof CODES / sizeof CODES[0]))
static const double LATENCY_BUCKETS[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct ae_server {
  ae_server_options o;
  char *model_dir, *model_name, *db_path, *host, *api_key, *load_cache_dir;
  size_t api_key_len;
  ae_generator_config cfg;
  ae_generator *g;
  const ae_tokenizer *tok;
  int dim, max_len;
  ae__batcher *b;
  ae_store *store;
  uint8_t fp[16];
  pthread_mutex_t store_mu;
  struct MHD_Daemon *d;
  int port;
  int stop_pipe[2];
  atomic_int stopping;
  atomic_long active;             /* requests with a context (not yet completed) */
  pthread_mutex_t metrics_mu;
  uint64_t requests[R_COUNT][N_CODES + 1];
  ae__hist latency[R_COUNT];
};

/* One request. */
typedef struct {
  ae_server *s;
  int route;
  struct MHD_Connection *conn;
  uint64_t t0;
  char *body;
  size_t len, cap;
  int too_large, responded, submitted, code;
  ae__embed_request er;
  ae__search_request sr;
  ae__serve_job job;
  int *tokens;
  float *vecs;
  int *status;
  size_t total_tokens;
  pthread_mutex_t mu;             /* finished / suspended, see the top */
  int finished, suspended;
} request;

/* ---- responses -------------------------------------------------------------------- */

static enum MHD_Result respond(request *r, int code, const char *ctype, char *body, size_t len,
                               const char *hdr, const char *hval) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
  if (!resp) { free(body); return MHD_NO; }
  MHD_add_response_header(resp, "Content-Type", ctype);
  if (hdr) MHD_add_response_header(resp, hdr, hval);
  if (code >= 400 && r->route != R_HEALTH && atomic_load(&r->s->stopping))
    MHD_add_response_header(resp, "Connection", "close");
  enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)code, resp);
  MHD_destroy_response(resp);
  r->responded = 1;
  r->code = code;
  return ret;
}

/* A body from a strbuf or jansson: malloc'd for MHD_RESPMEM_MUST_FREE. */
static char *dup_libc(const char *s, size_t n) {
  char *p = malloc(n + 1);
  if (p) { memcpy(p, s, n); p[n] = 0; }
  return p;
}

static enum MHD_Result respond_json(request *r, int code, json_t *j, const char *hdr, const char *hval) {
  char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)) : NULL;
  json_decref(j);
  if (!s) return MHD_NO;
  return respond(r, code, "application/json", s, strlen(s), hdr, hval);
}

/* Errors: the OpenAI error object on /v1/embeddings, Text Embeddings Inference's elsewhere. */
static enum MHD_Result respond_error(request *r, int code, const char *param, const char *msg) {
  const char *hdr = NULL, *hval = NULL;
  if (code == 429) hdr = "Retry-After", hval = "1";
  if (code == 401) hdr = "WWW-Authenticate", hval = "Bearer";
  if (code == 405) hdr = "Allow", hval = r->route < R_OTHER ? ROUTES[r->route].method : "GET, POST";
  json_t *j;
  if (r->route == R_EMBEDDINGS) {
    const char *type = code == 401 ? "authentication_error" : code == 429 ? "rate_limit_error"
                       : code >= 500 ? "server_error" : "invalid_request_error";
    j = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", msg, "type", type, "param",
                  param && *param ? json_string(param) : json_null(), "code", json_null());
  } else {
    const char *type = code == 413 || code == 422 || code == 400 ? "Validation" : code == 429 ? "Overloaded"
                       : code == 401 ? "Unauthorized" : code == 503 ? "Unhealthy" : code == 404 ? "NotFound"
                       : "Backend";
    j = json_pack("{s:s,s:s}", "error", msg, "error_type", type);
  }
  return respond_json(r, code, j, hdr, hval);
}

/* 200 with the text of a strbuf (500 when it ran out of memory). */
static enum MHD_Result respond_sb(request *r, ae__sb *b, const char *ctype) {
  size_t len;
  char *text = sb_finish(b, &len);
  char *body = text ? dup_libc(text, len) : NULL;
  ae__free(text);
  if (!body) return respond_error(r, 500, NULL, "out of memory");
  return respond(r, 200, ctype, body, len, NULL, NULL);
}

/* ---- embeddings ------------------------------------------------------------------- */

static void b64(ae__sb *b, const unsigned char *p, size_t n) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  sb_reserve(b, (n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    char q[4] = {A[v >> 18 & 63], A[v >> 12 & 63], i + 1 < n ? A[v >> 6 & 63] : '=', i + 2 < n ? A[v & 63] : '='};
    sb_putn(b, q, 4);
  }
}

static void put_vector(ae__sb *b, const float *v, int dim, int format) {
  if (format == AE__FMT_BASE64) {
    sb_putc(b, '"');
    b64(b, (const unsigned char *)v, (size_t)dim * sizeof(float));   /* little-endian float32 */
    sb_putc(b, '"');
    return;
  }
  sb_putc(b, '[');
  for (int c = 0; c < dim; c++) {
    char num[32];
    int k = snprintf(num, sizeof num, c ? ",%.9g" : "%.9g", isfinite(v[c]) ? (double)v[c] : 0.0);
    sb_putn(b, num, (size_t)k);
  }
  sb_putc(b, ']');
}

static void put_json_string(ae__sb *b, const char *s) {
  json_t *j = json_string(s);
  char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
  json_decref(j);
  sb_puts(b, t ? t : "\"\"");
  free(t);
}

static enum MHD_Result respond_vectors(request *r) {
  ae_server *s = r->s;
  size_t n = r->er.n;
  for (size_t i = 0; i < n; i++)
    if (r->status[i]) {
      char msg[256];
      snprintf(msg, sizeof msg, "input %zu could not be embedded: %s", i, ae_strerror(r->status[i]));
      return respond_error(r, r->status[i] == AE_EINTR ? 503 : 500, r->route == R_EMBEDDINGS ? "input" : NULL, msg);
    }
  if (r->er.normalize)
    for (size_t i = 0; i < n; i++) {
      float *v = r->vecs + i * (size_t)s->dim;
      double ss = 0;
      for (int c = 0; c < s->dim; c++) ss += (double)v[c] * v[c];
      if (ss > 0) for (int c = 0; c < s->dim; c++) v[c] = (float)(v[c] / sqrt(ss));
    }
  ae__sb b = {0};
  if (r->route == R_EMBEDDINGS) {
    sb_puts(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
      ae__sb_printf(&b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "", i);
      put_vector(&b, r->vecs + i * (size_t)s->dim, s->dim, r->er.format);
      sb_putc(&b, '}');
    }
    sb_puts(&b, "],\"model\":");
    put_json_string(&b, r->er.model ? r->er.model : s->model_name);
    ae__sb_printf(&b, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}", r->total_tokens, r->total_tokens);
  } else {
    sb_putc(&b, '[');
    for (size_t i = 0; i < n; i++) {
      if (i) sb_putc(&b, ',');
      put_vector(&b, r->vecs + i * (size_t)s->dim, s->dim, AE__FMT_FLOAT);
    }
    sb_putc(&b, ']');
  }
  return respond_sb(r, &b, "application/json");
}

/* The batcher's done hook (batcher thread). */
static void job_done(ae__serve_job *job, void *ud) {
  request *r = ud;
  (void)job;
  pthread_mutex_lock(&r->mu);
  r->finished = 1;
  int suspended = r->suspended;
  struct MHD_Connection *conn = r->conn;
  pthread_mutex_unlock(&r->mu);
  if (suspended) MHD_resume_connection(conn);
}

/* Tokenizes every input once (token counts for the batcher and usage; over-long
 * inputs), then queues the job and suspends the connection. Returns MHD_YES with or
 * without a response queued. */
static enum MHD_Result submit(request *r, size_t n, const char *const *texts, const size_t *lens, int truncate,
                              const char *param) {
  ae_server *s = r->s;
  r->tokens = ae__calloc(n, sizeof *r->tokens);
  r->status = ae__calloc(n, sizeof *r->status);
  r->vecs = ae__malloc(n * (size_t)s->dim * sizeof(float));
  if (!r->tokens || !r->status || !r->vecs) return respond_error(r, 500, NULL, "out of memory");
  for (size_t i = 0; i < n; i++) {
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int trunc = 0;
    int rc = ae_tokenizer_encode(s->tok, texts[i], lens[i], (size_t)s->max_len, &ids, &n_ids, &trunc);
    ae_free(ids);
    if (rc) return respond_error(r, 422, param, ae_last_error());
    if (trunc && !truncate) {
      char msg[256];
      snprintf(msg, sizeof msg, "input %zu is longer than the model's %d tokens (send \"truncate\": true)", i,
               s->max_len);
      return respond_error(r, 413, param, msg);
    }
    r->tokens[i] = (int)n_ids;
    r->total_tokens += n_ids;
  }
  r->job = (ae__serve_job){.n = n, .texts = texts, .lens = lens, .tokens = r->tokens, .vecs = r->vecs,
                           .status = r->status, .done = job_done, .done_ud = r};
  int rc = ae__batcher_submit(s->b, &r->job);
  if (rc == AE_ERANGE) return respond_error(r, 429, NULL, ae_last_error());
  if (rc) return respond_error(r, 503, NULL, ae_last_error());
  r->submitted = 1;
  pthread_mutex_lock(&r->mu);
  if (!r->finished) {
    MHD_suspend_connection(r->conn);
    r->suspended = 1;
  }
  pthread_mutex_unlock(&r->mu);
  return MHD_YES;
}

/* ---- search ------------------------------------------------------------------------ */

/* The store's search (ae_store_search_ex) in the request's mode with its filters;
 * the answer is the document of `astembed query --format json`. */
static enum MHD_Result respond_search(request *r) {
  ae_server *s = r->s;
  if (r->status[0]) return respond_error(r, 500, NULL, "the query could not be embedded");
  const ae__search_request *q = &r->sr;
  ae_search_options so;
  ae_search_options_default(&so);
  so.k = q->top_k;
  so.language = q->language;
  so.node_type = q->node_type;
  so.path_glob = q->path;
  ae_search_hit *hits = NULL;
  size_t nh = 0;
  pthread_mutex_lock(&s->store_mu);
  so.mode = q->mode >= 0 ? q->mode : ae_store_default_mode(s->store, NULL);
  int rc = ae_store_search_ex(s->store, &so, q->query, s->fp, r->vecs, s->dim, &hits, &nh);
  pthread_mutex_unlock(&s->store_mu);
  if (rc) return respond_error(r, rc == AE_EINVAL ? 422 : 500, NULL, ae_last_error());
  char *text = ae_search_hits_json(q->query, so.mode, s->model_dir, hits, nh, 3);
  ae_search_hits_free(hits, nh);
  char *body = text ? dup_libc(text, strlen(text)) : NULL;
  size_t len = text ? strlen(text) : 0;
  ae_free(text);
  if (!body) return respond_error(r, 500, NULL, "out of memory");
  return respond(r, 200, "application/json", body, len, NULL, NULL);
}

/* ---- GET routes ------------------------------------------------------------------- */

static const char *cpu_isa(void) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return "avx512_bf16";
  if (__builtin_cpu_supports("avx512f")) return "avx512";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "baseline";
}

static enum MHD_Result respond_info(request *r) {
  ae_server *s = r->s;
  ae_encoder *enc = ae_generator_encoder(s->g);
  json_t *j = json_pack("{s:s,s:s,s:i,s:i,s:s,s:{s:s,s:i},s:i,s:i,s:b,s:s}", "model_id", s->model_name,
                        "model_dir", s->model_dir, "dim", s->dim, "max_input_length", s->max_len,
                        "precision", ae_encoder_precision(enc), "cpu", "isa", cpu_isa(), "cores", ae__cpu_count(),
                        "max_client_batch_size", (int)s->o.max_inputs, "max_queue", (int)s->o.max_queue,
                        "search", s->store != NULL, "version", ae_version());
  return respond_json(r, 200, j, NULL, NULL);
}

static void hist_prom(ae__sb *b, const char *name, const char *labels, const ae__hist *h) {
  uint64_t cum = 0;
  const char *sep = labels && *labels ? "," : "";
  for (int i = 0; i <= h->n; i++) {
    cum += h->count[i];
    if (i < h->n) ae__sb_printf(b, "astembed_%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->le[i],
                                (unsigned long long)cum);
    else ae__sb_printf(b, "astembed_%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
  }
  const char *open = labels && *labels ? "{" : "", *close = labels && *labels ? "}" : "";
  ae__sb_printf(b, "astembed_%s_sum%s%s%s %.9g\n", name, open, labels ? labels : "", close, h->sum);
  ae__sb_printf(b, "astembed_%s_count%s%s%s %llu\n", name, open, labels ? labels : "", close,
                (unsigned long long)h->total);
}

static enum MHD_Result respond_metrics(request *r) {
  ae_server *s = r->s;
  ae__batcher_stats bs;
  ae__batcher_stats_get(s->b, &bs);
  ae__sb b = {0};
  pthread_mutex_lock(&s->metrics_mu);
  ae__sb_printf(&b, "# HELP astembed_http_requests_total Requests answered, by route and status.\n"
                    "# TYPE astembed_http_requests_total counter\n");
  for (int rt = 0; rt < R_COUNT; rt++)
    for (int c = 0; c <= N_CODES; c++)
      if (s->requests[rt][c]) {
        char code[16];
        if (c < N_CODES) snprintf(code, sizeof code, "%d", CODES[c]);
        else snprintf(code, sizeof code, "other");
        ae__sb_printf(&b, "astembed_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n", ROUTES[rt].path, code,
                      (unsigned long long)s->requests[rt][c]);
      }
  ae__sb_printf(&b, "# HELP astembed_http_request_duration_seconds Time from a request's headers to its answer.\n"
                    "# TYPE astembed_http_request_duration_seconds histogram\n");
  for (int rt = 0; rt < R_COUNT; rt++) {
    if (!s->latency[rt].total) continue;
    char lbl[64];
    snprintf(lbl, sizeof lbl, "route=\"%s\"", ROUTES[rt].path);
    hist_prom(&b, "http_request_duration_seconds", lbl, &s->latency[rt]);
  }
  pthread_mutex_unlock(&s->metrics_mu);
  ae__sb_printf(&b, "# HELP astembed_queue_depth Inputs waiting for the batcher.\n# TYPE astembed_queue_depth gauge\n"
                    "astembed_queue_depth %zu\n", bs.queue_depth);
  ae__sb_printf(&b, "# HELP astembed_queue_capacity Inputs the queue holds at most.\n"
                    "# TYPE astembed_queue_capacity gauge\nastembed_queue_capacity %zu\n", bs.queue_capacity);
  ae__sb_printf(&b, "# HELP astembed_queue_rejected_total Requests answered 429 because the queue was full.\n"
                    "# TYPE astembed_queue_rejected_total counter\nastembed_queue_rejected_total %llu\n",
                (unsigned long long)bs.rejected_full);
  ae__sb_printf(&b, "# HELP astembed_batch_items Inputs per batcher group.\n# TYPE astembed_batch_items histogram\n");
  hist_prom(&b, "batch_items", "", &bs.batch_items);
  ae__sb_printf(&b, "# HELP astembed_batch_tokens Tokens per batcher group.\n# TYPE astembed_batch_tokens histogram\n");
  hist_prom(&b, "batch_tokens", "", &bs.batch_tokens);
  ae__metrics_prom(ae__perf_metrics, ae__perf_metrics_n, &bs.perf, &b);
  if (s->store) {
    ae_store_stats st;
    pthread_mutex_lock(&s->store_mu);
    int rc = ae_store_stats_get(s->store, NULL, &st);
    pthread_mutex_unlock(&s->store_mu);
    if (!rc) ae__metrics_prom(ae__index_metrics, ae__index_metrics_n, &st, &b);
  }
  return respond_sb(r, &b, "text/plain; version=0.0.4");
}

/* ---- the access handler ------------------------------------------------------------- */

/* Constant-time comparison of the Authorization header with "Bearer KEY": the time
 * depends only on the key's length, never on where the first difference is. */
static int authorized(ae_server *s, struct MHD_Connection *c) {
  if (!s->api_key) return 1;
  const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
  if (!h) return 0;
  size_t hl = strlen(h);
  unsigned diff = hl != 7 + s->api_key_len;
  const char *want_prefix = "Bearer ";
  for (size_t i = 0; i < 7 + s->api_key_len; i++) {
    unsigned char want = i < 7 ? (unsigned char)want_prefix[i] : (unsigned char)s->api_key[i - 7];
    unsigned char got = i < hl ? (unsigned char)h[i] : 0;
    diff |= (unsigned)(want ^ got);
  }
  return diff == 0;
}

static void request_free(request *r) {
  if (r->route == R_SEARCH) ae__search_request_free(&r->sr);
  else ae__embed_request_free(&r->er);
  ae__free(r->body);
  ae__free(r->tokens);
  ae__free(r->status);
  ae__free(r->vecs);
  pthread_mutex_destroy(&r->mu);
  ae__free(r);
}

static enum MHD_Result start_request(ae_server *s, struct MHD_Connection *c, const char *url, const char *method,
                                     request *r) {
  r->route = R_OTHER;
  for (int i = 0; i < R_OTHER; i++)
    if (!strcmp(url, ROUTES[i].path)) r->route = i;
  if (atomic_load(&s->stopping)) return respond_error(r, 503, NULL, "the server is shutting down");
  if (r->route == R_OTHER) return respond_error(r, 404, NULL, "no such route");
  if (strcmp(method, ROUTES[r->route].method)) return respond_error(r, 405, NULL, "method not allowed on this route");
  if (r->route != R_HEALTH && !authorized(s, c))
    return respond_error(r, 401, NULL, "missing or wrong API key (Authorization: Bearer KEY)");
  if (r->route == R_SEARCH && !s->store) return respond_error(r, 404, NULL, "no index: start the server with --db");
  if (r->route == R_HEALTH) {
    char *ok = dup_libc("{\"status\":\"ok\"}", 15);
    return ok ? respond(r, 200, "application/json", ok, 15, NULL, NULL) : MHD_NO;
  }
  if (r->route == R_INFO) return respond_info(r);
  if (r->route == R_METRICS) return respond_metrics(r);
  const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
  if (cl) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(cl, &end, 10);
    if (errno || v > s->o.max_body_bytes) {
      char msg[128];
      snprintf(msg, sizeof msg, "the body is larger than %zu bytes", s->o.max_body_bytes);
      return respond_error(r, 413, NULL, msg);
    }
  }
  return MHD_YES;
}

static enum MHD_Result finish_body(ae_server *s, request *r) {
  if (r->too_large) {
    char msg[128];
    snprintf(msg, sizeof msg, "the body is larger than %zu bytes", s->o.max_body_bytes);
    return respond_error(r, 413, NULL, msg);
  }
  ae__serve_limits lim = {s->o.max_inputs, s->o.max_input_bytes};
  ae__serve_error e;
  const char *body = r->body ? r->body : "";
  if (r->route == R_SEARCH) {
    if (ae__parse_search(body, r->len, &lim, &r->sr, &e)) return respond_error(r, e.status, e.param, e.message);
    return submit(r, 1, &r->sr.query, &r->sr.query_len, 1, "query");
  }
  int rc = r->route == R_EMBEDDINGS ? ae__parse_openai(body, r->len, &lim, &r->er, &e)
                                    : ae__parse_tei(body, r->len, &lim, &r->er, &e);
  if (rc) return respond_error(r, e.status, e.param, e.message);
  if (r->er.dimensions >= 0 && r->er.dimensions != s->dim) {
    char msg[128];
    snprintf(msg, sizeof msg, "this model has %d dimensions and cannot shorten them", s->dim);
    return respond_error(r, 422, "dimensions", msg);
  }
  return submit(r, r->er.n, r->er.texts, r->er.lens, r->er.truncate, r->route == R_EMBEDDINGS ? "input" : "inputs");
}

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                      const char *version, const char *upload_data, size_t *upload_data_size,
                                      void **con_cls) {
  ae_server *s = cls;
  (void)version;
  request *r = *con_cls;
  if (!r) {
    if (!(r = ae__calloc(1, sizeof *r))) return MHD_NO;
    r->s = s;
    r->conn = c;
    r->t0 = ae__now_ns();
    pthread_mutex_init(&r->mu, NULL);
    *con_cls = r;
    atomic_fetch_add(&s->active, 1);
    return start_request(s, c, url, method, r);
  }
  if (*upload_data_size) {
    size_t n = *upload_data_size;
    *upload_data_size = 0;
    if (r->responded || r->too_large) return MHD_YES;   /* dropped */
    if (r->len + n > s->o.max_body_bytes) {
      r->too_large = 1;
      ae__free(r->body);
      r->body = NULL;
      r->len = r->cap = 0;
      return MHD_YES;
    }
    if (r->len + n + 1 > r->cap) {
      size_t cap = r->cap ? r->cap : 4096;
      while (cap < r->len + n + 1) cap *= 2;
      char *nb = ae__realloc(r->body, cap);
      if (!nb) return MHD_NO;
      r->body = nb;
      r->cap = cap;
    }
    memcpy(r->body + r->len, upload_data, n);
    r->len += n;
    r->body[r->len] = 0;
    return MHD_YES;
  }
  if (r->responded) return MHD_YES;
  if (r->submitted) {
    pthread_mutex_lock(&r->mu);
    int finished = r->finished;
    r->suspended = 0;
    pthread_mutex_unlock(&r->mu);
    if (!finished) return MHD_YES;   /* not resumed by the batcher: keep waiting */
    return r->route == R_SEARCH ? respond_search(r) : respond_vectors(r);
  }
  enum MHD_Result ret = finish_body(s, r);
  if (ret == MHD_YES && r->submitted && !r->responded) {
    /* finished before the connection could be suspended: answer now */
    pthread_mutex_lock(&r->mu);
    int now = r->finished && !r->suspended;
    pthread_mutex_unlock(&r->mu);
    if (now) return r->route == R_SEARCH ? respond_search(r) : respond_vectors(r);
  }
  return ret;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
  ae_server *s = cls;
  (void)c;
  (void)toe;
  request *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  double secs = (double)(ae__now_ns() - r->t0) / 1e9;
  int ci = N_CODES;
  for (int i = 0; i < N_CODES; i++)
    if (CODES[i] == r->code) ci = i;
  pthread_mutex_lock(&s->metrics_mu);
  if (r->responded) {
    s->requests[r->route][ci]++;
    ae__hist_add(&s->latency[r->route], secs);
  }
  pthread_mutex_unlock(&s->metrics_mu);
  /* a job the batcher still holds is never freed here: the connection stays
   * suspended until the job is done, and libmicrohttpd completes no suspended one */
  request_free(r);
  atomic_fetch_sub(&s->active, 1);
}

/* ---- lifecycle ---------------------------------------------------------------------- */

void ae_server_options_default(ae_server_options *o) {
  memset(o, 0, sizeof *o);
  o->max_body_bytes = 4u << 20;
  o->max_inputs = 2048;
  o->max_input_bytes = 256u << 10;
  o->max_queue = 4096;
  o->max_wait_ms = 2;
  o->timeout_s = 30;
  o->threads = 2;
  o->max_connections = 512;
}

static char *dup_opt(const char *s) { return s ? ae__strdup(s) : NULL; }

int ae_server_port(const ae_server *s) { return s->port; }

void ae_server_stop(ae_server *s) {
  atomic_store(&s->stopping, 1);
  char c = 1;
  ssize_t w = write(s->stop_pipe[1], &c, 1);
  (void)w;
}

int ae_server_new(const ae_server_options *opt, ae_server **out) {
  *out = NULL;
  ae_server *s = ae__calloc(1, sizeof *s);
  if (!s) return ae__error(AE_ENOMEM, "serve: out of memory");
  s->stop_pipe[0] = s->stop_pipe[1] = -1;
  pthread_mutex_init(&s->store_mu, NULL);
  pthread_mutex_init(&s->metrics_mu, NULL);
  for (int i = 0; i < R_COUNT; i++)
    ae__hist_init(&s->latency[i], LATENCY_BUCKETS, (int)(sizeof LATENCY_BUCKETS / sizeof *LATENCY_BUCKETS));
  ae_server_options d;
  ae_server_options_default(&d);
  s->o = *opt;
  if (!s->o.max_body_bytes) s->o.max_body_bytes = d.max_body_bytes;
  if (!s->o.max_inputs) s->o.max_inputs = d.max_inputs;
  if (!s->o.max_input_bytes) s->o.max_input_bytes = d.max_input_bytes;
  if (!s->o.max_queue) s->o.max_queue = d.max_queue;
  if (s->o.max_wait_ms == 0) s->o.max_wait_ms = d.max_wait_ms;
  if (!s->o.timeout_s) s->o.timeout_s = d.timeout_s;
  if (!s->o.threads) s->o.threads = d.threads;
  if (!s->o.max_connections) s->o.max_connections = d.max_connections;
  int rc = AE_OK;
  if (s->o.max_inputs > s->o.max_queue)
    rc = ae__error(AE_EINVAL, "serve: max inputs per request (%zu) exceeds the queue (%zu)", s->o.max_inputs,
                   s->o.max_queue);
  if (!rc && (s->o.port < 0 || s->o.port > 65535)) rc = ae__error(AE_EINVAL, "serve: bad port %d", s->o.port);
  if (!rc && s->o.max_batch_items < 0) rc = ae__error(AE_EINVAL, "serve: bad max batch items %d", s->o.max_batch_items);
  if (rc) { ae_server_free(s); return rc; }
  if (opt->generator) s->cfg = *opt->generator;
  else ae_generator_config_default(&s->cfg);
  if (opt->model_dir) snprintf(s->cfg.model.path, sizeof s->cfg.model.path, "%s", opt->model_dir);
  s->cfg.model.enabled = 1;
  s->cfg.cache.persist_path[0] = 0;    /* raw texts only live in the memory tier */
  s->model_dir = ae__strdup(s->cfg.model.path);
  if (opt->model_name) s->model_name = ae__strdup(opt->model_name);
  else if (s->model_dir) {   /* the folder's last component ("a/b/" -> "b") */
    size_t end = strlen(s->model_dir);
    while (end > 1 && s->model_dir[end - 1] == '/') end--;
    size_t start = end;
    while (start && s->model_dir[start - 1] != '/') start--;
    s->model_name = ae__strndup(s->model_dir + start, end - start);
  }
  s->db_path = dup_opt(opt->db_path);
  s->host = ae__strdup(opt->host ? opt->host : "127.0.0.1");
  s->api_key = dup_opt(opt->api_key);
  s->api_key_len = s->api_key ? strlen(s->api_key) : 0;
  s->load_cache_dir = dup_opt(opt->load_cache_dir);
  if (!s->model_dir || !s->model_name || !s->host) { ae_server_free(s); return ae__error(AE_ENOMEM, "serve: out of memory"); }
  if (s->api_key && !s->api_key_len) { ae_server_free(s); return ae__error(AE_EINVAL, "serve: empty API key"); }
  if (!s->model_dir[0]) { ae_server_free(s); return ae__error(AE_EINVAL, "serve: no model folder"); }

  /* Request bodies up to max_body_bytes are allocated and freed on every request. With
   * glibc's dynamic mmap threshold, the first freed large buffer raises the threshold
   * and later ones come from the heap, whose freed pages stay resident: a few large
   * hostile bodies then leave the process megabytes larger for good. A fixed
   * threshold keeps every buffer over 256 KiB mmapped and returned on free. */
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);

  /* the address first: a bad one should fail before the model is loaded */
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, s->host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)s->o.port);
  } else if (inet_pton(AF_INET6, s->host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)s->o.port);
    flags |= MHD_USE_IPv6;
  } else {
    rc = ae__error(AE_EINVAL, "serve: --host '%s' is not a numeric IPv4 or IPv6 address", s->host);
    ae_server_free(s);
    return rc;
  }
  if (pipe2(s->stop_pipe, O_CLOEXEC)) { ae_server_free(s); return ae__error(AE_EIO, "serve: pipe: %s", strerror(errno)); }

  if ((rc = ae_generator_new(&s->cfg, &s->g)) ||
      (s->load_cache_dir && (rc = ae_generator_set_load_cache_dir(s->g, s->load_cache_dir))) ||
      (rc = ae_generator_init(s->g))) {
    ae_server_free(s);
    return rc;
  }
  ae_encoder *enc = ae_generator_encoder(s->g);
  s->tok = ae_encoder_tokenizer(enc);
  s->dim = ae_generator_dim(s->g);
  s->max_len = ae_encoder_max_length(enc);
  ae_generator_fingerprint(s->g, s->fp);
  if (s->db_path && (rc = ae_store_open(s->db_path, 1, &s->store))) { ae_server_free(s); return rc; }
  ae__batcher_options bo = {s->o.max_queue, s->o.max_batch_items, s->o.max_wait_ms};
  if ((rc = ae__batcher_new(s->g, &s->cfg, &bo, &s->b))) { ae_server_free(s); return rc; }

  s->d = MHD_start_daemon(flags, (uint16_t)s->o.port, NULL, NULL, access_handler, s,
                          MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads,
                          MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->o.timeout_s,
                          MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->o.max_connections,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64u << 10),
                          MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                          MHD_OPTION_END);
  if (!s->d) {
    rc = ae__error(AE_EIO, "serve: cannot listen on %s:%d (address in use or not available here)", s->host,
                   s->o.port);
    ae_server_free(s);
    return rc;
  }
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
  s->port = di ? di->port : s->o.port;
  *out = s;
  return AE_OK;
}

int ae_server_run(ae_server *s) {
  for (;;) {
    struct pollfd p = {s->stop_pipe[0], POLLIN, 0};
    int k = poll(&p, 1, -1);
    if (k > 0 || atomic_load(&s->stopping)) break;
    if (k < 0 && errno != EINTR) return ae__error(AE_EIO, "serve: poll: %s", strerror(errno));
  }
  atomic_store(&s->stopping, 1);
  MHD_socket ls = MHD_quiesce_daemon(s->d);
  if (ls != MHD_INVALID_SOCKET) close(ls);
  ae__batcher_drain(s->b);
  /* the answers of drained jobs are written by the HTTP threads */
  uint64_t deadline = ae__now_ns() + (uint64_t)s->o.timeout_s * 1000000000ull;
  while (atomic_load(&s->active) > 0 && ae__now_ns() < deadline) usleep(5000);
  MHD_stop_daemon(s->d);
  s->d = NULL;
  return AE_OK;
}

void ae_server_free(ae_server *s) {
  if (!s) return;
  if (s->d) {
    /* never run: stop the batcher first so no connection stays suspended */
    MHD_socket ls = MHD_quiesce_daemon(s->d);
    if (ls != MHD_INVALID_SOCKET) close(ls);
    atomic_store(&s->stopping, 1);
    ae__batcher_drain(s->b);
    uint64_t deadline = ae__now_ns() + (uint64_t)s->o.timeout_s * 1000000000ull;
    while (atomic_load(&s->active) > 0 && ae__now_ns() < deadline) usleep(5000);
    MHD_stop_daemon(s->d);
  }
  ae__batcher_free(s->b);
  ae_store_close(s->store);
  ae_generator_free(s->g);
  for (int i = 0; i < 2; i++)
    if (s->stop_pipe[i] >= 0) close(s->stop_pipe[i]);
  pthread_mutex_destroy(&s->store_mu);
  pthread_mutex_destroy(&s->metrics_mu);
  ae__free(s->model_dir);
  ae__free(s->model_name);
  ae__free(s->db_path);
  ae__free(s->host);
  ae__free(s->api_key);
  ae__free(s->load_cache_dir);
  ae__free(s);
}
