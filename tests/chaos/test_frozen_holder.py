"""A membership-lock holder frozen past its lease must not land its change late.

One real etcd cluster of four voters, fed-a-0 (the leader), fed-a-1, fed-b-0 and fed-c-0,
with fed-c-0 down. Two executors, each in its own process and each acting for its own
cluster (as two member operators would), each want to scale theirs in: A removes fed-a-1,
B removes fed-b-0. Either removal alone is safe (3 voters, 2 healthy). Both together,
decided from the same view, leave 2 voters of which 1 is healthy: no quorum.

A takes the lock, records its intent, and is frozen (SIGSTOP) past its lease TTL. B then
takes the lock and removes fed-b-0. When A is continued, its proof of the lock fails and
it must give up (LockNotHeld), leaving fed-a-1 in place.

The "proof" variant freezes A right after `Fence.prove` returned instead, before the
membership RPC that proof guards: the case the Fence's budget is there for.

etcd's own strict reconfig check is off (as on Xline, which has none): with it on, etcd
would refuse the late removal by itself and hide whether the executor's fence holds.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos._stats import STATS
from tests.chaos._watch import elapsed, longest_gap_between, quorum_lost, step_history
from tests.consensus.helpers import REPO
from tests.support.etcd_cluster import EtcdCluster
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.consensus.client import ConsensusClient, EndpointStatus
from xlinefed.consensus.lock import LOCK_KEY
from xlinefed.planner.quorum import majority

pytestmark = pytest.mark.slow

FED = "fed"
MEMBERS = [f"{FED}-a-0", f"{FED}-a-1", f"{FED}-b-0", f"{FED}-c-0"]
LEADER, A_REMOVES, B_REMOVES, DOWN = MEMBERS
TTL = 4
KIND = "lock holder frozen past its lease"


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EtcdCluster]:
    etcd = EtcdCluster(tmp_path / "etcd", size=0, extra_args=["--strict-reconfig-check=false"])
    for name in MEMBERS:
        etcd.reserve_member(name)
    initial = etcd.initial_cluster(MEMBERS)
    try:
        for name in MEMBERS:
            etcd.start_member(name, initial_cluster=initial, state="new", wait=False)
        for name in MEMBERS:
            etcd.wait_healthy(name)
        yield etcd
    finally:
        etcd.stop()


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


async def leader_view(endpoints: list[str]) -> tuple[set[str], int, int] | None:
    """(voter names in the leader's own list, voters, voters naming it in its term)."""
    async with ConsensusClient(endpoints, timeout=0.5) as client:
        found = await client.statuses(timeout=0.5)
        up = [s for s in found.values() if isinstance(s, EndpointStatus)]
        leaders = [s for s in up if s.is_leader]
        if not leaders:
            return None
        lead = max(leaders, key=lambda s: s.raft_term)
        listed = await client.member_list_at(lead.endpoint, timeout=0.5)
    voters = {m.id: m.name for m in listed if not m.is_learner}
    following = sum(
        1
        for s in up
        if s.member_id in voters and s.leader_id == lead.member_id and s.raft_term == lead.raft_term
    )
    return set(voters.values()), len(voters), following


class ListWatch:
    """Samples the leader's member list in a thread: every distinct voter set seen, the
    quorum arithmetic of each sample, and when the writer's acknowledged count moved."""

    def __init__(self, endpoints: list[str], writer: SequencedWriter) -> None:
        self.endpoints = endpoints
        self.writer = writer
        self.voter_sets: list[set[str]] = []
        self.quorum: list[tuple[int, int]] = []
        self.progress: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._loop()), daemon=True)

    async def _loop(self) -> None:
        acknowledged = 0
        while not self._stop.is_set():
            if len(self.writer.acknowledged) != acknowledged:
                acknowledged = len(self.writer.acknowledged)
                self.progress.append(time.monotonic())
            try:
                view = await leader_view(self.endpoints)
            except Exception:
                view = None
            if view is not None:
                voters, total, following = view
                if not self.voter_sets or self.voter_sets[-1] != voters:
                    self.voter_sets.append(voters)
                self.quorum.append((total, following))
            self._stop.wait(0.05)

    def __enter__(self) -> ListWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def spawn_executor(
    tmp: Path,
    holder: str,
    scope: str,
    clusters: dict[str, int],
    members: dict[str, Any],
    freeze: str,
) -> tuple[subprocess.Popen[str], Path]:
    config = {
        "holder": holder,
        "federation": FED,
        "clusters": clusters,
        "scope": [scope],
        "members": members,
        "ttl": TTL,
        "freeze": freeze,
    }
    log = tmp / f"{holder}.log"
    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.chaos._lock_executor", json.dumps(config)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            start_new_session=True,
        )
    return process, log


