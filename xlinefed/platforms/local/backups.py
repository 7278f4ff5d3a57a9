"""Backups and restore of a local federation: the local adapter of `xlinefed.backups`.

```
<root>/<federation>/
  backup.json          what backups last did (status.backup), written under backup.lock
  backup.lock          one backup at a time per federation (CLI and controller alike)
  restore/snapshot.db  the verified backup a new federation starts from
  restore/manifest.json  its checksum, revision and origin
```
The controller runs `schedule_loop` beside its reconcile loop: it takes a backup when
`policy.next_attempt` says one is due, prunes by retention after each success, and after
a failure retries with back-off (the previous backups are never touched by a failure).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlinefed.api.models import BackupStatus, XlineFederation
from xlinefed.backups import policy
from xlinefed.backups.run import (
    BackupError,
    BackupResult,
    Manifest,
    MemberAddress,
    RestoreError,
    Target,
    fetch_verified,
    prune,
    restore_data_dir,
    take_backup,
)
from xlinefed.backups.store import StoreError
from xlinefed.logs import get_logger
from xlinefed.platforms.local.platform import loopback_url
from xlinefed.platforms.local.state import FederationDir, read_json, write_atomic

log = get_logger(__name__)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(value: str | None) -> datetime | None:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC) if value else None


@dataclass
class BackupState:
    """backup.json: what the backups last did, and when the schedule last ran."""

    last_success: str | None = None
    last_uri: str | None = None
    last_size_bytes: int | None = None
    last_duration_seconds: float | None = None
    last_revision: int | None = None
    last_member: str | None = None
    last_failure: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    #: Start of the last attempt the schedule made (its next run counts from here).
    last_scheduled_run: str | None = None
    next_run: str | None = None
    kept: int | None = None

    @classmethod
    def read(cls, directory: FederationDir) -> BackupState:
        data = read_json(backup_state_path(directory)) or {}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, directory: FederationDir) -> None:
        write_atomic(backup_state_path(directory), json.dumps(asdict(self), indent=2))

    def status(self) -> BackupStatus:
        data = {k: v for k, v in asdict(self).items() if k != "last_scheduled_run"}
        return BackupStatus(**data)


def backup_state_path(directory: FederationDir) -> Path:
    return directory.path / "backup.json"


def restore_dir(directory: FederationDir) -> Path:
    return directory.path / "restore"


class BackupBusy(RuntimeError):
    """Another backup of this federation is running (the CLI's or the controller's)."""


@contextlib.contextmanager
def backup_lock(directory: FederationDir) -> Iterator[None]:
    """One backup at a time per federation, across the CLI and the controller. Never
    waits: the controller's event loop must not block, and a second backup that waited
    would only copy the same data again."""
    directory.path.mkdir(parents=True, exist_ok=True)
    with (directory.path / "backup.lock").open("a+") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupBusy(
                f"another backup of '{directory.name}' is running (the controller's schedule "
                "or another `xlinefed local backup`); wait for it, see `xlinefed local "
                f"status {directory.name}`"
            ) from None
        yield


def status_document(directory: FederationDir) -> dict[str, Any] | None:
    """status.backup as the CLI shows it (None when no backup was ever configured or run)."""
    if not backup_state_path(directory).exists():
        return None
    return BackupState.read(directory).status().to_wire()


# --------------------------------------------------------------------------- taking


def members_of(directory: FederationDir) -> list[MemberAddress]:
    """Members the controller last reported, with their client URLs."""
    status = directory.read_status() or {}
    ports = directory.read_facts().ports
    return [
        MemberAddress(m["name"], m.get("cluster", ""), loopback_url(ports[m["name"]].client))
        for m in status.get("members", [])
        if m.get("name") in ports and m.get("role")
    ]


def target_of(federation: XlineFederation, to: str | None) -> Target:
    spec = federation.spec.backup
    base = Target.of(spec.destination) if spec else Target("")
    if to is not None:
        return base.with_uri(to)
    if spec is None:
        raise BackupError(
            f"'{federation.name}' has no spec.backup.destination; pass --to s3://bucket/prefix "
            "or set spec.backup in the spec"
        )
    return base


def _record_success(state: BackupState, result: BackupResult) -> BackupState:
    return replace(
        state,
        last_success=result.started_at,
        last_uri=result.uri,
        last_size_bytes=result.size,
        last_duration_seconds=round(result.duration, 3),
        last_revision=result.revision,
        last_member=result.member,
        consecutive_failures=0,
        last_error=None,
        kept=result.kept,
    )


def _record_failure(state: BackupState, error: Exception, now: datetime) -> BackupState:
    return replace(
        state,
        last_failure=_rfc3339(now),
        last_error=str(error),
        consecutive_failures=state.consecutive_failures + 1,
    )


async def backup_now(
    directory: FederationDir,
    *,
    to: str | None = None,
    scheduled: bool = False,
    on_progress: Callable[[int, int | None], None] = lambda _s, _t: None,
) -> BackupResult:
    """Take one backup now (on demand, or the schedule's), record it in backup.json, and
    prune by retention when the spec has a retention policy for this destination."""
    federation = directory.read_spec()
    target = target_of(federation, to)
    started = datetime.now(UTC)
    with backup_lock(directory):
        state = BackupState.read(directory)
        if scheduled and not state.consecutive_failures:
            # The schedule counts from a run's first attempt, not from its retries.
            state.last_scheduled_run = _rfc3339(started)
        try:
            result = await take_backup(
                federation.name,
                federation.spec.engine,
                federation.spec.version,
                members_of(directory),
                target,
                on_progress=on_progress,
            )
        except (BackupError, StoreError, RestoreError, OSError) as error:
            _record_failure(state, error, datetime.now(UTC)).write(directory)
            raise
        spec = federation.spec.backup
        if spec is not None and to is None:
            try:
                pruned, kept = await prune(
                    target, federation.name, spec.retention, datetime.now(UTC)
                )
                result = replace(result, pruned=tuple(pruned), kept=kept)
            except StoreError as error:
                log.warning("retention failed; kept every backup", error=str(error))
        _record_success(state, result).write(directory)
        return result


def _due(federation: XlineFederation, state: BackupState, now: datetime) -> datetime | None:
    spec = federation.spec.backup
    if spec is None or spec.schedule is None:
        return None
    return policy.next_attempt(
        spec.schedule,
        last_run=_parse(state.last_scheduled_run),
        last_failure=_parse(state.last_failure),
        failures=state.consecutive_failures,
        now=now,
    )


#: Longest sleep of the schedule loop, seconds: a changed spec is seen this soon.
SCHEDULE_POLL = 1.0


async def schedule_loop(directory: FederationDir, stopping: asyncio.Event) -> None:
    """Run scheduled backups until `stopping` is set (the controller's second task)."""
    while not stopping.is_set():
        delay = SCHEDULE_POLL
        try:
            federation = directory.read_spec()
            state = BackupState.read(directory)
            now = datetime.now(UTC)
            due = _due(federation, state, now)
            if due is not None and (directory.read_facts().formed and members_of(directory)):
                if due <= now:
                    try:
                        await backup_now(directory, scheduled=True)
                    except (BackupError, StoreError, RestoreError, OSError) as error:
                        log.warning(
                            "scheduled backup failed; retrying with back-off",
                            federation=directory.name,
                            error=str(error),
                        )
                    state = BackupState.read(directory)
                    due = _due(federation, state, datetime.now(UTC))
                if due is not None and state.next_run != _rfc3339(due):
                    with backup_lock(directory):
                        fresh = BackupState.read(directory)
                        fresh.next_run = _rfc3339(due)
                        fresh.write(directory)
                if due is not None:
                    delay = min(SCHEDULE_POLL, max(0.0, (due - datetime.now(UTC)).total_seconds()))
        except Exception as error:
            log.exception(
                "backup schedule pass failed", federation=directory.name, error=str(error)
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=max(delay, 0.05))


# --------------------------------------------------------------------------- restore


def restore_target(federation: XlineFederation) -> Target:
    """How to reach the store a restore reads: spec.backup.destination's endpoint and
    credentials when set, else the AWS environment."""
    spec = federation.spec.backup
    return Target.of(spec.destination) if spec else Target("")


async def fetch(
    directory: FederationDir,
    federation: XlineFederation,
    on_progress: Callable[[int, int | None], None] = lambda _g, _t: None,
) -> Manifest:
    """Download and verify spec.fromBackup into restore/ (before anything starts)."""
    source = federation.spec.from_backup
    assert source is not None
    where = restore_dir(directory)
    where.mkdir(parents=True, exist_ok=True)
    manifest_path = where / "manifest.json"
    requested = where / "requested.json"
    previous = read_json(requested)
    current = Manifest.read(manifest_path)
    snapshot = where / "snapshot.db"
    if (
        previous == {"uri": source.uri, "revision": source.revision}
        and current is not None
        and snapshot.exists()
        and snapshot.stat().st_size == current.size
    ):
        return current
    manifest_path.unlink(missing_ok=True)
    manifest = await fetch_verified(
        restore_target(federation),
        source.uri,
        source.revision,
        snapshot,
        engine=federation.spec.engine,
        on_progress=on_progress,
    )
    manifest.write(manifest_path)
    write_atomic(requested, json.dumps({"uri": source.uri, "revision": source.revision}))
    return manifest


async def restore_member(
    directory: FederationDir,
    member: str,
    *,
    initial_cluster: list[tuple[str, str]],
    cluster_token: str,
    peer_url: str,
) -> None:
    """Restore the fetched backup as `member`'s data directory (an initial member of a
    federation that has not formed, with no data yet)."""
    where = restore_dir(directory)
    manifest = Manifest.read(where / "manifest.json")
    snapshot = where / "snapshot.db"
    if manifest is None or not snapshot.exists() or snapshot.stat().st_size != manifest.size:
        raise RestoreError(
            f"{member}: spec.fromBackup is set but no verified backup is in {where}; run "
            f"`xlinefed local up` again to fetch it (nothing was started)"
        )
    await restore_data_dir(
        snapshot,
        member=member,
        data_dir=directory.data_dir(member),
        initial_cluster=initial_cluster,
        cluster_token=cluster_token,
        peer_url=peer_url,
    )
    os.sync()
