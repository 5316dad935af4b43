#!/usr/bin/env bash
# Installs the Debian 12 packages astembed needs, in three lists:
#   tools/deps.sh [build]   building and running: make, make demo (the default)
#   tools/deps.sh test      build + what only the tests need: make test
#   tools/deps.sh bench     build + the benchmark peers' runtime: make bench
#   tools/deps.sh --arm64 DIR   the arm64 cross build: make test-arm64 (see below)
# Idempotent: does nothing when every package is already installed. Uses sudo when
# not root; waits up to 10 minutes for another apt/dpkg to finish.
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
mode="${1:-build}"
case "$mode" in --bench) mode=bench ;; build|test|bench) ;;
  -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
  *) echo "deps: unknown list '$mode' (build, test or bench)" >&2; exit 2 ;;
esac

# Building and running. ocl-icd-opencl-dev + opencl-c-headers: Debian's oneDNN is built
# with the OpenCL GPU runtime, so its dnnl-config.cmake runs find_package(OpenCL REQUIRED)
# and configure stops without them, although astembed never uses a GPU.
build=(build-essential cmake pkg-config
       libdnnl-dev ocl-icd-opencl-dev opencl-c-headers
       libsqlite3-dev libxxhash-dev libutf8proc-dev libjansson-dev
       libcurl4-openssl-dev libssl-dev libmicrohttpd-dev)
# Only the tests. clang + libclang-rt-14-dev: the libFuzzer targets; python3-torch and
# python3-numpy: the float64 reference (tools/reference.py); libopenblas0-pthread: Debian's
# torch otherwise multiplies with the netlib reference BLAS (~1 GFLOP/s in float64), too
# slow for the reference; sqlite3: the CLI tests build annotation databases with the shell;
# qemu-user-static: the tests that run the binary on an emulated CPU.
test=(clang libclang-rt-14-dev python3-torch python3-numpy libopenblas0-pthread sqlite3
      qemu-user-static)

pkgs=("${build[@]}")
[ "$mode" = test ] && pkgs+=("${test[@]}")
# Node.js for the npm test clients and the benchmark peers: Debian's nodejs + npm, but only
# when the commands are missing (a machine may have them from another source, e.g.
# nodesource's single nodejs package, which is no dpkg "npm").
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  command -v node >/dev/null || pkgs+=(nodejs)
  command -v npm >/dev/null || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps ($mode): installing ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt=(apt-get -o DPkg::Lock::Timeout=600)
$SUDO "${apt[@]}" update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive "${apt[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
