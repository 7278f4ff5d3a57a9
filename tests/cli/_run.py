"""The real `xlinefed` command line in a subprocess, against a state directory of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def xlinefed(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XLINEFED_STATE_DIR": str(state), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "xlinefed.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
