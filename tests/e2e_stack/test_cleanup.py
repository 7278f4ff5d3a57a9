"""Stopping is exact: `down` stops what the pidfiles of a state dir name, also when the
process that started them is gone, and never a process that merely reuses a pid."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.stack import down
from tests.support.stack._procs import PidFile, spawn, start_time


def test_down_stops_recorded_processes_of_a_crashed_run(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _, component = spawn(
        "karmada-webhook", ["sleep", "600"], pid_dir=state / "pids", log_dir=state / "logs"
    )
    _, pod = spawn(
        "0000-uid", ["sleep", "600"], pid_dir=state / "pids" / "pods" / "m1", log_dir=state / "logs"
    )
    assert component.alive() and pod.alive()

    stopped = down(state)

    assert sorted(stopped) == ["karmada-webhook", "pod:0000-uid"]
    assert not component.alive() and not pod.alive()
    assert not list((state / "pids").rglob("*.pid"))


def test_down_leaves_a_process_that_reuses_a_recorded_pid_alone(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        started = start_time(bystander.pid)
        assert started is not None
        pid_dir = tmp_path / "pids"
        pid_dir.mkdir()
        # A stale pidfile: same pid, but a different process start time.
        (pid_dir / "etcd.pid").write_text(f"{bystander.pid} {started - 1}\n")
        assert not PidFile.read(pid_dir / "etcd.pid").alive()

        assert down(tmp_path) == []

        assert bystander.poll() is None
        assert not (pid_dir / "etcd.pid").exists()
    finally:
        bystander.kill()
        bystander.wait()
