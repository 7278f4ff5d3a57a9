"""The federation operator: on the Karmada API server, turns each `XlineFederation` into
one `XlineCluster` and one `PropagationPolicy` per member cluster, drains clusters that
leave, and aggregates the members' status into the federation's.

Like the member operator: one kopf daemon per object, level-triggered, thin. The
decisions are in `xlinefed.placement` (pure).
"""

from __future__ import annotations

from typing import Any

import kopf

from xlinefed.api import conditions
from xlinefed.api.loading import parse
from xlinefed.api.models import API_VERSION, GROUP, VERSION, ConsensusStatus, XlineFederation
from xlinefed.api.validation import SpecError, kubernetes_problems
from xlinefed.logs import get_logger
from xlinefed.operators import metrics, wakeups
from xlinefed.operators.run import api_client
from xlinefed.operators.settings import FederationOperatorSettings
from xlinefed.placement import LABEL_FEDERATION, ClusterView, plan_federation
from xlinefed.platforms.karmada.objects import KarmadaObjects
from xlinefed.platforms.kubernetes import objects
from xlinefed.platforms.kubernetes.objects import KubernetesError
from xlinefed.reporting import now_rfc3339

log = get_logger(__name__)

PLURAL = "xlinefederations"
CLUSTERS = "xlineclusters"
FINALIZER = "xlinefed.io/federation"


def _settings(memo: kopf.Memo) -> FederationOperatorSettings:
    settings: FederationOperatorSettings = memo.settings
    return settings


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = 20
    memo.api = await api_client(_settings(memo))
    await KarmadaObjects(memo.api).ensure_interpreter()


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if (api := memo.get("api")) is not None:
        await api.close()


def _views(items: dict[str, Any]) -> dict[str, ClusterView]:
    views = {}
    for item in items.values():
        cluster_id = item.get("spec", {}).get("clusterId")
        if cluster_id:
            raw = item.get("status")
            status = ConsensusStatus.model_validate(raw) if raw else None
            views[cluster_id] = ClusterView(cluster_id, status)
    return views


async def reconcile(body: dict[str, Any], memo: kopf.Memo) -> float:
    if (leadership := memo.get("leadership")) is not None:
        leadership.check()  # a replica that lost its Lease does not act
    resource = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
    try:
        delay = await _reconcile(body, memo)
    except _Refused as refused:
        # Nothing was placed: not an ok pass, and not an error a retry could clear.
        metrics.FEDERATION_PASSES.labels("invalid").inc()
        metrics.LAST_ERROR.labels(resource).set(1)
        return refused.delay
    except Exception:
        metrics.FEDERATION_PASSES.labels("error").inc()
        metrics.LAST_ERROR.labels(resource).set(1)
        raise
    metrics.FEDERATION_PASSES.labels("ok").inc()
    metrics.LAST_ERROR.labels(resource).set(0)
    return delay


class _Refused(Exception):
    """The spec was refused this pass (status and an Event say why)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay


async def _reconcile(body: dict[str, Any], memo: kopf.Memo) -> float:
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    api = memo.api
    previous = ConsensusStatus.model_validate(body.get("status") or {})
    try:
        federation = parse(XlineFederation, body)
        if problems := kubernetes_problems(federation.spec):
            raise SpecError(problems)
    except SpecError as error:
        problems = [str(p) for p in error.problems]
        if previous.warnings != problems:
            kopf.warn(body, reason=conditions.INVALID_SPEC, message=str(error))
            refused = conditions.invalid_spec(
                previous, problems, now_rfc3339(), body["metadata"].get("generation")
            )
            await objects.patch_status(api, PLURAL, namespace, name, objects.status_patch(refused))
        raise _Refused(10.0) from None
    karmada = KarmadaObjects(api)
    generation = federation.metadata.generation
    try:
        placed = await karmada.placed(federation)
    except KubernetesError as error:
        await _patch_failed(
            api,
            body,
            conditions.observation_failed(previous, str(error), now_rfc3339(), generation),
            previous,
        )
        raise
    existing = _views(placed.clusters)
    plan = plan_federation(federation, existing, now_rfc3339(), previous)
    written = 0
    try:
        for cluster in plan.clusters.values():
            written += await karmada.place(cluster, placed)
    except KubernetesError as error:
        # Say so where users look, not only in this log.
        await _patch_failed(
            api,
            body,
            conditions.apply_failed(plan.status, str(error), now_rfc3339(), generation),
            previous,
        )
        raise
    for cluster_id in plan.delete:
        await karmada.remove(namespace, f"{federation.name}-{cluster_id}")
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
    metrics.FEDERATION_WRITES.inc(written)
    metrics.FEDERATION_CLUSTERS.labels(f"{namespace}/{name}").set(len(plan.clusters))
    log.info("federation pass", federation=name, namespace=namespace, written=written)
    document = objects.status_patch(plan.status)
    if plan.status != previous:
        await objects.patch_status(api, PLURAL, namespace, name, document)
    return _settings(memo).idle_interval


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def reconcile_loop(
    stopped: kopf.DaemonStopped, namespace: str, name: str, logger: Any, memo: kopf.Memo, **_: Any
) -> None:
    await wakeups.reconcile_daemon(
        PLURAL, namespace, name, stopped=stopped, memo=memo, reconcile=reconcile, logger=logger
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
async def teardown(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Deleting a federation deletes its XlineClusters and policies; each member operator
    then stops its pods (its own finalizer) and keeps or deletes volumes by policy."""
    if (leadership := memo.get("leadership")) is not None:
        leadership.check()
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    karmada = KarmadaObjects(memo.api)
    selector = f"{LABEL_FEDERATION}={name}"
    stored = await objects.list_labelled(memo.api, API_VERSION, "XlineCluster", namespace, selector)
    for object_name in stored:
        await karmada.remove(namespace, object_name)
    kopf.info(dict(body), reason="Deleted", message="removed every XlineCluster")


async def _patch_failed(
    api: Any, body: dict[str, Any], status: ConsensusStatus, previous: ConsensusStatus
) -> None:
    if status != previous:
        meta = body["metadata"]
        await objects.patch_status(
            api, PLURAL, meta["namespace"], meta["name"], objects.status_patch(status)
        )
