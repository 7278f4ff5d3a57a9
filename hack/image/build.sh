#!/usr/bin/env bash
# Build the operator image from deploy/Dockerfile on the local Debian base
# (hack/image/base.sh) into xlinefed's container store, and print its name.
#
#   hack/image/build.sh            build when missing or stale, print the image name
#   hack/image/build.sh --force    rebuild even when the image's key matches
#
# The image is tagged xlinefed/operator:<version> (what `xlinefed render` and the charts
# deploy) and xlinefed/operator:<version>-<key>, the name printed: <key> is a hash of the
# Dockerfile, .dockerignore, the lock, pyproject.toml, README.md, every file under
# xlinefed/, this script and the base's name (which carries the base's own key). An image
# of that key is reused (well under a second). Work trees and clones of one machine share
# the store: each uses its own key's name, so one's build cannot swap the image under
# another's test; the three newest keys are kept. `hack/image/podman.sh` runs podman on
# the same store.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
cd "$image_root"

force=0
[[ "${1:-}" == "--force" ]] && force=1

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' xlinefed/__init__.py)"
repo=localhost/xlinefed/operator
base="$("$here/base.sh")"

key="$({
  echo "base=$base"
  # What the build context holds after .dockerignore, plus the recipe.
  { printf '%s\n' deploy/Dockerfile .dockerignore deploy/requirements.lock pyproject.toml \
      README.md hack/image/build.sh
    find xlinefed -type f ! -path '*/__pycache__/*' ! -name '*.pyc'; } | LC_ALL=C sort | xargs sha256sum
} | sha256sum | cut -c1-16)"

podman_cmd
exec 9> "$image_cache/build.lock"
flock 9

name="$repo:$version-$key"
if [[ $force == 0 ]] && "${PODMAN[@]}" image exists "$name"; then
  "${PODMAN[@]}" tag "$name" "$repo:$version"
  echo "$name"
  exit 0
fi

start=$(date +%s)
say "building $name from $base (pip installs the locked dependencies from PyPI)"
# chroot isolation: the RUN steps need no OCI runtime or cgroups, and share the host's
# network, the one way to PyPI here (no CNI plugins are installed, none needed).
log="$image_cache/build.log"
# Where this machine reaches its registries through a TLS proxy, the CA it trusts is in the
# host's bundle only: lend that bundle to the RUN steps (a build volume, not a layer, so the
# image keeps Debian's own). Debian's pip reads the system bundle.
cacert=()
host_bundle=/etc/ssl/certs/ca-certificates.crt
[[ -s "$host_bundle" ]] && cacert=(--volume "$host_bundle:$host_bundle:ro")
nice -n 10 "${PODMAN[@]}" build --isolation chroot --network host --pull=never \
  "${cacert[@]}" --build-arg "BASE=$base" --label "io.xlinefed.build-key=$key" \
  --label "org.opencontainers.image.version=$version" \
  -f deploy/Dockerfile -t "$name" -t "$repo:$version" . > "$log" 2>&1 || {
  tail -30 "$log" >&2
  say "build failed; the whole log is $log"
  exit 1
}
# Older keys' images beyond the newest three, then whatever that left untagged (an image a
# running container uses stays).
"${PODMAN[@]}" images --sort created --format '{{.Repository}}:{{.Tag}}' --filter "reference=$repo" \
  | grep -E ":$version-[0-9a-f]{16}$" | tail -n +4 | xargs -r -n1 "${PODMAN[@]}" rmi > /dev/null 2>&1 || true
"${PODMAN[@]}" image prune -f > /dev/null 2>&1 || true
say "image done in $(($(date +%s) - start))s"
echo "$name"
