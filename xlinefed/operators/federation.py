"""The federation operator: on the Karmada API server, turns each `XlineFederation` into
one `XlineCluster` and one `PropagationPolicy` per member cluster, drains clusters that
leave, and aggregates the members' status into the federation's.

Like the member operator: one kopf daemon per object, level-triggered, thin. The
decisions are in `xlinefed.federation` (pure).
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from xlinefed.api.loading import parse
from xlinefed.api.models import GROUP, VERSION, ConsensusStatus, XlineFederation
from xlinefed.api.validation import SpecError
from xlinefed.federation import LABEL_FEDERATION, ClusterView, plan_federation
from xlinefed.logs import get_logger
from xlinefed.operators import wakeups
from xlinefed.platforms.karmada import manifests

log = get_logger(__name__)

PLURAL = "xlinefederations"
CLUSTERS = "xlineclusters"
MERGE_PATCH = "application/merge-patch+json"
FINALIZER = "xlinefed.io/federation"
#: Seconds between passes while nothing changes.
IDLE_INTERVAL = float(os.environ.get("XLINEFED_RECONCILE_INTERVAL", "2"))
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
    await _apply_cluster_scoped(
        manifests.interpreter_customization(),
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
            group, version, plural, body["metadata"]["name"], body, _content_type=MERGE_PATCH
        )


async def _apply(body: dict[str, Any], group: str, version: str, plural: str) -> None:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    try:
        await _custom().create_namespaced_custom_object(group, version, namespace, plural, body)
    except ApiException as error:
        if error.status != 409:
            raise
        await _custom().patch_namespaced_custom_object(
            group, version, namespace, plural, name, body, _content_type=MERGE_PATCH
        )


async def _delete(group: str, version: str, namespace: str, plural: str, name: str) -> None:
    try:
        await _custom().delete_namespaced_custom_object(group, version, namespace, plural, name)
    except ApiException as error:
        if error.status != 404:
            raise


async def _existing(federation: XlineFederation) -> dict[str, ClusterView]:
    answer = await _custom().list_namespaced_custom_object(
        GROUP,
        VERSION,
        federation.namespace,
        CLUSTERS,
        label_selector=f"{LABEL_FEDERATION}={federation.name}",
    )
    views = {}
    for item in answer.get("items", []):
        cluster_id = item.get("spec", {}).get("clusterId")
        if not cluster_id:
            continue
        raw = item.get("status")
        status = ConsensusStatus.model_validate(raw) if raw else None
        views[cluster_id] = ClusterView(cluster_id, status)
    return views


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
    existing = await _existing(federation)
    plan = plan_federation(federation, existing, _now(), previous)
    for cluster in plan.clusters.values():
        await _apply(manifests.xline_cluster(cluster), GROUP, VERSION, CLUSTERS)
        await _apply(
            manifests.propagation_policy(cluster),
            "policy.karmada.io",
            "v1alpha1",
            "propagationpolicies",
        )
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
    return IDLE_INTERVAL if plan.status.phase.value == "Available" else 1.0


async def _patch_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    await _custom().patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, {"status": status}, _content_type=MERGE_PATCH
    )


async def _read(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(
            await _custom().get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def reconcile_loop(
    stopped: kopf.DaemonStopped, namespace: str, name: str, logger: Any, **_: Any
) -> None:
    try:
        while not stopped:
            delay = IDLE_INTERVAL
            try:
                body = await _read(namespace, name)
                if body is None or body["metadata"].get("deletionTimestamp"):
                    return
                # A pass that hangs (an API server or member that never answers) is cut
                # off and retried, rather than silently stalling this resource forever.
                delay = await asyncio.wait_for(reconcile(body), timeout=PASS_TIMEOUT)
            except TimeoutError:
                logger.error(f"reconcile pass took over {PASS_TIMEOUT:.0f}s; retrying")
            except Exception as error:
                logger.exception(f"reconcile failed: {error}")
            await wakeups.sleep(namespace, name, delay)
    finally:
        wakeups.forget(namespace, name)


@kopf.on.event(GROUP, VERSION, PLURAL)
async def spec_changed(namespace: str, name: str, body: kopf.Body, **_: Any) -> None:
    wakeups.notice(namespace, name, body.get("metadata", {}).get("generation"))


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
