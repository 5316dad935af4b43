// ctest-timeout: 600
// ctest-labels: tsan
/* 1,000 malformed or hostile messages to `astembed mcp`: truncated JSON, deep
 * nesting, huge numbers, invalid UTF-8, NUL bytes, random bytes, wrong types in
 * every field, stray responses and notifications, and a 50 MB line. After each one a
 * sentinel call shows what the server made of it: every message gets exactly the
 * expected JSON-RPC error (or the tool error), or nothing where the spec says a
 * message is not answered (notifications, responses). The process never dies, and its
 * resident memory stays bounded: the 50 MB line is refused without being held. */
#define _GNU_SOURCE
#include "mcp_test_util.h"

#define T 60000
enum { ANY_ERROR = 1, NONE = 2, TOOL_ERROR = 3 };

typedef struct {
  char *line;
  size_t len;
  int expect;        /* an error code (< 0), ANY_ERROR, NONE or TOOL_ERROR */
  int null_id;       /* the error must carry id null */
} msg;

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static msg mk(int expect, int null_id, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static msg mk(int expect, int null_id, const char *fmt, ...) {
  msg m = {0};
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&m.line, fmt, ap);
  va_end(ap);
  m.len = n > 0 ? (size_t)n : 0;
  m.expect = expect;
  m.null_id = null_id;
  return m;
}

static const char *valid[] = {
  "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\",\"arguments\":{}}}",
  "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{}}}",
  "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"server/discover\",\"params\":{\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
};

