// ctest-timeout: 600
// ctest-labels: tsan
/* `astembed mcp` spoken to line by line, as a client would:
 *  - a raw 2026-07-28 exchange: server/discover, tools/list and tools/call with the
 *    per-request _meta; resultType, serverInfo, cache hints; the -32602 for missing
 *    _meta fields and -32022 for an unknown version;
 *  - a raw 2025-06-18 handshake: initialize, notifications/initialized (no answer),
 *    tools/list with output schemas, tools/call with structuredContent; 2024-11-05
 *    without them; an unknown version answered with 2025-11-25;
 *  - every tool, the hits of query_ast_context against `astembed query --format json`,
 *    bad arguments as tool errors, unknown tools and methods as protocol errors;
 *  - the model loaded lazily (tools/list answers before any model is read);
 *  - a second process embedding more annotations beside the running server: the next
 *    search sees them without a restart;
 *  - notifications/cancelled: a queued call that is cancelled is never answered;
 *  - SIGTERM stops it cleanly. */
#include "mcp_test_util.h"

#define META "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"," \
             "\"io.modelcontextprotocol/clientCapabilities\":{}}"
#define T 120000

static json_t *res(json_t *r) { return json_object_get(r, "result"); }
static const char *jstr(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

static void test_modern(void) {
  const char *args[] = {"--db", mt_db, NULL};
  mt_server s = mt_start(args);
  json_t *r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"d1\",\"method\":\"server/discover\",\"params\":{" META "}}", T);
  json_t *x = res(r);
  CHECK(x && !strcmp(jstr(x, "resultType"), "complete"));
  json_t *sv = json_object_get(x, "supportedVersions");
  int has_modern = 0, has_legacy = 0;
  size_t i;
  json_t *v;
  json_array_foreach(sv, i, v) {
    if (!strcmp(json_string_value(v), "2026-07-28")) has_modern = 1;
    if (!strcmp(json_string_value(v), "2025-11-25")) has_legacy = 1;
  }
  CHECK(has_modern && has_legacy);
  CHECK(json_is_object(json_object_get(json_object_get(x, "capabilities"), "tools")));
  CHECK(!strcmp(jstr(json_object_get(x, "serverInfo"), "name"), "astembed"));
  CHECK(json_is_integer(json_object_get(x, "ttlMs")) && !strcmp(jstr(x, "cacheScope"), "public"));
  CHECK(json_is_object(json_object_get(json_object_get(x, "_meta"), "io.modelcontextprotocol/serverInfo")));
  json_decref(r);

  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{" META "}}", T);
  x = res(r);
  CHECK(x && !strcmp(jstr(x, "resultType"), "complete") && json_array_size(json_object_get(x, "tools")) == 5);
  CHECK(json_is_integer(json_object_get(x, "ttlMs")) && jstr(x, "cacheScope"));
  json_array_foreach(json_object_get(x, "tools"), i, v) {
    CHECK(json_is_object(json_object_get(v, "inputSchema")) && json_is_object(json_object_get(v, "outputSchema")));
    CHECK(strlen(jstr(v, "description")) > 40);
  }
  json_decref(r);

  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"query_ast_context\","
                  "\"arguments\":{\"query\":\"read a file\",\"maxResults\":3}," META "}}", T);
  x = res(r);
  CHECK(x && !strcmp(jstr(x, "resultType"), "complete") && json_is_false(json_object_get(x, "isError")));
  json_t *sc = json_object_get(x, "structuredContent");
  CHECK(json_array_size(json_object_get(sc, "results")) == 3);
  CHECK(strstr(jstr(json_array_get(json_object_get(x, "content"), 0), "text"), "3 results for \"read a file\""));
  json_decref(r);

  /* missing capabilities, wrong version type, unknown version */
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":{\"_meta\":"
                  "{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\"}}}", T);
  CHECK(mt_code(r) == -32602);
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\",\"params\":{\"_meta\":"
                  "{\"io.modelcontextprotocol/protocolVersion\":20260728,\"io.modelcontextprotocol/clientCapabilities\":{}}}}", T);
  CHECK(mt_code(r) == -32602);
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/list\",\"params\":{\"_meta\":"
                  "{\"io.modelcontextprotocol/protocolVersion\":\"1900-01-01\",\"io.modelcontextprotocol/clientCapabilities\":{}}}}", T);
  CHECK(mt_code(r) == -32022);
  json_t *data = json_object_get(json_object_get(r, "error"), "data");
  CHECK(!strcmp(jstr(data, "requested"), "1900-01-01") && json_array_size(json_object_get(data, "supported")) >= 2);
  json_decref(r);
  /* ping is gone in 2026-07-28; server/discover without _meta is malformed */
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"ping\",\"params\":{" META "}}", T);
  CHECK(mt_code(r) == -32601);
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"server/discover\"}", T);
  CHECK(mt_code(r) == -32602);
  json_decref(r);
  CHECK(mt_stop(&s) == 0);
}

