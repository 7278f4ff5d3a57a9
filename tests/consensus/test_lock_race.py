"""Two executors race for the membership lock on one real cluster, each in its own process."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.consensus.helpers import python_module, run
from tests.support.etcd_cluster import EtcdCluster
from xlinefed.consensus.client import ConsensusClient, EndpointStatus
from xlinefed.consensus.lock import MembershipLock

CYCLES = 3
EXPECTED_SHAPES = {
    "before": {"voters": 3, "learners": 0},
    "added": {"voters": 3, "learners": 1},
    "promoted": {"voters": 4, "learners": 0},
    "removed": {"voters": 3, "learners": 0},
}


@pytest.mark.timeout(400)
def test_two_executors_never_overlap_membership_changes(
    etcd_cluster: EtcdCluster, tmp_path: Path
) -> None:
    executors = [
        python_module(
            "tests.consensus._executor", name, str(CYCLES), str(tmp_path), *etcd_cluster.endpoints
        )
        for name in ("exec-a", "exec-b")
    ]
    reports: list[dict[str, Any]] = []
    try:
        for proc in executors:
            out, _ = proc.communicate(timeout=300)
            assert proc.returncode == 0, out
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in executors:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    for report in reports:
        assert report["error"] is None, f"{report['name']} failed:\n{report['error']}"
        assert len(report["cycles"]) == CYCLES

    cycles = [(r["name"], c) for r in reports for c in r["cycles"]]
    # every change saw exactly the membership it expected: nobody else changed it meanwhile
    for name, cycle in cycles:
        assert cycle["pending"] is None, f"{name} found a half-done step: {cycle['pending']}"
        assert cycle["shapes"] == EXPECTED_SHAPES, (name, cycle["shapes"])

    # critical sections never overlap (monotonic clock is system-wide on Linux)
    intervals = sorted((c["interval"][0], c["interval"][1], name) for name, c in cycles)
    for (_, end, first), (start, _, second) in itertools.pairwise(intervals):
        assert end <= start, f"{first} and {second} held the lock at the same time"
    # and they did contend: someone waited for the other
    assert max(c["waited"] for _, c in cycles) > 0.5
    assert len({c["revision"] for _, c in cycles}) == 2 * CYCLES
    assert len({c["member_id"] for _, c in cycles}) == 2 * CYCLES

    async def final_state() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            members = await client.member_list()
            assert sorted(m.name for m in members) == ["m1", "m2", "m3"], "no orphan members"
            assert not any(m.is_learner for m in members)
            statuses = await client.statuses()
            up = [s for s in statuses.values() if isinstance(s, EndpointStatus)]
            assert len(up) == 3 and sum(s.is_leader for s in up) == 1
            lock = MembershipLock(client, "checker")
            assert await lock.holder() is None
            last = await lock.last_step()
            assert last is not None and last.phase == "done" and last.step["op"] == "remove"

    run(final_state())
    leftovers = [p for p in (tmp_path / "exec-a", tmp_path / "exec-b") if any(p.glob("*.etcd"))]
    assert len(leftovers) == 2, "each executor ran its own members"
    # the executors' etcd processes are gone (stopped by PID in the executor)
    ps = subprocess.run(["pgrep", "-f", str(tmp_path / "exec-")], capture_output=True, text=True)
    assert ps.stdout.strip() == "", f"executor etcd processes still running: {ps.stdout}"
