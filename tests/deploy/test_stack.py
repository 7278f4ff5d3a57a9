"""The install manifests against the real stack: every object is accepted by a real
kube-apiserver (member tier) and by Karmada (federation tier, whose webhook validates the
interpreter's Lua), the RBAC grants what it should and no more, and the interpreter really
brings a member's XlineCluster status back to Karmada."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.stack import ApiError, KubeClient, Stack
from tests.support.stack._client import api_enabled
from tests.support.wait import wait_until
from xlinefed import install

pytestmark = pytest.mark.stack

API = "xlinefed.io/v1alpha1"
NAMESPACE = "xlinefed-system"


def _established(client: KubeClient, name: str) -> bool:
    crd = client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
    return any(
        c["type"] == "Established" and c["status"] == "True"
        for c in crd.get("status", {}).get("conditions", [])
    )


def _apply_all(client: KubeClient, docs: list[dict[str, Any]], *, dry_run: set[str]) -> None:
    """Server-side apply each object (dry run for the kinds in `dry_run`)."""
    for doc in docs:
        if doc["kind"] in dry_run:
            meta = doc["metadata"]
            path = client.path(doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace"))
            answer = client.request(
                "PATCH",
                path,
                doc,
                params={"fieldManager": "xlinefed-deploy-test", "force": True, "dryRun": "All"},
                content_type="application/apply-patch+yaml",
            )
        else:
            answer = client.apply(doc, manager="xlinefed-deploy-test")
        assert answer["kind"] == doc["kind"]
        if doc["kind"] == "CustomResourceDefinition":
            name = doc["metadata"]["name"]
            wait_until(lambda n=name: _established(client, n), timeout=30, what=f"{name} ready")


def _allowed(
    client: KubeClient, user: str, verb: str, resource: str, group: str = "", sub: str = ""
) -> bool:
    review = client.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": user,
                "groups": ["system:serviceaccounts", "system:authenticated"],
                "resourceAttributes": {
                    "namespace": "some-namespace",
                    "verb": verb,
                    "group": group,
                    "resource": resource,
                    "subresource": sub,
                },
            },
        },
    )
    return bool(review["status"].get("allowed"))


def test_member_tier_is_accepted_and_grants_least_privilege(stack: Stack) -> None:
    member = stack.member(stack.members[0])
    docs = install.member_manifests(stack.members[0])
    # The Deployment only as a dry run: no image of the operator exists on the hostlets.
    _apply_all(member, docs, dry_run={"Deployment"})
    stored = member.get("v1", "ConfigMap", install.MEMBER_OPERATOR, NAMESPACE)
    assert stored["data"] == {"clusterId": stack.members[0]}
    assert member.get_or_none("apps/v1", "Deployment", install.MEMBER_OPERATOR, NAMESPACE) is None

    user = f"system:serviceaccount:{NAMESPACE}:{install.MEMBER_OPERATOR}"
    assert _allowed(member, user, "create", "pods")
    assert _allowed(member, user, "delete", "persistentvolumeclaims")
    assert _allowed(member, user, "patch", "xlineclusters", "xlinefed.io")
    assert _allowed(member, user, "patch", "xlineclusters", "xlinefed.io", "status")
    assert _allowed(member, user, "create", "serviceexports", "multicluster.x-k8s.io")
    assert _allowed(member, user, "create", "events")
    # Role labels and spec.podTemplate's labels/annotations, patched onto running pods.
    assert _allowed(member, user, "patch", "pods")
    # The voters' disruption budget, applied server-side.
    assert _allowed(member, user, "patch", "poddisruptionbudgets", "policy")
    assert _allowed(member, user, "create", "poddisruptionbudgets", "policy")
    assert not _allowed(member, user, "delete", "poddisruptionbudgets", "policy")
    # Leader election (docs/operators.md): read, create and replace its Lease, no more.
    assert _allowed(member, user, "update", "leases", "coordination.k8s.io")
    assert _allowed(member, user, "create", "leases", "coordination.k8s.io")
    assert not _allowed(member, user, "delete", "leases", "coordination.k8s.io")
    # TLS (docs/security.md): it reads the Secrets spec.tls names and writes its checked
    # copies; it may not list, watch or delete anyone's Secrets.
    assert _allowed(member, user, "get", "secrets")
    assert _allowed(member, user, "create", "secrets")
    assert _allowed(member, user, "patch", "secrets")
    assert not _allowed(member, user, "list", "secrets")
    assert not _allowed(member, user, "watch", "secrets")
    assert not _allowed(member, user, "delete", "secrets")
    # On-demand backups: taken and their status written, never created or deleted.
    assert _allowed(member, user, "patch", "xlinebackups", "xlinefed.io", "status")
    assert _allowed(member, user, "watch", "xlinebackups", "xlinefed.io")
    assert not _allowed(member, user, "delete", "xlinebackups", "xlinefed.io")
    assert not _allowed(member, user, "delete", "xlineclusters", "xlinefed.io")
    assert not _allowed(member, user, "delete", "services")
    assert not _allowed(member, user, "create", "deployments", "apps")


def test_federation_tier_is_accepted_by_karmada(stack: Stack, karmada: KubeClient) -> None:
    _apply_all(karmada, install.federation_karmada_manifests(), dry_run=set())
    stored = karmada.get(
        "config.karmada.io/v1alpha1", "ResourceInterpreterCustomization", "xlinefed-xlinecluster"
    )
    assert set(stored["spec"]["customizations"]) == set(install.INTERPRETER_LUA)
    user = f"system:serviceaccount:{NAMESPACE}:{install.FEDERATION_OPERATOR}"
    assert _allowed(karmada, user, "create", "xlineclusters", "xlinefed.io")
    assert _allowed(karmada, user, "delete", "propagationpolicies", "policy.karmada.io")
    assert _allowed(karmada, user, "patch", "xlinefederations", "xlinefed.io", "status")
    assert _allowed(karmada, user, "update", "leases", "coordination.k8s.io")
    assert not _allowed(karmada, user, "delete", "leases", "coordination.k8s.io")
    assert not _allowed(karmada, user, "get", "secrets")
    assert not _allowed(karmada, user, "create", "clusterpropagationpolicies", "policy.karmada.io")
    # The operator's own Deployment and metrics Service go to the cluster that runs it; a
    # dry run here checks that an apiserver accepts them.
    _apply_all(
        karmada, install.federation_operator_manifests()[1:], dry_run={"Deployment", "Service"}
    )


def test_karmada_rejects_broken_lua(karmada: KubeClient) -> None:
    """The webhook really compiles the scripts (so the previous test's acceptance means
    something). Another kind is targeted: two customizations of one kind and operation
    conflict, whatever their scripts."""
    ric = install.interpreter_customization()
    ric["metadata"]["name"] = f"xlinefed-broken-{uuid.uuid4().hex[:6]}"
    ric["spec"]["target"] = {"apiVersion": "deploytest.xlinefed.io/v1", "kind": "Broken"}
    ric["spec"]["customizations"]["healthInterpretation"]["luaScript"] = (
        "function InterpretHealth(observedObj)\n  return observedObj.status.phase ==\nend\n"
    )
    with pytest.raises(ApiError) as refused:
        karmada.create(ric)
    assert "Lua script error" in str(refused.value)
    name = ric["metadata"]["name"]
    kind = "ResourceInterpreterCustomization"
    assert karmada.get_or_none("config.karmada.io/v1alpha1", kind, name) is None


def test_member_status_comes_back_through_the_interpreter(
    stack: Stack, karmada: KubeClient, namespace: str
) -> None:
    """The CRD propagates to the members, an XlineCluster placed in one member has its
    status (written there, as the member operator does) aggregated onto Karmada's copy,
    and Karmada judges it healthy once the phase is Available."""
    _apply_all(karmada, install.federation_karmada_manifests(), dry_run=set())
    chosen = stack.members[0]
    member = stack.member(chosen)
    for name in stack.members:
        wait_until(
            lambda n=name: _established(stack.member(n), "xlineclusters.xlinefed.io"),
            timeout=60,
            what=f"the XlineCluster CRD propagated to {name}",
        )
    wait_until(
        lambda: api_enabled(karmada, chosen, API, "XlineCluster"),
        timeout=180,
        what=f"Karmada to see the XlineCluster API in {chosen}",
    )
    name = "deploytest-" + chosen
    # Zero replicas here: a member operator that happens to run must have nothing to do.
    karmada.create(
        {
            "apiVersion": API,
            "kind": "XlineCluster",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "engine": "etcd",
                "version": "3.4.23",
                "federation": "deploytest",
                "clusterId": chosen,
                "replicas": 0,
                "clusters": [{"id": chosen, "replicas": 0}, {"id": "elsewhere", "replicas": 1}],
            },
        }
    )
    karmada.create(
        {
            "apiVersion": "policy.karmada.io/v1alpha1",
            "kind": "PropagationPolicy",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "resourceSelectors": [{"apiVersion": API, "kind": "XlineCluster", "name": name}],
                "placement": {"clusterAffinity": {"clusterNames": [chosen]}},
            },
        }
    )
    wait_until(
        lambda: member.get_or_none(API, "XlineCluster", name, namespace),
        # Karmada notices a newly installed resource type on its next discovery pass; on a
        # loaded machine that can take over a minute.
        timeout=180,
        what=f"the XlineCluster in {chosen}",
    )
    status = {"phase": "Available", "leader": "deploytest-elsewhere-0", "ready": "1/1"}
    member.patch(API, "XlineCluster", name, {"status": status}, namespace, subresource="status")

    def aggregated() -> dict[str, Any] | None:
        found = karmada.get(API, "XlineCluster", name, namespace).get("status") or {}
        return found if found.get("phase") == "Available" else None

    back = wait_until(aggregated, timeout=60, what="the member's status on Karmada's copy")
    assert back["leader"] == "deploytest-elsewhere-0"
    assert back["ready"] == "1/1"

    def health() -> str | None:
        for binding in karmada.list("work.karmada.io/v1alpha2", "ResourceBinding", namespace):
            if binding["spec"]["resource"].get("name") == name:
                items = binding.get("status", {}).get("aggregatedStatus", [])
                return items[0].get("health") if items else None
        return None

    assert wait_until(lambda: health() == "Healthy", timeout=60, what="Healthy binding")
    # And back to Unhealthy when the member says otherwise.
    member.patch(
        API,
        "XlineCluster",
        name,
        {"status": {"phase": "Degraded"}},
        namespace,
        subresource="status",
    )
    wait_until(lambda: health() == "Unhealthy", timeout=60, what="Unhealthy binding")
    # Binding health and the aggregated copy are updated by different Karmada controllers.
    wait_until(
        lambda: karmada.get(API, "XlineCluster", name, namespace)["status"]["phase"] == "Degraded",
        timeout=60,
        what="the Degraded phase aggregated onto Karmada's copy",
    )
    karmada.delete("policy.karmada.io/v1alpha1", "PropagationPolicy", name, namespace)
    karmada.delete(API, "XlineCluster", name, namespace)
