// The official MCP TypeScript SDK as a client of `astembed mcp` over stdio:
// connect, list the tools, call each one, compare the search hits with
// `astembed query --format json` in the index's default mode and in vector mode,
// cancel a call, and send malformed input.
//
//   node client.mjs ASTEMBED_BIN DB QUERY_JSON_FILE QUERY_TEXT VECTOR_QUERY_JSON_FILE
//
// QUERY_JSON_FILE: `astembed query QUERY_TEXT --format json` (the default mode);
// VECTOR_QUERY_JSON_FILE: the same with --mode vector.
//
// Prints one line per check and exits 0 when every check passed, 1 otherwise.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { readFileSync } from "node:fs";

const [bin, db, queryFile, queryText, vectorFile] = process.argv.slice(2);
let failed = 0;
function check(ok, what, detail) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}${!ok && detail !== undefined ? ": " + JSON.stringify(detail).slice(0, 400) : ""}`);
  if (!ok) failed++;
}

const transport = new StdioClientTransport({ command: bin, args: ["mcp", "--db", db, "--workers", "2"], stderr: "inherit" });
const client = new Client({ name: "astembed-sdk-test", version: "1.0.0" });
const protocolErrors = [];
client.onerror = (e) => protocolErrors.push(String(e));
await client.connect(transport);
check(client.getServerVersion()?.name === "astembed", "initialize: serverInfo.name", client.getServerVersion());
check(!!client.getServerCapabilities()?.tools, "initialize: tools capability", client.getServerCapabilities());

const { tools } = await client.listTools();
const names = tools.map((t) => t.name).sort();
check(JSON.stringify(names) === JSON.stringify(["ast_file_query", "get_node_details", "index_status", "list_recent_changes", "query_ast_context"]),
      "tools/list: the five tools", names);
check(tools.every((t) => t.description && t.inputSchema?.type === "object" && t.outputSchema?.type === "object"),
      "tools/list: descriptions, input and output schemas");

// query_ast_context: the same mode, model and hits as the CLI, every field of every
// hit (scores to 1e-4 relative: the CLI prints 6 digits); the SDK validates
// structuredContent against the outputSchema itself
function sameHits(sc, cli) {
  const g = sc?.results ?? [], w = cli.results;
  return sc?.mode === cli.mode && sc?.model === cli.model && g.length === w.length &&
    g.every((h, i) => Object.keys(h).length === Object.keys(w[i]).length &&
      Object.keys(w[i]).every((k) => k === "score" ? Math.abs(h.score - w[i].score) <= 1e-4 * Math.max(1, Math.abs(w[i].score))
                                                   : JSON.stringify(h[k]) === JSON.stringify(w[i][k])));
}
const cliDefault = JSON.parse(readFileSync(queryFile, "utf8"));
const want = cliDefault.results;
const q = await client.callTool({ name: "query_ast_context", arguments: { query: queryText, maxResults: want.length } });
const got = q.structuredContent?.results ?? [];
check(!q.isError && got.length === want.length && want.length > 0, "query_ast_context: hit count", { got: got.length, want: want.length });
check(sameHits(q.structuredContent, cliDefault), "query_ast_context: hits equal astembed query --format json (default mode "
      + cliDefault.mode + ")", { got: q.structuredContent, want: cliDefault });
check(q.content?.[0]?.type === "text" && q.content[0].text.includes(want[0].nodeId), "query_ast_context: readable text block");
const cliVector = JSON.parse(readFileSync(vectorFile, "utf8"));
const qv = await client.callTool({ name: "query_ast_context",
                                   arguments: { query: queryText, maxResults: cliVector.results.length, mode: "vector" } });
check(!qv.isError && cliVector.results.length > 0 && sameHits(qv.structuredContent, cliVector),
      "query_ast_context: mode vector equals astembed query --mode vector --format json", { got: qv.structuredContent });

const first = got[0];
const d = await client.callTool({ name: "get_node_details", arguments: { nodeId: first.nodeId } });
check(!d.isError && d.structuredContent?.nodeId === first.nodeId && d.structuredContent.snippet.length > 0,
      "get_node_details", d.structuredContent);

const f = await client.callTool({ name: "ast_file_query", arguments: { filePath: first.file } });
const nodes = f.structuredContent?.nodes ?? [];
check(!f.isError && nodes.some((n) => n.nodeId === first.nodeId) && nodes.every((n, i) => i === 0 || n.startLine >= nodes[i - 1].startLine),
      "ast_file_query: the file's nodes in line order", nodes.length);

const r = await client.callTool({ name: "list_recent_changes", arguments: { since: "2000-01-01T00:00:00Z", limit: 3 } });
check(!r.isError && r.structuredContent?.nodes?.length === 3, "list_recent_changes", r.structuredContent);

const s = await client.callTool({ name: "index_status", arguments: {} });
check(!s.isError && s.structuredContent?.annotations > 0 && s.structuredContent.models.length === 1, "index_status", s.structuredContent);

// wrong argument types come back as tool errors, unknown tools as protocol errors
const bad = await client.callTool({ name: "query_ast_context", arguments: { query: 5 } });
check(bad.isError === true && /query/.test(bad.content?.[0]?.text ?? ""), "bad argument: isError naming it", bad);
let unknown = null;
try { await client.callTool({ name: "no_such_tool", arguments: {} }); } catch (e) { unknown = e; }
check(unknown && unknown.code === -32602, "unknown tool: -32602", unknown && String(unknown));

// cancellation: the SDK sends notifications/cancelled and rejects the call; the
// server goes on serving
const ac = new AbortController();
const pending = client.callTool({ name: "query_ast_context", arguments: { query: "cancel me", maxResults: 50 } }, undefined, { signal: ac.signal });
ac.abort("test cancels");
let aborted = false;
try { await pending; } catch (e) { aborted = true; }
check(aborted, "cancel: the call is rejected on the client");
const after = await client.callTool({ name: "index_status", arguments: {} });
check(!after.isError, "cancel: the server still answers");

// malformed input straight into the server's stdin: answered with id null errors
// (the SDK reports them through onerror), and the session goes on
const proc = transport._process;
proc.stdin.write("{not json\n");
proc.stdin.write('{"jsonrpc":"2.0","id":{},"method":"ping"}\n');
proc.stdin.write("\xff\xfe\n");
await new Promise((res) => setTimeout(res, 300));
const ping = await client.ping();
check(ping !== undefined, "malformed input: the server still answers ping");
check(protocolErrors.length >= 1, "malformed input: error answers reached the client", protocolErrors);

await client.close();
console.log(failed ? `${failed} check(s) failed` : "all SDK checks passed");
process.exit(failed ? 1 : 0);