static void test_legacy(void) {
  const char *args[] = {"--db", mt_db, NULL};
  mt_server s = mt_start(args);
  json_t *r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                          "\"2025-06-18\",\"capabilities\":{},\"clientInfo\":{\"name\":\"raw\",\"version\":\"1\"}}}", T);
  json_t *x = res(r);
  CHECK(x && !strcmp(jstr(x, "protocolVersion"), "2025-06-18"));
  CHECK(json_is_object(json_object_get(json_object_get(x, "capabilities"), "tools")));
  CHECK(!strcmp(jstr(json_object_get(x, "serverInfo"), "name"), "astembed"));
  CHECK(!json_object_get(x, "resultType"));
  json_decref(r);
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
  /* the notification gets no answer: the next line read answers the ping */
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}");
  r = mt_recv(&s, T);
  CHECK(r && !strcmp(jstr(r, "id"), "p") && json_is_object(res(r)) && json_object_size(res(r)) == 0);
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", T);
  x = res(r);
  CHECK(json_array_size(json_object_get(x, "tools")) == 5);
  CHECK(json_object_get(json_array_get(json_object_get(x, "tools"), 0), "outputSchema"));
  CHECK(!json_object_get(x, "ttlMs") && !json_object_get(x, "resultType"));
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\",\"arguments\":{}}}", T);
  x = res(r);
  CHECK(json_integer_value(json_object_get(json_object_get(x, "structuredContent"), "annotations")) == 40);
  json_decref(r);
  /* 2024-11-05: no structured content, no output schemas */
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2024-11-05\",\"capabilities\":{}}}", T);
  CHECK(!strcmp(jstr(res(r), "protocolVersion"), "2024-11-05"));
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"tools/list\"}", T);
  CHECK(!json_object_get(json_array_get(json_object_get(res(r), "tools"), 0), "outputSchema"));
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\"}}", T);
  CHECK(res(r) && !json_object_get(res(r), "structuredContent") && json_array_size(json_object_get(res(r), "content")) == 1);
  json_decref(r);
  /* a version this server does not know: it answers its latest legacy one */
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2099-01-01\",\"capabilities\":{}}}", T);
  CHECK(!strcmp(jstr(res(r), "protocolVersion"), "2025-11-25"));
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"initialize\",\"params\":{\"capabilities\":{}}}", T);
  CHECK(mt_code(r) == -32602);
  json_decref(r);
  CHECK(mt_stop(&s) == 0);
}

static json_t *call_tool(mt_server *s, int id, const char *name, const char *args) {
  char line[2048];
  snprintf(line, sizeof line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\","
           "\"arguments\":%s}}", id, name, args);
  return mt_call(s, line, T);
}

static int is_tool_error(json_t *r) { return res(r) && json_is_true(json_object_get(res(r), "isError")); }

