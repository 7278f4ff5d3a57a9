#!/usr/bin/env bash
# Build the real Kubernetes + Karmada binaries of xlinefed's test stack.
#
#   hack/stack/build.sh            build what is missing or stale, print the bin dir
#   hack/stack/build.sh --force    rebuild even when the stamp matches
#
# Sources come from the Go module proxy through the two small modules next to this
# script (kube/ pins k8s.io/kubernetes, karmada/ pins github.com/karmada-io/karmada).
# Binaries land in ${XLINEFED_STACK_CACHE:-~/.cache/xlinefed-stack}/bin together with a
# stamp: a hash of this script, the pinned go.mod/go.sum/main.go files and the Go version. When the
# stamp matches and every binary exists nothing is built (a warm run takes well under a
# second). Karmada's CRDs are copied from the module next to the binaries (karmada-crds/).
# etcd is not built: it is Debian's etcd-server (/usr/bin/etcd).
#
# Environment:
#   XLINEFED_STACK_CACHE   cache root (default ~/.cache/xlinefed-stack)
#   XLINEFED_STACK_JOBS    go build -p (default 2); the build runs under `nice`
#   GO                     go binary (default: go on PATH, else /usr/local/go/bin/go)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${XLINEFED_STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/xlinefed-stack}"
bin="$cache/bin"
jobs="${XLINEFED_STACK_JOBS:-2}"
force=0
[[ "${1:-}" == "--force" ]] && force=1

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if [[ ! -x "$GO" ]]; then
  echo "build.sh: no Go toolchain (set GO=/path/to/go)" >&2
  exit 2
fi

pinned() { # pinned <module dir> <module path>: its version in our go.mod (block or one-line)
  awk -v m="$2" '$1 == m {print $2} $1 == "require" && $2 == m {print $3}' "$here/$1/go.mod" | head -1
}
KUBE_VERSION="$(pinned kube k8s.io/kubernetes)"
KARMADA_VERSION="$(pinned karmada github.com/karmada-io/karmada)"
if [[ -z "$KUBE_VERSION" || -z "$KARMADA_VERSION" ]]; then
  echo "build.sh: cannot read the pinned versions from kube/go.mod and karmada/go.mod" >&2
  exit 2
fi
go_version="$("$GO" env GOVERSION)"

# Go 1.27 enables the jsonv2 experiment by default; a kube-apiserver built with it
# answers 503 on /openapi/v2. Keep the old encoder whatever the toolchain.
case "$go_version" in
  go1.2[0-6]*) ;;
  *) export GOEXPERIMENT="${GOEXPERIMENT:+$GOEXPERIMENT,}nojsonv2" ;;
esac

KUBE_BINS=(kube-apiserver kube-controller-manager)
KARMADA_BINS=(karmada-controller-manager karmada-scheduler karmada-webhook karmada-aggregated-apiserver)

stamp_value() {
  {
    echo "kubernetes=$KUBE_VERSION karmada=$KARMADA_VERSION go=$go_version goexperiment=${GOEXPERIMENT:-}"
    (cd "$here" && { echo build.sh; find kube karmada -type f \( -name go.mod -o -name go.sum -o -name '*.go' \); } \
      | LC_ALL=C sort | xargs sha256sum)
  } | sha256sum | cut -d' ' -f1
}

# One build at a time per cache: a second caller waits, then finds the fresh stamp.
mkdir -p "$cache"
exec 9> "$cache/build.lock"
flock 9

want="$(stamp_value)"
stamp="$bin/STAMP"
all_present=1
for b in "${KUBE_BINS[@]}" "${KARMADA_BINS[@]}"; do
  [[ -x "$bin/$b" ]] || all_present=0
done
[[ -f "$bin/karmada-crds/kustomization.yaml" ]] || all_present=0
if [[ $force == 0 && $all_present == 1 && -f "$stamp" && "$(head -1 "$stamp")" == "$want" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
rm -f "$stamp"
start=$(date +%s)

build() { # build <module dir> <ldflags> <bins...>
  local dir="$1" ldflags="$2"
  shift 2
  local pkgs=()
  for b in "$@"; do pkgs+=("./cmd/$b"); done
  echo "build.sh: building $* (go build -p $jobs) ..." >&2
  (cd "$here/$dir" && GOFLAGS=-mod=readonly nice -n 10 "$GO" build -p "$jobs" -trimpath \
    -ldflags "-s -w $ldflags" -o "$bin/" "${pkgs[@]}")
}

kminor="$(echo "$KUBE_VERSION" | cut -d. -f2)"
kv=k8s.io/component-base/version
build kube "-X $kv.gitVersion=$KUBE_VERSION -X $kv.gitMajor=1 -X $kv.gitMinor=$kminor \
  -X $kv.gitTreeState=clean -X $kv.buildDate=1970-01-01T00:00:00Z" "${KUBE_BINS[@]}"
build karmada "-X github.com/karmada-io/karmada/pkg/version.gitVersion=$KARMADA_VERSION \
  -X github.com/karmada-io/karmada/pkg/version.gitTreeState=clean" "${KARMADA_BINS[@]}"

# Karmada's CRDs (and the conversion-webhook patches) from the same pinned module, so the
# launcher needs no Go toolchain at run time.
crds="$(cd "$here/karmada" && "$GO" list -m -f '{{.Dir}}' github.com/karmada-io/karmada)/charts/karmada/_crds"
rm -rf "$bin/karmada-crds"
cp -r "$crds" "$bin/karmada-crds"
chmod -R u+w "$bin/karmada-crds"

{
  echo "$want"
  echo "kubernetes=$KUBE_VERSION karmada=$KARMADA_VERSION go=$go_version"
  echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$(($(date +%s) - start))"
} > "$stamp"
if [[ ! -x /usr/bin/etcd ]] && ! command -v etcd > /dev/null; then
  echo "build.sh: warning: etcd not found; apt-get install etcd-server etcd-client" >&2
fi
echo "build.sh: done in $(($(date +%s) - start))s" >&2
echo "$bin"
