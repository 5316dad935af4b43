#!/usr/bin/env bash
# Makes sure ../shared/tools/fresh-machine.sh finds its base root as a tarball.
# That script builds the base with `mmdebstrap ... /tmp/fresh-bookworm.tar.tmp`; mmdebstrap
# picks its output format from the file name, and with a ".tmp" suffix it writes a
# directory, which the script then renames to fresh-bookworm.tar and fails to untar. Here
# the base is built (or an existing directory packed) as a real tar file, with the same
# bookworm suite, variant and packages, so fresh-machine.sh reuses it.
set -euo pipefail
base=/tmp/fresh-bookworm.tar
if [ -d "$base" ]; then
  tar -C "$base" -cf "$base.new" . && rm -rf --one-file-system "$base" && mv "$base.new" "$base"
fi
[ -s "$base" ] && exit 0
command -v mmdebstrap >/dev/null || { apt-get -o DPkg::Lock::Timeout=600 update -qq &&
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq mmdebstrap >/dev/null; }
src=/etc/apt/sources.list.d/debian.sources; [ -f "$src" ] || src=/etc/apt/sources.list
mmdebstrap --format=tar --variant=apt --include=ca-certificates,git,make,sudo bookworm "$base.new" "$src" \
  >/tmp/fresh-mmdebstrap.log 2>&1 || { echo "fresh-base: mmdebstrap failed, see /tmp/fresh-mmdebstrap.log" >&2; exit 1; }
mv "$base.new" "$base"
