"""Detached member processes, tracked by PID and start time so a reused PID is never
mistaken for ours (and never signalled)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessRecord:
    pid: int
    #: Kernel start time of the process (clock ticks since boot, /proc/<pid>/stat field 22).
    start_ticks: int
    argv: tuple[str, ...]


def _stat(pid: int) -> tuple[str, int] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses; fields follow the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(record: ProcessRecord) -> bool:
    _reap(record.pid)
    stat = _stat(record.pid)
    return stat is not None and stat[1] == record.start_ticks and stat[0] not in ("Z", "X")


def spawn(argv: list[str], log_path: Path, cwd: Path | None = None) -> ProcessRecord:
    """Start `argv` in its own session, detached from our terminal, output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            close_fds=True,
        )
    stat = _stat(process.pid)
    if stat is None:
        raise RuntimeError(f"{argv[0]} exited at once; see {log_path}")
    return ProcessRecord(pid=process.pid, start_ticks=stat[1], argv=tuple(argv))


def _open_pidfd(record: ProcessRecord) -> int | None:
    """A pidfd for the process if it is still ours (checked after opening, so a PID
    reused in between is never waited on); None if it is gone."""
    try:
        fd = os.pidfd_open(record.pid)
    except ProcessLookupError:
        return None
    if is_alive(record):
        return fd
    os.close(fd)
    return None


def wait_gone(record: ProcessRecord, timeout: float) -> bool:
    """Block until the process has exited or `timeout` passed; True if it is gone. The
    kernel says when (a pidfd turns readable at exit, for any process, child or not)."""
    fd = _open_pidfd(record)
    if fd is None:
        return True
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        deadline = time.monotonic() + timeout
        while is_alive(record):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # Readable once it exited; an exited child stays a zombie until reaped, which
            # `is_alive` does, so this returns at once on the next turn.
            poller.poll(left * 1000)
        return True
    finally:
        os.close(fd)


def stop(record: ProcessRecord, grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone."""
    if not is_alive(record):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGTERM)
    if not wait_gone(record, grace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)
        wait_gone(record, 5.0)


def kill_and_wait(record: ProcessRecord, timeout: float = 5.0) -> None:
    """SIGKILL, then return once the process is gone (or `timeout` passed): for a process
    that is broken, whose clean shutdown is worth nothing."""
    kill(record)
    wait_gone(record, timeout)


def kill(record: ProcessRecord) -> None:
    """SIGKILL at once (fault injection and tests)."""
    if is_alive(record):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGKILL)


def find_by_argument(argument: str) -> list[int]:
    """PIDs of processes with `argument` exactly among their command-line arguments.

    Finds a member process whose record was never written (the controller was killed
    between starting it and recording it): its `--data-dir=...` argument is unique to
    that member, so the match cannot be another program.
    """
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if argument.encode() in args:
            found.append(int(entry.name))
    return found


def record_of(pid: int) -> ProcessRecord | None:
    stat = _stat(pid)
    if stat is None:
        return None
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return ProcessRecord(pid, stat[1], tuple(a.decode() for a in args if a))
