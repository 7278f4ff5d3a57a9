#!/usr/bin/env bash
# The local demo, end to end: a 3-cluster federation (3+2+2) of real etcd processes is
# created, two clusters are scaled at once, a rolling update runs, and it is torn down.
set -euo pipefail
cd "$(dirname "$0")/.."
hack/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export XLINEFED_STATE_DIR="${XLINEFED_STATE_DIR:-$PWD/.state/demo}"

step() { printf '\n\033[1;34m$ %s\033[0m\n' "$*"; "$@"; }

if [ -d "$XLINEFED_STATE_DIR/demo" ]; then xlinefed local down demo --purge >/dev/null; fi
step xlinefed local up -f examples/three-clusters.yaml
step xlinefed local status demo
step xlinefed local scale demo member2=3 member3=1
step xlinefed local upgrade demo --set snapshot-count=20000
step xlinefed local status demo
step xlinefed local down demo --purge
