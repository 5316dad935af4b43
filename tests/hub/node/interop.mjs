// The peer client of tests/hub/test_hub_node.c, @huggingface/hub (not written here):
//   node interop.mjs download HUB_URL CACHE_DIR REPO   snapshotDownload; prints the snapshot folder
//   node interop.mjs scan CACHE_DIR                    scanCacheDir; prints what it found as JSON
import { snapshotDownload, scanCacheDir } from "@huggingface/hub";

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "download") {
  const [hubUrl, cacheDir, repo] = args;
  const dir = await snapshotDownload({ repo: { type: "model", name: repo }, cacheDir, hubUrl, revision: "main" });
  console.log(dir);
} else if (cmd === "scan") {
  const info = await scanCacheDir(args[0]);
  const out = {
    warnings: info.warnings.map(String),
    repos: info.repos.map((r) => ({
      id: r.id,
      size: r.size,
      filesCount: r.filesCount,
      revisions: r.revisions.map((v) => ({
        commitOid: v.commitOid,
        refs: v.refs,
        size: v.size,
        files: v.files.map((f) => ({ path: f.path, size: f.blob.size })).sort((a, b) => a.path < b.path ? -1 : 1),
      })),
    })),
  };
  console.log(JSON.stringify(out));
} else {
  console.error("usage: node interop.mjs download HUB_URL CACHE_DIR REPO | scan CACHE_DIR");
  process.exit(2);
}
