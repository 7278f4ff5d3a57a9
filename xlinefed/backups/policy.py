"""PURE: the decisions of backups and restore, as plain functions over plain data.

Which member a snapshot is taken from, when the next backup runs (and when a failed one is
retried), which backups retention deletes, how backup objects are named, and which backup
a restore uses. No I/O and no clock: `now` is an argument (import-linter enforces it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim

from xlinefed.api.models import BackupRetention
from xlinefed.api.validation import every_seconds

# --------------------------------------------------------------------------- naming

#: Object metadata keys (S3 user metadata, sent as x-amz-meta-<key>).
META_SHA256 = "xlinefed-sha256"
META_SIZE = "xlinefed-size"
META_REVISION = "xlinefed-revision"
META_MEMBERS = "xlinefed-members"
META_MEMBER = "xlinefed-member"
META_ENGINE = "xlinefed-engine"
META_VERSION = "xlinefed-version"
META_FEDERATION = "xlinefed-federation"
META_TAKEN_AT = "xlinefed-taken-at"
#: S3 allows 2 KB of user metadata in all; the member list is cut to fit.
MAX_MEMBERS_METADATA = 1500

SUFFIX = ".snapshot.db"
_KEY = re.compile(r"(?:^|/)(\d{8}T\d{6}Z)-r(\d+)" + re.escape(SUFFIX) + "$")


def rfc3339(moment: datetime) -> str:
    """A moment as the backups' metadata and state write it (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str | None) -> datetime | None:
    """`rfc3339`'s text back as a moment; None for none."""
    if not value:
        return None
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def backup_key(prefix: str, federation: str, taken_at: datetime, revision: int) -> str:
    """`<prefix>/<federation>/<UTC time>-r<revision>.snapshot.db`: keys sort by time."""
    stamp = taken_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{federation_prefix(prefix, federation)}{stamp}-r{revision:012d}{SUFFIX}"


def federation_prefix(prefix: str, federation: str) -> str:
    """Where one federation's backups live, ending in '/'."""
    base = prefix.strip("/")
    return f"{base}/{federation}/" if base else f"{federation}/"


def parse_key(key: str) -> tuple[datetime, int] | None:
    """(taken at, revision) of a key `backup_key` wrote; None for any other object."""
    found = _KEY.search(key)
    if found is None:
        return None
    taken = datetime.strptime(found.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return taken, int(found.group(2))


def parse_uri(uri: str) -> tuple[str, str]:
    """(bucket, key or prefix) of `s3://bucket/key`."""
    if not uri.startswith("s3://"):
        raise ValueError(f"'{uri}' is not an s3:// URI; write s3://bucket/prefix")
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"'{uri}' names no bucket; write s3://bucket/prefix")
    return bucket, key


def members_metadata(members: Mapping[str, int]) -> str:
    """`name=idhex,...` sorted by name, cut to fit S3's metadata limit (ending in ',...')."""
    text = ""
    for name in sorted(members):
        item = f"{name}={members[name]:x}"
        candidate = f"{text},{item}" if text else item
        if len(candidate) > MAX_MEMBERS_METADATA:
            return f"{text},..."
        text = candidate
    return text


# --------------------------------------------------------------------------- source member


@dataclass(frozen=True)
class Candidate:
    """A member as observed right before a backup."""

    name: str
    cluster: str
    endpoint: str
    answered: bool
    is_learner: bool
    is_leader: bool
    applied_index: int
    errors: tuple[str, ...] = ()


def choose_source(candidates: Sequence[Candidate], max_lag: int = 1000) -> Candidate | None:
    """The member to snapshot: a healthy, caught-up follower in a cluster that is not the
    leader's, else a follower in the leader's cluster, else the leader itself (a snapshot
    loads the member it is taken from, and the leader carries every write). Among equals,
    the one furthest ahead, then by name. Never a learner, a member that reports errors
    (alarms), one that did not answer, or a follower more than `max_lag` entries behind
    the leader; and nobody when no answering member is the leader (no quorum seen: a
    snapshot then could silently miss acknowledged writes)."""
    usable = [c for c in candidates if c.answered and not c.is_learner and not c.errors]
    leader = next((c for c in usable if c.is_leader), None)
    if leader is None:
        return None
    caught_up = [c for c in usable if leader.applied_index - c.applied_index <= max_lag]

    def rank(c: Candidate) -> tuple[int, int, str]:
        if c.is_leader:
            group = 2
        elif c.cluster == leader.cluster:
            group = 1
        else:
            group = 0
        return (group, -c.applied_index, c.name)

    return min(caught_up, key=rank)


