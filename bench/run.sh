#!/usr/bin/env bash
# bench/run.sh — the encoder benchmark (`make bench` builds, then calls this).
#
# Prepares everything bench_encoder needs (bench/prepare.sh, shared with
# bench/pipeline.sh), then runs it:
#   1. the ONNX Runtime peer's npm package under bench/node_modules (package-lock pinned);
#   2. a random-weight MiniLM-shaped model made by astembed itself
#      (`astembed model init-random --like ../shared/models/all-MiniLM-L6-v2`), cached
#      in build/bench-cache/, and its ONNX export (bench/peers/export_onnx.py) for ORT;
#   3. OpenBLAS for the PyTorch peer: Debian's libopenblas0-openmp unpacked into the
#      cache (apt-get download, nothing installed system-wide) and put in front of the
#      reference BLAS by LD_LIBRARY_PATH for that process only — with the system's
#      netlib libblas.so.3 Debian's torch runs at ~2 GFLOP/s, which measures nothing;
#   4. bench_encoder with both peers; the table goes to stdout and to
#      build/bench-cache/last.txt, every number to build/bench-cache/last.json.
#
# Arguments are passed to bench_encoder (e.g. `bench/run.sh --n-ann 500 --reps-ann 2`;
# `make bench BENCH_ARGS="..."` does the same). Environment:
#   BENCH_PEERS  peers to run, default "torch ort" ("" = astembed and GEMM only)
#   BENCH_SEED   seed of the random model (default 1)
#   BUILD_DIR    the release build (default build/)
#   SHARED_DIR   the shared test data (default ../shared)
# Exit status: bench_encoder's (0 all checks passed, 3 some target FAILed, 1 error).
set -euo pipefail

# shellcheck source=bench/prepare.sh
. "$(dirname "$0")/prepare.sh"
PEERS=${BENCH_PEERS-torch ort}
read -r -a EXTRA <<< "${BENCH_ARGS:-}"

need_built astembed bench/bench_encoder
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }

# 1. onnxruntime-node; 2. the random model and its ONNX export; 3. OpenBLAS for PyTorch
has_peer ort && prepare_ort
prepare_model
has_peer ort && prepare_onnx
has_peer torch && prepare_openblas

ARGS=(--model "$MODEL" --workdir "$CACHE/run" --json "$CACHE/last.json"
      --data "$SHARED/testdata/cpython-stdlib-annotations.jsonl")
if has_peer torch; then
  TORCH_ENV=""
  [ -f "$OPENBLAS/libblas.so.3" ] && TORCH_ENV="env LD_LIBRARY_PATH=$OPENBLAS "
  ARGS+=(--torch-cmd "${TORCH_ENV}$PY $ROOT/bench/peers/torch_peer.py $MODEL")
fi
has_peer ort && ARGS+=(--ort-cmd "node $ROOT/bench/peers/ort_peer.js $ONNX")

bench_header "bench/run.sh ${EXTRA[*]} $*" | tee "$CACHE/last.txt"
set +e
"$BUILD/bench/bench_encoder" "${ARGS[@]}" "${EXTRA[@]}" "$@" | tee -a "$CACHE/last.txt"
rc=${PIPESTATUS[0]}
set -e
echo "load after:  $(uptime | sed 's/.*load average/load average/')" | tee -a "$CACHE/last.txt"
exit "$rc"
