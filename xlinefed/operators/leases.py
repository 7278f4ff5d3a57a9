"""Leader election over a `coordination.k8s.io/v1` Lease: the pure decisions.

Two operator replicas per tier; only the holder of the Lease runs kopf. Every choice the
elector makes is here, as functions of what it observed and of its own monotonic clock;
`xlinefed.operators.leadership` does the reads and writes.

The timing guarantee (docs/operators.md, "High availability"):

- A candidate may take the Lease over only when it has seen the *same* record (same
  resourceVersion) unchanged for the record's whole `leaseDurationSeconds` by its own
  clock. It starts that clock when it first reads the record, which is after the
  holder wrote it.
- The holder counts itself leader only while less than `renew_deadline` has passed, by
  its own clock, since it *sent* its last successful renewal (so before the write).
- `renew_deadline < lease_duration`, so the holder stops acting before anyone may
  acquire, by at least `lease_duration - renew_deadline` (less the two clocks' drift over
  one lease, which is tiny). A holder paused (SIGSTOP, a long GC, a frozen VM) resumes
  with its deadline passed and does not act again until it holds the Lease again.

No wall clock is compared across machines: `renewTime` is written for people and
`kubectl`, never read for a decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class LeaseTiming:
    """Seconds. The defaults are client-go's (kube-controller-manager's)."""

    #: How long a record must stand unrenewed before a candidate takes over.
    duration: float = 15.0
    #: How long the holder keeps acting without a successful renewal.
    renew_deadline: float = 10.0
    #: How often the holder renews and a candidate retries.
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration "
                f"(XLINEFED_LEASE_RETRY_PERIOD={self.retry_period:g}, "
                f"XLINEFED_LEASE_RENEW_DEADLINE={self.renew_deadline:g}, "
                f"XLINEFED_LEASE_DURATION={self.duration:g}); e.g. 2, 10 and 15"
            )
        if self.duration != int(self.duration):
            raise ValueError(
                f"XLINEFED_LEASE_DURATION={self.duration:g}: the Lease stores whole seconds; "
                "give a whole number"
            )


@dataclass(frozen=True)
class Record:
    """What a Lease says, as read."""

    holder: str | None
    duration: float
    transitions: int
    resource_version: str


@dataclass(frozen=True)
class Observation:
    """A record and when (our monotonic clock) we first saw that resourceVersion."""

    record: Record
    seen_at: float


def observe(previous: Observation | None, record: Record | None, now: float) -> Observation | None:
    """Keep the first-seen time while the record is unchanged; restart it on any write."""
    if record is None:
        return None
    if previous is not None and previous.record.resource_version == record.resource_version:
        return previous
    return Observation(record, now)


class Action(StrEnum):
    CREATE = "create"  # no Lease yet
    RENEW = "renew"  # ours
    TAKE = "take"  # released, or expired by our clock
    WAIT = "wait"  # someone else holds it


@dataclass(frozen=True)
class Decision:
    action: Action
    #: For WAIT: seconds until the current holder's record would expire by our clock.
    expires_in: float = 0.0


def decide(identity: str, seen: Observation | None, now: float) -> Decision:
    if seen is None:
        return Decision(Action.CREATE)
    record = seen.record
    if record.holder == identity:
        return Decision(Action.RENEW)
    if not record.holder:
        return Decision(Action.TAKE)
    left = seen.seen_at + record.duration - now
    if left <= 0:
        return Decision(Action.TAKE)
    return Decision(Action.WAIT, expires_in=left)


def holds(renewed_at: float | None, now: float, timing: LeaseTiming) -> bool:
    """Whether the holder may still act: its last successful renewal was *sent* less
    than the renew deadline ago."""
    return renewed_at is not None and now - renewed_at < timing.renew_deadline


def next_transitions(record: Record | None, identity: str) -> int:
    """`leaseTransitions` counts changes of holder."""
    if record is None:
        return 0
    return record.transitions if record.holder == identity else record.transitions + 1
