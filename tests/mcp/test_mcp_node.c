// ctest-timeout: 900
/* `astembed mcp` against clients nobody here wrote, from npm (tests/mcp/node, pinned
 * in its package-lock.json and installed with `npm ci`):
 *  - the official TypeScript SDK (@modelcontextprotocol/sdk) over stdio: connect,
 *    list the tools, call each one, the hits against `astembed query --format json`
 *    in the index's default mode and in vector mode, a cancelled call, malformed
 *    input (client.mjs);
 *  - the official conformance suite (@modelcontextprotocol/conformance), the server
 *    scenarios that apply to a stdio server with tools only: server-initialize, ping,
 *    tools-list (conformance.mjs; the suite speaks HTTP, so the script fronts the
 *    stdio server with a stateless HTTP relay on 127.0.0.1).
 * SKIP (77) when node or npm is missing or the packages cannot be installed. */
#include "mcp_test_util.h"

int main(void) {
  mt_find_bin();
  const char *src = getenv("AE_SOURCE_DIR");
  if (!src) src = ".";
  if (mt_sh("node --version >/dev/null 2>&1 && npm --version >/dev/null 2>&1")) {
    printf("SKIP: node and npm are needed for the MCP client tests\n");
    return 77;
  }
  /* one install at a time (release and sanitizer runs share the folder) */
  if (mt_sh("cd '%s/tests/mcp/node' && flock .npm-lock npm ci --no-audit --no-fund --prefer-offline"
            " >'%s/npm.log' 2>&1", src, mt_dir)) {
    printf("SKIP: npm ci failed in tests/mcp/node (registry unreachable?), see %s/npm.log\n", mt_dir);
    return 77;
  }
  mt_build_index(40);
  const char *q = "open a socket connection";
  CHECK(mt_sh("'%s' query '%s' --db '%s' --top 6 --format json >'%s/q.json' 2>/dev/null", mt_bin, q, mt_db, mt_dir) == 0);
  CHECK(mt_sh("'%s' query '%s' --db '%s' --top 6 --mode vector --format json >'%s/qv.json' 2>/dev/null", mt_bin, q,
              mt_db, mt_dir) == 0);
  CHECK(mt_sh("cd '%s/tests/mcp/node' && node client.mjs '%s' '%s' '%s/q.json' '%s' '%s/qv.json' 2>'%s/sdk.err'",
              src, mt_bin, mt_db, mt_dir, q, mt_dir, mt_dir) == 0);
  CHECK(mt_sh("cd '%s/tests/mcp/node' && node conformance.mjs '%s' '%s' server-initialize ping tools-list 2>'%s/conf.err'",
              src, mt_bin, mt_db, mt_dir) == 0);
  if (!t_fail) mt_sh("rm -rf '%s'", mt_dir);
  else fprintf(stderr, "kept %s (sdk.err, conf.err, server.log)\n", mt_dir);
  TEST_DONE();
}
