// ONNX Runtime peer of bench/encoder and bench/pipeline: runs the benchmark workloads
// with onnxruntime-node (CPU execution provider, fp32) on the ONNX export of the
// benchmark model and prints one JSON object.
//
// usage: node ort_peer.js MODEL.onnx WORK.json
//
// Session options follow the brief: intraOpNumThreads = WORK.threads, one inter-op
// thread, sequential execution, graphOptimizationLevel 'all'. Inputs are int64
// input_ids / attention_mask [batch, seq].
//
// bench/encoder's workloads (WORK.fixed, WORK.annotations, WORK.sample): the inputs are
// built before the clock starts, so only the encoder is timed; timings are per
// repetition (one pass over the workload's batches) after the warm-up batches.
//
// bench/pipeline's workload (WORK.pipeline = {ids: [[...], ...], sample: [positions]}):
// the original system's way over a whole corpus, timed as one pass with no warm-up
// (the original ran once, cold): input order, batches of WORK.batch padded to the
// batch's longest sequence, the int64 feeds built inside the clock. A batch whose run
// throws is counted (failed_batches, failed_items) and the pass goes on. Returns the
// pass's wall time, its CPU time (process.cpuUsage: every thread of the process, ORT's
// pool included), the session creation time apart, and the vectors of the sampled
// positions so the caller can check they are its own model's.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require(path.join(__dirname, '..', 'node_modules', 'onnxruntime-node'));

function padBatch(seqs) {
  const longest = Math.max(...seqs.map((s) => s.length));
  const ids = new BigInt64Array(seqs.length * longest);
  const mask = new BigInt64Array(seqs.length * longest);
  seqs.forEach((s, r) => {
    for (let j = 0; j < s.length; j++) {
      ids[r * longest + j] = BigInt(s[j]);
      mask[r * longest + j] = 1n;
    }
  });
  const dims = [seqs.length, longest];
  return {
    input_ids: new ort.Tensor('int64', ids, dims),
    attention_mask: new ort.Tensor('int64', mask, dims),
  };
}

function batches(seqs, size) {
  const out = [];
  for (let i = 0; i < seqs.length; i += size) out.push(padBatch(seqs.slice(i, i + size)));
  return out;
}

// sentence-transformers' encode order: longest first (stable sort).
function lengthSorted(seqs) {
  return seqs.map((s, i) => [s, i])
    .sort((a, b) => b[0].length - a[0].length || a[1] - b[1])
    .map((p) => p[0]);
}

async function timePass(session, prepared) {
  const t0 = process.hrtime.bigint();
  for (const feeds of prepared) await session.run(feeds);
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

async function runWorkload(session, name, seqs, work, warmupBatches, reps) {
  const prepared = batches(seqs, work.batch);
  for (const feeds of prepared.slice(0, warmupBatches)) await session.run(feeds);
  const times = [];
  for (let r = 0; r < reps; r++) times.push(await timePass(session, prepared));
  return {
    workload: name, times_s: times, items: seqs.length,
    real_tokens: seqs.reduce((n, s) => n + s.length, 0),
    padded_tokens: prepared.reduce((n, f) => n + f.input_ids.size, 0),
    batches: prepared.length,
  };
}

async function runPipeline(session, p, batch) {
  const want = new Map(p.sample.map((pos, k) => [pos, k]));
  const vectors = new Array(p.sample.length).fill(null);
  const res = {
    items: p.ids.length, batches: 0, real_tokens: 0, padded_tokens: 0,
    failed_batches: 0, failed_items: 0,
  };
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < p.ids.length; i += batch) {
    const seqs = p.ids.slice(i, i + batch);
    res.batches++;
    res.real_tokens += seqs.reduce((n, s) => n + s.length, 0);
    try {
      const feeds = padBatch(seqs);
      res.padded_tokens += feeds.input_ids.size;
      const e = (await session.run(feeds)).embedding;
      const dim = e.dims[1];
      for (let k = 0; k < seqs.length; k++) {
        const slot = want.get(i + k);
        if (slot !== undefined) vectors[slot] = Array.from(e.data.subarray(k * dim, (k + 1) * dim));
      }
    } catch (err) {
      res.failed_batches++;
      res.failed_items += seqs.length;
      if (res.failed_batches <= 3) console.error(`ort_peer: batch at ${i}: ${err.message || err}`);
    }
  }
  res.pass_s = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  res.cpu_s = (cpu.user + cpu.system) / 1e6;
  res.sample_vectors = vectors;
  return res;
}

async function main() {
  if (process.argv.length !== 4) {
    console.error('usage: node ort_peer.js MODEL.onnx WORK.json');
    process.exit(2);
  }
  const work = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
  const tCreate = process.hrtime.bigint();
  const session = await ort.InferenceSession.create(process.argv[2], {
    executionProviders: ['cpu'],
    intraOpNumThreads: work.threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  const out = {
    system: 'onnxruntime', version: ort.env.versions.node, threads: work.threads,
    session_create_s: Number(process.hrtime.bigint() - tCreate) / 1e9,
    results: [],
  };
  if (work.sample && work.sample.length) {
    const r = await session.run(padBatch(work.sample));
    const e = r.embedding;
    const dim = e.dims[1];
    out.sample_vectors = [];
    for (let i = 0; i < e.dims[0]; i++) out.sample_vectors.push(Array.from(e.data.subarray(i * dim, (i + 1) * dim)));
  }
  if (work.fixed && work.fixed.length) {
    out.results.push(await runWorkload(session, 'fixed', work.fixed, work, work.warmup_batches, work.reps_fixed));
  }
  if (work.annotations && work.annotations.length) {
    const ann = work.annotations;
    out.results.push(await runWorkload(session, 'naive', ann, work, work.warmup_batches, work.reps_ann));
    out.results.push(await runWorkload(session, 'sorted', lengthSorted(ann), work, work.warmup_batches, work.reps_ann));
  }
  if (work.pipeline) out.pipeline = await runPipeline(session, work.pipeline, work.batch);
  out.maxrss_bytes = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((err) => {
  console.error(`ort_peer: ${err.stack || err}`);
  process.exit(1);
});
