#!/usr/bin/env bash
# bench/pipeline.sh — the pipeline benchmark (issue 5's "without / with optimization"
# table) with the original system's engine in the same run.
#
# Prepares exactly what bench/run.sh prepares (bench/prepare.sh): onnxruntime-node under
# bench/node_modules, the random-weight MiniLM-shaped model build/bench-cache/
# minilm-random-seed$BENCH_SEED and its ONNX export beside it. Then runs
# build/bench/bench_pipeline on THAT model folder (--model), with the ONNX Runtime peer
# (--ort-cmd) running THAT model's export, so the row "without, original's engine" and
# the astembed rows compute the same vectors (bench_pipeline checks a sample).
#
# Arguments are passed to bench_pipeline (e.g. `bench/pipeline.sh --limit 500 --queries 0`;
# `make bench-pipeline BENCH_ARGS="..."` does the same; `build/bench/bench_pipeline --help`
# lists them). Environment:
#   BENCH_PEERS  "ort" (default) or "" to leave out the ONNX Runtime row
#   BENCH_SEED, BUILD_DIR, SHARED_DIR  as for bench/run.sh
# The table goes to stdout and build/bench-cache/pipeline-last.txt.
# Exit status: bench_pipeline's (0 every target PASSes, 3 a target FAILs, 1 error, 2 usage).
set -euo pipefail

# shellcheck source=bench/prepare.sh
. "$(dirname "$0")/prepare.sh"
PEERS=${BENCH_PEERS-ort}
read -r -a EXTRA <<< "${BENCH_ARGS:-}"

need_built astembed bench/bench_pipeline
prepare_model
ARGS=(--model "$MODEL" --data "$SHARED/testdata/cpython-stdlib-annotations.jsonl")
if [[ " $PEERS " == *" ort "* ]]; then
  prepare_ort
  prepare_onnx
  ARGS+=(--ort-cmd "node $ROOT/bench/peers/ort_peer.js $ONNX")
fi

bench_header "bench/pipeline.sh ${EXTRA[*]} $*" | tee "$CACHE/pipeline-last.txt"
set +e
AE_BUILD_DIR=$BUILD AE_SOURCE_DIR=$ROOT "$BUILD/bench/bench_pipeline" "${ARGS[@]}" "${EXTRA[@]}" "$@" |
  tee -a "$CACHE/pipeline-last.txt"
rc=${PIPESTATUS[0]}
set -e
echo "load after:  $(uptime | sed 's/.*load average/load average/')" | tee -a "$CACHE/pipeline-last.txt"
exit "$rc"
