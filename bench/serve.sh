#!/usr/bin/env bash
# bench/serve.sh — astembed serve under load (issue 15's table): single-text requests
# from 1, 4, 16 and 64 connections to astembed serve, to the same server with batching
# off (--max-batch-items 1) and to the ONNX Runtime peer (bench/peers/ort_server.js,
# one session.run per request), with `astembed encode` and single encode calls
# measured in the same run. See bench/serve.c for what is measured and the targets.
#
# Prepares what bench/run.sh prepares (bench/prepare.sh): the random-weight
# MiniLM-shaped model, onnxruntime-node and the model's ONNX export.
# Arguments go to bench_serve (`--quick`: 400 texts, 1 and 16 connections; `--n N`,
# `--conns 1,16`). Environment: BENCH_PEERS "ort" (default) or "" to leave the ORT peer
# out; BENCH_SEED, BUILD_DIR, SHARED_DIR as for bench/run.sh.
# The table goes to stdout and build/bench-cache/serve-last.txt.
# Exit status: bench_serve's (0 every target met, 1 a target missed, 2 error).
set -euo pipefail

# shellcheck source=bench/prepare.sh
. "$(dirname "$0")/prepare.sh"
BENCH_TAG=bench-serve
PEERS=${BENCH_PEERS-ort}

need_built astembed bench/bench_serve
prepare_model
ARGS=(--model "$MODEL" --data "$SHARED/testdata/cpython-stdlib-annotations.jsonl")
if [[ " $PEERS " == *" ort "* ]]; then
  prepare_ort
  prepare_onnx
  ARGS+=(--ort-cmd "node $ROOT/bench/peers/ort_server.js $ONNX")
fi

bench_header "bench/serve.sh $*" | tee "$CACHE/serve-last.txt"
set +e
AE_BUILD_DIR=$BUILD AE_SOURCE_DIR=$ROOT "$BUILD/bench/bench_serve" "${ARGS[@]}" "$@" | tee -a "$CACHE/serve-last.txt"
rc=${PIPESTATUS[0]}
set -e
exit "$rc"
