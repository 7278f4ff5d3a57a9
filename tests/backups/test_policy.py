"""The pure decisions of backups, as tables: which member a snapshot comes from, when the
next backup runs, how failures back off, what retention deletes, which backup a restore
uses, and how keys and URIs are read. No I/O, no clock (`now` is passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from xlinefed.api.models import BackupRetention
from xlinefed.backups import policy
from xlinefed.backups.policy import Candidate, StoredBackup

T0 = datetime(2026, 12, 7, 3, 0, 0, tzinfo=UTC)


def member(
    name: str,
    cluster: str,
    *,
    leader: bool = False,
    index: int = 1000,
    answered: bool = True,
    learner: bool = False,
    errors: tuple[str, ...] = (),
) -> Candidate:
    return Candidate(
        name,
        cluster,
        f"http://{name}:2379",
        answered=answered,
        is_learner=learner,
        is_leader=leader,
        applied_index=index,
        errors=errors,
    )


# --------------------------------------------------------------------------- source

SOURCE_CASES = [
    (
        "a follower in another cluster than the leader's",
        [member("a-0", "a", leader=True), member("a-1", "a"), member("b-0", "b")],
        "b-0",
    ),
    (
        "the follower furthest ahead among those of other clusters",
        [
            member("a-0", "a", leader=True, index=1000),
            member("b-0", "b", index=990),
            member("c-0", "c", index=999),
        ],
        "c-0",
    ),
    (
        "equal followers: by name (deterministic)",
        [member("a-0", "a", leader=True), member("c-0", "c"), member("b-0", "b")],
        "b-0",
    ),
    (
        "only the leader's cluster has followers: one of those, not the leader",
        [member("a-0", "a", leader=True), member("a-1", "a")],
        "a-1",
    ),
    (
        "a lagging follower elsewhere is never used; the leader's cluster's is",
        [
            member("a-0", "a", leader=True, index=10_000),
            member("a-1", "a", index=9_990),
            member("b-0", "b", index=5_000),
        ],
        "a-1",
    ),
    (
        "every follower lags: the leader itself",
        [
            member("a-0", "a", leader=True, index=10_000),
            member("b-0", "b", index=100),
            member("c-0", "c", index=200),
        ],
        "a-0",
    ),
    (
        "a learner elsewhere is never used",
        [member("a-0", "a", leader=True), member("b-0", "b", learner=True)],
        "a-0",
    ),
    (
        "a member with an alarm is never used",
        [
            member("a-0", "a", leader=True),
            member("b-0", "b", errors=("NOSPACE",)),
            member("c-0", "c"),
        ],
        "c-0",
    ),
    (
        "a member that did not answer is never used",
        [member("a-0", "a", leader=True), member("b-0", "b", answered=False, index=0)],
        "a-0",
    ),
    (
        "no answering member is the leader: nobody",
        [member("a-0", "a"), member("b-0", "b")],
        None,
    ),
    (
        "the leader reports an alarm: nobody (its followers' lag cannot be judged)",
        [member("a-0", "a", leader=True, errors=("CORRUPT",)), member("b-0", "b")],
        None,
    ),
    ("no members", [], None),
]


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [(c, e) for _, c, e in SOURCE_CASES],
    ids=[name for name, _, _ in SOURCE_CASES],
)
def test_source_choice(candidates: list[Candidate], expected: str | None) -> None:
    chosen = policy.choose_source(candidates, max_lag=1000)
    assert (chosen.name if chosen else None) == expected
    # The same inputs in another order give the same member.
    again = policy.choose_source(list(reversed(candidates)), max_lag=1000)
    assert (again.name if again else None) == expected


def test_no_source_reason_names_each_member_and_why() -> None:
    reason = policy.no_source_reason(
        [
            member("a-0", "a", answered=False),
            member("b-0", "b", learner=True),
            member("c-0", "c", errors=("NOSPACE",)),
            member("d-0", "d"),
        ]
    )
    assert "a-0 did not answer" in reason
    assert "b-0 is a learner" in reason
    assert "c-0 reports NOSPACE" in reason
    assert "d-0 answered, but no answering member is the leader" in reason


def test_no_source_reason_names_the_lag() -> None:
    reason = policy.no_source_reason(
        [member("a-0", "a", leader=True, index=5000), member("b-0", "b", index=1000)],
        max_lag=1000,
    )
    assert "b-0 is 4000 entries behind the leader" in reason


# --------------------------------------------------------------------------- schedule

SCHEDULE_CASES = [
    ("@every 2s never ran: at once", "@every 2s", None, T0, T0),
    ("@every 2s", "@every 2s", T0, T0, T0 + timedelta(seconds=2)),
    ("@every 10m", "@every 10m", T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=10)),
    (
        "@every 1h overdue: due now (in the past)",
        "@every 1h",
        T0,
        T0 + timedelta(hours=5),
        T0 + timedelta(hours=1),
    ),
    (
        "cron never ran: the next match after now",
        "*/15 * * * *",
        None,
        T0 + timedelta(minutes=1),
        T0 + timedelta(minutes=15),
    ),
    (
        "cron: the next match after the last run",
        "*/15 * * * *",
        T0,
        T0 + timedelta(minutes=2),
        T0 + timedelta(minutes=15),
    ),
    ("cron daily at 02:30", "30 2 * * *", T0, T0, datetime(2026, 12, 8, 2, 30, tzinfo=UTC)),
    (
        "cron on the exact minute: the next one",
        "0 3 * * *",
        T0,
        T0,
        datetime(2026, 12, 8, 3, 0, tzinfo=UTC),
    ),
    (
        "cron weekdays only (Mon 2026-12-07 → Tue)",
        "0 1 * * 1-5",
        T0,
        T0,
        datetime(2026, 12, 8, 1, 0, tzinfo=UTC),
    ),
]


@pytest.mark.parametrize(
    ("schedule", "last_run", "now", "expected"),
    [c[1:] for c in SCHEDULE_CASES],
    ids=[c[0] for c in SCHEDULE_CASES],
)
def test_next_scheduled(
    schedule: str, last_run: datetime | None, now: datetime, expected: datetime
) -> None:
    assert policy.next_scheduled(schedule, last_run, now) == expected


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (8, 256.0), (9, 300.0), (50, 300.0)],
)
def test_retry_backoff_doubles_up_to_a_cap(failures: int, delay: float) -> None:
    assert policy.retry_delay(failures) == delay


ATTEMPT_CASES = [
    # (name, schedule, last run, last failure, failures, expected)
    ("no failure: the schedule", "@every 1h", T0, None, 0, T0 + timedelta(hours=1)),
    (
        "first failure: 2 s later",
        "@every 1h",
        T0,
        T0 + timedelta(seconds=1),
        1,
        T0 + timedelta(seconds=3),
    ),
    (
        "third failure: 8 s later",
        "@every 1h",
        T0,
        T0 + timedelta(seconds=30),
        3,
        T0 + timedelta(seconds=38),
    ),
    (
        "a long back-off never skips the schedule's next run",
        "@every 1m",
        T0,
        T0 + timedelta(minutes=10),
        20,
        T0 + timedelta(minutes=11),
    ),
    (
        "cron: a retry comes before the next match",
        "0 * * * *",
        T0,
        T0 + timedelta(seconds=2),
        2,
        T0 + timedelta(seconds=6),
    ),
    (
        "a failure with no time recorded: the schedule",
        "@every 1h",
        T0,
        None,
        2,
        T0 + timedelta(hours=1),
    ),
]


@pytest.mark.parametrize(
    ("schedule", "last_run", "last_failure", "failures", "expected"),
    [c[1:] for c in ATTEMPT_CASES],
    ids=[c[0] for c in ATTEMPT_CASES],
)
def test_next_attempt(
    schedule: str,
    last_run: datetime,
    last_failure: datetime | None,
    failures: int,
    expected: datetime,
) -> None:
    got = policy.next_attempt(
        schedule, last_run=last_run, last_failure=last_failure, failures=failures, now=T0
    )
    assert got == expected


def test_a_cron_schedule_that_never_ran_fires_at_its_first_planned_time() -> None:
    first = policy.next_attempt(
        "*/15 * * * *", last_run=None, last_failure=None, failures=0, now=T0
    )
    assert first == T0 + timedelta(minutes=15)
    later = T0 + timedelta(minutes=15, seconds=1)
    # Asked again after that time passed, with what it said before: due (in the past).
    again = policy.next_attempt(
        "*/15 * * * *", last_run=None, last_failure=None, failures=0, now=later, planned=first
    )
    assert again == first <= later


# --------------------------------------------------------------------------- retention


def stored(
    age: timedelta, revision: int, *, complete: bool = True, now: datetime = T0
) -> StoredBackup:
    taken = now - age
    return StoredBackup(
        policy.backup_key("p", "f", taken, revision),
        taken,
        revision,
        1000,
        "ab" * 32 if complete else None,
    )


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def keys(backups: list[StoredBackup]) -> list[str]:
    return sorted(b.key for b in backups)


RETENTION_CASES = [
    (
        "by count: the oldest beyond it",
        BackupRetention(count=2),
        [stored(hours(3), 10), stored(hours(2), 20), stored(hours(1), 30)],
        [0],
    ),
    (
        "by count: fewer than it, nothing",
        BackupRetention(count=5),
        [stored(hours(3), 10), stored(hours(2), 20)],
        [],
    ),
    (
        "by age",
        BackupRetention(count=None, max_age_seconds=2 * 3600 + 60),
        [stored(hours(4), 10), stored(hours(3), 20), stored(hours(1), 30)],
        [0, 1],
    ),
    (
        "count and age together: either one deletes",
        BackupRetention(count=3, max_age_seconds=5 * 3600),
        [
            stored(hours(9), 5),
            stored(hours(4), 10),
            stored(hours(3), 20),
            stored(hours(2), 30),
            stored(hours(1), 40),
        ],
        [0, 1],
    ),
    (
        "the newest success is never pruned, however old",
        BackupRetention(count=None, max_age_seconds=3600),
        [stored(hours(50), 10), stored(hours(30), 20)],
        [0],
    ),
    (
        "count=1 keeps exactly the newest",
        BackupRetention(count=1),
        [stored(hours(3), 10), stored(hours(2), 20), stored(hours(1), 30)],
        [0, 1],
    ),
    (
        "an uncommitted upload does not count toward count and is not the newest success",
        BackupRetention(count=1),
        [stored(hours(3), 10), stored(hours(0.1), 20, complete=False)],
        [],
    ),
    (
        "an uncommitted upload older than the grace is cleared away",
        BackupRetention(count=5),
        [stored(hours(3), 10, complete=False), stored(hours(2), 20)],
        [0],
    ),
    ("nothing stored", BackupRetention(count=1), [], []),
]


@pytest.mark.parametrize(
    ("retention", "backups", "doomed"),
    [c[1:] for c in RETENTION_CASES],
    ids=[c[0] for c in RETENTION_CASES],
)
def test_retention(
    retention: BackupRetention, backups: list[StoredBackup], doomed: list[int]
) -> None:
    got = policy.to_prune(backups, retention, T0)
    assert got == sorted(backups[i].key for i in doomed)
    # Whatever retention says, the newest complete backup stays.
    complete = [b for b in backups if b.sha256]
    if complete:
        assert max(complete, key=lambda b: b.key).key not in got


# --------------------------------------------------------------------------- restore

RESTORABLE = [
    stored(hours(3), 100),
    stored(hours(2), 250),
    stored(hours(1), 400),
    stored(hours(0.5), 500, complete=False),
]

RESTORE_CASES = [
    ("no revision: the newest complete", None, 400),
    ("at or below a revision", 300, 250),
    ("exactly a backup's revision", 250, 250),
    ("above every backup", 10_000, 400),
]


@pytest.mark.parametrize(
    ("revision", "expected"), [c[1:] for c in RESTORE_CASES], ids=[c[0] for c in RESTORE_CASES]
)
def test_restore_choice(revision: int | None, expected: int) -> None:
    assert policy.choose_restore(RESTORABLE, revision).revision == expected


def test_restore_below_every_backup_says_which_is_oldest() -> None:
    with pytest.raises(
        policy.NoBackup, match=r"at or below revision 50.*the oldest is at revision 100"
    ):
        policy.choose_restore(RESTORABLE, 50)


def test_restore_never_picks_an_uncommitted_upload() -> None:
    with pytest.raises(policy.NoBackup, match="no complete backup"):
        policy.choose_restore([stored(hours(1), 10, complete=False)], None)


# --------------------------------------------------------------------------- names


def test_keys_sort_by_time_and_round_trip() -> None:
    early = policy.backup_key("backups/prod", "fed", T0, 7)
    late = policy.backup_key("backups/prod", "fed", T0 + timedelta(seconds=1), 3)
    assert early == "backups/prod/fed/20261207T030000Z-r000000000007.snapshot.db"
    assert early < late
    assert policy.parse_key(early) == (T0, 7)
    assert policy.parse_key(late) == (T0 + timedelta(seconds=1), 3)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("", "fed/"), ("/", "fed/"), ("a/b/", "a/b/fed/"), ("/a", "a/fed/"), ("a", "a/fed/")],
)
def test_federation_prefix(prefix: str, expected: str) -> None:
    assert policy.federation_prefix(prefix, "fed") == expected


@pytest.mark.parametrize(
    "key",
    ["fed/notes.txt", "fed/20261207T030000Z.snapshot.db", "fed/20261207T030000Z-r7.db", ""],
)
def test_other_objects_are_not_backups(key: str) -> None:
    assert policy.parse_key(key) is None


URI_CASES = [
    ("s3://bkt/a/b.snapshot.db", ("bkt", "a/b.snapshot.db")),
    ("s3://bkt/prefix/", ("bkt", "prefix/")),
    ("s3://bkt", ("bkt", "")),
]


@pytest.mark.parametrize(("uri", "expected"), URI_CASES, ids=[u for u, _ in URI_CASES])
def test_parse_uri(uri: str, expected: tuple[str, str]) -> None:
    assert policy.parse_uri(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("https://bkt/key", "is not an s3:// URI"),
        ("bkt/key", "is not an s3:// URI"),
        ("s3:///key", "names no bucket"),
    ],
)
def test_bad_uri_says_how_to_write_one(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        policy.parse_uri(uri)
    assert "s3://bucket/prefix" in str(caught.value)


def test_member_list_metadata_fits_and_says_when_cut() -> None:
    small = policy.members_metadata({"f-b-0": 0xB, "f-a-0": 0xA})
    assert small == "f-a-0=a,f-b-0=b"
    many = {f"federation-with-a-long-name-cluster-{i:03d}-0": 2**63 + i for i in range(200)}
    text = policy.members_metadata(many)
    assert len(text) <= policy.MAX_MEMBERS_METADATA + 4
    assert text.endswith(",...")