def report_of(process: subprocess.Popen[str], log: Path, timeout: float = 60) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"exit {process.returncode}:\n{out}\n{log.read_text()}"
    return json.loads(out.strip().splitlines()[-1])


def process_state(pid: int) -> str:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2]


@pytest.mark.parametrize("freeze", ["intent", "proof"])
def test_holder_frozen_past_its_lease(cluster: EtcdCluster, tmp_path: Path, freeze: str) -> None:
    began = time.monotonic()
    endpoints = cluster.all_endpoints

    async def prepare() -> None:
        async with ConsensusClient(endpoints, timeout=2.0) as client:
            listed = await client.member_list()
            ids = {m.name: m.id for m in listed}
            await client.move_leader(ids[LEADER], deadline=20)

    run_async(prepare())
    cluster.kill_member(DOWN)

    def led_by_leader() -> bool:
        view = run_async(leader_view(cluster.endpoints))
        return bool(view) and view[2] == 3 and run_async(_leads(cluster, LEADER))

    wait_until(led_by_leader, timeout=30, what=f"{LEADER} leading 3 of 4 voters")
    members = {
        m.name: {
            "client": m.client_url,
            "peer": m.peer_url,
            "pid": m.process.pid if m.process else 0,
            "data_dir": str(m.data_dir),
        }
        for m in cluster.members.values()
    }
    holder_a, holder_b = f"executor-a-{freeze}", f"executor-b-{freeze}"
    processes: list[subprocess.Popen[str]] = []
    unsafe: list[str] = []
    writer = SequencedWriter(lambda: cluster.endpoints, prefix=f"/frozen/{freeze}/")
    try:
        with writer, ListWatch(cluster.all_endpoints, writer) as watch:
            wait_until(lambda: len(writer.acknowledged) >= 3, timeout=30, what="first writes")
            a, a_log = spawn_executor(
                tmp_path, holder_a, "a", {"a": 1, "b": 1, "c": 1}, members, freeze
            )
            processes.append(a)

            def a_frozen() -> bool:
                if a.poll() is not None:
                    raise AssertionError(f"A exited: {a.communicate()[0]}\n{a_log.read_text()}")
                return process_state(a.pid) == "T"

            wait_until(a_frozen, timeout=30, what="A frozen (SIGSTOP) inside its locked step")
            frozen_at = time.monotonic()
            record = _step_record(endpoints)
            print(f"[{elapsed(began)}] A frozen after {freeze}; step record: {record}")
            assert record is not None and record["holder"] == holder_a, record
            assert record["phase"] == "intent" and record["step"]["member"] == A_REMOVES, record

            wait_until(
                lambda: run_async(_lock_free(endpoints)),
                timeout=TTL + 10,
                what="A's lease expired (the lock key gone)",
            )
            print(f"[{elapsed(began)}] A's lease expired; starting B")
            b, b_log = spawn_executor(
                tmp_path, holder_b, "b", {"a": 2, "b": 0, "c": 1}, members, "none"
            )
            processes.append(b)
            b_report = report_of(b, b_log)
            print(f"[{elapsed(began)}] B: {b_report['outcomes'][-1]}")
            assert process_state(a.pid) == "T", "A was not frozen while B acted"
            os.kill(a.pid, signal.SIGCONT)
            frozen_for = time.monotonic() - frozen_at
            a_report = report_of(a, a_log)
            print(f"[{elapsed(began)}] A (frozen {frozen_for:.1f}s): {a_report['outcomes'][-1]}")

            def settled() -> bool:
                view = run_async(leader_view(cluster.endpoints))
                return bool(view) and view[2] >= majority(view[1])

            try:
                wait_until(settled, timeout=15, what="a leader with a quorum behind it")
                count = len(writer.acknowledged)
                wait_until(
                    lambda: len(writer.acknowledged) > count + 3,
                    timeout=10,
                    what="writes acknowledged after both executors finished",
                )
                quorum = True
            except AssertionError:
                unsafe.append("no quorum (no leader, or no writes) after both executors finished")
                quorum = False
            stopped = time.monotonic()
        # Without a quorum nothing can be read back; every acknowledged write counts as
        # unverified then (and the run has failed already).
        writes = writer.verify(cluster.endpoints) if quorum else None
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                process.kill()
                process.wait(timeout=10)

    # --- what each executor says it did
    b_last = b_report["outcomes"][-1]
    assert (b_last["kind"], b_last["member"], b_last["applied"]) == (
        "RemoveMember",
        B_REMOVES,
        True,
    ), b_report
    a_last = a_report["outcomes"][-1]
    assert (a_last["kind"], a_last["member"]) == ("RemoveMember", A_REMOVES), a_report
    if a_last["applied"]:
        unsafe.append(f"A applied its removal of {A_REMOVES} after its lease expired")
    error = a_last["error"] or ""
    assert not a_report["refused"] and not b_report["refused"], (a_report, b_report)

    # --- what the store says happened
    voter_sets = watch.voter_sets
    both = [v for v in voter_sets if A_REMOVES not in v and B_REMOVES not in v]
    if both:
        unsafe.append(f"both removals landed (from the same view): voters {sorted(both[0])}")
    lost = quorum_lost(watch.quorum)
    final = voter_sets[-1] if voter_sets else set()
    history = step_history([cluster.member(LEADER).client_url], serializable=not quorum)
    steps = [(h.holder, h.phase, h.step.get("member"), h.lock_revision) for h in history]
    a_records = [h for h in history if h.holder == holder_a]
    if any(h.phase == "done" for h in a_records):
        unsafe.append(f"A marked its step done: {steps}")
    gap = longest_gap_between(watch.progress, frozen_at, stopped)
    acknowledged = len(writer.acknowledged)
    lost_writes = writes.lost if writes is not None else []
    STATS.runs += 1
    STATS.fault(f"holder-frozen-after-{freeze}")
    STATS.writes_acknowledged += acknowledged
    STATS.writes_lost += len(lost_writes)
    STATS.unavailable(f"{KIND} ({freeze})", gap)
    STATS.unsafe(f"{KIND} ({freeze})", unsafe)
    print(
        f"\n[{KIND} ({freeze})] A: applied={a_last['applied']} error={error[:160]!r}\n"
        f"  voter sets seen: {[sorted(v) for v in voter_sets]}\n"
        f"  step records: {steps}\n"
        f"  samples without quorum: {len(lost)} of {len(watch.quorum)}; acknowledged="
        f"{acknowledged} lost={len(lost_writes)} (read back: {writes is not None}) "
        f"gap={gap:.2f}s; unsafe={len(unsafe)}; "
        f"took {elapsed(began)}"
    )
    assert not unsafe, "\n".join(unsafe)
    assert (
        "LockNotHeld" in error
        or "no longer holds the membership lock" in error
        or ("proof of the membership lock" in error)
        or ("proof that the membership lock is held expired" in error)
    ), a_report
    assert final == {LEADER, A_REMOVES, DOWN}, final
    assert not lost, f"member-list samples without a quorum: {lost[:5]}"
    assert lost_writes == [], lost_writes[:10]
    assert [h.holder for h in history if h.phase == "intent"][-2:] == [holder_a, holder_b], steps
    assert history[-1].holder == holder_b and history[-1].phase == "done", steps
    assert history[-1].lock_revision != a_records[-1].lock_revision, steps


async def _leads(cluster: EtcdCluster, name: str) -> bool:
    member = cluster.member(name)
    async with ConsensusClient([member.client_url], timeout=1.0) as client:
        return (await client.status(member.client_url)).is_leader


async def _lock_free(endpoints: list[str]) -> bool:
    async with ConsensusClient(endpoints, timeout=1.0) as client:
        return await client.get(LOCK_KEY, deadline=2.0) is None


def _step_record(endpoints: list[str]) -> dict[str, Any] | None:
    async def read() -> dict[str, Any] | None:
        async with ConsensusClient(endpoints, timeout=1.0) as client:
            kv = await client.get(f"{LOCK_KEY}/step", deadline=5.0)
        return json.loads(kv.value) if kv is not None else None

    return run_async(read())
