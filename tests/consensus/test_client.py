"""The consensus client against real 3-member etcd clusters."""

from __future__ import annotations

import time

import pytest

from tests.consensus.helpers import run
from tests.support.etcd_cluster import EtcdCluster
from tests.support.wait import wait_until, wait_until_async
from xlinefed.consensus import errors
from xlinefed.consensus.client import (
    ChannelPool,
    ConsensusClient,
    EndpointDown,
    EndpointStatus,
    compare_create_revision,
    compare_value,
    delete_op,
    get_op,
    put_op,
    retrying,
)

pytestmark = pytest.mark.timeout(180)


def test_member_list_status_and_health(etcd_cluster: EtcdCluster) -> None:
    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            members = await client.member_list()
            by_name = {m.name: m for m in members}
            assert set(by_name) == {"m1", "m2", "m3"}
            for name, m in by_name.items():
                etcd = etcd_cluster.member(name)
                assert m.peer_urls == (etcd.peer_url,)
                assert m.client_urls == (etcd.client_url,)
                assert not m.is_learner
                assert m.id > 0

            statuses = await client.statuses()
            assert set(statuses) == set(etcd_cluster.endpoints)
            up = [s for s in statuses.values() if isinstance(s, EndpointStatus)]
            assert len(up) == 3
            assert len({s.member_id for s in up}) == 3
            assert {s.member_id for s in up} == {m.id for m in members}
            assert len({s.leader_id for s in up}) == 1, "all members agree on one leader"
            assert sum(s.is_leader for s in up) == 1
            for s in up:
                assert s.version.startswith("3.4")
                assert s.raft_index > 0 and s.raft_applied_index > 0 and s.raft_term > 0
                assert s.db_size > 0
                assert not s.is_learner
                assert s.errors == ()
            leader = await client.leader()
            assert leader.is_leader and leader.member_id == up[0].leader_id

            for endpoint in etcd_cluster.endpoints:
                health = await client.health(endpoint)
                assert health.healthy, health

    run(scenario())


def test_fails_over_and_reports_dead_endpoints(etcd_cluster: EtcdCluster) -> None:
    dead = etcd_cluster.member("m1")
    etcd_cluster.kill_member("m1")

    async def scenario() -> None:
        # the dead endpoint first, so every call has to fail over
        endpoints = [dead.client_url, *etcd_cluster.endpoints]
        async with ConsensusClient(endpoints, timeout=2) as client:
            revision = await client.put("k", "v")
            kv = await client.get("k")
            assert kv is not None and kv.text == "v" and kv.mod_revision == revision
            assert {m.name for m in await client.member_list()} == {"m1", "m2", "m3"}

            statuses = await client.statuses(timeout=1)
            assert isinstance(statuses[dead.client_url], EndpointDown)
            assert sum(isinstance(s, EndpointStatus) for s in statuses.values()) == 2
            health = await client.health(dead.client_url, timeout=1)
            assert not health.healthy and health.error

        async with ConsensusClient([dead.client_url], timeout=1) as client:
            started = time.monotonic()
            with pytest.raises(errors.Unavailable, match="no endpoint answered"):
                await client.get("k", deadline=1.0)
            assert time.monotonic() - started < 5

            # back with the same data dir: it catches up and serves the write it missed
            etcd_cluster.restart_member("m1")

            async def caught_up() -> bool:
                return (await client.health(dead.client_url)).healthy

            await wait_until_async(caught_up, timeout=30, what="restarted m1 healthy")
            kv = await client.get("k", deadline=5)
            assert kv is not None and kv.text == "v"

    run(scenario())


def test_add_learner_right_after_start_is_retried_until_the_cluster_is_healthy(
    etcd_cluster: EtcdCluster,
) -> None:
    new = etcd_cluster.reserve_member("m4")

    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            # etcd refuses reconfiguration for ~5 s after start (strict reconfig check)
            with pytest.raises(errors.ClusterUnhealthy, match="retry shortly"):
                await client.member_add([new.peer_url], deadline=0)
            assert isinstance(errors.ClusterUnhealthy("x"), errors.TransientError)
            started = time.monotonic()
            member, members = await client.member_add([new.peer_url], deadline=30)
            assert time.monotonic() - started > 0.1, "it had to wait for the cluster"
            assert member.is_learner and member.peer_urls == (new.peer_url,)
            assert not member.started
            assert member.id in {m.id for m in members} and len(members) == 4

    run(scenario())


