"""A whole member cluster partitioned from the others (see _partition.py for how).

With the majority elsewhere the store stays writable, the controller waits with a reason
naming the unreachable members instead of acting (a rolling update asked for meanwhile is held
back), and after healing everything converges. The same with the leader inside the
minority: a new leader is elected outside, writes go on, and healing converges."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos._federation import ChaosFederation, observed_run, spec_of
from tests.chaos._partition import Partitioner
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

SHAPE = {"a": 2, "b": 2, "c": 1}
ISOLATED = "a"  # 2 of 5 voters: a minority


@pytest.fixture(scope="module")
def partitioned(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ChaosFederation, Partitioner]]:
    root = tmp_path_factory.mktemp("partition-state")
    partitioner = Partitioner("part", Path(root) / "bin")
    env = partitioner.install_wrapper("3.4.23")
    federation = ChaosFederation(root, "part", env)
    try:
        federation.up(spec_of("part", SHAPE), root)
        yield federation, partitioner
    finally:
        partitioner.heal()
        federation.down()
        problems = partitioner.cleanup()
        assert not problems, problems


def members_of(federation: ChaosFederation, cluster: str) -> list[str]:
    return sorted(m for m in federation.desired_names() if m.startswith(f"part-{cluster}-"))


SEEN: list[str] = []


def waiting_on(federation: ChaosFederation, names: list[str]) -> str | None:
    """The controller's current Wait reason if it names one of `names`."""
    status = federation.status()
    step = status.get("currentStep") or {}
    reason = str(step.get("reason") or "")
    seen = f"{status.get('phase')}: {step.get('kind')}: {reason}"
    if not SEEN or SEEN[-1] != seen:
        SEEN.append(seen)
        print(f"  status: {seen}")
    if step.get("kind") == "Wait" and any(n in reason for n in names):
        return reason
    return None


def leader_outside(federation: ChaosFederation, inside: list[str]) -> str | None:
    leader = federation.status().get("leader")
    return leader if leader and leader not in inside else None


def test_minority_partition_majority_elsewhere(
    partitioned: tuple[ChaosFederation, Partitioner], rng: random.Random
) -> None:
    federation, partitioner = partitioned
    inside = members_of(federation, ISOLATED)
    if federation.leader() in inside:
        federation.move_leader(rng.choice(members_of(federation, "b")))
    voters_before = federation.membership()[0]
    with observed_run(federation, "partition: minority cluster", rng.randrange(2**31)) as run:
        with partitioner.isolate(federation, ISOLATED):
            cut = time.monotonic()
            run.fault("partition-cluster")
            reason = wait_until(
                lambda: waiting_on(federation, inside),
                timeout=60,
                what="the controller waiting on the partitioned members",
            )
            print(f"controller waits: {reason}")
            wait_until(
                lambda: run.workload.acknowledged_since(cut) >= 20,
                timeout=30,
                what="writes acknowledged during the partition",
            )
            # Asked for a rolling update meanwhile, the controller must not restart a voter
            # while two of five are unreachable: the CLI times out, the reason says why.
            pids = {
                m: federation.dir.read_process(m).record.pid for m in federation.desired_names()
            }  # type: ignore[union-attr]
            result = federation.cli(
                "local",
                "upgrade",
                federation.name,
                "--set",
                "snapshot-count=12345",
                "--timeout",
                "6",
                check=False,
            )
            assert result.returncode == 1, result.stdout + result.stderr
            reason = wait_until(
                lambda: waiting_on(federation, inside),
                timeout=30,
                what="the rolling update held back",
            )
            assert "healthy" in reason, reason
            now = {m: federation.dir.read_process(m).record.pid for m in federation.desired_names()}  # type: ignore[union-attr]
            assert now == pids, "a member was restarted during the partition"
            voters, learners = federation.membership()
            assert voters == voters_before and not learners, "membership changed in partition"
            assert set(federation.running_members()) >= set(inside), "a member was stopped"
        healed = time.time()
        federation.wait_converged(healed, timeout=120)
    spec = federation.dir.read_spec().spec
    assert spec.engine_args.get("snapshot-count") == "12345"
    revisions = {federation.dir.read_process(m).revision for m in federation.desired_names()}  # type: ignore[union-attr]
    assert len(revisions) == 1, "the rolling update did not finish after healing"


def test_minority_partition_with_the_leader(
    partitioned: tuple[ChaosFederation, Partitioner], rng: random.Random
) -> None:
    federation, partitioner = partitioned
    inside = members_of(federation, ISOLATED)
    old_leader = rng.choice(inside)
    if federation.leader() != old_leader:
        federation.move_leader(old_leader)
    wait_until(lambda: federation.leader() == old_leader, timeout=30, what="leader moved")
    with observed_run(
        federation, "partition: minority cluster with leader", rng.randrange(2**31)
    ) as run:
        with partitioner.isolate(federation, ISOLATED):
            cut = time.monotonic()
            run.fault("partition-cluster-with-leader")
            new_leader = wait_until(
                lambda: leader_outside(federation, inside),
                timeout=60,
                what="a new leader outside the partition",
            )
            print(f"leader {old_leader} cut off; {new_leader} elected")
            wait_until(
                lambda: run.workload.acknowledged_since(cut) >= 20,
                timeout=30,
                what="writes acknowledged during the partition",
            )
            reason = wait_until(
                lambda: waiting_on(federation, inside),
                timeout=60,
                what="the controller waiting on the partitioned members",
            )
            print(f"controller waits: {reason}")
            assert federation.membership() == (federation.desired_names(), set())
        healed = time.time()
        federation.wait_converged(healed, timeout=120)