static void test_tools(void) {
  char log[200];
  snprintf(log, sizeof log, "%s/server.log", mt_dir);
  unlink(log);
  const char *args[] = {"--db", mt_db, "--workers", "2", NULL};
  mt_server s = mt_start(args);
  /* lazy: tools/list and index_status answer without the model */
  json_t *r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}", T);
  CHECK(res(r) != NULL);
  json_decref(r);
  r = call_tool(&s, 11, "index_status", "{}");
  CHECK(res(r) != NULL);
  json_decref(r);
  CHECK(mt_sh("grep -q 'loaded model' '%s'", log) != 0);

  /* the hits of `astembed query --format json` */
  char qfile[200];
  snprintf(qfile, sizeof qfile, "%s/query.json", mt_dir);
  CHECK(mt_sh("'%s' query 'open a socket connection' --db '%s' --top 7 --format json >'%s' 2>/dev/null",
              mt_bin, mt_db, qfile) == 0);
  json_t *want = json_load_file(qfile, 0, NULL);
  r = call_tool(&s, 2, "query_ast_context", "{\"query\":\"open a socket connection\",\"maxResults\":7}");
  json_t *got = json_object_get(json_object_get(res(r), "structuredContent"), "results");
  json_t *wr = json_object_get(want, "results");
  CHECK(json_array_size(got) == 7 && json_array_size(wr) == 7);
  for (size_t i = 0; i < json_array_size(wr); i++) {
    json_t *a = json_array_get(got, i), *b = json_array_get(wr, i);
    CHECKF(a && !strcmp(jstr(a, "nodeId"), jstr(b, "nodeId")), "hit %zu", i);
    CHECK(a && fabs(json_real_value(json_object_get(a, "score")) - json_real_value(json_object_get(b, "score"))) < 1e-4);
    CHECK(a && !strcmp(jstr(a, "file"), jstr(b, "file")) && json_equal(json_object_get(a, "snippet"), json_object_get(b, "snippet")));
    CHECK(a && json_equal(json_object_get(a, "startLine"), json_object_get(b, "startLine")));
  }
  const char *first_id = json_array_size(got) ? jstr(json_array_get(got, 0), "nodeId") : "";
  const char *first_file = json_array_size(got) ? jstr(json_array_get(got, 0), "file") : "";
  char node_args[600], file_args[600];
  snprintf(node_args, sizeof node_args, "{\"nodeId\":\"%s\"}", first_id);
  snprintf(file_args, sizeof file_args, "{\"filePath\":\"%s\"}", first_file);
  json_decref(want);

  json_t *d = call_tool(&s, 3, "get_node_details", node_args);
  json_t *dc = json_object_get(res(d), "structuredContent");
  CHECK(dc && !strcmp(jstr(dc, "nodeId"), first_id) && strlen(jstr(dc, "snippet")) > 0);
  CHECK(json_integer_value(json_object_get(dc, "currentVectors")) == 1 && !strcmp(jstr(dc, "language"), "python"));
  json_decref(d);

  json_t *f = call_tool(&s, 4, "ast_file_query", file_args);
  json_t *nodes = json_object_get(json_object_get(res(f), "structuredContent"), "nodes");
  CHECK(json_array_size(nodes) >= 1);
  int found = 0, ordered = 1;
  for (size_t i = 0; i < json_array_size(nodes); i++) {
    json_t *o = json_array_get(nodes, i);
    if (!strcmp(jstr(o, "nodeId"), first_id)) found = 1;
    if (!strcmp(jstr(o, "file"), first_file) == 0) ordered = 0;
    if (i && json_integer_value(json_object_get(o, "startLine")) <
             json_integer_value(json_object_get(json_array_get(nodes, i - 1), "startLine"))) ordered = 0;
  }
  CHECK(found && ordered);
  json_decref(f);
  json_decref(r);

  r = call_tool(&s, 5, "list_recent_changes", "{\"limit\":5}");
  CHECK(json_array_size(json_object_get(json_object_get(res(r), "structuredContent"), "nodes")) == 5);
  CHECK(json_is_true(json_object_get(json_object_get(res(r), "structuredContent"), "truncated")));
  json_decref(r);
  r = call_tool(&s, 6, "list_recent_changes", "{\"since\":\"2999-01-01T00:00:00Z\"}");
  CHECK(json_array_size(json_object_get(json_object_get(res(r), "structuredContent"), "nodes")) == 0);
  json_decref(r);

  /* filters: node type and path glob hold for every hit */
  r = call_tool(&s, 7, "query_ast_context", "{\"query\":\"x\",\"maxResults\":50,\"nodeType\":\"class\",\"path\":\"*.py\"}");
  got = json_object_get(json_object_get(res(r), "structuredContent"), "results");
  int all = json_array_size(got) > 0;
  for (size_t i = 0; i < json_array_size(got); i++) if (strcmp(jstr(json_array_get(got, i), "nodeType"), "class")) all = 0;
  CHECK(all);
  json_decref(r);

  /* bad arguments: tool errors a model can act on */
  const char *bad[][2] = {
    {"query_ast_context", "{}"}, {"query_ast_context", "{\"query\":5}"},
    {"query_ast_context", "{\"query\":\"a\",\"maxResults\":51}"}, {"query_ast_context", "{\"query\":\"a\",\"mode\":\"fuzzy\"}"},
    {"query_ast_context", "{\"query\":\"a\",\"mode\":\"lexical\"}"}, {"query_ast_context", "{\"query\":\"a\",\"bogus\":1}"},
    {"get_node_details", "{\"nodeId\":\"no/such:node\"}"}, {"list_recent_changes", "{\"since\":\"yesterday\"}"},
    {"ast_file_query", "{}"}, {"index_status", "{\"x\":1}"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    r = call_tool(&s, 100 + (int)i, bad[i][0], bad[i][1]);
    CHECKF(is_tool_error(r), "%s %s", bad[i][0], bad[i][1]);
    json_decref(r);
  }
  r = call_tool(&s, 200, "no_such_tool", "{}");
  CHECK(mt_code(r) == -32602);
  json_decref(r);
  r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":201,\"method\":\"resources/list\"}", T);
  CHECK(mt_code(r) == -32601);
  json_decref(r);

  /* another process writes the index: the next search sees it without a restart */
  r = call_tool(&s, 300, "query_ast_context", "{\"query\":\"a\"}");
  CHECK(json_integer_value(json_object_get(json_object_get(res(r), "structuredContent"), "searched")) == 40);
  json_decref(r);
  CHECK(mt_embed(mt_db, 40, 60) == 0);
  r = call_tool(&s, 301, "query_ast_context", "{\"query\":\"a\"}");
  CHECK(json_integer_value(json_object_get(json_object_get(res(r), "structuredContent"), "searched")) == 60);
  json_decref(r);
  r = call_tool(&s, 302, "index_status", "{}");
  CHECK(json_integer_value(json_object_get(json_object_get(res(r), "structuredContent"), "annotations")) == 60);
  json_decref(r);
  CHECK(mt_stop(&s) == 0);
  /* loaded once, by the first search */
  CHECK(mt_sh("test \"$(grep -c 'loaded model' '%s')\" = 1", log) == 0);
}

