"""Quorum-loss recovery: is the quorum lost, may we rebuild, from whom. Pure.

When a majority of the voters is gone for good (two of three member clusters destroyed),
no membership change can commit: the only way back is to restart one surviving voter as
a new one-member cluster on its own data (etcd `--force-new-cluster`), then regrow one
learner at a time. That throws away whatever only the lost members had, and if a "lost"
member is in fact alive behind a partition it makes two clusters. So the decision is
explicit and narrow (docs/recovery.md):

- the federation formed and no quorum is confirmed, and the voters that answer (with or
  without a leader) are fewer than a majority of the configuration the most advanced
  survivor holds;
- `spec.recovery` asks for it: `fromMember` (once per `requestedAt`), or `automatic`,
  which takes the survivor with the highest applied index;
- every lost voter has been silent for the whole grace period
  (`lostClusterGracePeriodSeconds`): a member seen within it may be alive behind a
  partition; a member that only timed out (`Observed.inconclusive`) may be slow;
- the named member answers, is a voter in its own member list and is not behind another
  survivor; the engine can force a new cluster; no survivor is starting forced already
  (an interrupted recovery continues, it does not start over).

`assess` returns the verdict with the reason the status and the CLI show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from xlinefed.planner.model import Desired, Observed, ObservedMember, OwnView, RecoveryRecord
from xlinefed.planner.quorum import majority


class Verdict(StrEnum):
    #: A quorum stands (or may: a majority answers, or the federation never formed).
    NOT_LOST = "NotLost"
    #: The quorum is lost and spec.recovery asks for nothing.
    NOT_REQUESTED = "NotRequested"
    #: Asked for, and refused for now; the reason says why and until when.
    REFUSED = "Refused"
    #: This explicit request was carried out already.
    DONE = "Done"
    #: A survivor is starting as a new cluster: the recovery is under way.
    UNDER_WAY = "UnderWay"
    RECOVER = "Recover"


@dataclass(frozen=True)
class Assessment:
    verdict: Verdict
    reason: str
    source: str | None = None
    lost: tuple[str, ...] = ()
    lost_ids: tuple[int, ...] = ()
    applied_index: int = 0
    retry_after: float = 5.0


def superseded(record: RecoveryRecord | None, member: ObservedMember) -> bool:
    """An incarnation a recovery dropped: its data and its member list belong to the old
    cluster, so it is never restarted on that data and its view counts for nothing. It
    comes back only as a new learner (wiped, added after the recovery)."""
    return is_superseded(record, member.name, member.joined_at)


def is_superseded(record: RecoveryRecord | None, name: str, joined_at: float | None) -> bool:
    if record is None or name not in record.lost:
        return False
    return joined_at is None or joined_at < record.at


def when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _request_text(desired: Desired) -> str:
    request = desired.recovery
    if request is None:
        return ""
    if request.from_member is not None:
        at = f", requested at {request.requested_at}" if request.requested_at else ""
        return f"spec.recovery.fromMember={request.from_member}{at}"
    return "spec.recovery.automatic"


def assess(desired: Desired, observed: Observed) -> Assessment:
    request = desired.recovery
    asked = request is not None and (request.from_member is not None or request.automatic)
    if observed.member_list_known:
        lead = f" (leader {observed.leader})" if observed.leader else ""
        return Assessment(Verdict.NOT_LOST, f"the quorum stands{lead}: nothing to recover")
    formed = observed.formed or (observed.formation is not None and observed.formation.formed)
    if not formed:
        return Assessment(Verdict.NOT_LOST, "the federation has not formed: nothing to recover")
    record = observed.recovery
    forced = [m.name for m in observed.members if m.forced and m.running]
    if forced:
        return Assessment(
            Verdict.UNDER_WAY,
            f"recovery under way: {forced[0]} is starting as a new one-member cluster "
            "(--force-new-cluster); not recovering again",
            source=forced[0],
            retry_after=1.0,
        )
    views: dict[str, OwnView] = {
        name: v
        for name, v in observed.own_views.items()
        if not is_superseded(record, name, _joined(observed, name))
    }
    survivors = sorted(
        (name for name, v in views.items() if v.is_voter),
        key=lambda n: (-views[n].applied_index, _rank(desired, n), n),
    )
    if not survivors:
        answering = ", ".join(sorted(views)) or "none"
        return Assessment(
            Verdict.REFUSED if asked else Verdict.NOT_REQUESTED,
            f"no voter answers (answering: {answering}): there is no survivor to recover from",
        )
    best = survivors[0]
    config = views[best].voters
    answering = [name for name, _ in config if name in views]
    if len(answering) >= majority(len(config)):
        return Assessment(
            Verdict.NOT_LOST,
            f"{len(answering)} of {len(config)} voters answer: a majority stands, waiting for "
            "it to elect a leader; nothing to recover",
            retry_after=1.0,
        )
    lost = tuple(name for name, _ in config if name not in views)
    lost_ids = tuple(member_id for name, member_id in config if name not in views)
    situation = (
        f"quorum lost: {len(answering)} of {len(config)} voters answer (surviving: "
        f"{', '.join(survivors)}; lost: {', '.join(lost)})"
    )
    if not asked or request is None:
        return Assessment(
            Verdict.NOT_REQUESTED,
            f"{situation}; if the lost members are gone for good, rebuild from a survivor "
            "with `xlinefed local recover NAME --from MEMBER` or spec.recovery "
            "(docs/recovery.md)",
            lost=lost,
            retry_after=2.0,
        )
    if request.from_member is not None and record is not None and record.request == request.key:
        return Assessment(
            Verdict.DONE,
            f"{_request_text(desired)} was carried out at {when(record.at)}; the quorum is lost "
            "again: to recover again, request it anew (a new spec.recovery.requestedAt)",
            retry_after=30.0,
        )
    if desired.engine.force_new_cluster_flag is None:
        return Assessment(
            Verdict.REFUSED,
            f"{situation}; {desired.engine.engine.value} cannot restart a member as a new "
            "cluster on its own data: restore from a backup instead (docs/recovery.md)",
            retry_after=30.0,
        )
    if request.from_member is not None:
        source = request.from_member
        if source not in views:
            return Assessment(
                Verdict.REFUSED,
                f"spec.recovery.fromMember: {source} is not a surviving voter (it does not "
                f"answer); {situation}; name one of: {', '.join(survivors)}",
                retry_after=5.0,
            )
        if not views[source].is_voter:
            return Assessment(
                Verdict.REFUSED,
                f"spec.recovery.fromMember: {source} is not a surviving voter (a learner in "
                f"its own member list); name one of: {', '.join(survivors)}",
                retry_after=5.0,
            )
        if views[source].applied_index < views[best].applied_index:
            gap = views[best].applied_index - views[source].applied_index
            return Assessment(
                Verdict.REFUSED,
                f"spec.recovery.fromMember: {source} has applied {views[source].applied_index}, "
                f"{gap} entries behind {best} ({views[best].applied_index}); recovering from it "
                f"would drop what {best} has: name {best}",
                retry_after=5.0,
            )
    else:
        source = best
    silent = [n for n in lost if n in observed.inconclusive]
    if silent:
        return Assessment(
            Verdict.REFUSED,
            f"{situation}; {', '.join(silent)} gave no answer in time (slow, not gone): "
            "refusing to recover while they may be alive",
            retry_after=2.0,
        )
    grace = desired.lost_cluster_grace
    now = observed.now
    waits = []
    for name in lost:
        seen = observed.last_seen.get(name, observed.watching_since)
        seen = now if seen is None else seen
        left = seen + grace - now
        if left > 0:
            waits.append((left, name, seen))
    if waits:
        left, name, seen = max(waits)
        others = [n for _, n, _ in sorted(waits) if n != name]
        also = f" (also within it: {', '.join(others)})" if others else ""
        return Assessment(
            Verdict.REFUSED,
            f"{situation}; refusing to recover from {source}: {name} was last seen "
            f"{now - seen:.0f}s ago, at {when(seen)}{also}, so it may be alive behind a "
            f"partition; recovery is allowed in {left:.0f}s "
            f"(spec.lostClusterGracePeriodSeconds={grace:.0f})",
            source=source,
            lost=lost,
            retry_after=min(max(left, 0.5), 5.0),
        )
    scope = desired.scope
    cluster = _cluster(desired, observed, source)
    if scope is not None and cluster not in scope:
        return Assessment(
            Verdict.REFUSED,
            f"{situation}; the recovery from {source} is carried out by cluster "
            f"{cluster}'s executor",
            source=source,
            retry_after=5.0,
        )
    # The other survivors are dropped too (the new cluster has only `source`): their data
    # is the old cluster's; they are stopped and come back as new learners, wiped.
    ids = dict(config)
    dropped = tuple(n for n in survivors if n != source and n in ids)
    return Assessment(
        Verdict.RECOVER,
        f"{situation}; recovering from {source} ({_request_text(desired)})",
        source=source,
        lost=lost + dropped,
        lost_ids=lost_ids + tuple(ids[n] for n in dropped),
        applied_index=views[source].applied_index,
        retry_after=1.0,
    )


def _joined(observed: Observed, name: str) -> float | None:
    member = observed.member(name)
    return member.joined_at if member is not None else None


def _cluster(desired: Desired, observed: Observed, name: str) -> str | None:
    member = observed.member(name)
    if member is not None:
        return member.cluster
    return next((m.cluster for m in desired.members if m.name == name), None)


def _rank(desired: Desired, name: str) -> int:
    for i, m in enumerate(desired.members):
        if m.name == name:
            return i
    return len(desired.members)