def no_source_reason(candidates: Sequence[Candidate], max_lag: int = 1000) -> str:
    """Why `choose_source` found nobody, member by member (for the error message)."""
    leader = next((c for c in candidates if c.answered and c.is_leader), None)
    reasons = []
    for c in sorted(candidates, key=lambda c: c.name):
        if not c.answered:
            why = "did not answer"
        elif c.is_learner:
            why = "is a learner"
        elif c.errors:
            why = "reports " + "; ".join(c.errors)
        elif leader is None:
            why = "answered, but no answering member is the leader"
        elif leader.applied_index - c.applied_index > max_lag:
            why = f"is {leader.applied_index - c.applied_index} entries behind the leader"
        else:
            why = "usable"
        reasons.append(f"{c.name} {why}")
    return ", ".join(reasons) or "no members"


# --------------------------------------------------------------------------- schedule

#: Retry back-off after a failed backup: first delay and cap, seconds.
RETRY_INITIAL = 2.0
RETRY_MAX = 300.0


def next_scheduled(schedule: str, last_run: datetime | None, now: datetime) -> datetime:
    """When the schedule next fires. Cron: the first match after the last run (or after
    `now` when it never ran). '@every N': N after the last run, at once when it never ran."""
    interval = every_seconds(schedule)
    if interval is not None:
        return now if last_run is None else last_run + timedelta(seconds=interval)
    after = last_run if last_run is not None else now
    return next(iter(CronSim(schedule, after.astimezone(UTC))))


def retry_delay(failures: int) -> float:
    """Seconds before retrying after `failures` consecutive failures (1, 2, ...)."""
    if failures <= 0:
        return 0.0
    return min(RETRY_MAX, RETRY_INITIAL * 2 ** (failures - 1))


def next_attempt(
    schedule: str,
    *,
    last_run: datetime | None,
    last_failure: datetime | None,
    failures: int,
    now: datetime,
    planned: datetime | None = None,
) -> datetime:
    """When the next backup attempt is due. `last_run` is the start of the last run the
    schedule made (its first attempt; retries do not move it). `planned` is the time
    this function returned before for the same schedule, if any: a cron schedule that
    never ran keeps its first planned time once `now` passes it (else "the next match
    after now" would move forward forever and never fire).

    After `failures` consecutive failures the next attempt is a retry after the back-off,
    but never later than the schedule's next run counted from the failure (a long
    back-off does not skip scheduled runs; a short schedule retries at its own pace)."""
    if failures and last_failure is not None:
        retry = last_failure + timedelta(seconds=retry_delay(failures))
        return min(retry, next_scheduled(schedule, last_failure, now))
    if last_run is None and planned is not None:
        return planned
    return next_scheduled(schedule, last_run, now)


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class StoredBackup:
    key: str
    taken_at: datetime
    revision: int
    size: int
    #: The object's sha256 from its metadata; None for an object whose upload never
    #: committed (no checksum: it is not a usable backup).
    sha256: str | None


#: An object without a checksum this old is a leftover of an upload that failed.
INCOMPLETE_GRACE = timedelta(hours=1)


def to_prune(
    backups: Iterable[StoredBackup], retention: BackupRetention, now: datetime
) -> list[str]:
    """Keys retention deletes, oldest first. Only complete backups count toward `count`;
    the newest complete backup is never deleted (a store whose clock runs ahead, or a
    schedule that stopped, must not end with no backup at all)."""
    complete = sorted((b for b in backups if b.sha256), key=lambda b: b.key, reverse=True)
    doomed: list[StoredBackup] = []
    for index, backup in enumerate(complete):
        if index == 0:
            continue
        too_many = retention.count is not None and index >= retention.count
        too_old = retention.max_age_seconds is not None and now - backup.taken_at > timedelta(
            seconds=retention.max_age_seconds
        )
        if too_many or too_old:
            doomed.append(backup)
    leftovers = [b for b in backups if not b.sha256 and now - b.taken_at > INCOMPLETE_GRACE]
    return sorted((b.key for b in [*doomed, *leftovers]), key=str)


# --------------------------------------------------------------------------- restore


class NoBackup(LookupError):
    pass


def choose_restore(backups: Iterable[StoredBackup], revision: int | None) -> StoredBackup:
    """The backup a restore from a prefix uses: the newest complete one, at or below
    `revision` when given."""
    complete = [b for b in backups if b.sha256]
    if not complete:
        raise NoBackup("no complete backup (one with an xlinefed-sha256 checksum) there")
    eligible = [b for b in complete if revision is None or b.revision <= revision]
    if not eligible:
        lowest = min(b.revision for b in complete)
        raise NoBackup(
            f"no backup at or below revision {revision} (the oldest is at revision {lowest})"
        )
    return max(eligible, key=lambda b: (b.revision, b.key))
