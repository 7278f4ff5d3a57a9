"""What the backup schedule last did, and the schedule shared by every member cluster.

Locally one controller runs a federation's schedule and keeps its state in a file. On
Kubernetes every member cluster's operator could take the scheduled backup, and any of
them may be gone: the state lives in the federation's own store (`STATE_KEY`), the one
place every cluster reads alike, and a backup is taken only under a lease-held lock
(`LOCK_KEY`, the same primitive as the membership lock, on a key of its own so that a
long backup never holds up a membership change). The operator that wins the lock reads
the state again, takes the backup if it is still due, and writes the new state fenced by
its lock, so a holder that lost its lease while uploading cannot overwrite a newer state.
A lost cluster costs nothing: the next operator to look finds the backup due and takes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from xlinefed.api.engines import Engine
from xlinefed.api.models import BackupSpec, BackupStatus
from xlinefed.backups import policy
from xlinefed.backups.policy import parse_time, rfc3339
from xlinefed.backups.run import (
    BackupError,
    BackupResult,
    MemberAddress,
    RestoreError,
    Target,
    prune,
    take_backup,
)
from xlinefed.backups.store import StoreError
from xlinefed.consensus.client import (
    ClientTLS,
    ConsensusClient,
    compare_create_revision,
    compare_mod_revision,
    put_op,
)
from xlinefed.consensus.errors import ConsensusError, LockTimeout
from xlinefed.consensus.lock import MembershipLock
from xlinefed.logs import get_logger

log = get_logger(__name__)

#: What a backup attempt may fail with; anything else is a bug and propagates.
FAILURES = (BackupError, StoreError, RestoreError, OSError, ValueError)

STATE_KEY = "/xlinefed/backup/state"
LOCK_KEY = "/xlinefed/lock/backup"
#: Longest wait between two looks at a shared schedule, seconds.
SHARED_POLL = 5.0


@dataclass
class BackupState:
    """What the backups last did, and when the schedule last ran."""

    last_success: str | None = None
    last_uri: str | None = None
    last_size_bytes: int | None = None
    last_duration_seconds: float | None = None
    last_revision: int | None = None
    last_member: str | None = None
    last_failure: str | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    #: Start of the last run the schedule made (its next run counts from here).
    last_scheduled_run: str | None = None
    next_run: str | None = None
    #: The schedule `next_run` was computed for (a changed schedule plans afresh).
    planned_for: str | None = None
    kept: int | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupState:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def status(self) -> BackupStatus:
        internal = {"last_scheduled_run", "planned_for"}
        return BackupStatus(**{k: v for k, v in asdict(self).items() if k not in internal})


def record_success(state: BackupState, result: BackupResult) -> BackupState:
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


def record_failure(state: BackupState, error: Exception, now: datetime) -> BackupState:
    return replace(
        state,
        last_failure=rfc3339(now),
        last_error=str(error),
        consecutive_failures=state.consecutive_failures + 1,
    )


def due(spec: BackupSpec | None, state: BackupState, now: datetime) -> datetime | None:
    """When the schedule's next attempt is due (None: no schedule)."""
    if spec is None or spec.schedule is None:
        return None
    return policy.next_attempt(
        spec.schedule,
        last_run=parse_time(state.last_scheduled_run),
        last_failure=parse_time(state.last_failure),
        failures=state.consecutive_failures,
        now=now,
        planned=parse_time(state.next_run) if state.planned_for == spec.schedule else None,
    )


def planned(spec: BackupSpec, state: BackupState, now: datetime) -> BackupState:
    """The state with its next run computed for the spec's schedule."""
    when = due(spec, state, now)
    return replace(
        state, next_run=rfc3339(when) if when is not None else None, planned_for=spec.schedule
    )


# --------------------------------------------------------------------------- shared


@dataclass(frozen=True)
class SharedPass:
    """One look at a shared schedule."""

    state: BackupState
    #: Seconds until the next look is worth making.
    wait: float
    #: The backup this pass took, or the error its attempt failed with (both recorded).
    result: BackupResult | None = None
    error: Exception | None = None


