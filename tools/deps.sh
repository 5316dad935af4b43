#!/usr/bin/env bash
# Installs the Debian 12 packages astembed needs, in three lists:
#   tools/deps.sh [build]   building and running: make, make demo (the default)
#   tools/deps.sh test      build + what only the tests need: make test
#   tools/deps.sh bench     build + the benchmark peers' runtime: make bench
# Idempotent: does nothing when every package is already installed. Uses sudo when
# not root; waits up to 10 minutes for another apt/dpkg to finish.
set -euo pipefail
mode="${1:-build}"
case "$mode" in --bench) mode=bench ;; build|test|bench) ;;
  -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
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
