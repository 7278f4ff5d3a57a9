"""Member processes are waited on through the kernel (a pidfd), never by polling, and a
record whose PID was reused is never waited on or signalled. Real processes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from xlinefed.platforms.local import processes


def _spawn(tmp_path: Path, script: str) -> processes.ProcessRecord:
    record = processes.spawn(["bash", "-c", script], tmp_path / "out.log")
    return record


def test_stop_returns_once_a_process_that_exits_on_sigterm_is_gone(tmp_path: Path) -> None:
    record = _spawn(tmp_path, "exec sleep 60")
    processes.stop(record, grace=30)
    assert not processes.is_alive(record)


def test_stop_kills_a_process_that_ignores_sigterm_after_the_grace(tmp_path: Path) -> None:
    record = _spawn(tmp_path, "trap '' TERM; while :; do sleep 0.1; done")
    assert not processes.wait_gone(record, 0.3), "it ignores SIGTERM and was not signalled"
    processes.stop(record, grace=0.3)
    assert not processes.is_alive(record)


def test_a_reused_pid_is_neither_waited_on_nor_signalled(tmp_path: Path) -> None:
    record = _spawn(tmp_path, "exec sleep 60")
    stranger = replace(record, start_ticks=record.start_ticks - 1)
    try:
        assert processes.wait_gone(stranger, 30), "not ours: nothing to wait for"
        processes.stop(stranger, grace=30)
        assert processes.is_alive(record), "the process behind a reused PID was signalled"
    finally:
        processes.kill_and_wait(record)
    assert not processes.is_alive(record)
