"""Prints how many cases the planner suites ran (see `tests/property/stats.py`)."""

from __future__ import annotations

import pytest

from tests.property import stats


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    stats.report(terminalreporter.write_line)
