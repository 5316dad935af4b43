/* libFuzzer target: the MCP server's message parser and dispatcher (src/mcp) on
 * arbitrary bytes. The input is cut into lines as the stdio reader cuts them and each
 * line is handed to the dispatcher, answering in the calling thread (tool calls
 * included; the index path does not exist, so tools fail as tool errors). The
 * oracle: nothing crashes or leaks, and everything written to the output is whole
 * JSON-RPC 2.0 messages, one per line, with at most one answer per input line. */
#define _GNU_SOURCE
#include "mcp/mcp.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static ae__mcp *srv;
static int out_fd = -1;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (!srv) {
    out_fd = memfd_create("fuzz_mcp_out", 0);
    ae_mcp_options o = {.db_path = "/nonexistent/astembed-fuzz/index.db", .workers = -1};
    if (out_fd < 0 || ae__mcp_new(&o, out_fd, &srv)) abort();
  }
  if (ftruncate(out_fd, 0) || lseek(out_fd, 0, SEEK_SET) != 0) abort();
  size_t lines = 0;
  const char *p = (const char *)data, *end = p + size;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t n = (size_t)((nl ? nl : end) - p);
    if (n > 65536) ae__mcp_oversize(srv, 65536);
    else if (n) ae__mcp_message(srv, p, n);
    lines++;
    p = nl ? nl + 1 : end;
  }
  off_t len = lseek(out_fd, 0, SEEK_CUR);
  if (len > 0) {
    char *buf = malloc((size_t)len);
    if (!buf || pread(out_fd, buf, (size_t)len, 0) != len || buf[len - 1] != '\n') abort();
    size_t answers = 0;
    for (char *q = buf, *e; q < buf + len; q = e + 1) {
      e = memchr(q, '\n', (size_t)(buf + len - q));
      json_t *m = json_loadb(q, (size_t)(e - q), 0, NULL);
      json_t *v = m ? json_object_get(m, "jsonrpc") : NULL;
      if (!json_is_string(v) || strcmp(json_string_value(v), "2.0") ||
          !json_object_get(m, "id") || (!json_object_get(m, "result") == !json_object_get(m, "error")))
        abort();
      json_decref(m);
      answers++;
    }
    if (answers > lines) abort();
    free(buf);
  }
  return 0;
}
