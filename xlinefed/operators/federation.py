"""The federation operator: on the Karmada API server, turns each `XlineFederation` into
one `XlineCluster` and one `PropagationPolicy` per member cluster, drains clusters that
leave, and aggregates the members' status into the federation's.

Like the member operator: one kopf daemon per object, level-triggered, thin. The
decisions are in `xlinefed.federation` (pure).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from xlinefed import render
from xlinefed.api.loading import parse
from xlinefed.api.models import GROUP, VERSION, ConsensusStatus, XlineFederation
from xlinefed.api.validation import SpecError
from xlinefed.federation import LABEL_FEDERATION, ClusterView, plan_federation
from xlinefed.logs import get_logger
from xlinefed.operators import wakeups
from xlinefed.platforms.karmada import manifests
from xlinefed.platforms.kubernetes import objects

log = get_logger(__name__)

PLURAL = "xlinefederations"
CLUSTERS = "xlineclusters"
FINALIZER = "xlinefed.io/federation"
#: Seconds between passes while nothing changes.
#: Seconds between passes when no watch event wakes one earlier (a safety net: spec
#: changes and every member's status change wake the federation at once).
IDLE_INTERVAL = float(os.environ.get("XLINEFED_FEDERATION_RESYNC", "30"))
#: Longest one reconcile pass may take (a step with its retries included), seconds.
PASS_TIMEOUT = 120.0

_api: dict[str, client.ApiClient] = {}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = 20
    configuration = client.Configuration()
    if kubeconfig := os.environ.get("KUBECONFIG"):
        await config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    else:
        config.load_incluster_config(client_configuration=configuration)
    _api["api"] = client.ApiClient(configuration)
    # The same object `xlinefed render federation` installs; applied here too so that
    # member status flows back even where only the operator was deployed.
    await _apply_cluster_scoped(
        render.interpreter_customization(),
        "config.karmada.io",
        "v1alpha1",
        "resourceinterpretercustomizations",
    )


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if (api := _api.pop("api", None)) is not None:
        await api.close()


def _custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(_api["api"])


async def _apply_cluster_scoped(
    body: dict[str, Any], group: str, version: str, plural: str
) -> None:
    try:
        await _custom().create_cluster_custom_object(group, version, plural, body)
    except ApiException as error:
        if error.status != 409:
            raise
        await _custom().patch_cluster_custom_object(
            group,
            version,
            plural,
            body["metadata"]["name"],
            body,
            _content_type=objects.MERGE_PATCH,
        )


async def _apply(body: dict[str, Any], group: str, version: str, plural: str) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        await _custom().create_namespaced_custom_object(group, version, namespace, plural, body)
    except ApiException as error:
        if error.status != 409:
            raise
        await _custom().patch_namespaced_custom_object(
            group, version, namespace, plural, name, body, _content_type=objects.MERGE_PATCH
        )


async def _delete(group: str, version: str, namespace: str, plural: str, name: str) -> None:
    try:
        await _custom().delete_namespaced_custom_object(group, version, namespace, plural, name)
    except ApiException as error:
        if error.status != 404:
            raise


async def _listed(federation: XlineFederation, group: str, plural: str) -> dict[str, Any]:
    answer = await _custom().list_namespaced_custom_object(
        group,
        "v1alpha1",
        federation.namespace,
        plural,
        label_selector=f"{LABEL_FEDERATION}={federation.name}",
    )
    return {item["metadata"]["name"]: item for item in answer.get("items", [])}


def _views(items: dict[str, Any]) -> dict[str, ClusterView]:
    views = {}
    for item in items.values():
        cluster_id = item.get("spec", {}).get("clusterId")
        if cluster_id:
            raw = item.get("status")
            status = ConsensusStatus.model_validate(raw) if raw else None
            views[cluster_id] = ClusterView(cluster_id, status)
    return views


def _unchanged(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Writes are skipped when the stored object already says what we would write."""
    if current is None:
        return False
    labels = current["metadata"].get("labels") or {}
    return current.get("spec") == wanted["spec"] and all(
        labels.get(k) == v for k, v in wanted["metadata"].get("labels", {}).items()
    )