/* One hostile message of kind k (0..19). */
static msg hostile(int k) {
  switch (k) {
  case 0: { /* truncated: every proper prefix of a valid message is invalid JSON */
    const char *v = valid[next() % 3];
    size_t n = 1 + next() % (strlen(v) - 1);
    msg m = mk(-32700, 1, "%.*s", (int)n, v);
    return m;
  }
  case 1: { /* nesting far beyond the parser's depth limit */
    size_t depth = 3000 + next() % 50000;
    msg m = {malloc(depth * 2 + 1), depth * 2, -32700, 1};
    memset(m.line, '[', depth);
    memset(m.line + depth, ']', depth);
    return m;
  }
  case 2: { /* nesting within the limit, inside tool arguments: a tool error */
    int depth = 10 + (int)(next() % 500);
    char *open = malloc(depth + 1), *close = malloc(depth + 1);
    memset(open, '[', depth); open[depth] = 0;
    memset(close, ']', depth); close[depth] = 0;
    msg m = mk(TOOL_ERROR, 0, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\","
               "\"arguments\":{\"deep\":%s%s}}}", open, close);
    free(open); free(close);
    return m;
  }
  case 3: return mk(-32700, 1, "{\"jsonrpc\":\"2.0\",\"id\":1e999,\"method\":\"ping\"}");
  case 4: return mk(-32700, 1, "{\"jsonrpc\":\"2.0\",\"id\":%llu%llu%llu,\"method\":\"ping\"}",
                    (unsigned long long)next(), (unsigned long long)next(), (unsigned long long)next());
  case 5: return mk(TOOL_ERROR, 0, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/call\",\"params\":{\"name\":\"query_ast_context\","
                    "\"arguments\":{\"query\":\"q\",\"maxResults\":1e300}}}");
  case 6: { /* invalid UTF-8 inside a string */
    static const char *bad[] = {"\xff", "\xc3\x28", "\xe2\x82", "\xf0\x28\x8c\xbc", "\xed\xa0\x80", "\xc0\xaf"};
    return mk(-32700, 1, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"ping%s\"}", bad[next() % 6]);
  }
  case 7: { /* a NUL byte in the line */
    msg m = mk(-32700, 1, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"pi#ng\"}");
    *strchr(m.line, '#') = 0;
    return m;
  }
  case 8: { /* random bytes (no newline) */
    size_t n = 1 + next() % 200;
    msg m = {malloc(n + 1), n, ANY_ERROR, 1};
    for (size_t i = 0; i < n; i++) {
      char c = (char)(next() & 0xff);
      m.line[i] = c == '\n' || c == '\r' || c == ' ' || c == '\t' ? '{' : c;
    }
    return m;
  }
  case 9: { /* wrong types in the envelope */
    static const char *v[] = {
      "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":5}",
      "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":null}",
      "{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"ping\"}",
      "{\"jsonrpc\":2,\"id\":9,\"method\":\"ping\"}",
      "{\"id\":9,\"method\":\"ping\"}",
      "{\"jsonrpc\":\"2.0\",\"id\":9}",
    };
    return mk(-32600, 0, "%s", v[next() % 6]);
  }
  case 10: { /* ids that are not ids */
    static const char *v[] = {"null", "true", "1.5", "[1]", "{\"a\":1}"};
    return mk(-32600, 1, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"method\":\"ping\"}", v[next() % 5]);
  }
  case 11: { /* params that are not objects */
    static const char *v[] = {"\"x\"", "[1,2]", "7", "true"};
    return mk(-32602, 0, "{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"tools/list\",\"params\":%s}", v[next() % 4]);
  }
  case 12: { /* tools/call with bad name / arguments */
    static const char *v[] = {"{\"name\":5}", "{\"arguments\":{}}", "{\"name\":\"index_status\",\"arguments\":[]}",
                              "{\"name\":\"index_status\",\"arguments\":\"a\"}", "{\"name\":\"rm -rf /\"}"};
    return mk(-32602, 0, "{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"tools/call\",\"params\":%s}", v[next() % 5]);
  }
  case 13: { /* tool arguments of the wrong types */
    static const char *v[] = {
      "\"query_ast_context\",\"arguments\":{\"query\":[\"a\"]}", "\"query_ast_context\",\"arguments\":{\"query\":\"\"}",
      "\"query_ast_context\",\"arguments\":{\"query\":\"a\",\"maxResults\":\"3\"}",
      "\"query_ast_context\",\"arguments\":{\"query\":\"a\",\"maxResults\":-1}",
      "\"query_ast_context\",\"arguments\":{\"query\":\"a\",\"maxResults\":2.5}",
      "\"query_ast_context\",\"arguments\":{\"query\":\"a\",\"nodeType\":{}}",
      "\"get_node_details\",\"arguments\":{\"nodeId\":42}", "\"list_recent_changes\",\"arguments\":{\"limit\":0}",
      "\"list_recent_changes\",\"arguments\":{\"since\":\"2024-13-45\"}", "\"ast_file_query\",\"arguments\":{\"filePath\":null}",
    };
    return mk(TOOL_ERROR, 0, "{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"tools/call\",\"params\":{\"name\":%s}}", v[next() % 10]);
  }
  case 14: { /* _meta of the wrong shape */
    static const char *v[] = {
      "\"x\"", "{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}",
      "{\"io.modelcontextprotocol/protocolVersion\":[],\"io.modelcontextprotocol/clientCapabilities\":{}}",
      "{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":5}",
    };
    return mk(-32602, 0, "{\"jsonrpc\":\"2.0\",\"id\":14,\"method\":\"tools/list\",\"params\":{\"_meta\":%s}}", v[next() % 4]);
  }
  case 15: return mk(-32022, 0, "{\"jsonrpc\":\"2.0\",\"id\":15,\"method\":\"tools/list\",\"params\":{\"_meta\":"
                     "{\"io.modelcontextprotocol/protocolVersion\":\"%llu\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}",
                     (unsigned long long)next());
  case 16: { /* notifications, malformed or unknown: never answered */
    static const char *v[] = {
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":{}}}",
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\"}",
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":[1]}",
      "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/whatever\",\"params\":{}}",
      "{\"jsonrpc\":\"2.0\",\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\"}}",
    };
    return mk(NONE, 0, "%s", v[next() % 5]);
  }
  case 17: { /* responses to requests never sent: dropped */
    static const char *v[] = {"{\"jsonrpc\":\"2.0\",\"id\":17,\"result\":{}}",
                              "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"error\":{\"code\":1,\"message\":\"m\"}}"};
    return mk(NONE, 0, "%s", v[next() % 2]);
  }
  case 18: return mk(-32601, 0, "{\"jsonrpc\":\"2.0\",\"id\":18,\"method\":\"%llx/unknown\"}", (unsigned long long)next());
  default: { /* not objects */
    static const char *v[] = {"[]", "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", "\"str\"", "42", "null", "true"};
    return mk(-32600, 1, "%s", v[next() % 6]);
  }
  }
}

static const char sentinel_fmt[] =
  "{\"jsonrpc\":\"2.0\",\"id\":\"s%d\",\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\",\"arguments\":{\"x\":1}}}";

/* Reads answers up to the sentinel's; returns them (the sentinel's dropped). */
static int collect(mt_server *s, int i, json_t **got, int max) {
  char sid[32];
  snprintf(sid, sizeof sid, "s%d", i);
  int n = 0;
  for (;;) {
    json_t *r = mt_recv(s, T);
    if (!r) return -1;
    const char *id = json_string_value(json_object_get(r, "id"));
    if (id && !strcmp(id, sid)) { json_decref(r); return n; }
    if (n < max) got[n++] = r; else json_decref(r);
  }
}

