"""The schedule every member cluster shares, on real parts: a real three-member etcd
cluster holds the state and the lock, a real versitygw the backups, and two "clusters"
(two holders, each with its own client, as two member operators are) look at the same
`@every` schedule concurrently.

Each scheduled run is taken once, whichever holder finds it first; when one holder goes
away the other goes on; retention prunes to its count; a holder whose lock expired while
it uploaded cannot write the state over the next holder's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.etcd_cluster import EtcdCluster
from tests.support.objectstore import ACCESS_KEY, SECRET_KEY, ObjectStoreServer
from xlinefed.api.engines import Engine
from xlinefed.api.models import BackupDestination, BackupRetention, BackupSpec
from xlinefed.backups import schedule
from xlinefed.backups.run import MemberAddress, Target, list_backups
from xlinefed.backups.schedule import LOCK_KEY, STATE_KEY, BackupState, read_shared, shared_pass
from xlinefed.consensus.client import ConsensusClient
from xlinefed.consensus.lock import MembershipLock

pytestmark = pytest.mark.slow

BUCKET = "shared"
INTERVAL = 2


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStoreServer]:
    server = ObjectStoreServer(tmp_path_factory.mktemp("s3"))
    server.start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    with EtcdCluster(tmp_path / "etcd", size=3) as cluster:
        yield cluster


def backup_spec(s3: ObjectStoreServer, prefix: str, count: int = 2) -> BackupSpec:
    return BackupSpec(
        schedule=f"@every {INTERVAL}s",
        retention=BackupRetention(count=count),
        destination=BackupDestination(bucket=BUCKET, prefix=prefix, endpoint=s3.endpoint),
    )


def target(spec: BackupSpec) -> Target:
    return Target.of(spec.destination, (ACCESS_KEY, SECRET_KEY))


def members(etcd: EtcdCluster) -> list[MemberAddress]:
    return [MemberAddress(m.name, "a", m.client_url) for m in etcd.members.values()]


async def look(etcd: EtcdCluster, holder: str, spec: BackupSpec) -> schedule.SharedPass:
    async with ConsensusClient(etcd.all_endpoints, timeout=5.0) as client:
        return await shared_pass(
            client,
            holder=holder,
            federation="shared",
            engine=Engine.ETCD,
            version="3.4.23",
            spec=spec,
            members=members(etcd),
            target=target(spec),
        )


async def run_holder(
    etcd: EtcdCluster, holder: str, spec: BackupSpec, stop: asyncio.Event, taken: list
) -> None:
    while not stop.is_set():
        looked = await look(etcd, holder, spec)
        if looked.result is not None:
            taken.append((holder, looked.state.last_scheduled_run, looked.result))
        assert looked.error is None, looked.error
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.05, min(looked.wait, 0.3)))


async def shared_state(etcd: EtcdCluster) -> BackupState:
    async with ConsensusClient(etcd.all_endpoints, timeout=5.0) as client:
        return (await read_shared(client))[0]


def test_two_clusters_take_each_scheduled_run_once_and_one_goes_on_alone(
    etcd: EtcdCluster, s3: ObjectStoreServer
) -> None:
    spec = backup_spec(s3, "twice")

    async def scenario() -> tuple[list, list]:
        taken: list = []
        stop_a, stop_b = asyncio.Event(), asyncio.Event()
        a = asyncio.create_task(run_holder(etcd, "member-a", spec, stop_a, taken))
        b = asyncio.create_task(run_holder(etcd, "member-b", spec, stop_b, taken))
        deadline = asyncio.get_running_loop().time() + 60
        while len(taken) < 3:
            assert asyncio.get_running_loop().time() < deadline, taken
            await asyncio.sleep(0.1)
        stop_a.set()  # cluster a is lost; b carries on alone
        await a
        alone = len(taken)
        while len(taken) < alone + 2:
            assert asyncio.get_running_loop().time() < deadline + 30, taken
            await asyncio.sleep(0.1)
        stop_b.set()
        await b
        stored = await list_backups(target(spec).store(), "twice/shared/")
        return taken, [s for s in stored if s.sha256]

    taken, stored = asyncio.run(scenario())
    runs = [run for _, run, _ in taken]
    assert len(runs) == len(set(runs)), f"a scheduled run was taken twice: {taken}"
    assert {holder for holder, _, _ in taken[-2:]} == {"member-b"}
    # Retention keeps the newest two, whoever took them.
    assert len(stored) == 2, stored
    assert {s.key for s in stored} == {result.key for _, _, result in taken[-2:]}
    state = asyncio.run(shared_state(etcd))
    assert state.last_uri == taken[-1][2].uri and state.consecutive_failures == 0
    assert state.kept == 2


def test_a_holder_that_lost_its_lock_cannot_overwrite_the_state(
    etcd: EtcdCluster, s3: ObjectStoreServer
) -> None:
    """The fence: the state is written only while the writer's lock key is the one it
    created. Here the lock is taken by another holder before the pass (as when a paused
    holder's lease expired and the next one took over): the pass backs off, and the
    state it would have written is not written."""
    spec = backup_spec(s3, "fenced")

    async def scenario() -> tuple[schedule.SharedPass, BackupState]:
        async with ConsensusClient(etcd.all_endpoints, timeout=5.0) as client:
            other = MembershipLock(client, "member-other", ttl=10, key=LOCK_KEY)
            token = await other.acquire(timeout=5)
            try:
                looked = await look(etcd, "member-late", spec)
            finally:
                await other.release(token)
            return looked, (await read_shared(client))[0]

    looked, state = asyncio.run(scenario())
    assert looked.result is None and looked.error is None
    assert state.last_scheduled_run is None and state.last_uri is None
    assert state.planned_for == spec.schedule  # only the plan, written without the lock


def test_the_state_lives_in_the_store_itself(etcd: EtcdCluster, s3: ObjectStoreServer) -> None:
    spec = backup_spec(s3, "where")
    looked = asyncio.run(look(etcd, "member-a", spec))
    assert looked.result is not None

    async def raw() -> bytes | None:
        async with ConsensusClient(etcd.all_endpoints, timeout=5.0) as client:
            found = await client.get(STATE_KEY)
            held = await client.get(LOCK_KEY)
        assert held is None  # released after the pass
        return found.value if found else None

    text = asyncio.run(raw())
    assert text is not None and looked.result.uri.encode() in text