async def reconcile(body: dict[str, Any]) -> float:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = ConsensusStatus.model_validate(body.get("status") or {})
    try:
        federation = parse(XlineFederation, body)
    except SpecError as error:
        problems = [str(p) for p in error.problems]
        if previous.warnings != problems:
            kopf.warn(body, reason="InvalidSpec", message=str(error))
            await _patch_status(namespace, name, {"phase": "Failed", "warnings": problems})
        return 10.0
    stored = await _listed(federation, GROUP, CLUSTERS)
    policies = await _listed(federation, "policy.karmada.io", "propagationpolicies")
    existing = _views(stored)
    plan = plan_federation(federation, existing, _now(), previous)
    for cluster in plan.clusters.values():
        wanted = manifests.xline_cluster(cluster)
        if not _unchanged(stored.get(cluster.name), wanted):
            await _apply(wanted, GROUP, VERSION, CLUSTERS)
        policy = manifests.propagation_policy(cluster)
        if not _unchanged(policies.get(cluster.name), policy):
            await _apply(policy, "policy.karmada.io", "v1alpha1", "propagationpolicies")
    for cluster_id in plan.delete:
        object_name = f"{federation.name}-{cluster_id}"
        await _delete(GROUP, VERSION, namespace, CLUSTERS, object_name)
        await _delete(
            "policy.karmada.io", "v1alpha1", namespace, "propagationpolicies", object_name
        )
        kopf.info(
            body,
            reason="ClusterRemoved",
            message=f"{cluster_id} drained and removed from the federation",
        )
    new_clusters = set(plan.clusters) - set(existing)
    if new_clusters:
        kopf.info(
            body,
            reason="ClustersPlaced",
            message=f"placed XlineClusters in {', '.join(sorted(new_clusters))}",
        )
    document = plan.status.to_wire()
    if plan.status.current_step is None:
        document["currentStep"] = None
    if plan.status != previous:
        await _patch_status(namespace, name, document)
    return IDLE_INTERVAL


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def reconcile_loop(
    stopped: kopf.DaemonStopped, namespace: str, name: str, logger: Any, **_: Any
) -> None:
    await wakeups.reconcile_forever(
        namespace,
        name,
        stopped=stopped,
        read=_read,
        reconcile=reconcile,
        idle=IDLE_INTERVAL,
        pass_timeout=PASS_TIMEOUT,
        logger=logger,
    )


@kopf.on.event(GROUP, VERSION, PLURAL)
async def spec_changed(namespace: str, name: str, body: kopf.Body, **_: Any) -> None:
    wakeups.notice(namespace, name, body.get("metadata", {}).get("generation"))


@kopf.on.event(GROUP, VERSION, CLUSTERS, labels={LABEL_FEDERATION: kopf.PRESENT})
async def member_changed(namespace: str, body: kopf.Body, **_: Any) -> None:
    """A member cluster's status (or its copy) changed: its federation re-aggregates."""
    federation = body["metadata"]["labels"][LABEL_FEDERATION]
    source = f"cluster/{body['metadata']['name']}"
    wakeups.notice(namespace, federation, body["metadata"].get("resourceVersion"), source)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def teardown(body: kopf.Body, **_: Any) -> None:
    """Deleting a federation deletes its XlineClusters and policies; each member operator
    then stops its pods (its own finalizer) and keeps or deletes volumes by policy."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    answer = await _custom().list_namespaced_custom_object(
        GROUP, VERSION, namespace, CLUSTERS, label_selector=f"{LABEL_FEDERATION}={name}"
    )
    for item in answer.get("items", []):
        object_name = item["metadata"]["name"]
        await _delete(GROUP, VERSION, namespace, CLUSTERS, object_name)
        await _delete(
            "policy.karmada.io", "v1alpha1", namespace, "propagationpolicies", object_name
        )
    kopf.info(dict(body), reason="Deleted", message="removed every XlineCluster")


async def _read(namespace: str, name: str) -> dict[str, Any] | None:
    return await objects.read(_api["api"], PLURAL, namespace, name)


async def _patch_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    await objects.patch_status(_api["api"], PLURAL, namespace, name, status)
