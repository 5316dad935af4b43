// ctest-timeout: 600
// ctest-labels: tsan
/* `astembed mcp` spoken to line by line, as a client would:
 *  - a raw 2026-07-28 exchange: server/discover, tools/list and tools/call with the
 *    per-request _meta; resultType, serverInfo, cache hints; the -32602 for missing
 *    _meta fields and -32022 for an unknown version;
 *  - a raw 2025-06-18 handshake: initialize, notifications/initialized (no answer),
 *    tools/list with output schemas, tools/call with structuredContent; 2024-11-05
 *    without them; an unknown version answered with 2025-11-25;
 *  - every tool, bad arguments as tool errors, unknown tools and methods as protocol
 *    errors;
 *  - query_ast_context in each mode (the index's default, lexical, vector, hybrid) and
 *    with the language, nodeType and path filters: every field of every hit equals
 *    `astembed query --mode M --format json` with the same filters; the default on a
 *    random-weight index is lexical;
 *  - the model loaded lazily (tools/list answers before any model is read) and never
 *    by a lexical search; an index built with `embed --lexical-only` is served with
 *    no model at all;
 *  - a second process embedding more annotations beside the running server: the next
 *    search (vector and lexical) sees them without a restart;
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
                  "\"arguments\":{\"query\":\"read a file\",\"maxResults\":3,\"mode\":\"vector\"}," META "}}", T);
  x = res(r);
  CHECK(x && !strcmp(jstr(x, "resultType"), "complete") && json_is_false(json_object_get(x, "isError")));
  json_t *sc = json_object_get(x, "structuredContent");
  CHECK(json_array_size(json_object_get(sc, "results")) == 3);
  CHECK(strstr(jstr(json_array_get(json_object_get(x, "content"), 0), "text"), "3 results for \"read a file\" (vector search"));
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

/* `astembed query TEXT --db DB --top K --format json CLI_ARGS`, parsed (NULL on failure). */
static json_t *cli_query(const char *db, const char *text, int k, const char *cli_args) {
  char file[200];
  snprintf(file, sizeof file, "%s/cli.json", mt_dir);
  if (mt_sh("'%s' query '%s' --db '%s' --top %d --format json %s >'%s' 2>/dev/null", mt_bin, text, db, k,
            cli_args, file))
    return NULL;
  return json_load_file(file, 0, NULL);
}

/* The structuredContent of a query_ast_context result against the CLI's JSON: the
 * same mode and model, and the same hits with every field equal (scores to 1e-4
 * relative: the CLI prints 6 significant digits). Returns the number of hits. */
static size_t same_hits(json_t *r, json_t *want, const char *what) {
  json_t *sc = json_object_get(res(r), "structuredContent");
  CHECKF(sc && want && !is_tool_error(r), "%s: a result and the CLI's", what);
  if (!sc || !want) return 0;
  CHECKF(json_equal(json_object_get(sc, "mode"), json_object_get(want, "mode")), "%s: mode %s vs %s", what,
         jstr(sc, "mode"), jstr(want, "mode"));
  CHECKF(json_equal(json_object_get(sc, "model"), json_object_get(want, "model")), "%s: model", what);
  json_t *got = json_object_get(sc, "results"), *wr = json_object_get(want, "results");
  CHECKF(json_array_size(got) == json_array_size(wr), "%s: %zu hits vs %zu", what, json_array_size(got),
         json_array_size(wr));
  for (size_t i = 0; i < json_array_size(wr) && i < json_array_size(got); i++) {
    json_t *a = json_array_get(got, i), *b = json_array_get(wr, i), *v;
    const char *key;
    CHECKF(json_object_size(a) == json_object_size(b), "%s: hit %zu has %zu fields, the CLI's %zu", what, i,
           json_object_size(a), json_object_size(b));
    json_object_foreach(b, key, v) {
      json_t *av = json_object_get(a, key);
      if (!strcmp(key, "score")) {
        double x = json_number_value(av), y = json_number_value(v);
        CHECKF(json_is_number(av) && fabs(x - y) <= 1e-4 * fmax(1.0, fabs(y)), "%s: hit %zu score %g vs %g", what, i, x, y);
      } else {
        CHECKF(json_equal(av, v), "%s: hit %zu field %s", what, i, key);
      }
    }
  }
  return json_array_size(got);
}

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

  /* the hits of `astembed query --format json` (both in the index's default mode) */
  json_t *want = cli_query(mt_db, "open a socket connection", 7, "");
  r = call_tool(&s, 2, "query_ast_context", "{\"query\":\"open a socket connection\",\"maxResults\":7}");
  CHECK(same_hits(r, want, "default mode") >= 1);
  json_t *got = json_object_get(json_object_get(res(r), "structuredContent"), "results");
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
    {"query_ast_context", "{\"query\":\"a\",\"mode\":5}"}, {"query_ast_context", "{\"query\":\"a\",\"bogus\":1}"},
    {"query_ast_context", "{\"query\":\"a\",\"path\":[\"*.py\"]}"}, {"query_ast_context", "{\"query\":\"a\",\"mode\":\"Lexical\"}"},
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

  /* another process writes the index: the next search sees it without a restart,
   * in the vector matrix and in the lexical index (fromisoformat: annotation 49) */
  r = call_tool(&s, 300, "query_ast_context", "{\"query\":\"a\",\"mode\":\"vector\"}");
  CHECK(json_integer_value(json_object_get(json_object_get(res(r), "structuredContent"), "searched")) == 40);
  json_decref(r);
  const char *fresh = "{\"query\":\"fromisoformat\",\"mode\":\"lexical\",\"maxResults\":1}";
  r = call_tool(&s, 303, "query_ast_context", fresh);
  got = json_object_get(json_object_get(res(r), "structuredContent"), "results");
  CHECK(got && (json_array_size(got) == 0 || !strstr(jstr(json_array_get(got, 0), "signature"), "fromisoformat")));
  json_decref(r);
  CHECK(mt_embed(mt_db, 40, 60) == 0);
  r = call_tool(&s, 301, "query_ast_context", "{\"query\":\"a\",\"mode\":\"vector\"}");
  CHECK(json_integer_value(json_object_get(json_object_get(res(r), "structuredContent"), "searched")) == 60);
  json_decref(r);
  r = call_tool(&s, 304, "query_ast_context", fresh);
  got = json_object_get(json_object_get(res(r), "structuredContent"), "results");
  CHECK(json_array_size(got) == 1 && strstr(jstr(json_array_get(got, 0), "signature"), "def fromisoformat"));
  json_decref(r);
  r = call_tool(&s, 302, "index_status", "{}");
  CHECK(json_integer_value(json_object_get(json_object_get(res(r), "structuredContent"), "annotations")) == 60);
  json_decref(r);
  CHECK(mt_stop(&s) == 0);
  /* loaded once, by the first vector search */
  CHECK(mt_sh("test \"$(grep -c 'loaded model' '%s')\" = 1", log) == 0);
}

