#!/usr/bin/env bash
# Regenerate every generated install file under deploy/ (the CRDs from the pydantic models,
# both tiers' manifests, the charts' CRD copies and included parts) from xlinefed/install;
# with --check, fail if anything drifted.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
if [ "${1:-}" = "--check" ]; then
  exec "$python" -m xlinefed.install --check deploy
fi
exec "$python" -m xlinefed.install --write deploy
