"""Backups in a member cluster.

On demand: an `XlineBackup` names an XlineCluster of this namespace; the member operator
of that cluster takes the backup once and records the outcome in the XlineBackup's
status, an Event and a metric.

Scheduled: `spec.backup.schedule` is shared by every member cluster of the federation
(`backups.schedule.shared_pass`: state and lock in the federation's own store); each
member operator looks at it, the first to find it due takes it, and every XlineCluster's
`status.backup` shows the federation's last backup, whichever cluster took it.

The backup itself is `backups.run.take_backup`, as locally: one healthy member chosen
(a follower in a cluster other than the leader's when there is one), its snapshot streamed
into a multipart upload, committed only with its sha256. A failed attempt leaves every
earlier backup as it was and is retried with back-off; input that cannot work (no
destination, a Secret without the keys) fails at once, naming the field and the fix.
An operator that stops mid-backup takes it again when it starts (kopf marks the handler
done only when it returned): an aborted upload is never committed, so nothing half-written
is left for a restore to find.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import time
from typing import Any

import kopf

from xlinefed.api.loading import load_cluster
from xlinefed.api.models import (
    GROUP,
    VERSION,
    BackupDestination,
    BackupRunPhase,
    XlineBackup,
    XlineBackupStatus,
    XlineCluster,
)
from xlinefed.api.validation import SpecError
from xlinefed.backups import schedule
from xlinefed.backups.run import BackupError, BackupResult, MemberAddress, Target, take_backup
from xlinefed.backups.store import StoreError
from xlinefed.consensus.client import ConsensusClient
from xlinefed.consensus.errors import ConsensusError
from xlinefed.logs import get_logger
from xlinefed.operators import metrics
from xlinefed.operators.settings import MemberOperatorSettings
from xlinefed.platforms.kubernetes import objects, tls
from xlinefed.platforms.kubernetes.objects import KubernetesError
from xlinefed.reporting import now_rfc3339
from xlinefed.topology import desired_members

log = get_logger(__name__)

PLURAL = "xlinebackups"
CLUSTERS = "xlineclusters"
#: Attempts before the backup is Failed, and the first back-off (doubled each time): a
#: store that is down for half a minute still gets the backup.
ATTEMPTS = 5
FIRST_RETRY = 2.0
#: The keys an S3 credentials Secret holds (as `kubectl create secret generic
#: --from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=...` writes).
ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"


class BackupRefused(Exception):
    """Input that no retry fixes; the message names the field and the fix."""


def _status_document(status: XlineBackupStatus) -> dict[str, Any]:
    # Every field, unset ones as null: a merge patch then removes what no longer holds.
    return status.model_dump(mode="json", by_alias=True)


async def _write_status(api: Any, backup: XlineBackup, status: XlineBackupStatus) -> None:
    await objects.patch_status(api, PLURAL, backup.namespace, backup.name, _status_document(status))


async def _access_keys(
    api: Any, namespace: str, destination: BackupDestination, field: str
) -> tuple[str, str] | None:
    if destination.credentials_secret is None:
        return None  # the usual AWS environment of the operator's pod
    name = destination.credentials_secret
    secret = await objects.read_object(api, "v1", "Secret", namespace, name)
    if secret is None:
        raise BackupRefused(
            f"{field}.credentialsSecret: Secret {namespace}/{name} does not exist; create it "
            f"with the keys {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}"
        )
    data = secret.get("data") or {}
    missing = [k for k in (ACCESS_KEY_ID, SECRET_ACCESS_KEY) if not data.get(k)]
    if missing:
        raise BackupRefused(
            f"{field}.credentialsSecret: Secret {namespace}/{name} has no "
            f"{' or '.join(missing)}; add {', '.join(missing)} to it"
        )
    return (
        base64.b64decode(data[ACCESS_KEY_ID]).decode(),
        base64.b64decode(data[SECRET_ACCESS_KEY]).decode(),
    )


async def _cluster(api: Any, backup: XlineBackup, cluster_id: str) -> XlineCluster:
    body = await objects.read(api, CLUSTERS, backup.namespace, backup.spec.cluster)
    if body is None:
        raise BackupRefused(
            f"spec.cluster: no XlineCluster {backup.namespace}/{backup.spec.cluster}; name "
            "an XlineCluster of this namespace (kubectl get xlineclusters)"
        )
    try:
        cluster = load_cluster(body)
    except SpecError as error:
        raise BackupRefused(
            f"spec.cluster: XlineCluster {backup.spec.cluster} is invalid ({error})"
        ) from None
    if cluster.spec.cluster_id != cluster_id:
        raise BackupRefused(
            f"spec.cluster: {backup.spec.cluster} belongs to member cluster "
            f"{cluster.spec.cluster_id}, not {cluster_id}; create the XlineBackup there"
        )
    return cluster


def _destination(backup: XlineBackup, cluster: XlineCluster) -> tuple[BackupDestination, str]:
    if backup.spec.destination is not None:
        return backup.spec.destination, "spec.destination"
    if cluster.spec.backup is not None:
        return cluster.spec.backup.destination, "spec.cluster's spec.backup.destination"
    raise BackupRefused(
        f"spec.destination: not set, and XlineCluster {cluster.name} has no "
        "spec.backup.destination; set one of them (bucket, endpoint, credentialsSecret)"
    )


def _members(cluster: XlineCluster) -> list[MemberAddress]:
    """Every member of the federation, by the client URL the topology gives it."""
    return [MemberAddress(m.name, m.cluster, m.client_url) for m in desired_members(cluster)]


async def _attempt(api: Any, backup: XlineBackup, cluster_id: str) -> BackupResult:
    cluster = await _cluster(api, backup, cluster_id)
    destination, field = _destination(backup, cluster)
    keys = await _access_keys(api, backup.namespace, destination, field)
    cluster_tls = await tls.read(api, cluster, datetime.datetime.now(datetime.UTC))
    members = _members(cluster)
    return await take_backup(
        cluster.spec.federation,
        cluster.spec.engine,
        cluster.spec.version,
        members,
        Target.of(destination, keys),
        tls=cluster_tls.operator if cluster_tls else None,
    )


async def run(api: Any, backup: XlineBackup, cluster_id: str, body: Any) -> XlineBackupStatus:
    """Take the backup, retrying what may pass; returns (and has written) the final status."""
    started = now_rfc3339()
    clock = time.monotonic()
    status = XlineBackupStatus(phase=BackupRunPhase.RUNNING, started_at=started)
    await _write_status(api, backup, status)
    delay = FIRST_RETRY
    error: Exception | None = None
    for attempt in range(1, ATTEMPTS + 1):
        status = status.model_copy(update={"attempts": attempt})
        try:
            result = await _attempt(api, backup, cluster_id)
        except BackupRefused as refused:
            error = refused
            break
        except (BackupError, StoreError, KubernetesError, tls.CertificatesInvalid) as failed:
            error = failed
            log.warning(
                "backup attempt failed",
                backup=f"{backup.namespace}/{backup.name}",
                attempt=attempt,
                error=str(failed),
            )
            if attempt < ATTEMPTS:
                retry = f"attempt {attempt} of {ATTEMPTS} failed ({failed}); retry in {delay:g} s"
                await _write_status(api, backup, status.model_copy(update={"message": retry}))
                await asyncio.sleep(delay)
                delay *= 2
            continue
        seconds = round(time.monotonic() - clock, 3)
        done = status.model_copy(
            update={
                "phase": BackupRunPhase.SUCCEEDED,
                "uri": result.uri,
                "size_bytes": result.size,
                "sha256": result.sha256,
                "revision": result.revision,
                "member": result.member,
                "completed_at": now_rfc3339(),
                "duration_seconds": seconds,
                "message": None,
            }
        )
        await _write_status(api, backup, done)
        metrics.BACKUPS.labels("ok").inc()
        metrics.BACKUP_SECONDS.observe(seconds)
        metrics.BACKUP_BYTES.labels(backup.spec.cluster).set(result.size)
        kopf.info(
            body,
            reason="BackupSucceeded",
            message=f"{result.uri}: {result.size} bytes at revision {result.revision} "
            f"from {result.member} in {seconds:g} s",
        )
        return done
    failed_status = status.model_copy(
        update={
            "phase": BackupRunPhase.FAILED,
            "completed_at": now_rfc3339(),
            "duration_seconds": round(time.monotonic() - clock, 3),
            "message": str(error),
        }
    )
    await _write_status(api, backup, failed_status)
    metrics.BACKUPS.labels("failed").inc()
    kopf.warn(body, reason="BackupFailed", message=str(error))
    return failed_status


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
async def take(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    if (leadership := memo.get("leadership")) is not None:
        leadership.check()  # a standby does not back up; kopf retries it once it leads
    settings: MemberOperatorSettings = memo.settings
    try:
        backup = XlineBackup.model_validate(dict(body))
    except ValueError as error:
        log.warning("invalid XlineBackup", name=body["metadata"]["name"], error=str(error))
        return
    if backup.status is not None and backup.status.phase in (
        BackupRunPhase.SUCCEEDED,
        BackupRunPhase.FAILED,
    ):
        return  # taken once; a new backup is a new object
    await run(memo.api, backup, settings.cluster_id, body)


# --------------------------------------------------------------------------- scheduled


def _mine(body: kopf.Body, memo: kopf.Memo, **_: Any) -> bool:
    return bool(body.get("spec", {}).get("clusterId") == memo.settings.cluster_id)


async def schedule_pass(api: Any, body: kopf.Body, memo: kopf.Memo) -> float:
    """One look at the shared schedule from this cluster; returns seconds to wait."""
    if (leadership := memo.get("leadership")) is not None and not leadership.held():
        return schedule.SHARED_POLL  # the leading replica looks
    try:
        cluster = load_cluster(dict(body))
    except SpecError:
        return schedule.SHARED_POLL  # the reconcile loop reports it
    spec = cluster.spec.backup
    if spec is None or spec.schedule is None or not (body.get("status") or {}).get("formed"):
        return schedule.SHARED_POLL  # nothing scheduled, or nothing to back up yet
    field = "spec.backup.destination"
    try:
        keys = await _access_keys(api, cluster.namespace, spec.destination, field)
    except BackupRefused as refused:
        _warn_once(memo, body, str(refused))
        return schedule.SHARED_POLL
    cluster_tls = await tls.read(api, cluster, datetime.datetime.now(datetime.UTC))
    operator_tls = cluster_tls.operator if cluster_tls else None
    members = _members(cluster)
    async with ConsensusClient([m.client_url for m in members], tls=operator_tls) as client:
        looked = await schedule.shared_pass(
            client,
            holder=f"member-{memo.settings.cluster_id}",
            federation=cluster.spec.federation,
            engine=cluster.spec.engine,
            version=cluster.spec.version,
            spec=spec,
            members=members,
            target=Target.of(spec.destination, keys),
            tls=operator_tls,
        )
    shown = looked.state.status()
    if (body.get("status") or {}).get("backup") != shown.to_wire():
        # Every field, unset ones as null: an error that ended is cleared.
        whole = shown.model_dump(mode="json", by_alias=True)
        await objects.patch_status(
            api, CLUSTERS, cluster.namespace, cluster.name, {"backup": whole}
        )
    if (result := looked.result) is not None:
        metrics.BACKUPS.labels("ok").inc()
        metrics.BACKUP_SECONDS.observe(result.duration)
        metrics.BACKUP_BYTES.labels(cluster.name).set(result.size)
        kopf.info(
            body,
            reason="BackupSucceeded",
            message=f"scheduled: {result.uri}, {result.size} bytes at revision "
            f"{result.revision} from {result.member}; {result.kept} kept",
        )
    elif looked.error is not None:
        metrics.BACKUPS.labels("failed").inc()
        kopf.warn(body, reason="BackupFailed", message=f"scheduled: {looked.error}")
    return looked.wait


def _warn_once(memo: kopf.Memo, body: kopf.Body, message: str) -> None:
    seen: dict[str, str] = memo.setdefault("backup_warnings", {})
    key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
    if seen.get(key) != message:
        seen[key] = message
        log.warning("scheduled backup refused", resource=key, error=message)
        kopf.warn(body, reason="BackupFailed", message=message)


@kopf.daemon(GROUP, VERSION, CLUSTERS, when=_mine, cancellation_timeout=10.0)
async def backup_schedule(
    stopped: kopf.DaemonStopped, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    while not stopped:
        try:
            delay = await schedule_pass(memo.api, body, memo)
        except (ConsensusError, KubernetesError, tls.CertificatesInvalid) as error:
            log.warning("backup schedule pass failed", error=str(error))
            delay = schedule.SHARED_POLL
        await stopped.wait(max(delay, 0.2))
