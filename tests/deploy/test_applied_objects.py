"""What the operators apply, and when they skip a write (pure parts of the boundary)."""

from __future__ import annotations

from typing import Any

from xlinefed.api.models import MemberRole, MemberStatus
from xlinefed.platforms.kubernetes import manifests, objects


def body(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineCluster",
        "metadata": {"name": "f-a", "namespace": "ns", "labels": {"xlinefed.io/federation": "f"}},
        "spec": {"replicas": 3, "engineArgs": {}, **spec},
    }


def stored(applied: dict[str, Any], **extra_spec: Any) -> dict[str, Any]:
    """What the server holds after applying: our body, defaults and others' fields."""
    document = objects.stamped(objects.without_empty_maps(applied))
    document["metadata"] = {**document["metadata"], "resourceVersion": "7", "uid": "u"}
    document["spec"] = {"engineArgs": {}, **document["spec"], **extra_spec}
    document["status"] = {"phase": "Available"}
    return document


def test_an_object_as_applied_is_unchanged() -> None:
    wanted = body(engineArgs={"snapshot-count": "1"})
    assert objects.unchanged(stored(wanted, defaulted="x"), wanted)


def test_a_removed_key_is_a_change() -> None:
    before = body(engineArgs={"snapshot-count": "1", "quota-backend-bytes": "2"})
    after = body(engineArgs={"snapshot-count": "1"})
    assert not objects.unchanged(stored(before), after)


def test_a_value_changed_by_someone_else_is_a_change() -> None:
    wanted = body(engineArgs={"snapshot-count": "1"})
    drifted = stored(wanted)
    drifted["spec"]["engineArgs"] = {"snapshot-count": "9"}
    assert not objects.unchanged(drifted, wanted)


def test_absent_objects_are_written() -> None:
    assert not objects.unchanged(None, body())


def test_server_filled_list_items_are_not_a_change() -> None:
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "f", "namespace": "ns", "labels": {"a": "b"}},
        "spec": {"ports": [{"name": "client", "port": 2379}]},
    }
    held = objects.stamped(service)
    held["spec"] = {"ports": [{"name": "client", "port": 2379, "protocol": "TCP"}]}
    assert objects.unchanged(held, service)
    held["spec"]["ports"].append({"name": "extra", "port": 1})
    assert not objects.unchanged(held, service)


def test_empty_maps_are_left_out_of_an_apply() -> None:
    # Applying `{}` after removing the last key stores null, which the schema refuses.
    document = objects.without_empty_maps(
        {"spec": {"engineArgs": {}, "updateStrategy": {"partitions": {}}, "keep": [{"a": {}}]}}
    )
    assert document == {"spec": {"updateStrategy": {}, "keep": [{}]}}


def test_the_status_patch_clears_what_ended() -> None:
    from xlinefed.api.models import ConsensusStatus, StepStatus

    patch = objects.status_patch(ConsensusStatus(current_step=None, leader=None))
    assert patch["currentStep"] is None and patch["leader"] is None
    patch = objects.status_patch(ConsensusStatus(current_step=StepStatus(kind="Wait")))
    assert patch["currentStep"] == {"kind": "Wait", "reason": ""}


def test_the_status_patch_leaves_the_backup_schedules_field_alone() -> None:
    """status.backup is written by the backup schedule's daemon; a reconcile pass that
    sent it as null (or as what it read before) would wipe or rewind the last backup."""
    from xlinefed.api.models import BackupStatus, ConsensusStatus

    assert "backup" not in objects.status_patch(ConsensusStatus())
    assert "backup" not in objects.status_patch(ConsensusStatus(backup=BackupStatus(kept=2)))


def test_role_labels_follow_the_member_list() -> None:
    members = [
        MemberStatus(name="f-a-0", cluster="a", role=MemberRole.VOTER),
        MemberStatus(name="f-a-1", cluster="a", role=MemberRole.LEARNER),
        MemberStatus(name="f-a-2", cluster="a", role=None),
        MemberStatus(name="f-b-0", cluster="b", role=MemberRole.VOTER),
    ]
    assert manifests.role_labels(members, "a") == {
        "f-a-0": "voter",
        "f-a-1": "learner",
        "f-a-2": None,
    }


def test_an_object_applied_without_its_empty_maps_is_unchanged() -> None:
    # The apply leaves `engineArgs: {}` out; the stored object must still count as what
    # we would write, or every pass writes it again.
    wanted = body()
    assert wanted["spec"]["engineArgs"] == {}
    assert objects.unchanged(stored(wanted), wanted)
