/* The MCP server's private parts: the protocol core (server.c) and the tools
 * (tools.c). See server.c for the design. */
#ifndef AE_MCP_H
#define AE_MCP_H
#include "common/common.h"
#include <jansson.h>

#define AE__MCP_MODERN "2026-07-28"
#define AE__MCP_LEGACY_LATEST "2025-11-25"
#define AE__MCP_DEFAULT_LINE (4u << 20)

/* ---- protocol core (server.c) ---- */
typedef struct ae__mcp ae__mcp;
/* A server writing to out_fd; workers as in ae_mcp_options (-1: answer inline). */
int ae__mcp_new(const ae_mcp_options *o, int out_fd, ae__mcp **out);
/* One complete message (a line without its newline). */
void ae__mcp_message(ae__mcp *m, const char *line, size_t len);
/* A line longer than the limit was read and discarded. */
void ae__mcp_oversize(ae__mcp *m, size_t limit);
/* Finishes the calls in flight (their answers are still written), then frees. */
void ae__mcp_free(ae__mcp *m);

/* ---- tools (tools.c) ---- */
typedef struct ae__mcp_tools ae__mcp_tools;
int ae__mcp_tools_new(const ae_mcp_options *o, ae__mcp_tools **out);
void ae__mcp_tools_free(ae__mcp_tools *t);
/* The tools array of tools/list; with_output: each tool's outputSchema and title
 * (revisions 2025-06-18 and later). New reference. */
json_t *ae__mcp_tools_list(int with_output);
/* 1 when a tool of that name exists. */
int ae__mcp_tool_exists(const char *name);
/* Runs a tool: returns a CallToolResult object (content, isError and, when
 * structured, structuredContent), or NULL when *cancelled became non-zero. */
json_t *ae__mcp_tool_call(ae__mcp_tools *t, const char *name, json_t *args, int structured,
                          const volatile int *cancelled);

/* A JSON string of s[0..n) with invalid UTF-8 replaced by U+FFFD (never NULL unless
 * out of memory). */
json_t *ae__mcp_jstr(const char *s, size_t n);
#endif