def test_learner_add_start_promote_remove(etcd_cluster: EtcdCluster) -> None:
    new = etcd_cluster.reserve_member("m4")

    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            learner, members = await client.member_add([new.peer_url])

            # one learner at a time, and the same peer URL twice is a permanent error
            with pytest.raises(errors.TooManyLearners, match="only one learner"):
                await client.member_add(["http://127.0.0.1:1"], deadline=0)
            with pytest.raises(errors.PeerURLExists, match="already exists"):
                await client.member_add([new.peer_url], deadline=0)
            # not started: not in sync with the leader
            with pytest.raises(errors.LearnerNotReady, match="catching up"):
                await client.member_promote(learner.id, deadline=0)

            initial = ",".join(f"{m.name or 'm4'}={m.peer_urls[0]}" for m in members)
            etcd_cluster.start_member(new, initial_cluster=initial)
            health = await client.health(new.client_url)
            assert health.healthy, health

            learner_status = await client.status(new.client_url)
            assert learner_status.is_learner and learner_status.member_id == learner.id

            promoted = await client.member_promote(learner.id, deadline=30)
            assert {m.id: m.is_learner for m in promoted}[learner.id] is False
            assert sum(not m.is_learner for m in promoted) == 4
            with pytest.raises(errors.MemberNotLearner, match="already a voter"):
                await client.member_promote(learner.id, deadline=0)

            client.set_endpoints(etcd_cluster.endpoints)
            after = await client.member_remove(learner.id)
            assert learner.id not in {m.id for m in after} and len(after) == 3
            assert {m.name for m in await client.member_list()} == {"m1", "m2", "m3"}

        # a removed etcd member shuts itself down
        proc = new.process
        assert proc is not None
        wait_until(lambda: proc.poll() is not None, timeout=30, what="removed member exits")
        etcd_cluster.forget_member("m4")

    run(scenario())


def test_move_leader(etcd_cluster: EtcdCluster) -> None:
    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            before = await client.leader()
            target = next(m for m in await client.member_list() if m.id != before.member_id)
            await client.move_leader(target.id)

            async def target_leads() -> bool:
                statuses = (await client.statuses()).values()
                return all(
                    isinstance(s, EndpointStatus) and s.leader_id == target.id for s in statuses
                )

            await wait_until_async(target_leads, timeout=10, what="all members follow the target")
            after = await client.leader()
            assert after.member_id == target.id and after.raft_term > before.raft_term
            await client.move_leader(target.id)  # already the leader: a no-op
            assert (await client.leader()).member_id == target.id

    run(scenario())


def test_permanent_errors_are_clear_and_not_retried(etcd_cluster: EtcdCluster) -> None:
    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            voter = (await client.member_list())[0]
            started = time.monotonic()
            with pytest.raises(errors.MemberNotFound, match="list the members"):
                await client.member_remove(0x1234, deadline=30)
            with pytest.raises(errors.MemberNotFound):
                await client.member_promote(0x1234, deadline=30)
            with pytest.raises(errors.MemberNotLearner, match="nothing to promote"):
                await client.member_promote(voter.id, deadline=30)
            with pytest.raises(errors.BadLeaderTransferee, match="pick another member"):
                await client.move_leader(0x1234, deadline=30)
            with pytest.raises(errors.LeaseNotFound, match="grant a new one"):
                await client.lease_revoke(0x1234, deadline=30)
            assert time.monotonic() - started < 5, "permanent errors are not retried"
            for kind in (
                errors.MemberNotFound,
                errors.MemberNotLearner,
                errors.BadLeaderTransferee,
                errors.LeaseNotFound,
                errors.PeerURLExists,
            ):
                assert issubclass(kind, errors.ConsensusError)
                assert not issubclass(kind, errors.TransientError)

    run(scenario())


