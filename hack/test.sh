#!/usr/bin/env bash
# The whole test suite: lint, import contracts, generated files, then every test
# (pure planner, real etcd, the local runtime, and the real Kubernetes + Karmada stack).
set -euo pipefail
cd "$(dirname "$0")/.."
hack/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "==> ruff"; ruff check . && ruff format --check .
echo "==> import contracts"; lint-imports
if [ -f hack/stack/build.sh ]; then echo "==> test stack build (cached)"; hack/stack/build.sh; fi
echo "==> pytest"; exec pytest "$@"
