"""Karmada really propagates: objects applied with a PropagationPolicy on the Karmada API
server appear in the chosen member only, and edits follow."""

from __future__ import annotations

import pytest

from tests.support.stack import KubeClient, Stack
from tests.support.stack._client import api_enabled
from tests.support.wait import wait_until

pytestmark = pytest.mark.stack

CRD_GROUP = "stack.xlinefed.io"


def _policy(name: str, namespace: str, api_version: str, kind: str, cluster: str) -> dict:
    return {
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "resourceSelectors": [{"apiVersion": api_version, "kind": kind, "name": name}],
            "placement": {"clusterAffinity": {"clusterNames": [cluster]}},
        },
    }


def _works_for(karmada: KubeClient, namespace: str, name: str) -> set[str]:
    """The member clusters Karmada made a Work for the object `namespace/name`."""
    clusters = set()
    for work in karmada.list("work.karmada.io/v1alpha1", "Work"):
        work_ns = work["metadata"]["namespace"]
        for manifest in work["spec"]["workload"]["manifests"]:
            meta = manifest.get("metadata", {})
            if meta.get("name") == name and meta.get("namespace") == namespace:
                clusters.add(work_ns.removeprefix("karmada-es-"))
    return clusters


def test_members_are_ready_push_clusters(stack: Stack, karmada: KubeClient) -> None:
    clusters = {
        c["metadata"]["name"]: c for c in karmada.list("cluster.karmada.io/v1alpha1", "Cluster")
    }
    assert sorted(clusters) == sorted(stack.members)
    for name, cluster in clusters.items():
        assert cluster["spec"]["syncMode"] == "Push"
        ready = [c for c in cluster["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", name
        assert cluster["status"]["kubernetesVersion"].startswith("v1.36")


def test_configmap_propagates_to_the_chosen_member_only(
    stack: Stack, karmada: KubeClient, namespace: str
) -> None:
    chosen, *others = stack.members
    members = {m: stack.member(m) for m in stack.members}
    karmada.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "greeting", "namespace": namespace},
            "data": {"text": "hello"},
        }
    )
    karmada.create(_policy("greeting", namespace, "v1", "ConfigMap", chosen))

    stored = wait_until(
        lambda: members[chosen].get_or_none("v1", "ConfigMap", "greeting", namespace),
        timeout=60,
        what=f"ConfigMap greeting in {chosen}",
    )
    assert stored["data"] == {"text": "hello"}
    # Karmada decided: one Work, for the chosen cluster; the others have no copy.
    assert _works_for(karmada, namespace, "greeting") == {chosen}
    for other in others:
        assert members[other].get_or_none("v1", "ConfigMap", "greeting", namespace) is None

    karmada.patch("v1", "ConfigMap", "greeting", {"data": {"text": "bye"}}, namespace)
    wait_until(
        lambda: (
            members[chosen].get("v1", "ConfigMap", "greeting", namespace)["data"]["text"] == "bye"
        ),
        timeout=60,
        what=f"edited ConfigMap in {chosen}",
    )
    for other in others:
        assert members[other].get_or_none("v1", "ConfigMap", "greeting", namespace) is None


def _widget_crd() -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"widgets.{CRD_GROUP}"},
        "spec": {
            "group": CRD_GROUP,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {
                                "spec": {
                                    "type": "object",
                                    "properties": {"size": {"type": "integer"}},
                                }
                            },
                        }
                    },
                }
            ],
        },
    }


def _established(client: KubeClient, name: str) -> bool:
    crd = client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in crd.get("status", {}).get("conditions", [])
    )


def test_custom_resource_propagates_to_the_chosen_member_only(
    stack: Stack, karmada: KubeClient, namespace: str
) -> None:
    chosen = stack.members[-1]
    others = stack.members[:-1]
    clients = [karmada] + [stack.member(m) for m in stack.members]
    crd = _widget_crd()
    for client in clients:
        client.apply(crd)
    for client in clients:
        wait_until(
            lambda c=client: _established(c, crd["metadata"]["name"]),
            timeout=30,
            what="Widget CRD established",
        )
    api_version = f"{CRD_GROUP}/v1"
    wait_until(
        lambda: api_enabled(karmada, chosen, api_version, "Widget"),
        timeout=180,
        what=f"Karmada to see the Widget API in {chosen}",
    )
    karmada.create(
        {
            "apiVersion": api_version,
            "kind": "Widget",
            "metadata": {"name": "w1", "namespace": namespace},
            "spec": {"size": 3},
        }
    )
    karmada.create(_policy("w1", namespace, api_version, "Widget", chosen))
    member = stack.member(chosen)
    stored = wait_until(
        lambda: member.get_or_none(api_version, "Widget", "w1", namespace),
        timeout=60,
        what=f"Widget w1 in {chosen}",
    )
    assert stored["spec"] == {"size": 3}
    assert _works_for(karmada, namespace, "w1") == {chosen}
    for other in others:
        assert stack.member(other).get_or_none(api_version, "Widget", "w1", namespace) is None

    karmada.patch(api_version, "Widget", "w1", {"spec": {"size": 5}}, namespace)
    wait_until(
        lambda: member.get(api_version, "Widget", "w1", namespace)["spec"]["size"] == 5,
        timeout=60,
        what=f"edited Widget in {chosen}",
    )


def test_a_pod_propagated_by_karmada_runs_on_the_member_and_reports_back(
    stack: Stack, karmada: KubeClient, namespace: str
) -> None:
    """Federation to process: Karmada places a Pod on one member, that member's hostlet runs
    a real etcd for it, and the status flows back to the Karmada object."""
    chosen = stack.members[1]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "fed-etcd", "namespace": namespace},
        "spec": {
            "containers": [
                {
                    "name": "etcd",
                    "image": "quay.io/coreos/etcd:v3.5.17",
                    "args": [
                        "--data-dir=/data/etcd",
                        "--listen-client-urls=http://0.0.0.0:2379",
                        "--advertise-client-urls=http://127.0.0.1:2379",
                        "--listen-peer-urls=http://0.0.0.0:2380",
                    ],
                    "readinessProbe": {"tcpSocket": {"port": 2379}, "periodSeconds": 1},
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    }
    karmada.create(pod)
    karmada.create(_policy("fed-etcd", namespace, "v1", "Pod", chosen))
    member = stack.member(chosen)

    def running_on_member() -> dict | None:
        found = member.get_or_none("v1", "Pod", "fed-etcd", namespace)
        if found and found.get("status", {}).get("phase") == "Running":
            return found
        return None

    placed = wait_until(running_on_member, timeout=60, what=f"fed-etcd Running in {chosen}")
    assert placed["spec"]["nodeName"] == stack.hostlet(chosen).node_name
    for other in stack.members:
        if other != chosen:
            assert stack.member(other).get_or_none("v1", "Pod", "fed-etcd", namespace) is None
    wait_until(
        lambda: (
            karmada.get("v1", "Pod", "fed-etcd", namespace).get("status", {}).get("phase")
            == "Running"
        ),
        timeout=60,
        what="Running status aggregated on the Karmada Pod",
    )