async def read_shared(client: ConsensusClient) -> tuple[BackupState, int]:
    """The shared state and its key's mod revision (0: never written)."""
    found = await client.get(STATE_KEY)
    if found is None:
        return BackupState(), 0
    try:
        return BackupState.from_dict(json.loads(found.value)), found.mod_revision
    except (ValueError, TypeError):
        log.warning("shared backup state unreadable; starting afresh", key=STATE_KEY)
        return BackupState(), found.mod_revision


async def _plan(
    client: ConsensusClient, spec: BackupSpec, state: BackupState, revision: int, now: datetime
) -> BackupState:
    """Record the next run once per schedule (optimistically: whoever writes first wins,
    and every writer computes the same time from the same state)."""
    fresh = planned(spec, state, now)
    if (fresh.next_run, fresh.planned_for) != (state.next_run, state.planned_for):
        await client.txn(
            [compare_mod_revision(STATE_KEY, "==", revision)], [put_op(STATE_KEY, fresh.to_json())]
        )
    return fresh


def _seconds_until(when: datetime | None, now: datetime) -> float:
    if when is None:
        return SHARED_POLL
    return max(0.0, min(SHARED_POLL, (when - now).total_seconds()))


async def shared_pass(
    client: ConsensusClient,
    *,
    holder: str,
    federation: str,
    engine: Engine,
    version: str,
    spec: BackupSpec,
    members: Sequence[MemberAddress],
    target: Target,
    tls: ClientTLS | None = None,
    now: datetime | None = None,
) -> SharedPass:
    """Take the scheduled backup if it is due and no other cluster is taking it."""
    moment = now or datetime.now(UTC)
    state, revision = await read_shared(client)
    state = await _plan(client, spec, state, revision, moment)
    when = due(spec, state, moment)
    if when is None or when > moment:
        return SharedPass(state, _seconds_until(when, moment))
    lock = MembershipLock(client, holder, ttl=10, key=LOCK_KEY)
    try:
        token = await lock.acquire(timeout=1.0)
    except LockTimeout:
        return SharedPass(state, SHARED_POLL)  # another cluster is taking it
    try:
        # Under the lock: the state as the last holder left it.
        state, _ = await read_shared(client)
        when = due(spec, state, moment)
        if when is None or when > moment:
            return SharedPass(state, _seconds_until(when, moment))
        if not state.consecutive_failures:
            # The schedule counts from a run's first attempt, not from its retries.
            state = replace(state, last_scheduled_run=rfc3339(moment))
        result: BackupResult | None = None
        error: Exception | None = None
        try:
            result = await take_backup(federation, engine, version, members, target, tls=tls)
        except FAILURES as failed:
            error = failed
            state = record_failure(state, failed, datetime.now(UTC))
            log.warning(
                "scheduled backup failed",
                federation=federation,
                failures=state.consecutive_failures,
                error=str(failed),
            )
        if result is not None:
            try:
                pruned, kept = await prune(target, federation, spec.retention, datetime.now(UTC))
                result = replace(result, pruned=tuple(pruned), kept=kept)
            except StoreError as failed:
                log.warning("retention failed; kept every backup", error=str(failed))
            state = record_success(state, result)
        state = planned(spec, state, datetime.now(UTC))
        written = await client.txn(
            [compare_create_revision(LOCK_KEY, "==", token.revision)],
            [put_op(STATE_KEY, state.to_json())],
        )
        if not written.succeeded:
            log.warning(
                "backup lock lost before its state was written; the next holder decides",
                holder=holder,
            )
        return SharedPass(state, 0.0, result, error)
    finally:
        try:
            await asyncio.shield(lock.release(token))
        except ConsensusError as failed:
            # Its lease expires on its own (TTL); the next holder waits that long at most.
            log.warning("backup lock not released", holder=holder, error=str(failed))
