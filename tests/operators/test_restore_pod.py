"""A member that starts from a backup on Kubernetes: the init containers its pod gets, and
what the in-pod steps do with the volume (real files; the fetch against a store that
does not answer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from xlinefed.api.engines import Engine
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineCluster
from xlinefed.api.validation import SpecError
from xlinefed.backups.run import Target
from xlinefed.planner.steps import StartMode
from xlinefed.platforms import member_restore
from xlinefed.platforms.kubernetes import manifests
from xlinefed.topology import desired_members


def _cluster(version: str = "3.4.23", formed: bool = False, **extra: Any) -> XlineCluster:
    spec: dict[str, Any] = {
        "engine": "etcd",
        "version": version,
        "federation": "f",
        "clusterId": "c1",
        "replicas": 1,
        "clusters": [{"id": "c1", "replicas": 1}],
        "fromBackup": {"uri": "s3://bkt/p/f/x.snapshot.db", "revision": 42},
        "backup": {
            "destination": {
                "bucket": "bkt",
                "endpoint": "http://s3.example:7070",
                "credentialsSecret": "s3-keys",
            }
        },
        **extra,
    }
    if formed:
        spec["formation"] = {"formed": True, "initialMembers": ["f-c1-0"]}
    return parse(
        XlineCluster,
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineCluster",
            "metadata": {"name": "f-c1", "namespace": "ns", "uid": "u"},
            "spec": spec,
        },
    )


def _init_containers(resource: XlineCluster, mode: StartMode) -> dict[str, dict[str, Any]]:
    member = desired_members(resource)[0]
    pod = manifests.pod(resource, member, mode, [(member.name, member.peer_url)], "r", "tok")
    return {c["name"]: c for c in pod["spec"]["initContainers"]}


def test_an_initial_member_fetches_restores_and_finishes_in_that_order() -> None:
    resource = _cluster()
    containers = _init_containers(resource, StartMode.NEW)
    assert list(containers) == ["start-guard", "restore-fetch", "restore", "restore-finish"]
    fetch = containers["restore-fetch"]
    assert fetch["command"] == ["xlinefed", "member-restore", "fetch"]
    assert "--uri=s3://bkt/p/f/x.snapshot.db" in fetch["args"]
    assert "--revision=42" in fetch["args"] and "--endpoint=http://s3.example:7070" in fetch["args"]
    # Credentials reach it from the Secret, never as values in the pod.
    assert {e["valueFrom"]["secretKeyRef"]["name"] for e in fetch["env"]} == {"s3-keys"}
    restore = containers["restore"]
    assert restore["command"] == ["etcdctl"] and restore["image"].endswith(":v3.4.23")
    assert "--data-dir=/var/lib/xlinefed/data.restoring" in restore["args"]
    assert "--initial-cluster-token=tok" in restore["args"]
    assert containers["restore-finish"]["command"] == ["xlinefed", "member-restore", "finish"]


def test_etcd_3_5_restores_with_etcdutl() -> None:
    containers = _init_containers(_cluster("3.5.17"), StartMode.NEW)
    assert containers["restore"]["command"] == ["etcdutl"]


@pytest.mark.parametrize(
    ("formed", "mode"),
    [(True, StartMode.NEW), (False, StartMode.EXISTING)],
)
def test_no_restore_once_formed_or_for_a_member_that_joins(formed: bool, mode: StartMode) -> None:
    assert list(_init_containers(_cluster(formed=formed), mode)) == ["start-guard"]


def test_xline_from_a_backup_is_refused_on_kubernetes_naming_the_field() -> None:
    with pytest.raises(SpecError) as refused:
        _cluster(engine="xline", version="0.7.0")
    assert "spec.fromBackup" in str(refused.value)


def _marked(directory: Path) -> Path:
    """A data directory as etcd leaves it: a WAL (the data marker) and a snapshot db."""
    (directory / "member" / "wal").mkdir(parents=True)
    (directory / "member" / "snap").mkdir(parents=True)
    (directory / "member" / "snap" / "db").write_bytes(b"data")
    return directory


def test_finish_moves_the_restored_data_in_place_and_drops_the_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _marked(member_restore.staging_dir(data))
    member_restore.snapshot_path(tmp_path).parent.mkdir()
    member_restore.snapshot_path(tmp_path).write_bytes(b"snapshot")
    assert member_restore.finish(Engine.ETCD, tmp_path, data, "m") == 0
    assert (data / "member" / "snap" / "db").read_bytes() == b"data"
    assert not member_restore.staging_dir(data).exists()
    assert not member_restore.snapshot_path(tmp_path).exists()


def test_finish_keeps_a_members_own_data(tmp_path: Path) -> None:
    data = _marked(tmp_path / "data")
    (data / "member" / "snap" / "db").write_bytes(b"its own")
    _marked(member_restore.staging_dir(data))
    assert member_restore.finish(Engine.ETCD, tmp_path, data, "m") == 0
    assert (data / "member" / "snap" / "db").read_bytes() == b"its own"
    assert not member_restore.staging_dir(data).exists()


def test_finish_refuses_when_the_restore_left_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert member_restore.finish(Engine.ETCD, tmp_path, data, "m") == member_restore.REFUSED
    assert not data.exists()


def test_fetch_refuses_when_the_store_does_not_answer_and_leaves_no_snapshot(
    tmp_path: Path,
) -> None:
    target = Target("", endpoint="http://127.0.0.1:9")
    data = tmp_path / "data"
    _marked(member_restore.staging_dir(data))  # an earlier try's leftovers go first
    code = member_restore.fetch(
        Engine.ETCD, "s3://bkt/f/x.snapshot.db", None, target, tmp_path, data, "m"
    )
    assert code == member_restore.REFUSED
    assert not member_restore.staging_dir(data).exists()
    assert not member_restore.snapshot_path(tmp_path).exists()
