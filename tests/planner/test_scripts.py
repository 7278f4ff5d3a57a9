"""Golden planner scenarios: `tests/planner/scripts/*.txt` (see `script.py` for the
language). Rewrite the outputs with `XLINEFED_REWRITE=1` and review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.planner.script import run_script

SCRIPTS = sorted((Path(__file__).parent / "scripts").glob("*.txt"))
REWRITE = os.environ.get("XLINEFED_REWRITE", "") not in ("", "0")


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_script(path: Path):
    expected, actual = run_script(path, REWRITE)
    assert "VIOLATION" not in actual, actual
    if not REWRITE:
        assert actual == expected, f"{path.name} differs; rerun with XLINEFED_REWRITE=1"


def test_there_are_scripts():
    assert len(SCRIPTS) >= 8
