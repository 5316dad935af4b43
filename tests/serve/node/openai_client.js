// The official openai client against astembed serve's /v1/embeddings.
// usage: node openai_client.js BASE_URL API_KEY TEXTS.json OUT.json
// Embeds TEXTS (an array of strings) four ways: each string alone with the client's
// default encoding (it asks for base64 and decodes it itself), the array as
// encoding_format "float", the array as "base64" (decoded here from the little-endian
// float32 bytes), and the array with the default encoding; writes
// {single, float, base64, default, model, usage} to OUT.
'use strict';
const fs = require('fs');
const path = require('path');
const OpenAI = require(path.join(__dirname, 'node_modules', 'openai')).default;

async function main() {
  const [base, key, textsPath, outPath] = process.argv.slice(2);
  const texts = JSON.parse(fs.readFileSync(textsPath, 'utf8'));
  const client = new OpenAI({ baseURL: base, apiKey: key, maxRetries: 0, timeout: 60000 });
  const model = 'astembed-test';
  const single = [];
  for (const t of texts) {
    const r = await client.embeddings.create({ model, input: t });
    single.push(r.data[0].embedding);
  }
  const f = await client.embeddings.create({ model, input: texts, encoding_format: 'float' });
  const b = await client.embeddings.create({ model, input: texts, encoding_format: 'base64' });
  const d = await client.embeddings.create({ model, input: texts });
  const decode = (s) => {
    const buf = Buffer.from(s, 'base64');
    return Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
  };
  const out = {
    single,
    float: f.data.map((x) => x.embedding),
    base64: b.data.map((x) => (typeof x.embedding === 'string' ? decode(x.embedding) : x.embedding)),
    default: d.data.map((x) => x.embedding),
    indices: f.data.map((x) => x.index),
    model: f.model,
    usage: f.usage,
  };
  fs.writeFileSync(outPath, JSON.stringify(out));
}

main().catch((e) => { console.error(`openai client: ${e.stack || e}`); process.exit(1); });
