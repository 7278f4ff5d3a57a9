"""Chaos suite: seeded fault injection on the local runtime, a summary at the end.

`CHAOS_SEED=N` replays a run; `CHAOS_SOAK=1` (see hack/soak.sh) repeats every randomized
test `CHAOS_ROUNDS` times (default 5) with fresh random choices.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos._federation import ChaosFederation, spec_of
from tests.chaos._stats import STATS

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / ".state" / "chaos-report.json"

SOAK = os.environ.get("CHAOS_SOAK") == "1"
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "5")) if SOAK else 1

#: The shared federation of the process-fault, data-loss and bad-input tests.
BASE = {"a": 1, "b": 1, "c": 1}


def pytest_configure(config: pytest.Config) -> None:
    seed = os.environ.get("CHAOS_SEED")
    STATS.seed = int(seed) if seed else random.SystemRandom().randrange(2**31)
    STATS.soak = SOAK


def pytest_report_header(config: pytest.Config) -> str:
    return f"chaos: seed {STATS.seed} (CHAOS_SEED={STATS.seed} replays), rounds {ROUNDS}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "soak_round" in metafunc.fixturenames:
        metafunc.parametrize("soak_round", range(ROUNDS), ids=lambda r: f"round{r}")


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> random.Random:
    """A per-test RNG derived from the session seed and the test id (printed on use)."""
    seed = f"{STATS.seed}:{request.node.nodeid}"
    print(f"\nchaos rng seed: {seed!r}")
    return random.Random(seed)


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosFederation]:
    """One small federation (a=1, b=1, c=1) shared by the tests that bring it back to a
    known shape first."""
    root = tmp_path_factory.mktemp("chaos-state")
    fed = ChaosFederation(root, "chaos")
    fed.up(spec_of(fed.name, BASE), root)
    yield fed
    fed.down()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not STATS.runs and not STATS.faults and not STATS.histories_checked:
        return
    terminalreporter.section("chaos summary")
    for line in STATS.lines():
        terminalreporter.write_line(line)
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(STATS.as_dict(), indent=2))
    terminalreporter.write_line(f"(also written to {REPORT.relative_to(REPO)})")
