/* astembed mcp: the index served to AI assistants over the Model Context Protocol
 * (stdio). The protocol and the tools live in the library (ae_mcp_serve, src/mcp);
 * this command parses the options, routes SIGTERM/SIGINT to a clean stop and keeps
 * stdout for protocol messages only. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(FILE *f) {
  fprintf(f,
    "usage: astembed mcp [--db PATH] [--model DIR] [--threads N] [--workers N]\n"
    "                    [--max-message BYTES] [--verbose]\n\n"
    "Serves the index to AI assistants over the Model Context Protocol: JSON-RPC, one\n"
    "message per line on stdin and stdout (logs on stderr). Protocol revisions\n"
    "2024-11-05 to 2025-11-25 (initialize handshake) and 2026-07-28 (stateless).\n"
    "Tools: query_ast_context, get_node_details, list_recent_changes, ast_file_query,\n"
    "index_status. Searches are lexical, vector or hybrid (default as in astembed\n"
    "query); the model loads on the first vector or hybrid search (lexical needs\n"
    "none); a change to the index by another process is picked up before the next\n"
    "search.\n\n"
    "  --db PATH            index database (default .astembed/index.db)\n"
    "  --model DIR          model folder (default: the one the index was built with,\n"
    "                       else $ASTEMBED_MODEL)\n"
    "  --threads N          encoder threads for the query text (default 1)\n"
    "  --workers N          tool calls served at the same time (default 4)\n"
    "  --max-message BYTES  longest message accepted (default 4194304)\n"
    "  --verbose            log each request to stderr\n"
    "  --no-load-cache      parse the model folder from scratch (see astembed query)\n");
}

static volatile int g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static int num(const char *flag, const char *s, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || *end || !*s || v < lo || v > hi) {
    fprintf(stderr, "astembed mcp: bad %s '%s' (want an integer in [%ld, %ld])\n", flag, s, lo, hi);
    return CLI_USAGE;
  }
  *out = v;
  return 0;
}

int cmd_mcp(int argc, char **argv) {
  ae_mcp_options o = {0};
  int no_load_cache = 0;
  long v;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return CLI_OK; }
    if (!strcmp(a, "--verbose")) { o.verbose = 1; continue; }
    if (!strcmp(a, "--no-load-cache")) { no_load_cache = 1; continue; }
    if (i + 1 >= argc) { fprintf(stderr, "astembed mcp: unknown or incomplete option '%s'\n", a); usage(stderr); return CLI_USAGE; }
    const char *val = argv[++i];
    if (!strcmp(a, "--db")) o.db_path = val;
    else if (!strcmp(a, "--model")) o.model = val;
    else if (!strcmp(a, "--threads")) { if (num(a, val, 0, 1024, &v)) return CLI_USAGE; o.threads = (int)v; }
    else if (!strcmp(a, "--workers")) { if (num(a, val, 1, 16, &v)) return CLI_USAGE; o.workers = (int)v; }
    else if (!strcmp(a, "--max-message")) {
      if (num(a, val, 1024, 1l << 30, &v)) return CLI_USAGE;
      o.max_line_bytes = (size_t)v;
    } else { fprintf(stderr, "astembed mcp: unknown option '%s'\n", a); usage(stderr); return CLI_USAGE; }
  }
  o.fallback_model = cli_default_model();
  o.cache_dir = no_load_cache ? NULL : cli_load_cache_dir();
  o.stop = &g_stop;
  /* no SA_RESTART: a signal interrupts the blocking read, and the loop sees the flag */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);   /* a client that went away is seen as a failed write */
  int rc = ae_mcp_serve(&o, STDIN_FILENO, STDOUT_FILENO);
  if (rc) return cli_fail("serving MCP", rc);
  return CLI_OK;
}
