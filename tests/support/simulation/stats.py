"""Counts of what the planner suites ran, printed at the end of the session."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Counts:
    #: (desired, observed) pairs a property test handed to the planner and judged.
    cases: int = 0
    #: Simulated runs driven to Done.
    runs: int = 0
    #: Planner steps taken inside simulated runs and scripts.
    steps: int = 0
    #: Faults the simulated world injected, by kind.
    faults: Counter[str] = field(default_factory=Counter)
    #: Steps the world refused as unsafe (a failing test; 0 in a passing run).
    unsafe: int = 0
    #: Most cluster ids any simulated run ever saw (1 in a passing run).
    cluster_ids: int = 0
    reported: bool = False


COUNTS = Counts()


def count_case() -> None:
    COUNTS.cases += 1


def count_run() -> None:
    COUNTS.runs += 1


def count_step() -> None:
    COUNTS.steps += 1


def count_fault(kind: str) -> None:
    COUNTS.faults[kind] += 1


def count_unsafe() -> None:
    COUNTS.unsafe += 1


def saw_cluster_ids(count: int) -> None:
    COUNTS.cluster_ids = max(COUNTS.cluster_ids, count)


def summary() -> str:
    line = (
        f"planner property cases: {COUNTS.cases}, simulated runs: {COUNTS.runs}, "
        f"steps: {COUNTS.steps}"
    )
    if COUNTS.faults:
        faults = ", ".join(f"{kind} {n}" for kind, n in sorted(COUNTS.faults.items()))
        line += (
            f"; faults injected: {faults}; unsafe steps refused: {COUNTS.unsafe}; "
            f"most cluster ids in one run: {COUNTS.cluster_ids}"
        )
    return line


def report(write_line: Callable[[str], None]) -> None:
    """Once per session, however many conftest files ask."""
    if COUNTS.reported or not (COUNTS.cases or COUNTS.runs or COUNTS.steps):
        return
    COUNTS.reported = True
    write_line(summary())
