#!/usr/bin/env bash
# Build the real S3-compatible object store the backup tests run against.
#
#   hack/objectstore/build.sh            build what is missing or stale, print the binary's path
#   hack/objectstore/build.sh --force    rebuild even when the stamp matches
#
# The server is versitygw (github.com/versity/versitygw), an S3 gateway whose posix backend
# serves a plain directory: one static Go binary, started in a fraction of a second, with
# multipart upload, user metadata and ListObjectsV2 — everything the backups use. Chosen
# over SeaweedFS and MinIO because it is the smallest genuine S3 server in the Go module
# proxy to build (one module, no web console, no cluster services): see docs/backup.md.
#
# The binary lands in ${XLINEFED_OBJECTSTORE_CACHE:-~/.cache/xlinefed-objectstore}/bin with
# a stamp: a hash of this script, the pinned version and the Go version. When the stamp
# matches and the binary exists nothing is built (well under a second).
#
# Environment:
#   XLINEFED_OBJECTSTORE_CACHE   cache root (default ~/.cache/xlinefed-objectstore)
#   XLINEFED_OBJECTSTORE_JOBS    go build -p (default 2); the build runs under `nice`
#   GO                           go binary (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

# The pin: versitygw's own go.sum pins every dependency (go install MODULE@VERSION uses it).
VERSITYGW_VERSION=v1.8.0

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XLINEFED_OBJECTSTORE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xlinefed-objectstore}"
bin="$cache/bin"
jobs="${XLINEFED_OBJECTSTORE_JOBS:-2}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if [[ ! -x "$GO" ]]; then
  echo "objectstore/build.sh: no Go toolchain (set GO=/path/to/go)" >&2
  exit 2
fi
go_version="$("$GO" env GOVERSION)"

stamp_value() {
  { echo "versitygw=$VERSITYGW_VERSION go=$go_version"; sha256sum "$here/build.sh"; } \
    | sha256sum | cut -d' ' -f1
}

mkdir -p "$cache"
exec 9> "$cache/build.lock"
flock 9

want="$(stamp_value)"
stamp="$bin/STAMP"
if [[ $force == 0 && -x "$bin/versitygw" && -f "$stamp" && "$(head -1 "$stamp")" == "$want" ]]; then
  echo "$bin/versitygw"
  exit 0
fi

mkdir -p "$bin"
rm -f "$stamp"
start=$(date +%s)
echo "objectstore/build.sh: building versitygw $VERSITYGW_VERSION (go install -p $jobs) ..." >&2
GOBIN="$bin" GOFLAGS=-mod=readonly nice -n 10 "$GO" install -p "$jobs" -trimpath \
  -ldflags "-s -w -X main.Version=$VERSITYGW_VERSION" \
  "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION" >&2
{
  echo "$want"
  echo "versitygw=$VERSITYGW_VERSION go=$go_version"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$(($(date +%s) - start))"
} > "$stamp"
echo "objectstore/build.sh: done in $(($(date +%s) - start))s" >&2
echo "$bin/versitygw"
