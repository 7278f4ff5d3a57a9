#!/usr/bin/env bash
# Build the etcd releases the version-upgrade tests run (3.5 and 3.6; 3.4 is Debian's).
#
#   hack/etcd/build.sh            build what is missing or stale, print the bin dir
#   hack/etcd/build.sh --force    rebuild even when the stamps match
#
# Sources come from the Go module proxy through one small main module per minor next to
# this script (v3.5/, v3.6/): each requires go.etcd.io/etcd/server/v3 at a pinned release
# (the latest patch the proxy served when pinned) and calls its etcdmain, because etcd's own
# server module carries replace directives that `go install MODULE@VERSION` refuses. Their
# go.sum pins every dependency. Only the server is built: xlinefed talks to members with its
# own gRPC client, so neither etcdctl nor etcdutl is needed.
#
# Each release lands in ${XLINEFED_ETCD_CACHE:-~/.cache/xlinefed-etcd}/<version>/etcd with a
# stamp (a hash of this script, that module's go.mod/go.sum/main.go and the Go version);
# when it matches and the binary exists nothing is built (well under a second). The bin
# dir printed at the end holds `etcd-<version>` links for every release, Debian's 3.4
# included, which is what local mode looks up under XLINEFED_BIN_DIR (`etcd-<version>`)
# and what the test kubelet maps `…/etcd:v<version>` images to.
#
# Environment:
#   XLINEFED_ETCD_CACHE   cache root (default ~/.cache/xlinefed-etcd)
#   XLINEFED_ETCD_JOBS    go build -p (default 2); the build runs under `nice`
#   GO                    go binary (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XLINEFED_ETCD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xlinefed-etcd}"
jobs="${XLINEFED_ETCD_JOBS:-2}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if [[ ! -x "$GO" ]]; then
  echo "etcd/build.sh: no Go toolchain (set GO=/path/to/go)" >&2
  exit 2
fi
go_version="$("$GO" env GOVERSION)"

pinned() { # pinned <module dir>: the etcd server release its go.mod requires
  awk '$1 == "go.etcd.io/etcd/server/v3" {print $2} $1 == "require" && $2 == "go.etcd.io/etcd/server/v3" {print $3}' \
    "$here/$1/go.mod" | head -1
}

stamp_value() { # stamp_value <module dir>
  {
    echo "$(pinned "$1") go=$go_version"
    sha256sum "$here/build.sh"
    (cd "$here/$1" && sha256sum go.mod go.sum main.go)
  } | sha256sum | cut -d' ' -f1
}

# One build at a time per cache: a second caller waits, then finds the fresh stamps.
mkdir -p "$cache/bin"
exec 9> "$cache/build.lock"
flock 9

total_start=$(date +%s)
built=0
for dir in v3.5 v3.6; do
  release="$(pinned "$dir")"
  if [[ -z "$release" ]]; then
    echo "etcd/build.sh: cannot read the pinned release from $dir/go.mod" >&2
    exit 2
  fi
  version="${release#v}"
  out="$cache/$version"
  want="$(stamp_value "$dir")"
  if [[ $force == 1 || ! -x "$out/etcd" || ! -f "$out/STAMP" || "$(head -1 "$out/STAMP")" != "$want" ]]; then
    mkdir -p "$out"
    rm -f "$out/STAMP"
    start=$(date +%s)
    echo "etcd/build.sh: building etcd $release (go build -p $jobs) ..." >&2
    (cd "$here/$dir" && GOFLAGS=-mod=readonly nice -n 10 "$GO" build -p "$jobs" -trimpath \
      -ldflags "-s -w" -o "$out/etcd" .)
    {
      echo "$want"
      echo "etcd=$release go=$go_version"
      echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$(($(date +%s) - start))"
    } > "$out/STAMP"
    echo "etcd/build.sh: etcd $release done in $(($(date +%s) - start))s" >&2
    built=1
  fi
  ln -sfn "../$version/etcd" "$cache/bin/etcd-$version"
done

# The installed baseline: Debian's etcd-server, under the name of the version it reports.
debian="$(command -v etcd || true)"
if [[ -n "$debian" ]]; then
  base="$("$debian" --version | awk '/^etcd Version:/ {print $3}')"
  [[ -n "$base" ]] && ln -sfn "$debian" "$cache/bin/etcd-$base"
else
  echo "etcd/build.sh: warning: etcd not found; apt-get install etcd-server" >&2
fi
[[ $built == 1 ]] && echo "etcd/build.sh: done in $(($(date +%s) - total_start))s" >&2
echo "$cache/bin"
