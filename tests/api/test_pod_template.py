"""spec.podTemplate on the member pods (pure: the manifests and the revision). The real
apiserver's view is tests/e2e_kube/test_member_pods.py."""

from __future__ import annotations

import hashlib
import json
from types import SimpleNamespace
from typing import Any

from xlinefed.api.loading import parse
from xlinefed.api.models import XlineCluster
from xlinefed.planner.desired import template_revision
from xlinefed.planner.steps import StartMode
from xlinefed.platforms.kubernetes import manifests
from xlinefed.topology import Member


def _cluster(**pod_template: Any) -> XlineCluster:
    spec: dict[str, Any] = {
        "engine": "etcd",
        "version": "3.5.17",
        "federation": "f",
        "clusterId": "c1",
        "replicas": 3,
        "clusters": [{"id": "c1", "replicas": 3}],
    }
    if pod_template:
        spec["podTemplate"] = pod_template
    return parse(
        XlineCluster,
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineCluster",
            "metadata": {"name": "f-c1", "namespace": "ns", "uid": "u"},
            "spec": spec,
        },
    )


def _pod(resource: XlineCluster) -> dict[str, Any]:
    member = Member(
        "c1", 0, "f-c1-0", "f-c1-0.c1", "http://f-c1-0.c1:2380", "http://f-c1-0.c1:2379"
    )
    return manifests.pod(
        resource, member, StartMode.NEW, [("f-c1-0", member.peer_url)], "rev", "token"
    )


def test_without_a_pod_template_the_revision_is_what_it_was() -> None:
    """Upgrading the operator must not roll every member: the old formula, inline."""
    spec = _cluster().spec
    old = json.dumps(
        {"engine": "etcd", "image": None, "version": "3.5.17", "args": {}}, sort_keys=True
    )
    assert template_revision(spec) == hashlib.sha256(old.encode()).hexdigest()[:10]


def test_labels_and_annotations_leave_the_revision_alone_and_the_rest_changes_it() -> None:
    base = template_revision(_cluster().spec)
    assert template_revision(_cluster(labels={"team": "db"}).spec) == base
    assert template_revision(_cluster(annotations={"note": "x"}).spec) == base
    for restart in (
        {"resources": {"requests": {"cpu": "1"}}},
        {"nodeSelector": {"disk": "ssd"}},
        {"tolerations": [{"key": "dedicated", "operator": "Exists"}]},
        {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []}}},
        {"priorityClassName": "high"},
    ):
        assert template_revision(_cluster(**restart).spec) != base, restart


def test_defaults_without_a_pod_template() -> None:
    spec = _pod(_cluster())["spec"]
    assert spec["containers"][0]["resources"] == manifests.DEFAULT_RESOURCES
    assert set(spec["affinity"]) == {"podAntiAffinity"}
    assert "nodeSelector" not in spec and "tolerations" not in spec
    assert "priorityClassName" not in spec
    assert manifests.ANNOTATION_TEMPLATE_KEYS not in _pod(_cluster())["metadata"]["annotations"]


def test_overrides_reach_the_pod_and_ours_stay() -> None:
    resource = _cluster(
        labels={"team": "db"},
        annotations={"example.com/owner": "ops"},
        nodeSelector={"disk": "ssd"},
        tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db"}],
        affinity={
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                    ]
                }
            }
        },
        resources={"requests": {"cpu": "1", "memory": "1Gi"}},
        priorityClassName="db-critical",
    )
    pod = _pod(resource)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"]["team"] == "db"
    assert meta["labels"][manifests.LABEL_FEDERATION] == "f"
    assert meta["annotations"]["example.com/owner"] == "ops"
    assert json.loads(meta["annotations"][manifests.ANNOTATION_TEMPLATE_KEYS]) == {
        "labels": ["team"],
        "annotations": ["example.com/owner"],
    }
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "db"}]
    assert spec["priorityClassName"] == "db-critical"
    # Resources given replace the defaults as a whole (no default limit left behind).
    assert spec["containers"][0]["resources"] == {"requests": {"cpu": "1", "memory": "1Gi"}}
    # The node affinity given is added; the default anti-affinity stays.
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == ["a"]
    assert (
        spec["affinity"]["podAntiAffinity"]
        == manifests.default_affinity(resource)["podAntiAffinity"]
    )


def _meta(pod: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(**pod["metadata"])


def test_metadata_patch_adds_changes_and_removes_only_template_keys() -> None:
    old = _pod(_cluster(labels={"team": "db", "tier": "1"}, annotations={"a": "1"}))
    old["metadata"]["labels"]["someone-else"] = "keep"
    new = _cluster(labels={"team": "storage"})
    patch = manifests.metadata_patch(new, _meta(old))
    assert patch is not None
    assert patch["metadata"]["labels"] == {"team": "storage", "tier": None}
    annotations = patch["metadata"]["annotations"]
    assert annotations["a"] is None
    assert json.loads(annotations[manifests.ANNOTATION_TEMPLATE_KEYS]) == {
        "labels": ["team"],
        "annotations": [],
    }
    # Applied, nothing more is patched; an untouched pod of the same template neither.
    assert manifests.metadata_patch(new, _meta(_pod(new))) is None
    # All template keys removed: the record goes too.
    cleared = manifests.metadata_patch(_cluster(), _meta(_pod(new)))
    assert cleared == {
        "metadata": {
            "labels": {"team": None},
            "annotations": {manifests.ANNOTATION_TEMPLATE_KEYS: None},
        }
    }
    # A pod made before podTemplate existed is not written at all.
    assert manifests.metadata_patch(_cluster(), _meta(_pod(_cluster()))) is None