/* Results stay bounded: a 200 KB snippet and a 20 KB summary are cut and say so, a
 * file of 700 nodes is listed up to the cap with "truncated", and no result's JSON
 * exceeds 64 KB (well under the 25k-token cap clients enforce). Written through the
 * store API: these tools need no vectors. */
static void test_limits(void) {
  char db[200];
  snprintf(db, sizeof db, "%s/big.db", mt_dir);
  ae_store *st;
  CHECK_OK(ae_store_open(db, 0, &st));
  char *big = malloc(200001), *sum = malloc(20001);
  for (int i = 0; i < 200000; i++) big[i] = i % 61 == 60 ? '\n' : "\xc3\xa9" "abcdefgh"[i % 10];
  big[200000] = 0;
  memset(sum, 's', 20000);
  sum[20000] = 0;
  CHECK_OK(ae_store_begin(st));
  for (int i = 0; i < 700; i++) {
    char id[64];
    snprintf(id, sizeof id, "big.py:%d:function", i);
    ae_annotation a = {0};
    a.node_id = id; a.file_path = "big.py"; a.start_line = 700 - i; a.end_line = 701 - i; a.node_type = "function";
    a.language = "python"; a.signature = "def f()"; a.summary = i ? "short" : sum; a.snippet = i ? "pass" : big;
    uint8_t h[16] = {(uint8_t)i, (uint8_t)(i >> 8)};
    CHECK_OK(ae_store_put(st, &a, h, h, NULL, 0, 0));
  }
  CHECK_OK(ae_store_commit(st));
  ae_store_close(st);
  free(sum);
  const char *args[] = {"--db", db, NULL};
  mt_server s = mt_start(args);
  json_t *r = call_tool(&s, 1, "get_node_details", "{\"nodeId\":\"big.py:0:function\"}");
  json_t *sc = json_object_get(res(r), "structuredContent");
  CHECK(json_is_true(json_object_get(sc, "snippetTruncated")));
  CHECK(strstr(jstr(sc, "snippet"), "[cut]") && strstr(jstr(sc, "summary"), "[cut]"));
  char *dump = json_dumps(r, JSON_COMPACT);
  CHECKF(dump && strlen(dump) < 64 * 1024, "%zu bytes", dump ? strlen(dump) : 0);
  free(dump);
  json_decref(r);
  r = call_tool(&s, 2, "ast_file_query", "{\"filePath\":\"big.py\"}");
  sc = json_object_get(res(r), "structuredContent");
  json_t *nodes = json_object_get(sc, "nodes");
  CHECK(json_is_true(json_object_get(sc, "truncated")) && json_array_size(nodes) > 0 && json_array_size(nodes) <= 500);
  CHECK(json_integer_value(json_object_get(json_array_get(nodes, 0), "startLine")) == 1);
  dump = json_dumps(r, JSON_COMPACT);
  CHECKF(dump && strlen(dump) < 64 * 1024 * 2, "%zu bytes", dump ? strlen(dump) : 0);
  free(dump);
  json_decref(r);
  CHECK(mt_stop(&s) == 0);
  free(big);
}

