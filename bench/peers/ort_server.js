// ONNX Runtime peer of bench/serve: an HTTP server that embeds each request on its
// own, as the original system did (one session.run per request, no batching across
// requests), with onnxruntime-node on the ONNX export of the benchmark model.
//
// usage: node ort_server.js MODEL.onnx THREADS
// Prints "listening on http://127.0.0.1:PORT" (a free port) and serves
//   POST /embed-ids  {"ids": [int, ...]}  ->  {"embedding": [float, ...]}
// The ids are the benchmark's own tokenization of the text (astembed's tokenizer,
// exact against Hugging Face's), so this peer is spared the tokenizer's time.
// Session options as bench/peers/ort_peer.js: intraOpNumThreads = THREADS, one
// inter-op thread, sequential execution, graph optimization 'all'.
'use strict';
const http = require('http');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

async function main() {
  const [model, threads] = process.argv.slice(2);
  if (!model) { console.error('usage: node ort_server.js MODEL.onnx THREADS'); process.exit(2); }
  const session = await ort.InferenceSession.create(model, {
    executionProviders: ['cpu'], intraOpNumThreads: Number(threads) || 0, interOpNumThreads: 1,
    executionMode: 'sequential', graphOptimizationLevel: 'all',
  });
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      let out, code = 200;
      try {
        const ids = JSON.parse(Buffer.concat(chunks).toString('utf8')).ids;
        const n = ids.length;
        const feeds = {
          input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]),
          attention_mask: new ort.Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]),
        };
        const e = (await session.run(feeds)).embedding;
        out = JSON.stringify({ embedding: Array.from(e.data) });
      } catch (err) {
        code = 400;
        out = JSON.stringify({ error: String(err.message || err) });
      }
      res.writeHead(code, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(out) });
      res.end(out);
    });
  });
  server.keepAliveTimeout = 60000;
  server.listen(0, '127.0.0.1', () => {
    process.stderr.write(`listening on http://127.0.0.1:${server.address().port}\n`);
  });
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
}

main().catch((err) => { console.error(`ort_server: ${err.stack || err}`); process.exit(1); });
