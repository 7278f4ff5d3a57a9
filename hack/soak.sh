#!/usr/bin/env bash
# The longer chaos soak: every randomized fault test of tests/chaos repeated CHAOS_ROUNDS
# times (default 5) with fresh seeded choices; the summary at the end gives runs, faults by
# type, writes acknowledged and lost, unavailability, histories checked and anomalies.
#   hack/soak.sh                      # new random seed (printed; replay with CHAOS_SEED=N)
#   CHAOS_ROUNDS=20 CHAOS_SEED=42 hack/soak.sh -x
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/pytest ] || hack/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
export CHAOS_SOAK=1 CHAOS_ROUNDS="${CHAOS_ROUNDS:-5}"
exec pytest tests/chaos -p no:cacheprovider -q "$@"
