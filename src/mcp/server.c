/* The Model Context Protocol server: JSON-RPC 2.0 over stdio, both protocol eras.
 *
 * Framing. One message per line. The reader keeps at most max_line_bytes of a line:
 * a longer line is discarded as it streams past (never held whole) up to its
 * newline, then answered with an Invalid Request error with a null id (its id cannot
 * be known without reading it). Empty lines are skipped. stdout carries only
 * protocol messages, each written whole under one mutex, so concurrent answers never
 * interleave; logs go to stderr.
 *
 * Parsing and errors. jansson parses each line (its depth limit bounds nesting; it
 * refuses invalid UTF-8, NUL bytes and integers beyond 64 bits). The JSON-RPC codes:
 *   -32700 parse error (id null)            not JSON
 *   -32600 invalid request                   not an object, a batch array, jsonrpc
 *                                            not "2.0", method not a string, an id
 *                                            that is null or neither string nor integer
 *   -32601 method not found                  unknown method (or ping in 2026-07-28)
 *   -32602 invalid params                    params not an object, missing or wrong
 *                                            _meta fields, unknown tool, bad initialize
 *   -32022 unsupported protocol version      _meta names a version not served here
 * Messages without a method (responses: this server sends no requests) and unknown
 * notifications are dropped, as JSON-RPC says a notification is never answered.
 *
 * Two eras (specification revisions 2025-11-25 basic/lifecycle and 2026-07-28
 * basic/index, basic/versioning, server/discover, server/tools):
 *  - Legacy (2024-11-05 .. 2025-11-25): `initialize` negotiates a version for the
 *    process (the client's when supported, else 2025-11-25), followed by
 *    notifications/initialized; ping answers {}. tools/list and tools/call are served
 *    as that version defines them: outputSchema, title and structuredContent from
 *    2025-06-18 on.
 *  - Modern (2026-07-28): no handshake. A request whose params._meta carries
 *    io.modelcontextprotocol/protocolVersion is served on its own: it must also carry
 *    io.modelcontextprotocol/clientCapabilities (an object), else -32602. Every result
 *    has resultType "complete" and _meta io.modelcontextprotocol/serverInfo; the
 *    cacheable results (server/discover, tools/list) carry ttlMs and cacheScope
 *    (public: the list is the same for every caller). server/discover lists every
 *    version served here. A _meta version of the legacy era is served as that
 *    version without a handshake; any other version gets -32022 with data
 *    {supported, requested}.
 *  Nothing a modern request carries changes what a later request sees; the legacy
 *  handshake's negotiated version is the only state, scoped to the process as the
 *  legacy revisions define it.
 *
 * Concurrency. The reading thread answers the quick methods itself, so tools/list
 * and server/discover come back at once even while a search loads the model. Tool
 * calls go to a bounded queue served by a few worker threads; answers leave in the
 * order they finish, which JSON-RPC allows (ids match them up). When the queue is
 * full the reader stops reading until a worker frees a slot: stdin then backs up in
 * the pipe instead of in memory. notifications/cancelled marks the queued or
 * running call with that id: a queued one never runs, a running one stops at its
 * next check, and neither is answered (the spec's SHOULD NOT respond).
 */
#define _GNU_SOURCE
#include "mcp/mcp.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define QUEUE_CAP 32
#define MAX_WORKERS 16
#define LIST_TTL_MS 300000