/* One worker: call A occupies it (the first search loads the model), B waits in the
 * queue and is cancelled there, C follows. A and C are answered, B never. */
static void test_cancel(void) {
  const char *args[] = {"--db", mt_db, "--workers", "1", NULL};
  mt_server s = mt_start(args);
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"A\",\"method\":\"tools/call\",\"params\":{\"name\":\"query_ast_context\",\"arguments\":{\"query\":\"sort a list\"}}}");
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"B\",\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\",\"arguments\":{}}}");
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"B\",\"reason\":\"test\"}}");
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"C\",\"method\":\"tools/call\",\"params\":{\"name\":\"index_status\",\"arguments\":{}}}");
  int a = 0, b = 0, c = 0;
  for (int i = 0; i < 3 && !c; i++) {
    json_t *r = mt_recv(&s, T);
    if (!r) break;
    const char *id = jstr(r, "id");
    if (id && !strcmp(id, "A")) a = 1;
    if (id && !strcmp(id, "B")) b = 1;
    if (id && !strcmp(id, "C")) c = 1;
    json_decref(r);
  }
  CHECK(a && !b && c);
  /* cancelling something unknown or finished changes nothing */
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":\"A\"}}");
  json_t *r = mt_call(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"D\",\"method\":\"ping\"}", T);
  CHECK(r && json_is_object(res(r)));
  json_decref(r);
  /* SIGTERM: a clean stop with status 0 */
  kill(s.pid, SIGTERM);
  int st = 0;
  waitpid(s.pid, &st, 0);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  close(s.in);
  close(s.out);
  free(s.buf);
}

int main(void) {
  mt_find_bin();
  mt_build_index(40);
  test_modern();
  test_legacy();
  test_tools();
  test_cancel();
  test_limits();
  CHECK(mt_sh("'%s' mcp --help >/dev/null", mt_bin) == 0);
  CHECK(mt_sh("'%s' mcp --workers 0 </dev/null 2>/dev/null", mt_bin) == 2);
  CHECK(mt_sh("'%s' mcp --bogus </dev/null 2>/dev/null", mt_bin) == 2);
  if (!t_fail) mt_sh("rm -rf '%s'", mt_dir); else fprintf(stderr, "kept %s\n", mt_dir);
  TEST_DONE();
}
