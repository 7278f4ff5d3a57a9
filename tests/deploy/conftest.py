"""helm for the chart tests: hack/install_helm.sh builds it from the Go module proxy once,
then it is cached."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def helm() -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "install_helm.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]
