#!/bin/bash
# Checks astembed's Unicode character classes against the reference tokenizer, code
# point by code point: for every code point assigned in Unicode 8.0 (outside the CJK,
# Hangul and private-use blocks, which are uniform) it tokenizes "a" + c + "b" with
# MiniLM's tokenizer under three normaliser settings (the real one; clean_text alone,
# which shows what is removed as a control and what is punctuation; strip_accents
# alone, which shows what is removed as a nonspacing mark) with both implementations
# and reports every difference. This is how the CHANGED_SINCE_8_0 list in
# src/tokenizer/gen_unicode_tables.py was found. Not part of CI: needs Node.js and
#   npm install --prefix /tmp/hftok @anush008/tokenizers@0.6.0
# PROBE_ALL=1 probes every code point below U+20000 (assigned later or never, too).
# usage: tests/tokenizer/data/probe_unicode_classes.sh [build/astembed] [/tmp/hftok]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BIN=${1:-$ROOT/build/astembed}
NODE_DIR=${2:-/tmp/hftok}
MODEL=$ROOT/../shared/models/all-MiniLM-L6-v2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$MODEL" "$WORK" "${PROBE_ALL:-0}" <<'PY'
import glob, json, sys
model, work = sys.argv[1], sys.argv[2]
base = json.load(open(model + "/tokenizer.json"))
base["truncation"] = None
base["padding"] = None
configs = {
    "real": {},
    "clean": {"clean_text": True, "handle_chinese_chars": False, "strip_accents": False, "lowercase": False},
    "strip": {"clean_text": False, "handle_chinese_chars": False, "strip_accents": True, "lowercase": False},
}
txt = open(sorted(glob.glob("/usr/share/perl/*/unicore/lib/In/8_0.pl"))[-1]).read()
body = txt.split("<<'END';\n", 1)[1].split("\nEND", 1)[0].split("\n")
nums = [int(x) for x in body if x and x[0] != "V"]
if len(nums) % 2:
    nums.append(0x110000)
if sys.argv[3] == "1":
    nums = [0, 0x20000]
def uniform(c):
    return (0x3400 <= c <= 0x4DBF or 0x4E00 <= c <= 0x9FFF or 0xAC00 <= c <= 0xD7A3 or
            0xE000 <= c <= 0xF8FF or 0xD800 <= c <= 0xDFFF or 0x20000 <= c <= 0x2FFFF or c >= 0xF0000)
with open(work + "/in.jsonl", "w") as f:
    for a, b in zip(nums[0::2], nums[1::2]):
        for c in range(a, b):
            if not uniform(c):
                f.write(json.dumps({"text": "a" + chr(c) + "b"}) + "\n")
for name, norm in configs.items():
    d = json.loads(json.dumps(base))
    d["normalizer"].update(norm)
    import os
    os.makedirs(work + "/" + name)
    json.dump(d, open(work + "/" + name + "/tokenizer.json", "w"))
PY
cat > "$WORK/ref.js" <<'JS'
const { Tokenizer } = require('@anush008/tokenizers');
const fs = require('fs');
const tok = Tokenizer.fromFile(process.argv[2]);
const lines = fs.readFileSync(process.argv[3], 'utf8').split('\n').filter(l => l.length);
(async () => {
  const out = [];
  for (const l of lines) {
    const enc = await tok.encode(JSON.parse(l).text, null, { addSpecialTokens: true });
    out.push(JSON.stringify({ ids: Array.from(enc.getIds()) }));
  }
  fs.writeFileSync(process.argv[4], out.join('\n') + '\n');
})();
JS
status=0
for name in real clean strip; do
  NODE_PATH=$NODE_DIR/node_modules node "$WORK/ref.js" "$WORK/$name/tokenizer.json" "$WORK/in.jsonl" "$WORK/$name.ref"
  "$BIN" tokenize --model "$WORK/$name" --max-length 0 < "$WORK/in.jsonl" > "$WORK/$name.out"
  python3 - "$WORK/in.jsonl" "$WORK/$name.ref" "$WORK/$name.out" "$name" <<'PY' || status=1
import json, sys
texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
ref = [json.loads(l)["ids"] for l in open(sys.argv[2])]
out = [json.loads(l).get("ids") for l in open(sys.argv[3])]
bad = [(t, r, o) for t, r, o in zip(texts, ref, out) if r != o]
print("%s: %d code points, %d differences" % (sys.argv[4], len(texts), len(bad)))
for t, r, o in bad[:20]:
    print("  U+%04X reference %s astembed %s" % (ord(t[1]), r, o))
sys.exit(1 if bad else 0)
PY
done
exit $status
