"""The member operator: one per member cluster, reconciling its `XlineCluster` objects.

One kopf daemon per object runs the level-triggered loop: read the object afresh,
observe, plan, apply one step, patch status, and wait — briefly after a step, longer when
idle, at once when the spec changes. The decisions live in the planner, the effects in
the executor and the Kubernetes platform; this module only wires them to kopf.
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf

from xlinefed.api import conditions
from xlinefed.api.loading import load_cluster
from xlinefed.api.models import (
    GROUP,
    VERSION,
    ConsensusStatus,
    ScaleInPolicy,
    SecurityStatus,
    XlineCluster,
    spec_hash,
)
from xlinefed.api.validation import SpecError
from xlinefed.consensus.auth import enable_auth
from xlinefed.consensus.client import ChannelPool, ClientTLS, ConsensusClient
from xlinefed.executor import Executor, Outcome
from xlinefed.logs import get_logger
from xlinefed.operators import backups as _backups  # noqa: F401  (registers XlineBackup handlers)
from xlinefed.operators import metrics, wakeups
from xlinefed.operators.run import api_client
from xlinefed.operators.settings import MemberOperatorSettings
from xlinefed.planner import Wait
from xlinefed.planner.desired import desired_from
from xlinefed.platforms.kubernetes import manifests, objects, tls
from xlinefed.platforms.kubernetes.platform import KubernetesPlatform
from xlinefed.reporting import build_status, now_rfc3339, plain_text_warning

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
    #: One pool per XlineCluster ("namespace/name"): each may dial with its own certificate.
    memo.pools = {}


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if (api := memo.get("api")) is not None:
        await api.close()
    for pool in (memo.get("pools") or {}).values():
        await pool.close()


async def _channels(memo: kopf.Memo, key: str, tls: ClientTLS | None) -> ChannelPool:
    """The resource's pool, speaking with `tls`: when the operator's Secret rotated, the
    channels opened with the old certificate close and the next call dials anew."""
    pool: ChannelPool | None = memo.pools.get(key)
    if pool is None:
        pool = memo.pools[key] = ChannelPool(tls)
    elif pool.tls != tls:
        log.info("certificates changed; reconnecting", resource=key)
        await pool.use_tls(tls)
    return pool


async def _refuse(
    api: Any,
    body: dict[str, Any],
    previous: ConsensusStatus,
    problems: list[str],
    reason: str,
    message: str,
) -> None:
    """Nothing runs this pass; the status and one Event (per change of problems) say why."""
    if previous.warnings != problems:
        kopf.warn(body, reason=reason, message=message)
        refused = conditions.invalid_spec(
            previous, problems, now_rfc3339(), body["metadata"].get("generation"), reason=reason
        )
        meta = body["metadata"]
        await objects.patch_status(
            api, PLURAL, meta["namespace"], meta["name"], objects.status_patch(refused)
        )


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


#: A cluster without spec.tls (or with enabled: false) speaks plain text, and its status
#: says so.
KUBERNETES_PLAIN_TEXT = plain_text_warning(
    "name a kubernetes.io/tls Secret in spec.tls.peerSecretRef in every member cluster"
)


#: TLS without spec.tls.rootPasswordSecretRef: any certificate of the CA may write the
#: reserved prefix, and so stop every operator by holding the membership lock.
KUBERNETES_NO_AUTH = (
    "auth is off: any client with a certificate of the CA can write /xlinefed/ (the "
    "membership lock and the revision keys); name a Secret with a root password in "
    "spec.tls.rootPasswordSecretRef and give the operators a certificate with CN operator "
    "(docs/security.md)"
)


async def _auth_on(
    previous: ConsensusStatus,
    cluster_tls: tls.ClusterTLS | None,
    formed: bool,
    pool: ChannelPool,
    endpoints: list[str],
    resource: str,
) -> bool:
    """Whether auth is on after this pass: turned on once, when the federation has formed
    and spec.tls names a root password (`consensus.auth.enable_auth`, idempotent, so two
    clusters doing it at once, or a pass cut off half way, end the same)."""
    if cluster_tls is None or cluster_tls.root_password is None:
        return False
    if previous.security is not None and previous.security.auth:
        return True
    if not formed:
        return False
    async with ConsensusClient(endpoints, timeout=10.0, pool=pool) as client:
        await enable_auth(client, cluster_tls.root_password)
    log.info("auth enabled", resource=resource)
    return True


#: Members formed in plain text hold http peer URLs in the member list (and the other way
#: round): switching TLS would make every member unreachable by the name it joined with.
TLS_TOGGLE_REFUSED = (
    "spec.tls.enabled: cannot change once the federation has formed (the member list stores "
    "every peer URL with its scheme); put spec.tls back as it was, or restore a backup into "
    "a new federation to change it"
)


async def reconcile(body: dict[str, Any], memo: kopf.Memo) -> float:
    """One pass over a freshly read object; returns how long to wait before the next."""
    if (leadership := memo.get("leadership")) is not None:
        leadership.check()  # a replica that lost its Lease does not act
    settings, api = _settings(memo), memo.api
    cluster_id = settings.cluster_id
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    previous = ConsensusStatus.model_validate(body.get("status") or {})
    try:
        resource: XlineCluster = load_cluster(body)
    except SpecError as error:
        problems = [str(p) for p in error.problems]
        await _refuse(api, body, previous, problems, conditions.INVALID_SPEC, str(error))
        return 10.0
    wants_tls = bool(manifests.tls_secrets(resource))
    if previous.formed and previous.security is not None and previous.security.tls != wants_tls:
        # The local CLI refuses this change before it is stored (`change_problems`); here
        # the object is stored already, so it is refused where it would take effect.
        problem = TLS_TOGGLE_REFUSED
        await _refuse(api, body, previous, [problem], conditions.INVALID_SPEC, problem)
        return 10.0
    try:
        cluster_tls = await tls.read(api, resource, datetime.datetime.now(datetime.UTC))
    except tls.CertificatesInvalid as error:
        problems = [f"spec.tls: {error}"]
        await _refuse(api, body, previous, problems, conditions.CERTIFICATES_INVALID, problems[0])
        return 10.0
    if cluster_tls is not None and await tls.publish(api, resource, cluster_tls):
        log.info("certificates published to the members", resource=f"{namespace}/{name}")
    platform = KubernetesPlatform(api, resource, guard_image=settings.guard_image)
    pool = await _channels(
        memo, f"{namespace}/{name}", cluster_tls.operator if cluster_tls else None
    )
    executor = Executor(
        platform,
        resource.spec.federation,
        holder_id=f"member-{cluster_id}",
        channels=pool,
        may_act=leadership.check if leadership is not None else None,
    )
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
    warnings = status.warnings
    auth = await _auth_on(
        previous,
        cluster_tls,
        status.formed,
        pool,
        [platform.client_url(m.name) for m in status.members if m.role],
        f"{namespace}/{name}",
    )
    if cluster_tls is None:
        warnings = [*warnings, KUBERNETES_PLAIN_TEXT]
    elif not auth:
        warnings = [*warnings, KUBERNETES_NO_AUTH]
    status = status.model_copy(
        update={
            "endpoints": [*status.endpoints, manifests.client_endpoint(resource)],
            "warnings": warnings,
            # The backup schedule's own (operators/backups.py); never patched from here.
            "backup": previous.backup,
            "security": SecurityStatus(
                tls=cluster_tls is not None,
                auth=auth,
                ca_fingerprint=cluster_tls.ca_fingerprint if cluster_tls else None,
                certificates_expire=(
                    cluster_tls.expires.strftime("%Y-%m-%dT%H:%M:%SZ") if cluster_tls else None
                ),
            ),
        }
    )
    await platform.label_roles(manifests.role_labels(status.members, cluster_id))
    await platform.sync_template_metadata()
    observed = outcome.snapshot.observed
    await platform.ensure_disruption_budget(
        manifests.local_voters(status.members, cluster_id),
        manifests.voter_allowance(
            status.members if observed.member_list_known else [],
            cluster_id,
            silent=observed.inconclusive,
        ),
    )
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
    if (leadership := memo.get("leadership")) is not None:
        leadership.check()
    resource = load_cluster(dict(body))
    if (pool := memo.pools.pop(f"{resource.namespace}/{resource.name}", None)) is not None:
        await pool.close()
    platform = KubernetesPlatform(memo.api, resource, guard_image=_settings(memo).guard_image)
    members = list(await platform.known_members())
    for member in reversed(members):
        await platform.stop(member)
    if resource.spec.storage.on_scale_in is ScaleInPolicy.DELETE:
        for member in members:
            await platform.wipe_data(member)
    kopf.info(dict(body), reason="Deleted", message=f"stopped {len(members)} member(s)")
