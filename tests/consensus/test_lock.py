"""The global membership lock against a real 3-member etcd cluster."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from typing import Any

import pytest

from tests.consensus.helpers import python_module, run
from tests.support.etcd_cluster import EtcdCluster
from tests.support.wait import wait_until_async
from xlinefed.consensus import errors
from xlinefed.consensus.client import ConsensusClient, put_op
from xlinefed.consensus.lock import LOCK_KEY, Fence, MembershipLock

pytestmark = pytest.mark.timeout(120)


def _start_holder(
    cluster: EtcdCluster, holder: str, ttl: int, step: dict[str, Any] | None = None
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """A lock holder in another process; returns it once it printed that it holds the lock."""
    args = [holder, str(ttl), *cluster.endpoints]
    if step is not None:
        args += ["--step", json.dumps(step)]
    proc = python_module("tests.consensus._holder", *args)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # blocks until the holder reports (or exits)
    if not line.startswith("HELD "):
        proc.kill()
        proc.wait()
        raise AssertionError(f"holder process failed to take the lock: {line!r}")
    return proc, json.loads(line[5:])


def _kill(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    if proc.stdout is not None:
        proc.stdout.close()


def test_lock_is_exclusive_and_waits_are_measured(etcd_cluster: EtcdCluster) -> None:
    async def scenario() -> None:
        async with (
            ConsensusClient(etcd_cluster.endpoints) as client_a,
            ConsensusClient(etcd_cluster.endpoints) as client_b,
        ):
            a = MembershipLock(client_a, "exec-a", ttl=5)
            b = MembershipLock(client_b, "exec-b", ttl=5)
            token_a = await a.acquire(timeout=5)
            assert token_a.holder == "exec-a" and token_a.revision > 0 and token_a.waited < 5
            holder = await b.holder()
            assert holder is not None and holder.holder == "exec-a"
            assert holder.lease_id == token_a.lease_id and holder.revision == token_a.revision

            with pytest.raises(errors.LockTimeout, match="held by exec-a"):
                await b.acquire(timeout=0.5)

            waiting = asyncio.create_task(b.acquire(timeout=30))

            async def b_waits() -> bool:
                # b's acquire is blocked while a holds the lock
                return not waiting.done() and (await b.holder()) is not None

            await wait_until_async(b_waits, timeout=5, what="exec-b blocked on the lock")
            released_at = time.monotonic()
            await a.release(token_a)
            token_b = await waiting
            assert token_b.holder == "exec-b" and token_b.revision > token_a.revision
            assert token_b.waited > 0 and b.last_wait == token_b.waited
            assert time.monotonic() - released_at < 2, "the waiter notices a release quickly"
            holder = await a.holder()
            assert holder is not None and holder.holder == "exec-b"
            await b.release(token_b)
            assert await a.holder() is None

            async with a as token:
                assert (await b.holder()) is not None
                assert token.holder == "exec-a"
            assert await b.holder() is None

    run(scenario())


def test_lock_expires_when_its_holder_dies(etcd_cluster: EtcdCluster) -> None:
    ttl = 2
    proc, token = _start_holder(etcd_cluster, "doomed", ttl)

    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            lock = MembershipLock(client, "survivor", ttl=5)
            held = await lock.holder()
            assert held is not None and held.holder == "doomed"
            assert held.lease_id == token["lease_id"]
            # alive: its keep-alive holds the lock past its TTL
            with pytest.raises(errors.LockTimeout, match="held by doomed"):
                await lock.acquire(timeout=ttl + 1.5)

            killed_at = time.monotonic()
            _kill(proc)

            async def free() -> bool:
                return await lock.holder() is None

            await wait_until_async(free, timeout=ttl + 5, what="lock freed by lease expiry")
            freed_after = time.monotonic() - killed_at
            assert freed_after < ttl + 3
            mine = await lock.acquire(timeout=5)
            assert mine.holder == "survivor" and mine.revision > token["revision"]
            await lock.release(mine)

    try:
        run(scenario())
    finally:
        _kill(proc)


def test_stale_token_cannot_write(etcd_cluster: EtcdCluster) -> None:
    async def scenario() -> None:
        async with (
            ConsensusClient(etcd_cluster.endpoints) as client_a,
            ConsensusClient(etcd_cluster.endpoints) as client_b,
        ):
            a = MembershipLock(client_a, "stale", ttl=5)
            b = MembershipLock(client_b, "fresh", ttl=5)
            token_a = await a.acquire(timeout=5)
            await a.record_step(token_a, {"op": "add-learner", "n": 1})
            await a.ensure_held(token_a)

            # a's lease ends behind its back (what expiry during a long pause looks like)
            await client_b.lease_revoke(token_a.lease_id)
            token_b = await b.acquire(timeout=10)

            with pytest.raises(errors.LockNotHeld, match="now held by fresh"):
                await a.record_step(token_a, {"op": "add-learner", "n": 2})
            with pytest.raises(errors.LockNotHeld, match="re-acquire"):
                await a.fenced_txn(token_a, [put_op("/xlinefed/test/guarded", "stale")])
            with pytest.raises(errors.LockNotHeld):
                await a.ensure_held(token_a)
            assert await client_b.get("/xlinefed/test/guarded") is None

            # the fresh holder's fenced writes go through
            await b.fenced_txn(token_b, [put_op("/xlinefed/test/guarded", "fresh")])
            guarded = await client_b.get("/xlinefed/test/guarded")
            assert guarded is not None and guarded.text == "fresh"
            step = await b.last_step()
            assert step is not None and step.holder == "stale" and step.step["n"] == 1
            await b.ensure_held(token_b)
            await b.release(token_b)
            await a.release(token_a)  # its lease is gone already: releasing is harmless
            with pytest.raises(errors.LockNotHeld):
                await b.record_step(token_b, {"op": "late"})

    run(scenario())


def test_a_new_holder_finds_and_finishes_a_half_done_step(etcd_cluster: EtcdCluster) -> None:
    step = {"op": "add-learner", "peer_url": "http://127.0.0.1:1", "member": "f-a-3"}
    proc, token = _start_holder(etcd_cluster, "crashed", 2, step=step)
    _kill(proc)  # dies between recording the intent and finishing

    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            lock = MembershipLock(client, "successor", ttl=5)
            mine = await lock.acquire(timeout=15)
            assert mine.waited > 0, "had to wait for the dead holder's lease to expire"
            pending = await lock.pending_step()
            assert pending is not None
            assert pending.holder == "crashed" and pending.phase == "intent"
            assert pending.step == step and pending.lock_revision == token["revision"]

            await lock.finish_step(mine, {**pending.step, "outcome": "undone"})
            assert await lock.pending_step() is None
            last = await lock.last_step()
            assert last is not None and last.holder == "successor" and last.phase == "done"
            assert last.step["outcome"] == "undone"
            raw = await client.get(LOCK_KEY + "/step")
            assert raw is not None and raw.lease == 0, "the step record outlives its writer"
            await lock.release(mine)
            assert await lock.last_step() is not None

    try:
        run(scenario())
    finally:
        _kill(proc)


def test_a_fence_proof_is_good_for_half_the_ttl_then_refused(etcd_cluster: EtcdCluster) -> None:
    """A holder paused after proving the lock (SIGSTOP, a starved loop) finds its proof
    spent when it resumes: the clock here stands in for the time the pause took."""
    now = [100.0]

    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            lock = MembershipLock(client, "exec-fence", ttl=6)
            token = await lock.acquire(timeout=5)
            fence = Fence(lock, token, clock=lambda: now[0])
            with pytest.raises(errors.LockNotHeld, match="never proved"):
                fence.remaining("remove x")
            assert await fence.prove("remove x") == pytest.approx(3.0)
            now[0] += 2.5
            assert fence.remaining("remove x") == pytest.approx(0.5)
            now[0] += 1.0
            with pytest.raises(errors.LockNotHeld, match="paused or starved"):
                fence.remaining("remove x")
            await lock.release(token)

    asyncio.run(scenario())


def test_a_fence_refuses_once_the_lease_expired_and_another_holder_took_the_lock(
    etcd_cluster: EtcdCluster,
) -> None:
    async def scenario() -> None:
        async with (
            ConsensusClient(etcd_cluster.endpoints) as client_a,
            ConsensusClient(etcd_cluster.endpoints) as client_b,
        ):
            a = MembershipLock(client_a, "exec-frozen", ttl=2)
            token = await a.acquire(timeout=5)
            fence = Fence(a, token)
            await fence.prove("first change")
            # Freeze a's keep-alive, as a stopped process would; b gets the lock once a's
            # lease runs out.
            assert a._keepalive is not None
            a._keepalive.cancel()
            b = MembershipLock(client_b, "exec-next", ttl=5)
            token_b = await b.acquire(timeout=15)
            with pytest.raises(errors.LockNotHeld):
                await fence.prove("second change")
            await b.release(token_b)

    asyncio.run(scenario())
