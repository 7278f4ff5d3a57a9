#!/usr/bin/env bash
# Build the local base image of the operator image: a minimal Debian with Python 3.11,
# venv and pip, made with debootstrap from a Debian mirror (no container registry is
# reachable from CI), imported into our container store, and print its name.
#
#   hack/image/base.sh            build what is missing or stale, print the image name
#   hack/image/base.sh --force    rebuild even when the cached one matches
#
# The image is localhost/xlinefed-base:<key>, <key> a hash of this script, the Debian suite
# and the package list. The root filesystem is kept as base-<key>.tar.gz in the cache, so a
# lost container store is refilled by an import (seconds), and a matching image is reused as
# it is (well under a second).
#
# Environment (and those of lib.sh):
#   XLINEFED_IMAGE_SUITE    Debian suite (default bookworm, whose python3 is 3.11)
#   XLINEFED_IMAGE_MIRROR   Debian mirror (default: the one apt uses here, else deb.debian.org)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

force=0
[[ "${1:-}" == "--force" ]] && force=1

suite="${XLINEFED_IMAGE_SUITE:-bookworm}"
# python3-venv brings ensurepip's pip and setuptools wheels, so `python3 -m venv` gives a
# pip without Debian's python3-pip (whose pip refuses the system site, PEP 668, anyway).
# ca-certificates: pip in the Dockerfile reaches PyPI over TLS.
packages=(python3.11 python3-venv ca-certificates)

apt_mirror() { # the first Debian (not -security) URI apt is configured with
  local uri
  uri="$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '$1 == "URIs:" {print $2}' \
    | grep -E '/debian/?$' | head -1 || true)"
  [[ -n "$uri" ]] || uri="$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ {print $2}' \
    /etc/apt/sources.list 2>/dev/null | head -1 || true)"
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${XLINEFED_IMAGE_MIRROR:-$(apt_mirror)}"

# The key covers what makes the root filesystem (not lib.sh: where the store lives and how
# podman runs change no byte of it).
key="$({
  sha256sum "$here/base.sh" | cut -d' ' -f1
  echo "suite=$suite packages=${packages[*]} arch=$(dpkg --print-architecture)"
} | sha256sum | cut -c1-16)"
name="localhost/xlinefed-base:$key"
tarball="$image_cache/base-$key.tar.gz"

ensure_tools
podman_cmd
mkdir -p "$image_cache"
# One build at a time per cache: a second caller waits, then finds the image.
exec 9> "$image_cache/base.lock"
flock 9

if [[ $force == 0 ]] && "${PODMAN[@]}" image exists "$name"; then
  echo "$name"
  exit 0
fi
start=$(date +%s)

if [[ $force == 1 || ! -s "$tarball" ]]; then
  rootfs="$(mktemp -d "$image_cache/rootfs.XXXXXX")"
  # debootstrap mounts /proc and /sys in the target; a failed run may leave them, and rm
  # must not walk into them.
  cleanup() {
    umount -R "$rootfs/proc" "$rootfs/sys" 2> /dev/null || true
    rm -rf --one-file-system "$rootfs"
  }
  trap cleanup EXIT
  say "debootstrap $suite (minbase + ${packages[*]}) from $mirror (a few minutes the first time)"
  # debootstrap runs maintainer scripts in a chroot: root only, which CI is.
  include="$(IFS=,; echo "${packages[*]}")"
  nice -n 10 debootstrap --variant=minbase --include="$include" "$suite" "$rootfs" "$mirror" \
    > "$image_cache/debootstrap.log" 2>&1 || {
    tail -20 "$image_cache/debootstrap.log" >&2
    say "debootstrap failed; the whole log is $image_cache/debootstrap.log"
    exit 1
  }
  # Nothing of the build machine or of apt's downloads in the image.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/var/log/* \
    "$rootfs"/tmp/* "$rootfs"/debootstrap
  : > "$rootfs/etc/hostname"
  : > "$rootfs/etc/resolv.conf"
  say "packing the root filesystem"
  # The image's / is this directory: mktemp made it 0700, which a non-root user cannot
  # traverse where the store keeps the mode (vfs).
  chmod 0755 "$rootfs"
  tar -C "$rootfs" --numeric-owner -czf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  cleanup
  trap - EXIT
  # Older keys' tarballs are of no use any more.
  find "$image_cache" -maxdepth 1 -name 'base-*.tar.gz' ! -name "base-$key.tar.gz" -delete
fi

say "importing $tarball as $name"
"${PODMAN[@]}" import --quiet --change 'CMD ["/usr/bin/python3"]' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$tarball" "$name" > /dev/null
# Bases of older keys take space and no build uses them any more.
"${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}}' --filter reference=localhost/xlinefed-base \
  | grep -vx "$name" | xargs -r "${PODMAN[@]}" rmi > /dev/null 2>&1 || true
say "base done in $(($(date +%s) - start))s"
echo "$name"
