"""The local runtime end to end on real etcd: every operation runs under a writer, and
afterwards every acknowledged write reads back, membership equals the spec and there is
exactly one leader."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest

from tests.e2e_local.conftest import CliFederation
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter

pytestmark = pytest.mark.slow

SPEC = {
    "apiVersion": "xlinefed.io/v1alpha1",
    "kind": "XlineFederation",
    "metadata": {"name": "e2e"},
    "spec": {
        "engine": "etcd",
        "version": "3.4.23",
        "clusters": [
            {"id": "a", "replicas": 1},
            {"id": "b", "replicas": 1},
            {"id": "c", "replicas": 1},
        ],
    },
}


def assert_converged(federation: CliFederation) -> None:
    voters, learners, leaders = federation.consensus_view()
    assert voters == federation.desired_names()
    assert learners == set()
    assert len(leaders) == 1 and 0 not in leaders, f"leaders seen: {leaders}"
    status = federation.status()
    assert status["phase"] == "Available"
    assert status["converged"] is True


def run_under_writer(federation: CliFederation, operation: str, *cli: str) -> None:
    with SequencedWriter(federation.all_endpoints, tls=federation.client_tls()) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        federation.cli(*cli)
        count = len(writer.acknowledged)
        wait_until(
            lambda: len(writer.acknowledged) >= count + 5,
            timeout=30,
            what="writes after the operation",
        )
    report = writer.verify(federation.endpoints())
    federation.record(operation, report)
    assert report.lost == [], f"{operation}: acknowledged writes lost: {report.lost[:10]}"
    assert_converged(federation)


def test_up(local_federation: CliFederation, tmp_path: Path) -> None:
    local_federation.up(SPEC, tmp_path)
    assert_converged(local_federation)


def test_scale_out_two_clusters_at_once(local_federation: CliFederation) -> None:
    run_under_writer(local_federation, "scale-out a=2 b=3", "local", "scale", "e2e", "a=2", "b=3")


def test_scale_in(local_federation: CliFederation) -> None:
    run_under_writer(local_federation, "scale-in b=1", "local", "scale", "e2e", "b=1")


def test_add_one_cluster_and_remove_another(local_federation: CliFederation) -> None:
    run_under_writer(local_federation, "add d, remove c", "local", "scale", "e2e", "d=1", "c=0")
    assert all(not name.startswith("e2e-c-") for name in local_federation.desired_names())


def test_rolling_update(local_federation: CliFederation) -> None:
    run_under_writer(
        local_federation,
        "rolling update",
        "local",
        "upgrade",
        "e2e",
        "--set",
        "snapshot-count=20000",
    )
    members = local_federation.status()["members"]
    revisions = {
        local_federation.dir.read_process(m["name"]).revision  # type: ignore[union-attr]
        for m in members
    }
    assert len(revisions) == 1


def test_member_that_dies_is_restarted(local_federation: CliFederation) -> None:
    victim = sorted(local_federation.desired_names())[-1]
    process = local_federation.dir.read_process(victim)
    assert process is not None
    os.kill(process.record.pid, signal.SIGKILL)
    local_federation.wait_restarted(victim, process.record.pid)
    restarted_at = time.time()

    def healthy_again() -> bool:
        # A status written after the restart was seen, reporting the victim healthy.
        status = local_federation.status()
        member = next((m for m in status.get("members", []) if m["name"] == victim), {})
        return bool(
            status.get("converged")
            and status.get("updatedAt", 0) > restarted_at
            and member.get("healthy")
        )

    wait_until(healthy_again, timeout=60, what="convergence after the restart")
    assert_converged(local_federation)


def test_member_whose_data_is_lost_is_replaced(local_federation: CliFederation) -> None:
    victim = sorted(local_federation.desired_names())[0]
    old_id = next(m.get("id") for m in local_federation.status()["members"] if m["name"] == victim)
    assert old_id, f"{victim} has no member id in status before the fault"
    with SequencedWriter(
        local_federation.all_endpoints, tls=local_federation.client_tls()
    ) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        shutil.rmtree(local_federation.dir.data_dir(victim))

        def replaced() -> bool:
            status = local_federation.status()
            member = next((m for m in status["members"] if m["name"] == victim), None)
            return bool(
                member
                and member.get("id")
                and member.get("id") != old_id
                and status.get("converged")
            )

        wait_until(replaced, timeout=120, what=f"{victim} replaced under a new member id")
    report = writer.verify(local_federation.endpoints())
    local_federation.record("data loss of one member", report)
    assert report.lost == []
    assert_converged(local_federation)
