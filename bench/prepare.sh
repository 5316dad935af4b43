# shellcheck shell=bash
# bench/prepare.sh — the preparation shared by bench/run.sh and bench/pipeline.sh
# (sourced, not run). Sets:
#   ROOT BUILD SHARED CACHE SEED MODEL ONNX PY OPENBLAS
# and defines:
#   say / die           messages to stderr, prefixed with $BENCH_TAG (default "bench")
#   need_built BIN...   dies unless $BUILD/BIN exists (e.g. astembed bench/bench_encoder)
#   prepare_ort         onnxruntime-node under bench/node_modules (package-lock pinned)
#   prepare_model       the random-weight MiniLM-shaped model $MODEL, made by astembed
#                       itself (remade when $BUILD/astembed is newer)
#   prepare_onnx        $ONNX, the ONNX export of $MODEL (bench/peers/export_onnx.py);
#                       remade when the model or bert.py is newer
#   prepare_openblas    Debian's libopenblas0-openmp unpacked under $CACHE/openblas for
#                       the PyTorch peer (nothing installed system-wide)
#   bench_header CMD    the date / machine / command / load lines of a report
# Environment: BENCH_SEED (default 1), BUILD_DIR (default build/), SHARED_DIR (default
# ../shared). The model and its export are the same files for every benchmark that
# sources this, so vectors are comparable across them.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
SHARED=${SHARED_DIR:-$ROOT/../shared}
CACHE=$BUILD/bench-cache
SEED=${BENCH_SEED:-1}
MODEL=$CACHE/minilm-random-seed$SEED
ONNX=$MODEL.onnx
PY=/usr/bin/python3
OPENBLAS=$CACHE/openblas/usr/lib/x86_64-linux-gnu/openblas-openmp

say() { echo "${BENCH_TAG:-bench}: $*" >&2; }
die() { echo "${BENCH_TAG:-bench}: $*" >&2; exit 1; }

need_built() {
  local b
  for b in "$@"; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b missing: run 'make' first"
  done
  [ -f "$SHARED/models/all-MiniLM-L6-v2/config.json" ] ||
    die "$SHARED/models/all-MiniLM-L6-v2 missing (set SHARED_DIR to the shared test data)"
  mkdir -p "$CACHE"
}

# onnxruntime-node. Its install script fetches optional CUDA binaries from a host this
# machine cannot reach; the CPU binaries ship inside the npm package itself.
prepare_ort() {
  if [ ! -f "$ROOT/bench/node_modules/onnxruntime-node/package.json" ]; then
    say "installing onnxruntime-node under bench/ ..."
    (cd "$ROOT/bench" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund >&2)
  fi
}

prepare_model() {
  if [ ! -f "$MODEL/model.safetensors" ] || [ "$BUILD/astembed" -nt "$MODEL/model.safetensors" ]; then
    say "making the random-weight model $MODEL ..."
    rm -rf "$MODEL"
    "$BUILD/astembed" model init-random --like "$SHARED/models/all-MiniLM-L6-v2" \
      --out "$MODEL" --seed "$SEED" >&2
  fi
}

prepare_onnx() {
  if [ ! -f "$ONNX" ] || [ "$MODEL/model.safetensors" -nt "$ONNX" ] ||
     [ "$ROOT/bench/peers/bert.py" -nt "$ONNX" ]; then
    say "exporting $ONNX ..."
    (cd "$ROOT/bench/peers" && "$PY" export_onnx.py "$MODEL" "$ONNX.tmp") && mv "$ONNX.tmp" "$ONNX"
  fi
}

prepare_openblas() {
  if [ ! -f "$OPENBLAS/libblas.so.3" ]; then
    say "fetching Debian's libopenblas0-openmp for the PyTorch peer ..."
    rm -rf "$CACHE/deb" && mkdir -p "$CACHE/deb"
    if (cd "$CACHE/deb" && apt-get download libopenblas0-openmp >&2 2>/dev/null) &&
       dpkg-deb -x "$CACHE"/deb/libopenblas0-openmp_*.deb "$CACHE/openblas"; then
      :
    else
      say "WARNING: could not fetch OpenBLAS; the PyTorch peer runs on the system BLAS"
    fi
  fi
}

bench_header() {
  echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs"
  echo "command: $*"
  echo "load before: $(uptime | sed 's/.*load average/load average/')"
}
