"""On-demand backups on Kubernetes, on real parts: the real kube-apiserver, real etcd pods
through the hostlet, the member operator as a real process, a real S3-compatible server
(versitygw) and credentials from a Secret.

An XlineBackup taken under a writer succeeds; its object verifies against its sha256 and,
restored into a fresh etcd, holds every acknowledged write at or below its revision. A
Secret without the keys fails at once, naming the field. A store that is down is retried
with back-off, and the backup lands once it is back.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_kube.conftest import (
    API,
    MemberOperator,
    consensus_view,
    delete_cluster,
    member_url,
    xline_cluster,
)
from tests.support.etcd_cluster import EtcdCluster
from tests.support.objectstore import ACCESS_KEY, SECRET_KEY, ObjectStoreServer
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.api.engines import Engine
from xlinefed.backups.run import Target, fetch_verified, restore_data_dir
from xlinefed.consensus.client import ConsensusClient
from xlinefed.topology import member_name

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NAME = "bfed"
NAMESPACE = f"xf-bk-{uuid.uuid4().hex[:6]}"
BUCKET = "kbackups"


def endpoints(n: int = 3) -> list[str]:
    return [member_url(NAME, NAMESPACE, member_name(NAME, "member1", i)) for i in range(n)]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStoreServer]:
    server = ObjectStoreServer(tmp_path_factory.mktemp("s3"))
    server.start()
    server.create_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def formed(
    stack: Stack,
    member1: KubeClient,
    store: ObjectStoreServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[MemberOperator]:
    member1.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    member1.apply(
        secret("s3-keys", {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    )
    log = tmp_path_factory.mktemp("operator") / "member1.log"
    operator = MemberOperator(stack, "member1", NAMESPACE, log)
    operator.start()
    destination = {
        "bucket": BUCKET,
        "prefix": "k8s",
        "endpoint": store.endpoint,
        "credentialsSecret": "s3-keys",
    }
    member1.apply(xline_cluster(NAME, NAMESPACE, 3, backup={"destination": destination}))
    try:
        wait_until(
            lambda: (
                consensus_view(endpoints())[0]
                == {member_name(NAME, "member1", i) for i in range(3)}
            ),
            timeout=180,
            what="three voters formed",
        )
        yield operator
    finally:
        for item in member1.list(API, "XlineBackup", NAMESPACE):
            member1.delete(API, "XlineBackup", item["metadata"]["name"], NAMESPACE)
        delete_cluster(member1, NAME, NAMESPACE)
        operator.stop()


def secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def backup(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "XlineBackup",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"cluster": f"{NAME}-member1", **spec},
    }


def finished(
    member1: KubeClient, name: str, operator: MemberOperator, timeout: float = 120
) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        status = member1.get(API, "XlineBackup", name, NAMESPACE).get("status") or {}
        return status if status.get("phase") in ("Succeeded", "Failed") else None

    return wait_until(done, timeout=timeout, what=f"XlineBackup {name} finished")


def events(member1: KubeClient, name: str) -> list[str]:
    return [
        e.get("reason", "")
        for e in member1.list("v1", "Event", NAMESPACE)
        if e.get("involvedObject", {}).get("name") == name
    ]


def test_a_backup_under_a_writer_restores_every_acknowledged_write(
    formed: MemberOperator, member1: KubeClient, store: ObjectStoreServer, tmp_path: Path
) -> None:
    with SequencedWriter(endpoints) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 50, timeout=60, what="first writes")
        member1.create(backup("now"))
        status = finished(member1, "now", formed)
        wait_until(lambda: len(writer.acknowledged) >= 100, timeout=60, what="writes after it")
    assert writer.failed == 0
    assert status["phase"] == "Succeeded", status
    assert status["uri"].startswith(f"s3://{BUCKET}/k8s/{NAME}/")
    assert status["member"] in {member_name(NAME, "member1", i) for i in range(3)}
    assert status["sizeBytes"] > 0 and len(status["sha256"]) == 64 and status["attempts"] == 1
    wait_until(lambda: "BackupSucceeded" in events(member1, "now"), timeout=30, what="its Event")

    # The object verifies (size, sha256, engine) and restores into a fresh etcd that holds
    # every acknowledged write at or below the backup's revision.
    target = Target(BUCKET, endpoint=store.endpoint, access_keys=(ACCESS_KEY, SECRET_KEY))
    snapshot = tmp_path / "snapshot.db"
    manifest = asyncio.run(
        fetch_verified(target, status["uri"], None, snapshot, engine=Engine.ETCD)
    )
    assert manifest.revision == status["revision"]
    assert manifest.federation == NAME
    restored = EtcdCluster(tmp_path / "restored", size=1, name_prefix="r")
    member = restored.member("r1")
    asyncio.run(
        restore_data_dir(
            snapshot,
            member="r1",
            data_dir=member.data_dir,
            initial_cluster=[("r1", member.peer_url)],
            cluster_token="restored",
            peer_url=member.peer_url,
        )
    )
    with restored:  # started from the restored data dir

        async def read() -> dict[str, str | None]:
            async with ConsensusClient(restored.endpoints, timeout=5.0) as client:
                return {k: await client.get(k.encode()) for k in writer.acknowledged}

        values = asyncio.run(read())
    upto = [k for k, r in writer.revisions.items() if r <= status["revision"]]
    assert len(upto) >= 50
    missing = [k for k in upto if values[k] is None]
    assert not missing, (
        f"{len(missing)} acknowledged writes missing from the restore: {missing[:5]}"
    )
    later = [k for k, r in writer.revisions.items() if r > status["revision"]]
    print(
        f"\nkubernetes backup: {status['sizeBytes']} bytes at revision {status['revision']} "
        f"in {status['durationSeconds']} s; {len(upto)} acknowledged writes at or below it all "
        f"restored; {sum(values[k] is not None for k in later)} of {len(later)} later ones too"
    )


def test_a_new_cluster_starts_from_a_backup_and_holds_every_key(
    formed: MemberOperator, member1: KubeClient, store: ObjectStoreServer
) -> None:
    """spec.fromBackup on Kubernetes: each initial member's pod fetches and verifies the
    backup, restores it with the engine's own tool under the new member list, and the new
    cluster forms on it: every key of the backup reads back, under a new cluster id."""

    async def write() -> dict[str, str]:
        async with ConsensusClient(endpoints(), timeout=5.0) as client:
            keys = {f"/restore/{i:04d}": f"v{i}" for i in range(200)}
            for key, value in keys.items():
                await client.put(key, value)
            return keys

    keys = asyncio.run(write())
    member1.create(backup("for-restore"))
    status = finished(member1, "for-restore", formed)
    assert status["phase"] == "Succeeded", status
    restored_name = "rfed"
    destination = {"bucket": BUCKET, "endpoint": store.endpoint, "credentialsSecret": "s3-keys"}
    member1.apply(
        xline_cluster(
            restored_name,
            NAMESPACE,
            3,
            fromBackup={"uri": status["uri"]},
            backup={"destination": destination},
        )
    )
    restored = [
        member_url(restored_name, NAMESPACE, member_name(restored_name, "member1", i))
        for i in range(3)
    ]
    try:
        wait_until(
            lambda: (
                consensus_view(restored)[0]
                == {member_name(restored_name, "member1", i) for i in range(3)}
            ),
            timeout=180,
            what="the restored cluster formed with three voters",
        )

        async def read() -> tuple[dict[str, str | None], set[int], set[int]]:
            async with ConsensusClient(restored, timeout=5.0) as client:
                values = {}
                for key in keys:
                    found = await client.get(key)
                    values[key] = found.value.decode() if found else None
                new_ids = {m.id for m in await client.member_list()}
            async with ConsensusClient(endpoints(), timeout=5.0) as client:
                old_ids = {m.id for m in await client.member_list()}
            return values, new_ids, old_ids

        values, new_ids, old_ids = asyncio.run(read())
        assert values == keys, [k for k in keys if values[k] != keys[k]][:5]
        # Its own members under the new member list, not the backup's.
        assert len(new_ids) == 3 and not new_ids & old_ids
    finally:
        delete_cluster(member1, restored_name, NAMESPACE)


def test_a_secret_without_the_keys_fails_at_once_naming_the_field(
    formed: MemberOperator, member1: KubeClient, store: ObjectStoreServer
) -> None:
    member1.apply(secret("half-keys", {"AWS_ACCESS_KEY_ID": ACCESS_KEY}))
    destination = {"bucket": BUCKET, "endpoint": store.endpoint, "credentialsSecret": "half-keys"}
    member1.create(backup("half", destination=destination))
    status = finished(member1, "half", formed)
    assert status["phase"] == "Failed" and status["attempts"] == 1
    assert "spec.destination.credentialsSecret" in status["message"]
    assert "AWS_SECRET_ACCESS_KEY" in status["message"]
    wait_until(lambda: "BackupFailed" in events(member1, "half"), timeout=30, what="its Event")


def test_a_store_that_is_down_is_retried_until_it_is_back(
    formed: MemberOperator, member1: KubeClient, store: ObjectStoreServer
) -> None:
    store.stop()
    try:
        member1.create(backup("retried"))

        def retrying() -> str | None:
            status = member1.get(API, "XlineBackup", "retried", NAMESPACE).get("status") or {}
            message = status.get("message") or ""
            return message if "retry in" in message else None

        message = wait_until(retrying, timeout=60, what="a failed attempt, retried")
        assert status_phase(member1, "retried") == "Running", message
    finally:
        store.start()
    status = finished(member1, "retried", formed)
    assert status["phase"] == "Succeeded", status
    assert status["attempts"] >= 2


def status_phase(member1: KubeClient, name: str) -> str | None:
    return (member1.get(API, "XlineBackup", name, NAMESPACE).get("status") or {}).get("phase")


def test_the_schedule_runs_from_the_member_operator_and_keeps_the_retention(
    formed: MemberOperator, member1: KubeClient, store: ObjectStoreServer
) -> None:
    """spec.backup.schedule on Kubernetes: the member operator takes the scheduled runs
    (state and lock in the federation's own store), prunes to the retention count, and
    the XlineCluster's status.backup shows the last one."""
    destination = {
        "bucket": BUCKET,
        "prefix": "scheduled",
        "endpoint": store.endpoint,
        "credentialsSecret": "s3-keys",
    }
    name = f"{NAME}-member1"
    member1.patch(
        API,
        "XlineCluster",
        name,
        {
            "spec": {
                "backup": {
                    "schedule": "@every 3s",
                    "retention": {"count": 2},
                    "destination": destination,
                }
            }
        },
        NAMESPACE,
    )
    try:
        seen: set[str] = set()

        def three_runs() -> dict[str, Any] | None:
            backup = (member1.get(API, "XlineCluster", name, NAMESPACE).get("status") or {}).get(
                "backup"
            ) or {}
            if backup.get("lastUri"):
                seen.add(backup["lastUri"])
            return backup if len(seen) >= 3 and backup.get("kept") == 2 else None

        backup = wait_until(three_runs, timeout=120, what="three scheduled backups, two kept")
    finally:
        member1.patch(API, "XlineCluster", name, {"spec": {"backup": None}}, NAMESPACE)
    assert backup["lastUri"].startswith(f"s3://{BUCKET}/scheduled/{NAME}/")
    assert backup["consecutiveFailures"] == 0 and backup["nextRun"]
    assert backup["lastMember"] in {member_name(NAME, "member1", i) for i in range(3)}
    wait_until(
        lambda: "BackupSucceeded" in events(member1, name), timeout=30, what="a scheduled Event"
    )