def test_kv_txn_and_leases(etcd_cluster: EtcdCluster) -> None:
    async def scenario() -> None:
        async with ConsensusClient(etcd_cluster.endpoints) as client:
            assert await client.get("/t/a") is None
            r1 = await client.put("/t/a", "1")
            await client.put("/t/b", b"2")
            await client.put("/u", "3")
            assert [kv.key for kv in await client.get_prefix("/t/")] == [b"/t/a", b"/t/b"]

            create = await client.txn(
                [compare_create_revision("/t/c", "==", 0)],
                [put_op("/t/c", "new")],
                [get_op("/t/c")],
            )
            assert create.succeeded and create.revision > r1
            again = await client.txn(
                [compare_create_revision("/t/c", "==", 0)],
                [put_op("/t/c", "newer")],
                [get_op("/t/c")],
            )
            assert not again.succeeded
            found = again.results[0]
            assert isinstance(found, tuple) and found[0].text == "new"
            swap = await client.txn(
                [compare_value("/t/c", "==", "new")], [put_op("/t/c", "swapped"), delete_op("/t/a")]
            )
            assert swap.succeeded and swap.results == (None, 1)
            kv = await client.get("/t/c", serializable=True)
            assert kv is not None and kv.text == "swapped" and kv.version == 2
            assert await client.delete("/t/", prefix=True) == 2
            assert await client.get_prefix("/t/") == []

            lease = await client.lease_grant(30)
            assert lease.id != 0 and lease.ttl == 30
            await client.put("/leased", "x", lease=lease.id)
            leased = await client.get("/leased")
            assert leased is not None and leased.lease == lease.id
            assert 0 < await client.lease_time_to_live(lease.id) <= 30
            assert await client.lease_keepalive_once(lease.id) == 30
            await client.lease_revoke(lease.id)
            assert await client.get("/leased") is None
            assert await client.lease_time_to_live(lease.id) == -1
            with pytest.raises(errors.LeaseNotFound):
                await client.lease_keepalive_once(lease.id, deadline=0)
            assert await client.alarms() == []

    run(scenario())


def test_retrying_retries_transient_errors_until_the_deadline() -> None:
    async def scenario() -> None:
        attempts: list[int] = []

        async def flaky(attempt: int) -> str:
            attempts.append(attempt)
            if attempt < 3:
                raise errors.ClusterUnhealthy("not yet")
            return "ok"

        assert await retrying(5.0, flaky, what="flaky") == "ok"
        assert attempts == [0, 1, 2, 3]

        async def never(attempt: int) -> str:
            raise errors.NotLeader(f"attempt {attempt}")

        started = time.monotonic()
        with pytest.raises(errors.NotLeader):
            await retrying(0.3, never, what="never")
        assert 0.3 <= time.monotonic() - started < 2

        calls = 0

        async def permanent(attempt: int) -> str:
            nonlocal calls
            calls += 1
            raise errors.MemberNotFound("gone")

        with pytest.raises(errors.MemberNotFound):
            await retrying(5.0, permanent, what="permanent")
        assert calls == 1

    run(scenario())


def test_a_pooled_channel_reaches_a_restarted_member_at_once(etcd_cluster: EtcdCluster) -> None:
    """The executor's channels outlive a pass. A member that was down must be reached as
    soon as it is back, as with a fresh channel: a pooled channel that failed is dropped,
    not left in gRPC's reconnect backoff."""
    pool = ChannelPool()
    m3 = etcd_cluster.member("m3")

    async def scenario() -> None:
        try:
            async with ConsensusClient([m3.client_url], pool=pool) as client:
                first = await client.status(m3.client_url, timeout=2)
            # The client closed; the pooled channel did not.
            async with ConsensusClient([m3.client_url], pool=pool) as client:
                assert (await client.status(m3.client_url, timeout=2)).member_id == first.member_id
                etcd_cluster.stop_member("m3")
                with pytest.raises(errors.Unavailable):
                    await client.status(m3.client_url, timeout=2)
                etcd_cluster.restart_member("m3")
                # One attempt, no retries: it answers on the first try after the restart.
                back = await client.status(m3.client_url, timeout=2)
                assert back.member_id == first.member_id
        finally:
            await pool.close()

    run(scenario())


def test_a_fresh_client_is_not_held_back_by_another_clients_backoff(
    etcd_cluster: EtcdCluster,
) -> None:
    """gRPC shares a connection between channels to one address unless told not to: a new
    client (the next observation) to a member that just came back inherited the reconnect
    backoff of an older client's channel (the writer's, the lock's) and failed at once.
    Seen failing before `grpc.use_local_subchannel_pool`."""
    m3 = etcd_cluster.member("m3")

    async def scenario() -> None:
        async with ConsensusClient([m3.client_url]) as older:
            await older.status(m3.client_url, timeout=2)
            etcd_cluster.stop_member("m3")
            with pytest.raises(errors.Unavailable):
                await older.status(m3.client_url, timeout=2)
            etcd_cluster.restart_member("m3")
            async with ConsensusClient([m3.client_url]) as fresh:
                assert (await fresh.status(m3.client_url, timeout=2)).endpoint == m3.client_url

    run(scenario())
