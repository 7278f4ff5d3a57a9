"""The member operator: one per member cluster, reconciling its `XlineCluster` objects.

One kopf daemon per object runs the level-triggered loop: read the object afresh,
observe, plan, apply one step, patch status, and wait — briefly after a step, longer when
idle, at once when the spec changes. The decisions live in the planner, the effects in
the executor and the Kubernetes platform; this module only wires them to kopf.
"""

from __future__ import annotations

from typing import Any

import kopf

from xlinefed.api import conditions
from xlinefed.api.loading import load_cluster
from xlinefed.api.models import (
    GROUP,
    VERSION,
    ConsensusStatus,
    ScaleInPolicy,
    XlineCluster,
    spec_hash,
)
from xlinefed.api.validation import SpecError
from xlinefed.executor import Executor, Outcome
from xlinefed.logs import get_logger
from xlinefed.operators import metrics, wakeups
from xlinefed.operators.run import api_client
from xlinefed.operators.settings import MemberOperatorSettings
from xlinefed.planner import Wait
from xlinefed.planner.desired import desired_from
from xlinefed.platforms.kubernetes import manifests, objects
from xlinefed.platforms.kubernetes.platform import KubernetesPlatform
from xlinefed.reporting import build_status, now_rfc3339

log = get_logger(__name__)

PLURAL = "xlineclusters"


def _settings(memo: kopf.Memo) -> MemberOperatorSettings:
    settings: MemberOperatorSettings = memo.settings
    return settings


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.peering.standalone = True
    settings.persistence.finalizer = manifests.FINALIZER
    settings.posting.level = 20  # INFO and above become Kubernetes Events
    settings.watching.server_timeout = 60
    memo.api = await api_client(_settings(memo))
    if (port := _settings(memo).metrics_port) is not None:
        metrics.serve(port)


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if (api := memo.get("api")) is not None:
        await api.close()


def _mine(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    return bool(body.get("spec", {}).get("clusterId") == _settings(memo).cluster_id)


def _record_metrics(name: str, outcome: Outcome, status: ConsensusStatus) -> None:
    metrics.LAST_ERROR.labels(name).set(1 if outcome.error else 0)
    if outcome.applied:
        metrics.STEPS.labels(outcome.step.kind).inc()
        metrics.STEP_SECONDS.labels(outcome.step.kind).observe(outcome.seconds)
        metrics.LOCK_WAIT.observe(outcome.lock_wait)
    elif outcome.error:
        metrics.REFUSALS.labels(outcome.step.kind).inc()
    for role in ("voter", "learner"):
        for healthy in (True, False):
            count = sum(
                1
                for m in status.members
                if m.role is not None and m.role.value == role and m.healthy == healthy
            )
            metrics.MEMBERS.labels(name, role, str(healthy).lower()).set(count)


def _post_event(body: dict[str, Any], outcome: Outcome, previous: ConsensusStatus) -> None:
    step = outcome.step
    # A wait is news when its code changes, not when a number inside its text does
    # ("812 entries behind", then "640 …"): one Event per reason to wait.
    new_wait = isinstance(step, Wait) and (
        previous.current_step is None or previous.current_step.code != step.code.value
    )
    if isinstance(step, Wait):
        metrics.WAITS.labels(step.code.value).inc()
    if new_wait:
        log.info("waiting", resource=body["metadata"]["name"], code=step.code, reason=step.reason)
    if outcome.applied:
        kopf.info(body, reason=step.kind, message=step.describe())
    elif outcome.error:
        kopf.warn(body, reason=f"{step.kind}Failed", message=outcome.error)
    elif new_wait:
        kopf.info(body, reason=step.code.value, message=step.reason)


async def reconcile(body: dict[str, Any], memo: kopf.Memo) -> float:
    """One pass over a freshly read object; returns how long to wait before the next."""
    settings, api = _settings(memo), memo.api
    cluster_id = settings.cluster_id
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = ConsensusStatus.model_validate(body.get("status") or {})
    try:
        resource: XlineCluster = load_cluster(body)
    except SpecError as error:
        problems = [str(p) for p in error.problems]
        if previous.warnings != problems:
            kopf.warn(body, reason=conditions.INVALID_SPEC, message=str(error))
            refused = conditions.invalid_spec(
                previous, problems, now_rfc3339(), body["metadata"].get("generation")
            )
            await objects.patch_status(api, PLURAL, namespace, name, objects.status_patch(refused))
        return 10.0
    platform = KubernetesPlatform(api, resource, guard_image=settings.guard_image)
    executor = Executor(platform, resource.spec.federation, holder_id=f"member-{cluster_id}")
    desired = desired_from(resource, scope=frozenset({cluster_id}))
    try:
        await platform.ensure_service()
        outcome = await executor.reconcile_once(desired)
    except Exception as error:
        # The status must not keep claiming what the last good pass saw.
        failed = conditions.observation_failed(
            previous,
            str(error) or type(error).__name__,
            now_rfc3339(),
            resource.metadata.generation,
        )
        if failed != previous:
            await objects.patch_status(api, PLURAL, namespace, name, objects.status_patch(failed))
        raise
    status = build_status(
        desired,
        resource.spec.clusters,
        resource.metadata.generation,
        outcome,
        previous,
        observed_spec=spec_hash(resource.spec),
        client_url=platform.client_url,
    )
    status = status.model_copy(
        update={"endpoints": [*status.endpoints, manifests.client_endpoint(resource)]}
    )
    await platform.label_roles(manifests.role_labels(status.members, cluster_id))
    _record_metrics(f"{namespace}/{name}", outcome, status)
    _post_event(body, outcome, previous)
    if status != previous:
        await objects.patch_status(api, PLURAL, namespace, name, objects.status_patch(status))
    return outcome.requeue_after(settings.idle_interval, after_step=settings.after_step)


@kopf.daemon(GROUP, VERSION, PLURAL, when=_mine, cancellation_timeout=10.0)
async def reconcile_loop(
    stopped: kopf.DaemonStopped, namespace: str, name: str, logger: Any, memo: kopf.Memo, **_: Any
) -> None:
    await wakeups.reconcile_daemon(
        PLURAL, namespace, name, stopped=stopped, memo=memo, reconcile=reconcile, logger=logger
    )


@kopf.on.event(GROUP, VERSION, PLURAL, when=_mine)
async def spec_changed(namespace: str, name: str, body: kopf.Body, **_: Any) -> None:
    wakeups.notice(namespace, name, body.get("metadata", {}).get("generation"))


@kopf.on.delete(GROUP, VERSION, PLURAL, when=_mine)
async def teardown(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Pods go in reverse order; PVCs follow `storage.onScaleIn`."""
    resource = load_cluster(dict(body))
    platform = KubernetesPlatform(memo.api, resource, guard_image=_settings(memo).guard_image)
    members = list(await platform.known_members())
    for member in reversed(members):
        await platform.stop(member)
    if resource.spec.storage.on_scale_in is ScaleInPolicy.DELETE:
        for member in members:
            await platform.wipe_data(member)
    kopf.info(dict(body), reason="Deleted", message=f"stopped {len(members)} member(s)")
