#!/usr/bin/env bash
# Regenerate deploy/requirements.lock: every package the operator image installs (the
# project, its `operators` and `backup` extras — the member operator takes XlineBackups —
# and the build backend setuptools needs), each pinned to one version with its hashes, so
# two image builds install the same files.
#
#   hack/image/lock.sh             re-resolve from pyproject.toml, keeping the pins that still fit
#   hack/image/lock.sh --upgrade   re-resolve to the newest versions the ranges allow
#
# pip-compile (pip-tools, pinned below) runs in a throwaway virtualenv with this machine's
# python3 (3.11, as the image's); only PyPI is consulted (a local find-links directory would
# add hashes PyPI does not serve).
set -euo pipefail
cd "$(dirname "$0")/../.."
pip_tools="pip-tools==7.6.2"

venv="$(mktemp -d)"
trap 'rm -rf "$venv"' EXIT
echo "lock.sh: installing $pip_tools into a throwaway venv" >&2
python3 -m venv "$venv"
env -u PIP_FIND_LINKS "$venv/bin/pip" install -q "$pip_tools"
echo "lock.sh: resolving pyproject.toml [operators,backup] (+ build deps) ..." >&2
env -u PIP_FIND_LINKS CUSTOM_COMPILE_COMMAND="hack/image/lock.sh" "$venv/bin/pip-compile" \
  --quiet --extra operators --extra backup --build-deps-for wheel --generate-hashes --allow-unsafe \
  --strip-extras --no-emit-index-url --no-emit-find-links \
  --output-file deploy/requirements.lock "$@" pyproject.toml
echo "lock.sh: wrote deploy/requirements.lock ($(grep -c '==' deploy/requirements.lock) pins)" >&2
