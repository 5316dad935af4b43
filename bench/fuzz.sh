#!/usr/bin/env bash
# bench/fuzz.sh — runs every libFuzzer target built in build-fuzz/fuzz/ for a while
# each and reports crash / no crash per target (`make fuzz` builds, then calls this).
#
# usage: bench/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  time per target (default $FUZZ_SECONDS, else 120)
#   TARGET   names to run (fuzz_tokenizer or tokenizer); default every built target
# Environment: FUZZ_SECONDS, FUZZ_BUILD_DIR (default build-fuzz), SHARED_DIR (../shared),
#   FUZZ_JOBS (parallel libFuzzer jobs per target, default 1), FUZZ_ARGS (extra flags).
#
# Each target keeps its corpus in build-fuzz/corpus/NAME (kept between runs, so fuzzing
# resumes where it stopped), seeded on first use from real files:
#   safetensors  tests/fuzz/corpus_safetensors/*, and the first 64 KB (the header
#                and some data) of every model.safetensors under build*/bench-cache/
#   tokenizer    texts of ../shared/testdata/minilm-tokenizer-cases.jsonl and
#                signatures/summaries/snippets of the cpython annotations
#   jsonl        lines of both JSONL files
# plus tests/fuzz/corpus_NAME/* for any target. tests/fuzz/NAME.dict is passed as
# -dict when present. A crash leaves its input in build-fuzz/artifacts/NAME/ (replay:
# build-fuzz/fuzz/fuzz_NAME FILE). Exit status 1 when any target crashed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
FB=${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}
SHARED=${SHARED_DIR:-$ROOT/../shared}
SECS=${FUZZ_SECONDS:-120}
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then SECS=$1; shift; fi
JOBS=${FUZZ_JOBS:-1}
PY=/usr/bin/python3

shopt -s nullglob
targets=()
if [ $# -gt 0 ]; then
  for t in "$@"; do targets+=("$FB/fuzz/fuzz_${t#fuzz_}"); done
else
  targets=("$FB"/fuzz/fuzz_*)
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $FB/fuzz (run 'make fuzz')" >&2; exit 1; }

# seed_from_jsonl FILE OUTDIR MODE N: writes up to N seeds from FILE into OUTDIR, one per
# file: MODE "line" = the raw lines, "text" = the string fields that are fed to the
# tokenizer (text, signature, summary, sourceSnippet).
seed_from_jsonl() {
  [ -f "$1" ] || { echo "fuzz: $1 missing, no seeds from it" >&2; return 0; }
  "$PY" - "$@" <<'EOF'
import json, os, sys
path, out, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tag = os.path.basename(path).split(".")[0][:12]
k = 0
with open(path, "rb") as f:
    for i, line in enumerate(f):
        if k >= n:
            break
        if mode == "line":
            items = [line.rstrip(b"\n")]
        else:
            obj = json.loads(line)
            items = [obj[key].encode() for key in ("text", "signature", "summary", "sourceSnippet")
                     if isinstance(obj.get(key), str)]
        for j, data in enumerate(items):
            with open(os.path.join(out, f"{tag}-{i}-{j}"), "wb") as g:
                g.write(data[:8192])
            k += 1
EOF
}

seed_corpus() { # NAME DIR
  local name=$1 dir=$2
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir")" ] && return 0
  for f in "$ROOT/tests/fuzz/corpus_$name"/*; do cp "$f" "$dir/"; done
  case "$name" in
    safetensors)
      local i=0
      for m in "$ROOT"/build*/bench-cache/*/model.safetensors; do
        head -c 65536 "$m" > "$dir/model-head-$i"; i=$((i + 1))
      done ;;
    tokenizer)
      seed_from_jsonl "$SHARED/testdata/minilm-tokenizer-cases.jsonl" "$dir" text 600
      seed_from_jsonl "$SHARED/testdata/cpython-stdlib-annotations.jsonl" "$dir" text 300 ;;
    jsonl)
      seed_from_jsonl "$SHARED/testdata/minilm-tokenizer-cases.jsonl" "$dir" line 200
      seed_from_jsonl "$SHARED/testdata/cpython-stdlib-annotations.jsonl" "$dir" line 200 ;;
  esac
  [ -n "$(ls -A "$dir")" ] || printf '{}' > "$dir/minimal"
}

declare -a report
crashed=0
for bin in "${targets[@]}"; do
  base=$(basename "$bin")
  name=${base#fuzz_}
  if [ ! -x "$bin" ]; then
    report+=("$(printf '%-22s %-10s %s' "$base" "MISSING" "not built: $bin")")
    crashed=1
    continue
  fi
  corpus=$FB/corpus/$name
  arts=$FB/artifacts/$name
  log=$FB/logs/$name.log
  mkdir -p "$arts" "$(dirname "$log")"
  seed_corpus "$name" "$corpus"
  flags=(-max_total_time="$SECS" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1
         -artifact_prefix="$arts/")
  [ -f "$ROOT/tests/fuzz/$name.dict" ] && flags+=(-dict="$ROOT/tests/fuzz/$name.dict")
  [ "$JOBS" -gt 1 ] && flags+=(-jobs="$JOBS" -workers="$JOBS")
  read -r -a extra <<< "${FUZZ_ARGS:-}"
  before=$(ls "$corpus" | wc -l)
  echo "fuzz: $base for ${SECS}s (corpus $corpus, $before inputs) ..." >&2
  "$bin" "${flags[@]}" "${extra[@]}" "$corpus" > "$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  after=$(ls "$corpus" | wc -l)
  found=$(ls "$arts" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | wc -l)
  if [ $rc -eq 0 ]; then
    verdict="no crash"
  else
    verdict="CRASH (exit $rc)"
    crashed=1
  fi
  report+=("$(printf '%-22s %-16s execs %-10s cov %-6s corpus %s -> %s  artifacts %s  log %s' \
    "$base" "$verdict" "${execs:-?}" "${cov:-?}" "$before" "$after" "$found" "$log")")
  if [ $rc -ne 0 ]; then
    grep -m3 -E 'ERROR: |SUMMARY: |Test unit written' "$log" | sed 's/^/    /' >&2
  fi
done

echo
echo "fuzz summary (${SECS}s per target, $(date -u '+%Y-%m-%d %H:%M UTC')):"
for line in "${report[@]}"; do echo "  $line"; done
exit $crashed
