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
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlinefed.api.engines import Engine
from xlinefed.api.models import XlineFederation
from xlinefed.backups import policy, schedule
from xlinefed.backups.run import (
    BackupError,
    BackupResult,
    Manifest,
    MemberAddress,
    RestoreError,
    Target,
    etcdctl_binary,
    fetch_verified,
    prune,
    restore_data_dir,
    take_backup,
)
from xlinefed.backups.store import StoreError
from xlinefed.logs import get_logger
from xlinefed.platforms.local.pki import LocalPKI, tls_spec
from xlinefed.platforms.local.state import FederationDir, read_json, write_atomic

log = get_logger(__name__)


@dataclass
class BackupState(schedule.BackupState):
    """backup.json: the schedule's state (`schedule.BackupState`), kept in a file."""

    @classmethod
    def read(cls, directory: FederationDir) -> BackupState:
        data = read_json(backup_state_path(directory)) or {}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, directory: FederationDir) -> None:
        write_atomic(backup_state_path(directory), self.to_json())


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


def members_of(directory: FederationDir, *, tls: bool = False) -> list[MemberAddress]:
    """Members the controller last reported, with their client URLs."""
    from xlinefed.platforms.local.platform import loopback_url  # platform imports us

    status = directory.read_status() or {}
    ports = directory.read_facts().ports
    return [
        MemberAddress(
            m["name"], m.get("cluster", ""), loopback_url(ports[m["name"]].client, tls=tls)
        )
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


FAILURES = schedule.FAILURES


async def backup_now(
    directory: FederationDir,
    *,
    to: str | None = None,
    scheduled: bool = False,
    on_progress: Callable[[int, int | None], None] = lambda _s, _t: None,
) -> BackupResult:
    """Take one backup now (on demand, or the schedule's), record it in backup.json, and
    prune by retention when it went to the spec's destination. Raises BackupBusy when
    another backup of this federation runs, or one of FAILURES (then recorded: the
    failure count, its time and message; earlier backups are untouched)."""
    federation = directory.read_spec()
    started = datetime.now(UTC)
    with backup_lock(directory):
        state = BackupState.read(directory)
        if scheduled and not state.consecutive_failures:
            # The schedule counts from a run's first attempt, not from its retries.
            state.last_scheduled_run = policy.rfc3339(started)
        try:
            target = target_of(federation, to)
            pki = LocalPKI(directory, tls) if (tls := tls_spec(directory, federation)) else None
            result = await take_backup(
                federation.name,
                federation.spec.engine,
                federation.spec.version,
                members_of(directory, tls=pki is not None),
                target,
                on_progress=on_progress,
                tls=pki.client_tls() if pki is not None else None,
            )
        except FAILURES as error:
            failed = schedule.record_failure(state, error, datetime.now(UTC))
            failed.write(directory)
            log.warning(
                "backup failed",
                federation=federation.name,
                scheduled=scheduled,
                failures=failed.consecutive_failures,
                error=str(error),
            )
            raise
        spec = federation.spec.backup
        if spec is not None and to is None:
            try:
                pruned, kept = await prune(
                    target, federation.name, spec.retention, datetime.now(UTC)
                )
                result = replace(result, pruned=tuple(pruned), kept=kept)
            except StoreError as error:
                log.warning(
                    "retention failed; kept every backup",
                    federation=federation.name,
                    error=str(error),
                )
        schedule.record_success(state, result).write(directory)
        log.info(
            "backup recorded",
            federation=federation.name,
            scheduled=scheduled,
            uri=result.uri,
            member=result.member,
            revision=result.revision,
            size=result.size,
            seconds=round(result.duration, 3),
            sha256=result.sha256,
            pruned=len(result.pruned),
            kept=result.kept,
        )
        return result


def due(federation: XlineFederation, state: BackupState, now: datetime) -> datetime | None:
    """When the schedule's next attempt is due (None: no schedule)."""
    return schedule.due(federation.spec.backup, state, now)


def _plan(directory: FederationDir, schedule: str | None, when: datetime | None) -> None:
    """Record the next run in backup.json (skipped while a backup holds the lock: it
    rewrites the state when it ends, and the next pass plans again)."""
    state = BackupState.read(directory)
    text = policy.rfc3339(when) if when is not None else None
    if state.next_run == text and state.planned_for == schedule:
        return
    with contextlib.suppress(BackupBusy), backup_lock(directory):
        fresh = BackupState.read(directory)
        fresh.next_run, fresh.planned_for = text, schedule
        fresh.write(directory)


#: Longest sleep of the schedule loop, seconds: a changed spec is seen this soon.
SCHEDULE_POLL = 1.0


async def schedule_pass(directory: FederationDir) -> float:
    """One look at the schedule: take the backup if due. Returns seconds to sleep."""
    federation = directory.read_spec()
    spec = federation.spec.backup
    schedule = spec.schedule if spec is not None else None
    if schedule is None:
        if backup_state_path(directory).exists():
            _plan(directory, None, None)
        return SCHEDULE_POLL
    if not (directory.read_facts().formed and members_of(directory)):
        return SCHEDULE_POLL  # nothing to back up yet
    now = datetime.now(UTC)
    when = due(federation, BackupState.read(directory), now)
    assert when is not None
    _plan(directory, schedule, when)
    if when > now:
        return min(SCHEDULE_POLL, (when - now).total_seconds())
    with contextlib.suppress(BackupBusy, *FAILURES):  # recorded and logged by backup_now
        await backup_now(directory, scheduled=True)
    after = due(federation, BackupState.read(directory), datetime.now(UTC))
    _plan(directory, schedule, after)
    return 0.0


async def schedule_loop(directory: FederationDir, stopping: asyncio.Event) -> None:
    """Run scheduled backups until `stopping` is set (the controller's second task)."""
    while not stopping.is_set():
        try:
            delay = await schedule_pass(directory)
        except Exception as error:
            log.exception(
                "backup schedule pass failed", federation=directory.name, error=str(error)
            )
            delay = SCHEDULE_POLL
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


def prepare_restore(
    root: Path,
    federation: XlineFederation,
    on_progress: Callable[[int, int | None], None] = lambda _g, _t: None,
) -> Manifest | None:
    """Before `up` writes the spec of a federation with spec.fromBackup: download the
    backup and verify it (size and sha256 against its metadata, engine, revision). On any
    failure nothing was started, and a federation that did not exist before leaves no
    directory behind. None when there is nothing to restore (no fromBackup, or formed)."""
    directory = FederationDir(root, federation.name)
    if federation.spec.from_backup is None or directory.read_facts().formed:
        return None
    if federation.spec.engine is not Engine.ETCD:
        raise RestoreError(
            "restore is built for etcd only (Xline's `xlineutl snapshot restore` is not "
            "wired yet); see docs/backup.md"
        )
    etcdctl_binary()  # refuse before downloading anything when it cannot be restored
    existed = directory.path.exists()
    try:
        return asyncio.run(fetch(directory, federation, on_progress))
    except BaseException:
        if existed:
            shutil.rmtree(restore_dir(directory), ignore_errors=True)
        else:
            shutil.rmtree(directory.path, ignore_errors=True)
        raise
