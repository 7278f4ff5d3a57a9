"""Taking a backup, pruning old ones, fetching one and restoring it into a member's data
directory: the imperative shell around `policy` (which decides) and `store` (boto3).

A backup: observe every member (Maintenance.Status), let `policy.choose_source` pick one,
read its revision, stream its Maintenance.Snapshot straight into a multipart upload
(never held whole in memory), and commit the object with its sha256, revision, member
list and engine/version in its metadata. The revision recorded is the one the member
reported right before the stream began: every write at or below it is in the snapshot.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from xlinefed.api.engines import Engine
from xlinefed.api.models import BackupDestination, BackupRetention
from xlinefed.backups import policy
from xlinefed.backups.store import ObjectStore, StoreError
from xlinefed.consensus.client import ClientTLS, ConsensusClient, EndpointStatus
from xlinefed.consensus.errors import ConsensusError
from xlinefed.logs import get_logger

log = get_logger(__name__)


class BackupError(RuntimeError):
    """A backup could not be taken; the previous backups are untouched."""


class RestoreError(RuntimeError):
    """A backup cannot be restored; nothing was started."""


@dataclass(frozen=True)
class Target:
    """Where one backup goes: a bucket, a prefix, and how to reach the store."""

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    credentials_file: str | None = None
    #: (access key id, secret access key), as a Kubernetes Secret gives them.
    access_keys: tuple[str, str] | None = field(default=None, repr=False)

    @classmethod
    def of(
        cls, destination: BackupDestination, access_keys: tuple[str, str] | None = None
    ) -> Target:
        return cls(
            destination.bucket,
            destination.prefix,
            destination.endpoint,
            destination.region,
            destination.credentials_file,
            access_keys,
        )

    def with_uri(self, uri: str) -> Target:
        """This target with bucket and prefix from `s3://bucket/prefix` (`--to`)."""
        bucket, prefix = policy.parse_uri(uri)
        return replace(self, bucket=bucket, prefix=prefix)

    def store(self) -> ObjectStore:
        return ObjectStore(
            self.bucket,
            endpoint=self.endpoint,
            region=self.region,
            credentials_file=self.credentials_file,
            access_keys=self.access_keys,
        )


@dataclass(frozen=True)
class MemberAddress:
    name: str
    cluster: str
    client_url: str


@dataclass(frozen=True)
class BackupResult:
    uri: str
    key: str
    size: int
    sha256: str
    revision: int
    member: str
    started_at: str
    duration: float
    pruned: tuple[str, ...] = ()
    kept: int | None = None


async def _observe(
    client: ConsensusClient, members: Sequence[MemberAddress]
) -> list[policy.Candidate]:
    statuses = await client.statuses([m.client_url for m in members])
    candidates = []
    for m in members:
        s = statuses[m.client_url]
        if isinstance(s, EndpointStatus):
            candidates.append(
                policy.Candidate(
                    m.name,
                    m.cluster,
                    m.client_url,
                    answered=True,
                    is_learner=s.is_learner,
                    is_leader=s.is_leader,
                    applied_index=s.raft_applied_index,
                    errors=s.errors,
                )
            )
        else:
            candidates.append(
                policy.Candidate(m.name, m.cluster, m.client_url, False, False, False, 0)
            )
    return candidates


async def take_backup(
    federation: str,
    engine: Engine,
    version: str,
    members: Sequence[MemberAddress],
    target: Target,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_progress: Callable[[int, int | None], None] = lambda _sent, _total: None,
    tls: ClientTLS | None = None,
) -> BackupResult:
    """Take one backup of the federation to `target`. Raises BackupError or StoreError;
    on either, nothing under the target changed."""
    if engine is not Engine.ETCD:
        raise BackupError(
            f"backups of {engine.value} are not built yet (etcd only); see docs/backup.md"
        )
    if not members:
        raise BackupError(f"'{federation}' has no member with a client URL yet")
    started = now()
    clock = time.monotonic()
    store = target.store()
    async with ConsensusClient([m.client_url for m in members], tls=tls) as client:
        candidates = await _observe(client, members)
        source = policy.choose_source(candidates)
        if source is None:
            raise BackupError(
                f"no member of '{federation}' can be backed up: "
                f"{policy.no_source_reason(candidates)}; see `xlinefed local status`"
            )
        # The revision right before the stream: every write at or below it is included.
        try:
            status = await client.status(source.endpoint)
            member_list = await client.member_list_at(source.endpoint)
        except ConsensusError as error:
            raise BackupError(
                f"{source.name} stopped answering before its snapshot: {error}"
            ) from None
        listed = {m.name or f"unstarted-{m.id:x}": m.id for m in member_list}
        metadata = {
            policy.META_FEDERATION: federation,
            policy.META_ENGINE: engine.value,
            policy.META_VERSION: status.version or version,
            policy.META_REVISION: str(status.revision),
            policy.META_MEMBER: source.name,
            policy.META_MEMBERS: policy.members_metadata(listed),
            policy.META_TAKEN_AT: policy.rfc3339(started),
        }
        key = policy.backup_key(target.prefix, federation, started, status.revision)
        total = status.db_size or None
        log.info(
            "backup started",
            federation=federation,
            member=source.name,
            revision=status.revision,
            key=key,
        )

        async def chunks() -> AsyncIterator[bytes]:
            async for chunk in client.snapshot(source.endpoint):
                yield chunk.data

        try:
            uploaded = await store.upload_stream(
                key, chunks(), metadata, on_progress=lambda sent: on_progress(sent, total)
            )
        except StoreError:
            raise
        except (ConsensusError, OSError) as error:
            raise BackupError(
                f"snapshot of {source.name} failed ({type(error).__name__}: {error}); "
                "the upload was aborted and earlier backups are untouched"
            ) from error
    duration = time.monotonic() - clock
    log.info(
        "backup done",
        federation=federation,
        key=key,
        size=uploaded.size,
        seconds=round(duration, 2),
    )
    return BackupResult(
        uri=f"s3://{target.bucket}/{key}",
        key=key,
        size=uploaded.size,
        sha256=uploaded.sha256,
        revision=status.revision,
        member=source.name,
        started_at=policy.rfc3339(started),
        duration=duration,
    )


def _stored(
    info_key: str, size: int, metadata: Mapping[str, str], modified: datetime
) -> policy.StoredBackup | None:
    parsed = policy.parse_key(info_key)
    if parsed is None:
        return None
    taken, revision = parsed
    return policy.StoredBackup(
        info_key, taken, revision, size, metadata.get(policy.META_SHA256) or None
    )


async def list_backups(store: ObjectStore, prefix: str) -> list[policy.StoredBackup]:
    found = []
    for info in await store.list(prefix):
        stored = _stored(info.key, info.size, info.metadata, info.last_modified)
        if stored is not None:
            found.append(stored)
    return found


async def prune(
    target: Target, federation: str, retention: BackupRetention, now: datetime
) -> tuple[list[str], int]:
    """Delete what retention says; returns (deleted keys, complete backups kept)."""
    store = target.store()
    backups = await list_backups(store, policy.federation_prefix(target.prefix, federation))
    doomed = policy.to_prune(backups, retention, now)
    for key in doomed:
        await store.delete(key)
        log.info("backup pruned", federation=federation, key=key)
    kept = sum(1 for b in backups if b.sha256 and b.key not in doomed)
    return doomed, kept


# --------------------------------------------------------------------------- restore


@dataclass(frozen=True)
class Manifest:
    """A fetched, verified backup, as written next to the snapshot file."""

    uri: str
    sha256: str
    size: int
    revision: int
    engine: str
    version: str
    federation: str
    members: str

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def read(cls, path: Path) -> Manifest | None:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            return None


async def resolve(store: ObjectStore, bucket: str, key: str, revision: int | None) -> str:
    """The key of the backup a URI names: itself, or the newest one under a prefix."""
    if key.endswith("/"):
        try:
            return policy.choose_restore(await list_backups(store, key), revision).key
        except policy.NoBackup as error:
            raise RestoreError(f"s3://{bucket}/{key}: {error}") from None
    return key


async def fetch_verified(
    target: Target,
    uri: str,
    revision: int | None,
    path: Path,
    *,
    engine: Engine,
    on_progress: Callable[[int, int | None], None] = lambda _got, _total: None,
) -> Manifest:
    """Download the backup `uri` names to `path` and check it against its metadata.
    A missing checksum, another engine, a size or sha256 that does not match, or a
    revision above `revision` is refused with RestoreError (and `path` removed)."""
    bucket, key = policy.parse_uri(uri)
    store = replace(target, bucket=bucket, prefix="").store()
    key = await resolve(store, bucket, key, revision)
    full = f"s3://{bucket}/{key}"
    info = await store.head(key)
    meta = info.metadata
    expected = meta.get(policy.META_SHA256)
    if not expected:
        raise RestoreError(
            f"{full} has no {policy.META_SHA256} metadata: it is not a committed xlinefed "
            "backup (an upload that failed, or another program's object); pick another backup"
        )
    if meta.get(policy.META_ENGINE, engine.value) != engine.value:
        raise RestoreError(
            f"{full} is a backup of {meta.get(policy.META_ENGINE)}, not {engine.value}; "
            "restore it into a federation of the same engine"
        )
    backup_revision = int(meta.get(policy.META_REVISION, "0"))
    if revision is not None and backup_revision > revision:
        raise RestoreError(
            f"{full} is at revision {backup_revision}, above spec.fromBackup.revision "
            f"{revision}; name an older backup or its prefix"
        )
    declared = int(meta.get(policy.META_SIZE, info.size))
    size, sha256 = await store.download(
        key, path, on_progress=lambda got: on_progress(got, declared)
    )
    if size != declared or sha256 != expected:
        path.unlink(missing_ok=True)
        what = (
            f"is {size} bytes, its metadata says {declared} (truncated)"
            if size != declared
            else f"has sha256 {sha256}, its metadata says {expected} (corrupt)"
        )
        raise RestoreError(
            f"{full} {what}; refusing it, nothing was started. Restore from another "
            "backup (list them under the prefix)"
        )
    return Manifest(
        full,
        sha256,
        size,
        backup_revision,
        meta.get(policy.META_ENGINE, engine.value),
        meta.get(policy.META_VERSION, ""),
        meta.get(policy.META_FEDERATION, ""),
        meta.get(policy.META_MEMBERS, ""),
    )


def etcdctl_binary() -> str:
    found = shutil.which("etcdctl")
    if found is None:
        raise RestoreError(
            "restore needs etcdctl (`snapshot restore`); install it with "
            "`apt-get install etcd-client`"
        )
    return found


def restore_command(
    etcdctl: str,
    snapshot: Path,
    *,
    member: str,
    data_dir: Path,
    initial_cluster: Sequence[tuple[str, str]],
    cluster_token: str,
    peer_url: str,
) -> list[str]:
    """`etcdctl snapshot restore` (etcd 3.4; etcdutl in 3.5+) with the new member list."""
    return [
        etcdctl,
        "snapshot",
        "restore",
        str(snapshot),
        f"--name={member}",
        f"--data-dir={data_dir}",
        "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in initial_cluster),
        f"--initial-cluster-token={cluster_token}",
        f"--initial-advertise-peer-urls={peer_url}",
    ]


async def restore_data_dir(
    snapshot: Path,
    *,
    member: str,
    data_dir: Path,
    initial_cluster: Sequence[tuple[str, str]],
    cluster_token: str,
    peer_url: str,
) -> None:
    """Restore `snapshot` as `member`'s data directory (which must not hold data): into a
    sibling directory first, renamed into place when complete, so a crash midway leaves
    no half-restored member."""
    staging = data_dir.with_name(data_dir.name + ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    argv = restore_command(
        etcdctl_binary(),
        snapshot,
        member=member,
        data_dir=staging,
        initial_cluster=initial_cluster,
        cluster_token=cluster_token,
        peer_url=peer_url,
    )
    result = await asyncio.to_thread(
        subprocess.run,
        argv,
        capture_output=True,
        text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise RestoreError(
            f"etcdctl snapshot restore for {member} failed: "
            f"{(result.stderr or result.stdout).strip()[-500:]}"
        )
    shutil.rmtree(data_dir, ignore_errors=True)  # empty by contract (checked by the caller)
    staging.replace(data_dir)
    log.info("member restored from backup", member=member, data_dir=str(data_dir))