static int matches(const msg *m, json_t **got, int n) {
  if (m->expect == NONE) return n == 0;
  if (n != 1) return 0;
  json_t *r = got[0];
  if (m->expect == TOOL_ERROR)
    return json_is_true(json_object_get(json_object_get(r, "result"), "isError"));
  json_t *e = json_object_get(r, "error");
  if (!json_is_integer(json_object_get(e, "code")) || !json_is_string(json_object_get(e, "message"))) return 0;
  if (m->null_id && !json_is_null(json_object_get(r, "id"))) return 0;
  if (m->expect == ANY_ERROR) return 1;
  return json_integer_value(json_object_get(e, "code")) == m->expect;
}

int main(void) {
  mt_find_bin();
  char db[200];
  snprintf(db, sizeof db, "%s/none.db", mt_dir);   /* no index: nothing here needs one */
  const char *args[] = {"--db", db, "--workers", "1", NULL};
  /* under AddressSanitizer, freed memory waits in a quarantine (256 MB by default)
   * that would read as growth here: keep it small for the server */
  const char *asan = getenv("ASAN_OPTIONS");
  if (asan) {
    char *o = NULL;
    if (asprintf(&o, "%s:quarantine_size_mb=1:thread_local_quarantine_size_kb=64", asan) > 0) setenv("ASAN_OPTIONS", o, 1);
    free(o);
  }
  mt_server s = mt_start(args);
  json_t *r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"ping\"}", T);
  REQUIRE(r);
  json_decref(r);
  long rss0 = mt_rss_kb(s.pid), rss_big = 0;

  int n_msgs = 1000, ok = 0, answered = 0;
  int per_kind[20] = {0};
  for (int i = 0; i < n_msgs; i++) {
    msg m;
    if (i == 500) {
      /* the 50 MB line: a valid request whose string is 50 MB long */
      const char *head = "{\"jsonrpc\":\"2.0\",\"id\":\"big\",\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\",\"arguments\":{\"x\":\"";
      size_t n = 50u << 20;
      m.line = malloc(n);
      size_t hl = strlen(head);
      memcpy(m.line, head, hl);
      memset(m.line + hl, 'a', n - hl - 5);
      memcpy(m.line + n - 5, "\"}}}", 4);
      m.len = n - 1;
      m.expect = -32600;
      m.null_id = 1;
    } else {
      int k = (int)(next() % 20);
      per_kind[k]++;
      m = hostile(k);
    }
    if (mt_write(&s, m.line, m.len) || mt_write(&s, "\n", 1)) { fprintf(stderr, "message %d: server gone\n", i); break; }
    char sl[300];
    snprintf(sl, sizeof sl, sentinel_fmt, i);
    mt_send(&s, sl);
    json_t *got[4];
    int n = collect(&s, i, got, 4);
    if (n < 0) { fprintf(stderr, "message %d: no sentinel answer\n", i); free(m.line); break; }
    if (matches(&m, got, n)) ok++;
    else {
      char *dump = n ? json_dumps(got[0], JSON_COMPACT) : NULL;
      fprintf(stderr, "message %d (expect %d): %d answers: %.300s\n  sent: %.200s\n", i, m.expect, n,
              dump ? dump : "-", m.line);
      free(dump);
    }
    answered += n;
    for (int j = 0; j < n; j++) json_decref(got[j]);
    if (i == 500) rss_big = mt_rss_kb(s.pid);
    free(m.line);
  }
  long rss1 = mt_rss_kb(s.pid);
  printf("%d/%d messages answered as expected (%d answers); VmRSS %ld kB before, %ld kB after the 50 MB line, %ld kB at the end\n",
         ok, n_msgs, answered, rss0, rss_big, rss1);
  for (int k = 0; k < 20; k++) CHECKF(per_kind[k] > 10, "kind %d drawn %d times", k, per_kind[k]);
  CHECK(ok == n_msgs);
  CHECK(waitpid(s.pid, NULL, WNOHANG) == 0);   /* still running */
  /* bounded: far less than the 50 MB line (the line buffer is 4 MiB) */
  CHECKF(rss0 > 0 && rss_big - rss0 < 40 * 1024 && rss1 - rss0 < 40 * 1024, "VmRSS %ld -> %ld -> %ld kB", rss0, rss_big, rss1);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"end\",\"method\":\"tools/list\"}", T);
  CHECK(r && json_array_size(json_object_get(json_object_get(r, "result"), "tools")) == 5);
  json_decref(r);
  CHECK(mt_stop(&s) == 0);
  if (!t_fail) mt_sh("rm -rf '%s'", mt_dir); else fprintf(stderr, "kept %s\n", mt_dir);
  TEST_DONE();
}
