"""A member that answers late is unknown, not down (real etcd, a real pause).

A follower is paused with SIGSTOP: its process lives, its port accepts, its status
request times out — what a loaded machine or a congested link looks like from the
operator. For as long as that lasts less than NO_ANSWER_GRACE the status must not turn
into "Healing" or "no leader": the member's last report stands, the planner waits with
the code NoAnswer, and nothing is done to the member. Past the grace, the silence is a
fact and the status says the member is unhealthy.

Before the observation told a timeout from a refusal, the first pass after the pause
reported the member unhealthy and the federation Healing.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_local.conftest import CliFederation
from tests.support.wait import wait_until
from xlinefed.planner.model import NO_ANSWER_GRACE

pytestmark = pytest.mark.slow

SPEC: dict[str, Any] = {
    "apiVersion": "xlinefed.io/v1alpha1",
    "kind": "XlineFederation",
    "metadata": {"name": "slow"},
    "spec": {
        "engine": "etcd",
        "version": "3.4.23",
        "clusters": [{"id": f"c{i}", "replicas": 1} for i in (1, 2, 3)],
    },
}


def condition(status: dict[str, Any], kind: str) -> str | None:
    return next((c["status"] for c in status.get("conditions", []) if c["type"] == kind), None)


@pytest.fixture()
def slow(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Any:
    federation = CliFederation(tmp_path_factory.mktemp("slow-state"), "slow")
    federation.up(SPEC, tmp_path)
    yield federation
    federation.cli("local", "down", "slow", "--purge", check=False)


def test_a_paused_member_is_late_not_down(slow: CliFederation) -> None:
    wait_until(
        lambda: slow.status().get("phase") == "Available" and slow.status().get("leader"),
        timeout=60,
        what="the federation Available with a leader",
    )
    leader = slow.status()["leader"]
    follower = next(m["name"] for m in slow.status()["members"] if m["name"] != leader)
    record = slow.dir.read_process(follower)
    assert record is not None
    pid = record.record.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        seen: list[dict[str, Any]] = []
        last_update: list[float] = [0.0]

        def sample() -> bool:
            status = slow.status()
            if status.get("updatedAt", 0.0) != last_update[0]:
                last_update[0] = status.get("updatedAt", 0.0)
                seen.append(status)
            late = [s for s in seen if (s.get("currentStep") or {}).get("code") == "NoAnswer"]
            return len(late) >= 3  # three passes that saw the silence

        wait_until(sample, timeout=NO_ANSWER_GRACE - 5, what="three passes that saw no answer")
        since_pause = seen[1:]  # the first sample may predate the pause
        phases = [s.get("phase") for s in since_pause]
        assert set(phases) <= {"Available"}, phases
        assert all(condition(s, "Available") == "True" for s in since_pause), since_pause[-1]
        reasons = [(s.get("currentStep") or {}).get("reason", "") for s in since_pause]
        assert any(follower in r and "no answer within" in r for r in reasons), reasons
        # Nothing was done to it: the paused process is the one that runs.
        current = slow.dir.read_process(follower)
        assert current is not None and current.record.pid == pid

        # Past the grace the silence is a fact: the member is reported unhealthy.
        wait_until(
            lambda: (
                any(m["name"] == follower and not m["healthy"] for m in slow.status()["members"])
                and condition(slow.status(), "Degraded") == "True"
            ),
            timeout=NO_ANSWER_GRACE + 30,
            what=f"{follower} reported unhealthy once its silence outlasted the grace",
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(
        lambda: (
            slow.status().get("phase") == "Available"
            and all(m["healthy"] for m in slow.status()["members"])
        ),
        timeout=60,
        what="every member healthy again after SIGCONT",
    )