/* query_ast_context in every mode and with the filters, against `astembed query
 * --mode M --format json` with the same filters, on the random-weight index (whose
 * default is lexical). Lexical calls come first: none of them may load the model;
 * the first vector or hybrid call loads it, once. */
static void test_modes(void) {
  char log[200];
  snprintf(log, sizeof log, "%s/server.log", mt_dir);
  unlink(log);
  const char *args[] = {"--db", mt_db, NULL};
  mt_server s = mt_start(args);
  static const char *const modes[] = {NULL, "lexical", "vector", "hybrid"};
  static const struct { const char *cli, *mcp; } filters[] = {
    {"", ""},
    {"--type function --path '_py*'", ",\"nodeType\":\"function\",\"path\":\"_py*\""},
    {"--lang python --type class", ",\"language\":\"python\",\"nodeType\":\"class\""},
    {"--lang Python", ",\"language\":\"Python\""},   /* exact: no hits */
  };
  static const char *const queries[] = {"read a file", "decimal context"};
  size_t hits[4] = {0};
  int id = 1, both_ranks = 0;
  for (size_t m = 0; m < 4; m++) {
    for (size_t f = 0; f < sizeof filters / sizeof filters[0]; f++)
      for (size_t q = 0; q < 2; q++) {
        char cli[300], call[600], what[400];
        snprintf(cli, sizeof cli, "%s%s %s", modes[m] ? "--mode " : "", modes[m] ? modes[m] : "", filters[f].cli);
        snprintf(call, sizeof call, "{\"query\":\"%s\",\"maxResults\":8%s%s%s%s}", queries[q],
                 modes[m] ? ",\"mode\":\"" : "", modes[m] ? modes[m] : "", modes[m] ? "\"" : "", filters[f].mcp);
        snprintf(what, sizeof what, "%s %s", queries[q], cli);
        json_t *want = cli_query(mt_db, queries[q], 8, cli);
        json_t *r = call_tool(&s, id++, "query_ast_context", call);
        size_t n = same_hits(r, want, what);
        hits[m] += n;
        json_t *sc = json_object_get(res(r), "structuredContent");
        const char *text = jstr(json_array_get(json_object_get(res(r), "content"), 0), "text");
        if (!modes[m]) {
          CHECKF(sc && !strcmp(jstr(sc, "mode"), "lexical"), "%s: the default on a random-weight index", what);
          CHECKF(text && strstr(text, "(lexical search") && strstr(text, "random weights"), "%s: text %s", what, text);
        }
        if (f == 3) CHECKF(n == 0, "%s: language is matched exactly", what);
        size_t i;
        json_t *h;
        json_array_foreach(json_object_get(sc, "results"), i, h) {
          if (f == 1) CHECKF(!strcmp(jstr(h, "nodeType"), "function") && !strncmp(jstr(h, "file"), "_py", 3), "%s", what);
          if (f == 2) CHECKF(!strcmp(jstr(h, "nodeType"), "class") && !strcmp(jstr(h, "language"), "python"), "%s", what);
          int lr = json_is_integer(json_object_get(h, "lexicalRank")), vr = json_is_integer(json_object_get(h, "vectorRank"));
          if (modes[m] && !strcmp(modes[m], "hybrid") && lr && vr) both_ranks = 1;
          if (modes[m] && !strcmp(modes[m], "lexical")) CHECKF(lr && !vr, "%s: lexical ranks only", what);
          if (modes[m] && !strcmp(modes[m], "vector")) CHECKF(!lr && vr, "%s: vector ranks only", what);
        }
        if (n && modes[m] && !strcmp(modes[m], "hybrid") && json_is_integer(json_object_get(json_array_get(
              json_object_get(sc, "results"), 0), "lexicalRank")))
          CHECKF(text && strstr(text, "lexical #"), "%s: ranks in the text block", what);
        json_decref(want);
        json_decref(r);
      }
    /* after the default and lexical passes: no model was loaded */
    if (m == 1) CHECK(mt_sh("grep -q 'loaded model' '%s'", log) != 0);
  }
  CHECKF(hits[0] >= 8 && hits[1] >= 8 && hits[2] >= 16 && hits[3] >= 16, "hits %zu %zu %zu %zu", hits[0], hits[1],
         hits[2], hits[3]);
  CHECK(both_ranks);
  CHECK(mt_stop(&s) == 0);
  CHECK(mt_sh("test \"$(grep -c 'loaded model' '%s')\" = 1", log) == 0);
}

