"""Small helpers shared by the consensus tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]


def run(coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
    """Run one async scenario with an overall deadline."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def python_module(module: str, *args: str) -> subprocess.Popen[str]:
    """Start `python -m module args...` from the repo root, stdout piped as text lines."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
