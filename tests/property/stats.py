"""Counts of what the planner suites ran, printed at the end of the session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Counts:
    #: (desired, observed) pairs a property test handed to the planner and judged.
    cases: int = 0
    #: Simulated runs driven to Done.
    runs: int = 0
    #: Planner steps taken inside simulated runs and scripts.
    steps: int = 0
    reported: bool = False


COUNTS = Counts()


def count_case() -> None:
    COUNTS.cases += 1


def count_run() -> None:
    COUNTS.runs += 1


def count_step() -> None:
    COUNTS.steps += 1


def summary() -> str:
    return (
        f"planner property cases: {COUNTS.cases}, simulated runs: {COUNTS.runs}, "
        f"steps: {COUNTS.steps}"
    )


def report(write_line: Callable[[str], None]) -> None:
    """Once per session, however many conftest files ask."""
    if COUNTS.reported or not (COUNTS.cases or COUNTS.runs or COUNTS.steps):
        return
    COUNTS.reported = True
    write_line(summary())