static const char *const k_legacy[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
#define N_LEGACY (sizeof k_legacy / sizeof k_legacy[0])

enum { E_PARSE = -32700, E_REQUEST = -32600, E_METHOD = -32601, E_PARAMS = -32602,
       E_INTERNAL = -32603, E_VERSION = -32022 };

typedef struct job {
  struct job *next;          /* queue order */
  struct job *live_next;     /* list of queued + running jobs, for cancellation */
  json_t *id;
  char *tool;
  json_t *args;
  int modern, structured;
  volatile int cancelled;
} job;

struct ae__mcp {
  int out_fd, verbose;
  pthread_mutex_t out_mu;
  ae__mcp_tools *tools;
  char legacy_version[16];   /* negotiated by initialize ("" = none yet) */
  int initialized;
  /* pool */
  int n_workers;
  pthread_t workers[MAX_WORKERS];
  pthread_mutex_t mu;
  pthread_cond_t has_job, has_room;
  job *head, *tail, *live;
  int queued, closing;
};

/* ---- output ------------------------------------------------------------------------ */

static void write_all(ae__mcp *m, const char *s, size_t n) {
  while (n) {
    ssize_t k = write(m->out_fd, s, n);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return;   /* the client is gone: nothing useful to do */
    s += k;
    n -= (size_t)k;
  }
}

static void send_msg(ae__mcp *m, json_t *msg) {
  char *s = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (!s) return;
  size_t n = strlen(s);
  pthread_mutex_lock(&m->out_mu);
  write_all(m, s, n);
  write_all(m, "\n", 1);
  pthread_mutex_unlock(&m->out_mu);
  free(s);
}

static json_t *envelope(json_t *id) {
  json_t *r = json_object();
  json_object_set_new(r, "jsonrpc", json_string("2.0"));
  json_object_set(r, "id", id ? id : json_null());
  return r;
}

/* data: stolen (may be NULL). */
static void send_error(ae__mcp *m, json_t *id, int code, const char *message, json_t *data) {
  json_t *r = envelope(id), *e = json_object();
  json_object_set_new(e, "code", json_integer(code));
  json_object_set_new(e, "message", ae__mcp_jstr(message, strlen(message)));
  if (data) json_object_set_new(e, "data", data);
  json_object_set_new(r, "error", e);
  send_msg(m, r);
}

static json_t *server_info(void) {
  json_t *i = json_object();
  json_object_set_new(i, "name", json_string("astembed"));
  json_object_set_new(i, "title", json_string("astembed code index"));
  json_object_set_new(i, "version", json_string(ae_version()));
  return i;
}

/* result: stolen. Modern results get resultType and the server's identity. */
static void send_result(ae__mcp *m, json_t *id, json_t *result, int modern) {
  if (modern) {
    json_object_set_new(result, "resultType", json_string("complete"));
    json_t *meta = json_object();
    json_object_set_new(meta, "io.modelcontextprotocol/serverInfo", server_info());
    json_object_set_new(result, "_meta", meta);
  }
  json_t *r = envelope(id);
  json_object_set_new(r, "result", result);
  send_msg(m, r);
}

static json_t *supported_versions(void) {
  json_t *a = json_array();
  json_array_append_new(a, json_string(AE__MCP_MODERN));
  for (size_t i = 0; i < N_LEGACY; i++) json_array_append_new(a, json_string(k_legacy[i]));
  return a;
}

static int legacy_index(const char *v) {
  for (size_t i = 0; i < N_LEGACY; i++) if (!strcmp(k_legacy[i], v)) return (int)i;
  return -1;
}

/* structuredContent, outputSchema and tool titles exist from 2025-06-18 on. */
static int has_structured(const char *version) { return strcmp(version, "2025-06-18") >= 0; }

static const char k_instructions[] =
  "Semantic search over this codebase's index of functions, classes and other code nodes. "
  "Start with query_ast_context; use get_node_details for one hit's full code, ast_file_query "
  "for a file's outline, list_recent_changes for what changed, index_status for what is indexed.";

/* ---- tool calls ---------------------------------------------------------------------- */

static void run_job(ae__mcp *m, job *j) {
  json_t *r = NULL;
  if (!j->cancelled) {
    double t0 = ae__now_ms();
    r = ae__mcp_tool_call(m->tools, j->tool, j->args, j->structured, &j->cancelled);
    if (m->verbose) fprintf(stderr, "astembed mcp: tools/call %s %.1f ms%s\n", j->tool, ae__now_ms() - t0,
                            j->cancelled ? " (cancelled)" : "");
  }
  if (r && !j->cancelled) send_result(m, j->id, r, j->modern);
  else json_decref(r);
}

static void free_job(job *j) {
  json_decref(j->id);
  json_decref(j->args);
  ae__free(j->tool);
  ae__free(j);
}

static void unlink_live(ae__mcp *m, job *j) {
  for (job **p = &m->live; *p; p = &(*p)->live_next)
    if (*p == j) { *p = j->live_next; return; }
}

static void *worker(void *arg) {
  ae__mcp *m = arg;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    while (!m->head && !m->closing) pthread_cond_wait(&m->has_job, &m->mu);
    if (!m->head) break;
    job *j = m->head;
    m->head = j->next;
    if (!m->head) m->tail = NULL;
    m->queued--;
    pthread_cond_signal(&m->has_room);
    pthread_mutex_unlock(&m->mu);
    run_job(m, j);
    pthread_mutex_lock(&m->mu);
    unlink_live(m, j);
    free_job(j);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

static void submit(ae__mcp *m, job *j) {
  if (m->n_workers <= 0) {
    run_job(m, j);
    free_job(j);
    return;
  }
  pthread_mutex_lock(&m->mu);
  while (m->queued >= QUEUE_CAP) pthread_cond_wait(&m->has_room, &m->mu);
  j->live_next = m->live;
  m->live = j;
  if (m->tail) m->tail->next = j; else m->head = j;
  m->tail = j;
  m->queued++;
  pthread_cond_signal(&m->has_job);
  pthread_mutex_unlock(&m->mu);
}

static void cancel(ae__mcp *m, json_t *request_id) {
  pthread_mutex_lock(&m->mu);
  for (job *j = m->live; j; j = j->live_next)
    if (json_equal(j->id, request_id)) j->cancelled = 1;
  pthread_mutex_unlock(&m->mu);
}

/* ---- requests ----------------------------------------------------------------------- */

static void tools_call(ae__mcp *m, json_t *id, json_t *params, int modern, int structured) {
  json_t *name = json_object_get(params, "name"), *args = json_object_get(params, "arguments");
  if (!json_is_string(name)) { send_error(m, id, E_PARAMS, "Invalid params: tools/call needs a string 'name'", NULL); return; }
  if (args && !json_is_object(args) && !json_is_null(args)) {
    send_error(m, id, E_PARAMS, "Invalid params: tools/call 'arguments' must be an object", NULL);
    return;
  }
  if (!ae__mcp_tool_exists(json_string_value(name))) {
    char msg[300];
    snprintf(msg, sizeof msg, "Unknown tool: %.200s", json_string_value(name));
    send_error(m, id, E_PARAMS, msg, NULL);
    return;
  }
  job *j = ae__calloc(1, sizeof *j);
  if (j) j->tool = ae__strdup(json_string_value(name));
  if (!j || !j->tool) { ae__free(j); send_error(m, id, E_INTERNAL, "Internal error: out of memory", NULL); return; }
  /* deep copies: the job's JSON is its own, never shared with the reader's message
   * (jansson's reference counts are the only link otherwise) */
  j->id = json_deep_copy(id);
  j->args = args && json_is_object(args) ? json_deep_copy(args) : json_object();
  if (!j->id || !j->args) {
    free_job(j);
    send_error(m, id, E_INTERNAL, "Internal error: out of memory", NULL);
    return;
  }
  j->modern = modern;
  j->structured = structured;
  submit(m, j);
}

static json_t *tools_list_result(int structured, int modern) {
  json_t *r = json_object();
  json_object_set_new(r, "tools", ae__mcp_tools_list(structured));
  if (modern) {
    json_object_set_new(r, "ttlMs", json_integer(LIST_TTL_MS));
    json_object_set_new(r, "cacheScope", json_string("public"));
  }
  return r;
}

static json_t *capabilities(void) {
  json_t *c = json_object(), *t = json_object();
  json_object_set_new(t, "listChanged", json_false());
  json_object_set_new(c, "tools", t);
  return c;
}

static void modern_request(ae__mcp *m, json_t *id, const char *method, json_t *params) {
  if (!strcmp(method, "server/discover")) {
    json_t *r = json_object();
    json_object_set_new(r, "supportedVersions", supported_versions());
    json_object_set_new(r, "capabilities", capabilities());
    json_object_set_new(r, "serverInfo", server_info());
    json_object_set_new(r, "instructions", json_string(k_instructions));
    json_object_set_new(r, "ttlMs", json_integer(LIST_TTL_MS));
    json_object_set_new(r, "cacheScope", json_string("public"));
    send_result(m, id, r, 1);
  } else if (!strcmp(method, "tools/list")) {
    send_result(m, id, tools_list_result(1, 1), 1);
  } else if (!strcmp(method, "tools/call")) {
    tools_call(m, id, params, 1, 1);
  } else {
    char msg[300];
    snprintf(msg, sizeof msg, "Method not found: %.200s", method);
    send_error(m, id, E_METHOD, msg, NULL);
  }
}

static void initialize(ae__mcp *m, json_t *id, json_t *params) {
  json_t *pv = json_object_get(params, "protocolVersion");
  if (!json_is_string(pv)) {
    send_error(m, id, E_PARAMS, "Invalid params: initialize needs a string 'protocolVersion'", NULL);
    return;
  }
  json_t *caps = json_object_get(params, "capabilities");
  if (caps && !json_is_object(caps)) {
    send_error(m, id, E_PARAMS, "Invalid params: initialize 'capabilities' must be an object", NULL);
    return;
  }
  const char *want = json_string_value(pv);
  int i = legacy_index(want);
  snprintf(m->legacy_version, sizeof m->legacy_version, "%s", i >= 0 ? k_legacy[i] : AE__MCP_LEGACY_LATEST);
  json_t *r = json_object();
  json_object_set_new(r, "protocolVersion", json_string(m->legacy_version));
  json_object_set_new(r, "capabilities", capabilities());
  json_object_set_new(r, "serverInfo", server_info());
  json_object_set_new(r, "instructions", json_string(k_instructions));
  send_result(m, id, r, 0);
}

static void legacy_request(ae__mcp *m, json_t *id, const char *method, json_t *params, const char *version) {
  if (!strcmp(method, "initialize")) {
    initialize(m, id, params);
  } else if (!strcmp(method, "ping")) {
    send_result(m, id, json_object(), 0);
  } else if (!strcmp(method, "tools/list")) {
    send_result(m, id, tools_list_result(has_structured(version), 0), 0);
  } else if (!strcmp(method, "tools/call")) {
    tools_call(m, id, params, 0, has_structured(version));
  } else if (!strcmp(method, "server/discover")) {
    send_error(m, id, E_PARAMS,
               "Invalid params: server/discover needs _meta io.modelcontextprotocol/protocolVersion and "
               "io.modelcontextprotocol/clientCapabilities", NULL);
  } else {
    char msg[300];
    snprintf(msg, sizeof msg, "Method not found: %.200s", method);
    send_error(m, id, E_METHOD, msg, NULL);
  }
}

static void notification(ae__mcp *m, const char *method, json_t *params) {
  if (!strcmp(method, "notifications/cancelled")) {
    json_t *rid = json_object_get(params, "requestId");
    if (json_is_string(rid) || json_is_integer(rid)) cancel(m, rid);
  } else if (!strcmp(method, "notifications/initialized")) {
    m->initialized = 1;
  }
  /* any other notification: nothing to do, and never an answer */
}

static void request(ae__mcp *m, json_t *id, const char *method, json_t *params) {
  json_t *meta = params ? json_object_get(params, "_meta") : NULL;
  if (meta && !json_is_object(meta)) {
    send_error(m, id, E_PARAMS, "Invalid params: _meta must be an object", NULL);
    return;
  }
  json_t *pv = meta ? json_object_get(meta, "io.modelcontextprotocol/protocolVersion") : NULL;
  if (!pv || !strcmp(method, "initialize")) {
    legacy_request(m, id, method, params, *m->legacy_version ? m->legacy_version : AE__MCP_LEGACY_LATEST);
    return;
  }
  if (!json_is_string(pv)) {
    send_error(m, id, E_PARAMS, "Invalid params: _meta io.modelcontextprotocol/protocolVersion must be a string", NULL);
    return;
  }
  const char *v = json_string_value(pv);
  int li = legacy_index(v);
  if (strcmp(v, AE__MCP_MODERN) && li < 0) {
    json_t *data = json_object();
    json_object_set_new(data, "supported", supported_versions());
    json_object_set(data, "requested", pv);
    send_error(m, id, E_VERSION, "Unsupported protocol version", data);
    return;
  }
  json_t *caps = json_object_get(meta, "io.modelcontextprotocol/clientCapabilities");
  if (!json_is_object(caps)) {
    send_error(m, id, E_PARAMS, "Invalid params: _meta io.modelcontextprotocol/clientCapabilities (an object) is required", NULL);
    return;
  }
  if (li >= 0) legacy_request(m, id, method, params, k_legacy[li]);
  else modern_request(m, id, method, params);
}

void ae__mcp_message(ae__mcp *m, const char *line, size_t len) {
  json_error_t err;
  json_t *msg = json_loadb(line, len, JSON_DECODE_ANY, &err);
  if (!msg) {
    char text[256];
    snprintf(text, sizeof text, "Parse error: %s (column %d)", err.text, err.column);
    send_error(m, NULL, E_PARSE, text, NULL);
    return;
  }
  if (!json_is_object(msg)) {
    send_error(m, NULL, E_REQUEST, json_is_array(msg) ? "Invalid Request: batches are not supported"
                                                       : "Invalid Request: a message must be a JSON object", NULL);
    json_decref(msg);
    return;
  }
  json_t *id = json_object_get(msg, "id"), *method = json_object_get(msg, "method");
  json_t *params = json_object_get(msg, "params"), *ver = json_object_get(msg, "jsonrpc");
  int id_ok = json_is_string(id) || json_is_integer(id);
  json_t *reply_id = id_ok ? id : NULL;
  if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0")) {
    send_error(m, reply_id, E_REQUEST, "Invalid Request: 'jsonrpc' must be \"2.0\"", NULL);
  } else if (!method) {
    /* a response (this server sends no requests) or nothing at all */
    if (!json_object_get(msg, "result") && !json_object_get(msg, "error"))
      send_error(m, reply_id, E_REQUEST, "Invalid Request: no 'method'", NULL);
  } else if (!json_is_string(method)) {
    send_error(m, reply_id, E_REQUEST, "Invalid Request: 'method' must be a string", NULL);
  } else if (id && !id_ok) {
    send_error(m, NULL, E_REQUEST, "Invalid Request: 'id' must be a string or an integer", NULL);
  } else if (params && !json_is_object(params)) {
    if (id) send_error(m, id, E_PARAMS, "Invalid params: 'params' must be an object", NULL);
  } else if (!id) {
    if (m->verbose) fprintf(stderr, "astembed mcp: notification %s\n", json_string_value(method));
    notification(m, json_string_value(method), params);
  } else {
    if (m->verbose) fprintf(stderr, "astembed mcp: request %s\n", json_string_value(method));
    request(m, id, json_string_value(method), params);
  }
  json_decref(msg);
}

void ae__mcp_oversize(ae__mcp *m, size_t limit) {
  char text[160];
  snprintf(text, sizeof text, "Invalid Request: message longer than %zu bytes (discarded unread)", limit);
  send_error(m, NULL, E_REQUEST, text, NULL);
}

/* ---- lifetime ------------------------------------------------------------------------ */

int ae__mcp_new(const ae_mcp_options *o, int out_fd, ae__mcp **out) {
  *out = NULL;
  ae__mcp *m = ae__calloc(1, sizeof *m);
  if (!m) return ae__error(AE_ENOMEM, "out of memory");
  m->out_fd = out_fd;
  m->verbose = o->verbose;
  pthread_mutex_init(&m->out_mu, NULL);
  pthread_mutex_init(&m->mu, NULL);
  pthread_cond_init(&m->has_job, NULL);
  pthread_cond_init(&m->has_room, NULL);
  int rc = ae__mcp_tools_new(o, &m->tools);
  if (rc) { ae__mcp_free(m); return rc; }
  int want = o->workers < 0 ? 0 : o->workers == 0 ? 4 : o->workers > MAX_WORKERS ? MAX_WORKERS : o->workers;
  for (int i = 0; i < want; i++) {
    if (pthread_create(&m->workers[i], NULL, worker, m)) break;
    m->n_workers++;
  }
  if (want && !m->n_workers) { ae__mcp_free(m); return ae__error(AE_ENOMEM, "cannot start worker threads"); }
  *out = m;
  return AE_OK;
}

void ae__mcp_free(ae__mcp *m) {
  if (!m) return;
  pthread_mutex_lock(&m->mu);
  m->closing = 1;
  pthread_cond_broadcast(&m->has_job);
  pthread_mutex_unlock(&m->mu);
  for (int i = 0; i < m->n_workers; i++) pthread_join(m->workers[i], NULL);
  ae__mcp_tools_free(m->tools);
  pthread_mutex_destroy(&m->out_mu);
  pthread_mutex_destroy(&m->mu);
  pthread_cond_destroy(&m->has_job);
  pthread_cond_destroy(&m->has_room);
  ae__free(m);
}

/* ---- the reading loop ----------------------------------------------------------------- */

/* Reads in fixed chunks; a line is gathered in buf up to limit bytes, and a longer one
 * is skipped chunk by chunk to its newline. */
int ae_mcp_serve(const ae_mcp_options *o, int in_fd, int out_fd) {
  ae_mcp_options def = {0};
  if (!o) o = &def;
  size_t limit = o->max_line_bytes ? o->max_line_bytes : AE__MCP_DEFAULT_LINE;
  ae__mcp *m;
  int rc = ae__mcp_new(o, out_fd, &m);
  if (rc) return rc;
  enum { CHUNK = 65536 };
  char *chunk = ae__malloc(CHUNK), *line = ae__malloc(limit + 1);
  if (!chunk || !line) {
    ae__free(chunk);
    ae__free(line);
    ae__mcp_free(m);
    return ae__error(AE_ENOMEM, "out of memory for a %zu-byte line buffer", limit);
  }
  size_t len = 0;
  int skipping = 0;
  for (;;) {
    if (o->stop && *o->stop) break;
    ssize_t k = read(in_fd, chunk, CHUNK);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) { rc = ae__error(AE_EIO, "reading the input: %s", strerror(errno)); break; }
    if (k == 0) break;
    const char *p = chunk, *end = chunk + k;
    while (p < end) {
      const char *nl = memchr(p, '\n', (size_t)(end - p));
      size_t piece = (size_t)((nl ? nl : end) - p);
      if (!skipping) {
        if (len + piece > limit) { skipping = 1; len = 0; }
        else { memcpy(line + len, p, piece); len += piece; }
      }
      if (!nl) break;
      if (skipping) ae__mcp_oversize(m, limit);
      else {
        size_t n = len;
        if (n && line[n - 1] == '\r') n--;
        size_t s = 0;
        while (s < n && (line[s] == ' ' || line[s] == '\t')) s++;
        if (s < n) ae__mcp_message(m, line + s, n - s);
      }
      skipping = 0;
      len = 0;
      p = nl + 1;
    }
  }
  /* a last line without its newline is still a message */
  if (!skipping && len && !(o->stop && *o->stop)) ae__mcp_message(m, line, len);
  ae__free(chunk);
  ae__free(line);
  ae__mcp_free(m);
  return rc;
}
