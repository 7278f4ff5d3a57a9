"""Processes the stack starts: detached, logged to files, recorded in pidfiles.

Every process is started in its own session (so it is its own process group and
survives the Python process that started it, e.g. after `python -m tests.support.stack up`) and
gets a pidfile `<state>/pids/<name>.pid` holding its pid and kernel start time. Stopping
reads the pidfiles, checks that the pid still names the same process (the start time
matches, so a recycled pid is never signalled), sends SIGTERM to the process group,
waits, then SIGKILL. That is how both a normal stop and the clean-up after a crashed run
work: nothing is killed by name.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


def start_time(pid: int) -> int | None:
    """The kernel start time (clock ticks since boot) of `pid`, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie is as good as gone
        return None
    return int(fields[19])


@dataclass(frozen=True)
class PidFile:
    """One recorded process."""

    path: Path
    pid: int
    started: int

    def alive(self) -> bool:
        return start_time(self.pid) == self.started

    @classmethod
    def read(cls, path: Path) -> PidFile | None:
        try:
            pid_text, started_text = path.read_text().split()[:2]
            return cls(path, int(pid_text), int(started_text))
        except (OSError, ValueError):
            return None


def write_pidfile(path: Path, pid: int) -> PidFile:
    started = start_time(pid)
    if started is None:
        raise RuntimeError(f"process {pid} ({path.stem}) exited right after start")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{pid} {started}\n")
    tmp.replace(path)
    return PidFile(path, pid, started)


def spawn(
    name: str,
    argv: list[str],
    *,
    pid_dir: Path,
    log_dir: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> tuple[subprocess.Popen[bytes], PidFile]:
    """Start `argv` detached, stdout+stderr to `<log_dir>/<name>.log`, with a pidfile."""
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    _children[process.pid] = process
    return process, write_pidfile(pid_dir / f"{name}.pid", process.pid)


def terminate(pidfiles: list[PidFile], *, grace: float = 10.0) -> None:
    """SIGTERM each live recorded process group, SIGKILL what is left after `grace` s."""
    live = [p for p in pidfiles if p.alive()]
    for p in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while live and time.monotonic() < deadline:
        _reap()
        live = [p for p in live if p.alive()]
        if live:
            time.sleep(0.05)
    for p in live:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while live and time.monotonic() < deadline:
        _reap()
        live = [p for p in live if p.alive()]
        if live:
            time.sleep(0.05)
    for p in pidfiles:
        with contextlib.suppress(FileNotFoundError):
            p.path.unlink()


_children: dict[int, subprocess.Popen[bytes]] = {}


def _reap() -> None:
    """Collect exited children this module started so they do not linger as zombies.

    Only our own `Popen` objects are polled: a `waitpid(-1)` would steal the exit status
    of processes other code in the same interpreter started.
    """
    for pid, process in list(_children.items()):
        if process.poll() is not None:
            del _children[pid]


def pidfiles_under(root: Path) -> list[PidFile]:
    """Every pidfile below `root` (components and the hostlets' pod processes)."""
    found = []
    for path in sorted(root.rglob("*.pid")):
        record = PidFile.read(path)
        if record is not None:
            found.append(record)
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
    return found
