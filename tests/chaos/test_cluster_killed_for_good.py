"""A member cluster killed for good, then removed from the spec, is drained.

The federation a=2, b=2, c=1 has its leader in a. Every member of a is killed (SIGKILL)
and can never run again: the chaos wrapper refuses to start members of a from then on
(`Partitioner.refuse`), as if the cluster and its machines were gone. Then a is removed
from the spec (`xlinefed local scale NAME a=0`). The remaining members must drain a's
members one removal at a time, each under the membership lock, keeping a quorum
throughout (writes never stop for longer than an election), and end with the member list
equal to the new spec.

Two variants: "restart-refused" keeps a's data directories (the members cannot start,
their disks are still there); "data-gone" also deletes them once a is out of the spec.
"""

from __future__ import annotations

import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos._federation import ChaosFederation, observed_run, spec_of
from tests.chaos._partition import Partitioner
from tests.chaos._stats import STATS
from tests.chaos._watch import (
    ControllerLog,
    Sampler,
    cluster_ids,
    elapsed,
    longest_gap_between,
    partitioned_federation,
    quorum_lost,
    step_history,
)
from tests.support.wait import wait_until
from xlinefed.platforms.local import processes

pytestmark = pytest.mark.slow

NAME = "gone"
SHAPE = {"a": 2, "b": 2, "c": 1}
LOST = "a"
KIND = "cluster killed for good, drained"
#: etcd's default election timeout is 1 s; a write may take its 1 s deadline on top, and
#: the client fails over once. Longer than this without an acknowledged write means the
#: quorum was lost, not that a leader was being elected.
ELECTION_BOUND = 4.0


@pytest.fixture
def gone(tmp_path: Path) -> Iterator[tuple[ChaosFederation, Partitioner]]:
    with partitioned_federation(tmp_path, NAME, spec_of(NAME, SHAPE)) as running:
        yield running


