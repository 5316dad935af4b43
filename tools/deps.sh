#!/usr/bin/env bash
# Installs the Debian packages astembed needs to build, test and benchmark.
# Idempotent: does nothing when every package is already installed.
# Usage: tools/deps.sh [--bench]   (--bench adds the peers used by bench/)
#        tools/deps.sh --arm64 DIR  (the arm64 cross build, see below)
set -euo pipefail

# --arm64 DIR (make test-arm64 only): the arm64 cross toolchain, qemu-aarch64-static
# and the :arm64 multiarch libraries. libdnnl-dev:arm64 cannot be installed beside
# libdnnl-dev:amd64 (Multi-Arch: same, but the two dnnl_config.h differ), so it is
# unpacked into DIR, its libdnnl.so.* pointing at libdnnl2:arm64's.
if [ "${1:-}" = "--arm64" ]; then
  dir=${2:?usage: tools/deps.sh --arm64 DIR}
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  apt=($SUDO apt-get -o DPkg::Lock::Timeout=600)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    "${apt[@]}" update -qq
  fi
  arm=(crossbuild-essential-arm64 qemu-user-static libdnnl2:arm64 libgomp1:arm64
       libsqlite3-dev:arm64 libxxhash-dev:arm64 libutf8proc-dev:arm64 libjansson-dev:arm64)
  missing=()
  for p in "${arm[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
  fi
  if [ ! -f "$dir/usr/lib/aarch64-linux-gnu/cmake/dnnl/dnnl-config.cmake" ]; then
    dl=$(mktemp -d)
    (cd "$dl" && apt-get download libdnnl-dev:arm64 2>/dev/null)
    mkdir -p "$dir"
    dpkg-deb -x "$dl"/libdnnl-dev_*_arm64.deb "$dir"
    rm -rf "$dl"
    for so in /usr/lib/aarch64-linux-gnu/libdnnl.so.*; do
      ln -sf "$so" "$dir/usr/lib/aarch64-linux-gnu/"
    done
  fi
  exit 0
fi
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libdnnl-dev libsqlite3-dev libxxhash-dev libutf8proc-dev libjansson-dev
      python3-torch python3-numpy libopenblas0-pthread sqlite3)
# libopenblas0-pthread: Debian's torch otherwise multiplies with the netlib reference
# BLAS (~1 GFLOP/s in float64), too slow for the PyTorch reference in the tests.
if [ "${1:-}" = "--bench" ]; then pkgs+=(nodejs npm); fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
