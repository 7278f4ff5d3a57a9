#!/usr/bin/env bash
# Regenerate deploy/crds/ from the pydantic models (or, with --check, fail if they drifted).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
if [ "${1:-}" = "--check" ]; then
  exec "$python" -m xlinefed.api.crds --check deploy/crds
fi
exec "$python" -m xlinefed.api.crds --write deploy/crds
