#!/usr/bin/env bash
# Regenerate deploy/crds/ from the pydantic models and the rendered install manifests
# (deploy/member, deploy/federation, the charts' CRD copies) from xlinefed/render.py;
# with --check, fail if anything drifted.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
if [ "${1:-}" = "--check" ]; then
  "$python" -m xlinefed.api.crds --check deploy/crds
  exec "$python" -m xlinefed.render --check deploy
fi
"$python" -m xlinefed.api.crds --write deploy/crds
exec "$python" -m xlinefed.render --write deploy