/* An index built with `embed --lexical-only` (no model anywhere, no ASTEMBED_MODEL):
 * query_ast_context answers in lexical mode, by default and when asked, with the
 * CLI's hits; vector and hybrid are tool errors that say lexical needs no model. */
static void test_lexical_only(void) {
  const char *src = getenv("AE_SOURCE_DIR");
  char db[200], log[200];
  snprintf(db, sizeof db, "%s/lexical.db", mt_dir);
  snprintf(log, sizeof log, "%s/server.log", mt_dir);
  unlink(log);
  CHECK(mt_sh("head -n 40 '%s/examples/annotations.jsonl' | '%s' embed --lexical-only --input - --db '%s'"
              " --no-progress --log-level error >/dev/null 2>>'%s/embed.log'", src ? src : ".", mt_bin, db, mt_dir) == 0);
  const char *args[] = {"--db", db, NULL};
  mt_server s = mt_start(args);
  const char *calls[][2] = {
    {"{\"query\":\"read a file\"}", ""},
    {"{\"query\":\"read a file\",\"mode\":\"lexical\",\"path\":\"_py*\"}", "--mode lexical --path '_py*'"},
  };
  for (int i = 0; i < 2; i++) {
    json_t *want = cli_query(db, "read a file", 10, calls[i][1]);
    json_t *r = call_tool(&s, 1 + i, "query_ast_context", calls[i][0]);
    CHECKF(same_hits(r, want, calls[i][0]) >= 1, "%s", calls[i][0]);
    CHECK(!strcmp(jstr(json_object_get(res(r), "structuredContent"), "mode"), "lexical"));
    json_decref(want);
    json_decref(r);
  }
  for (int i = 0; i < 2; i++) {
    json_t *r = call_tool(&s, 10 + i, "query_ast_context", i ? "{\"query\":\"x\",\"mode\":\"hybrid\"}"
                                                                : "{\"query\":\"x\",\"mode\":\"vector\"}");
    const char *text = jstr(json_array_get(json_object_get(res(r), "content"), 0), "text");
    CHECKF(is_tool_error(r) && text && strstr(text, "needs a model") && strstr(text, "lexical"), "%s", text ? text : "");
    json_decref(r);
  }
  json_t *r = call_tool(&s, 20, "index_status", "{}");
  CHECK(json_integer_value(json_object_get(json_object_get(res(r), "structuredContent"), "annotations")) == 40);
  json_decref(r);
  CHECK(mt_stop(&s) == 0);
  CHECK(mt_sh("grep -q 'loaded model' '%s'", log) != 0);
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

/* One worker: call A occupies it (the first vector search loads the model), B waits in the
 * queue and is cancelled there, C follows. A and C are answered, B never. */
static void test_cancel(void) {
  const char *args[] = {"--db", mt_db, "--workers", "1", NULL};
  mt_server s = mt_start(args);
  mt_send(&s, "{\"jsonrpc\":\"2.0\",\"id\":\"A\",\"method\":\"tools/call\",\"params\":{\"name\":\"query_ast_context\",\"arguments\":{\"query\":\"sort a list\",\"mode\":\"vector\"}}}");
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
  unsetenv("ASTEMBED_MODEL");   /* the servers get no fallback model */
  mt_build_index(40);
  test_modern();
  test_legacy();
  test_modes();
  test_lexical_only();
  test_tools();
  test_cancel();
  test_limits();
  CHECK(mt_sh("'%s' mcp --help >/dev/null", mt_bin) == 0);
  CHECK(mt_sh("'%s' mcp --workers 0 </dev/null 2>/dev/null", mt_bin) == 2);
  CHECK(mt_sh("'%s' mcp --bogus </dev/null 2>/dev/null", mt_bin) == 2);
  if (!t_fail) mt_sh("rm -rf '%s'", mt_dir); else fprintf(stderr, "kept %s\n", mt_dir);
  TEST_DONE();
}