@pytest.mark.parametrize("disks", ["restart-refused", "data-gone"])
def test_cluster_killed_for_good_is_drained(
    gone: tuple[ChaosFederation, Partitioner], rng: random.Random, disks: str
) -> None:
    federation, partitioner = gone
    kind = f"{KIND} ({disks})"
    began = time.monotonic()
    lost = sorted(m for m in federation.desired_names() if m.startswith(f"{NAME}-{LOST}-"))
    kept = federation.desired_names() - set(lost)
    if federation.leader() not in lost:
        federation.move_leader(rng.choice(lost))
    wait_until(lambda: federation.leader() in lost, timeout=30, what="the leader in a")
    ids = {m: federation.member_id(m) for m in lost}
    cluster_before = set(cluster_ids(federation.voter_endpoints()).values())
    log = ControllerLog(federation)
    unsafe: list[str] = []

    with (
        observed_run(federation, kind, rng.randrange(2**31)) as run,
        Sampler(federation, lambda: federation.desired_names() | set(lost)) as samples,
    ):
        partitioner.refuse(LOST)
        starts_before = len(partitioner.starts())
        records = [federation.dir.read_process(m) for m in lost]
        for member in lost:
            federation.kill_member(member)
        run.fault("cluster-killed-for-good")
        killed_at = time.monotonic()
        wait_until(
            lambda: not any(r is not None and processes.is_alive(r.record) for r in records),
            timeout=10,
            what="every member of a gone",
        )
        # The controller may try to restart them; the wrapper refuses every time.
        wait_until(
            lambda: federation.status().get("leader") in kept,
            timeout=30,
            what="a new leader outside a",
        )
        print(f"[{elapsed(began)}] a killed; leader now {federation.status().get('leader')}")
        since = time.time()
        result = federation.cli("local", "scale", NAME, f"{LOST}=0", "--timeout", "1", check=False)
        assert LOST not in federation.desired(), result.stderr
        drain_from = time.monotonic()
        run.fault("cluster-removed-from-spec")
        if disks == "data-gone":
            for member in lost:
                shutil.rmtree(federation.dir.data_dir(member))
            run.fault("cluster-data-deleted")
        spec_changed = len(log.events())
        try:
            federation.wait_converged(since, timeout=90)
        except AssertionError as error:
            after = log.events()[spec_changed:]
            restarts = [
                e
                for e in after
                if e.event == "step applied"
                and e.fields.get("step") == "StartMember"
                and e.fields.get("member") in lost
            ]
            removals = [e for e in after if e.fields.get("step") == "RemoveMember"]
            refused = [
                line
                for line in partitioner.starts()[starts_before:]
                if f"--name={NAME}-{LOST}-" in line
            ]
            raise AssertionError(
                f"{LOST} was not drained within 90s of leaving the spec: the controller "
                f"applied StartMember for its dead members {len(restarts)} times (the "
                f"wrapper refused {len(refused)} starts in all) and RemoveMember "
                f"{len(removals)} times; status: {federation.status().get('currentStep')}"
                f"\n{error}"
            ) from None
        drained = time.monotonic()
        print(f"[{elapsed(began)}] drained and converged")

    # --- one RemoveMember per dead member, each under the lock, one at a time
    removes = log.applied("RemoveMember")
    removed = [e.fields.get("member") for e in removes]
    if sorted(removed) != lost:
        unsafe.append(f"RemoveMember applied for {removed}, expected one each for {lost}")
    unsafe += [
        f"{e.fields.get('step')} {e.fields.get('member')} applied"
        for e in log.applied()
        if e.fields.get("member") in kept
        and e.fields.get("step") in ("RemoveMember", "StopMember", "WipeData", "RestartMember")
    ]
    history = step_history(federation.voter_endpoints())
    for member in lost:
        mine = [h for h in history if h.step.get("member") == member]
        phases = [(h.phase, h.step.get("kind")) for h in mine]
        if [p for p, _ in phases] != ["intent", "done"] or {k for _, k in phases} != {
            "RemoveMember"
        }:
            unsafe.append(f"step records for {member}: {phases}")
        if len({h.lock_revision for h in mine}) != 1:
            unsafe.append(f"{member}'s intent and done were written under different locks")
    revisions = [h.lock_revision for h in history if h.step.get("member") in lost]
    if len(set(revisions)) != len(lost):
        unsafe.append(f"the removals did not each take the lock: lock revisions {revisions}")
    # --- the quorum held: sampled arithmetic, and the writer
    no_quorum = quorum_lost(samples.quorum)
    unsafe += [
        f"a member-list sample without a quorum: {n} voters, {up} following"
        for n, up in no_quorum[:3]
    ]
    kill_gap = longest_gap_between(run.workload.ack_times, killed_at, drain_from)
    drain_gap = longest_gap_between(run.workload.ack_times, drain_from, drained)
    ids_seen = cluster_ids(federation.voter_endpoints())
    STATS.cluster_ids(kind, len(set(ids_seen.values())))
    STATS.unsafe(kind, unsafe)
    STATS.unavailable(f"{kind}: the drain", drain_gap)
    print(
        f"[{kind}] removed {removed} (ids {[f'{ids[m]:x}' for m in lost]}); "
        f"lock revisions {revisions}; gaps: kill+election {kill_gap:.2f}s, drain "
        f"{drain_gap:.2f}s; quorum samples {len(samples.quorum)} (lost: {len(no_quorum)}); "
        f"unsafe {len(unsafe)}; took {elapsed(began)}"
    )
    assert not unsafe, "\n".join(unsafe)
    assert kill_gap <= ELECTION_BOUND, f"writes stopped {kill_gap:.2f}s after the kill"
    assert drain_gap <= ELECTION_BOUND, f"writes stopped {drain_gap:.2f}s during the drain"
    voters, learners, leaders = federation.consensus_view()
    assert voters == kept == federation.desired_names() and not learners
    assert len(leaders) == 1 and 0 not in leaders
    assert set(ids_seen.values()) == cluster_before and len(ids_seen) == len(kept)
