#!/usr/bin/env bash
# bench/run.sh — the encoder benchmark (`make bench` builds, then calls this).
#
# Prepares everything bench_encoder needs, then runs it:
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

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
SHARED=${SHARED_DIR:-$ROOT/../shared}
CACHE=$BUILD/bench-cache
SEED=${BENCH_SEED:-1}
PEERS=${BENCH_PEERS-torch ort}
MODEL=$CACHE/minilm-random-seed$SEED
PY=/usr/bin/python3
read -r -a EXTRA <<< "${BENCH_ARGS:-}"

say() { echo "bench: $*" >&2; }
die() { echo "bench: $*" >&2; exit 1; }

[ -x "$BUILD/bench/bench_encoder" ] || die "$BUILD/bench/bench_encoder missing: run 'make' first"
[ -x "$BUILD/astembed" ] || die "$BUILD/astembed missing: run 'make' first"
[ -f "$SHARED/models/all-MiniLM-L6-v2/config.json" ] ||
  die "$SHARED/models/all-MiniLM-L6-v2 missing (set SHARED_DIR to the shared test data)"
mkdir -p "$CACHE"

has_peer() { [[ " $PEERS " == *" $1 "* ]]; }

# 1. onnxruntime-node. Its install script fetches optional CUDA binaries from a host
#    this machine cannot reach; the CPU binaries ship inside the npm package itself.
if has_peer ort && [ ! -f "$ROOT/bench/node_modules/onnxruntime-node/package.json" ]; then
  say "installing onnxruntime-node under bench/ ..."
  (cd "$ROOT/bench" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >&2)
fi

# 2. the random model (remade when the astembed binary is newer) and its ONNX export
if [ ! -f "$MODEL/model.safetensors" ] || [ "$BUILD/astembed" -nt "$MODEL/model.safetensors" ]; then
  say "making the random-weight model $MODEL ..."
  rm -rf "$MODEL"
  "$BUILD/astembed" model init-random --like "$SHARED/models/all-MiniLM-L6-v2" \
    --out "$MODEL" --seed "$SEED" >&2
fi
ONNX=$MODEL.onnx
if has_peer ort && { [ ! -f "$ONNX" ] || [ "$MODEL/model.safetensors" -nt "$ONNX" ] ||
                     [ "$ROOT/bench/peers/bert.py" -nt "$ONNX" ]; }; then
  say "exporting $ONNX ..."
  (cd "$ROOT/bench/peers" && "$PY" export_onnx.py "$MODEL" "$ONNX.tmp") && mv "$ONNX.tmp" "$ONNX"
fi

# 3. OpenBLAS for the PyTorch peer
OPENBLAS=$CACHE/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp
if has_peer torch && [ ! -f "$OPENBLAS/libblas.so.3" ]; then
  say "fetching Debian's libopenblas0-openmp for the PyTorch peer ..."
  rm -rf "$CACHE/deb" && mkdir -p "$CACHE/deb"
  if (cd "$CACHE/deb" && apt-get download libopenblas0-openmp >&2 2>/dev/null) &&
     dpkg-deb -x "$CACHE"/deb/libopenblas0-openmp_*.deb "$CACHE/openblas"; then
    :
  else
    say "WARNING: could not fetch OpenBLAS; the PyTorch peer runs on the system BLAS"
  fi
fi

ARGS=(--model "$MODEL" --workdir "$CACHE/run" --json "$CACHE/last.json"
      --data "$SHARED/testdata/cpython-stdlib-annotations.jsonl")
if has_peer torch; then
  TORCH_ENV=""
  [ -f "$OPENBLAS/libblas.so.3" ] && TORCH_ENV="env LD_LIBRARY_PATH=$OPENBLAS "
  ARGS+=(--torch-cmd "${TORCH_ENV}$PY $ROOT/bench/peers/torch_peer.py $MODEL")
fi
has_peer ort && ARGS+=(--ort-cmd "node $ROOT/bench/peers/ort_peer.js $ONNX")

{
  echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs"
  echo "command: bench/run.sh ${EXTRA[*]} $*"
  echo "load before: $(uptime | sed 's/.*load average/load average/')"
} | tee "$CACHE/last.txt"
set +e
"$BUILD/bench/bench_encoder" "${ARGS[@]}" "${EXTRA[@]}" "$@" | tee -a "$CACHE/last.txt"
rc=${PIPESTATUS[0]}
set -e
echo "load after:  $(uptime | sed 's/.*load average/load average/')" | tee -a "$CACHE/last.txt"
exit "$rc"
