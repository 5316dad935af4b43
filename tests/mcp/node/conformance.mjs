// Runs the official MCP conformance suite's server scenarios against `astembed mcp`.
//
//   node conformance.mjs ASTEMBED_BIN DB SCENARIO...
//
// The suite talks to servers over Streamable HTTP only, so this script puts a plain
// stateless HTTP front on the stdio server: each POSTed JSON-RPC message is written
// to the server's stdin as one line, and the answer line with the same id is returned
// as application/json (a notification gets 202; GET and DELETE get 405, which the
// transport allows for servers without a standalone stream or sessions). It listens on
// 127.0.0.1 only. Prints each scenario's checks and exits 0 when all passed.
import { spawn } from "node:child_process";
import { createServer } from "node:http";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";

const [bin, db, ...scenarios] = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
const child = spawn(bin, ["mcp", "--db", db], { stdio: ["pipe", "pipe", "inherit"] });
const waiting = new Map();
createInterface({ input: child.stdout }).on("line", (line) => {
  const msg = JSON.parse(line);
  const key = JSON.stringify(msg.id);
  const res = waiting.get(key);
  if (!res) return;
  waiting.delete(key);
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(line);
});

const http = createServer((req, res) => {
  if (req.method !== "POST") { res.writeHead(405, { Allow: "POST" }); res.end(); return; }
  let body = "";
  req.on("data", (c) => { body += c; if (body.length > 4 << 20) req.destroy(); });
  req.on("end", () => {
    let msg;
    try { msg = JSON.parse(body); } catch { msg = null; }
    if (msg && typeof msg === "object" && !Array.isArray(msg) && msg.method && msg.id === undefined) {
      child.stdin.write(JSON.stringify(msg) + "\n");
      res.writeHead(202);
      res.end();
      return;
    }
    if (msg && typeof msg === "object" && !Array.isArray(msg) && msg.id !== undefined && msg.id !== null) {
      waiting.set(JSON.stringify(msg.id), res);
      child.stdin.write(JSON.stringify(msg) + "\n");
      return;
    }
    res.writeHead(400, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ jsonrpc: "2.0", id: null, error: { code: -32600, message: "Invalid Request" } }));
  });
});
await new Promise((r) => http.listen(0, "127.0.0.1", r));
const url = `http://127.0.0.1:${http.address().port}/mcp`;

const cli = join(here, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js");
let failed = 0;
for (const sc of scenarios) {
  const out = mkdtempSync(join(tmpdir(), "ae-conf-"));
  let text = "";
  try {
    text = await new Promise((resolve, reject) => {
      const p = spawn(process.execPath, [cli, "server", "--url", url, "--scenario", sc, "-o", out], { stdio: ["ignore", "pipe", "pipe"] });
      let o = "";
      p.stdout.on("data", (c) => (o += c));
      p.stderr.on("data", (c) => (o += c));
      p.on("close", (code) => resolve(o + `\n(exit ${code})`));
      p.on("error", reject);
    });
  } catch (e) { text = String(e); }
  // the checks, from the results file the suite writes
  const checks = [];
  const walk = (d) => { for (const f of readdirSync(d, { withFileTypes: true })) {
    const p = join(d, f.name);
    if (f.isDirectory()) walk(p); else if (f.name === "checks.json") checks.push(...JSON.parse(readFileSync(p, "utf8")));
  } };
  walk(out);
  const bad = checks.filter((c) => c.status === "FAILURE");
  if (!checks.length || bad.length) failed++;
  console.log(`${checks.length && !bad.length ? "PASS" : "FAIL"} ${sc}: ${checks.length} checks, ${bad.length} failed`);
  for (const c of bad) console.log(`     ${c.id}: ${c.errorMessage ?? ""}`);
  if (!checks.length) console.log(text.slice(-2000));
  rmSync(out, { recursive: true, force: true });
}
http.close();
child.stdin.end();
process.exit(failed ? 1 : 0);
