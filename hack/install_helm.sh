#!/usr/bin/env bash
# Install helm (v3) from the Go module proxy, idempotently, and print its path.
#
#   hack/install_helm.sh          build helm into $XLINEFED_HELM_BIN (default ~/.cache/xlinefed-helm/bin)
#
# A helm already at the pinned version there (or on PATH) is reused; nothing is rebuilt.
# Environment: GO (go binary; default go on PATH, else /usr/local/go/bin/go),
# XLINEFED_HELM_BIN (target dir), XLINEFED_HELM_VERSION (default below).
set -euo pipefail

version="${XLINEFED_HELM_VERSION:-v3.22.0}"
bin="${XLINEFED_HELM_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/xlinefed-helm/bin}"

has_version() { [[ -x "$1" ]] && "$1" version --template '{{.Version}}' 2>/dev/null | grep -qx "$version"; }

if has_version "$bin/helm"; then
  echo "$bin/helm"
  exit 0
fi
if on_path="$(command -v helm 2>/dev/null)" && has_version "$on_path"; then
  echo "$on_path"
  exit 0
fi

GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
if [[ ! -x "$GO" ]]; then
  echo "install_helm.sh: no Go toolchain (set GO=/path/to/go)" >&2
  exit 2
fi
mkdir -p "$bin"
echo "install_helm.sh: building helm $version (go install, a few minutes the first time)" >&2
# helm's version string is stamped at link time; without it `helm version` says v3.x-dev.
GOBIN="$bin" nice "$GO" install \
  -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
  "helm.sh/helm/v3/cmd/helm@$version" >&2
has_version "$bin/helm" || {
  echo "install_helm.sh: built $bin/helm but it does not report $version" >&2
  exit 1
}
echo "$bin/helm"
