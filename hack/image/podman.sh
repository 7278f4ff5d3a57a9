#!/usr/bin/env bash
# podman on xlinefed's own container store (hack/image/lib.sh), with the flags that work on
# CI's machine; `run` gets the ulimits this shell may grant. For a look at the image:
#
#   hack/image/podman.sh images
#   hack/image/podman.sh run --rm --read-only xlinefed/operator:0.1.0 --version
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
podman_cmd
if [[ "${1:-}" == run ]]; then
  run_flags
  shift
  exec "${PODMAN[@]}" run "${RUN_FLAGS[@]}" "$@"
fi
exec "${PODMAN[@]}" "$@"
