#!/usr/bin/env bash
# Installs the Debian packages astembed needs to build, test and benchmark.
# Idempotent: does nothing when every package is already installed.
# Usage: tools/deps.sh [--bench]   (--bench adds the peers used by bench/)
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libdnnl-dev libsqlite3-dev libxxhash-dev libutf8proc-dev libjansson-dev libcurl4-openssl-dev libssl-dev
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
