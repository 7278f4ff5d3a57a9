"""From the raw answers an executor collected to the planner's `Observed`. Pure.

The executor's job is to ask (the platform for its pods or processes, every member for
its status, the leader for its member list, the store for the lock and the published
templates); deciding what those answers *mean* happens here, in plain code with
plain-data tests, so the simulator can feed the same function with the stale, partial
and late answers a real federation gives:

- the **leader** is the member whose own status says it leads, named in that term by a
  majority of the voters in its member list; a member cut off from its peers names no
  leader (or another term) and does not make one;
- the **member list** is the leader's, confirmed by a linearizable read through the same
  endpoint; other members' lists only mark members that some view still has
  (`listed_elsewhere`), so nothing listed anywhere is wiped or re-added;
- a member has **started** once it published client URLs: a static initial member is
  listed by name before it ever runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xlinefed.planner.model import (
    NO_ANSWER_GRACE,
    Formation,
    Observed,
    ObservedMember,
    OwnView,
    RecoveryRecord,
)
from xlinefed.planner.quorum import majority
from xlinefed.planner.recovery import is_superseded
from xlinefed.topology import parse_member_name


@dataclass(frozen=True)
class ListEntry:
    """One entry of a member list, as some member served it."""

    id: int
    #: Empty for a learner that has not started yet.
    name: str
    peer_urls: tuple[str, ...]
    #: Empty until the member has started and published them.
    client_urls: tuple[str, ...]
    is_learner: bool


@dataclass(frozen=True)
class StatusAnswer:
    """One member's answer to a status request."""

    member_id: int
    #: 0 when it knows no leader.
    leader_id: int
    term: int
    applied_index: int
    version: str = ""

    @property
    def leads(self) -> bool:
        return self.member_id != 0 and self.member_id == self.leader_id


@dataclass(frozen=True)
class MemberRuntime:
    """What a platform reports of a member it can see (process or pod)."""

    present: bool = False
    running: bool = False
    has_data: bool = False
    revision: str | None = None
    version: str | None = None
    #: Its process was started with the force-new-cluster flag (a recovery's first start).
    forced: bool = False
    #: Wall-clock seconds of the process's or pod's start; None when unknown.
    started_at: float | None = None
    #: The platform counts it as serving (a pod's Ready condition: what Services and
    #: disruption budgets go by); None where the platform has no such notion (local
    #: processes) or cannot see it (another cluster's member).
    serving: bool | None = None


@dataclass(frozen=True)
class RawObservation:
    """Everything one observation pass collected, uninterpreted."""

    now: float
    federation: str
    #: Every member name the spec or the platform knows.
    names: tuple[str, ...]
    #: Members whose runtime this executor sees itself (its own cluster's).
    seen: frozenset[str]
    runtimes: Mapping[str, MemberRuntime]
    #: Status answers by the name of the member asked.
    statuses: Mapping[str, StatusAnswer]
    #: The member list, and the name of the member that served it (the candidate leader
    #: when one answered, else any member); None when no list could be read.
    member_list: tuple[ListEntry, ...] | None = None
    list_source: str | None = None
    #: A linearizable read through `list_source` succeeded: a quorum stands behind it.
    confirmed: bool = False
    #: Member lists other members served, by the name of the member that served them.
    other_lists: Mapping[str, tuple[ListEntry, ...]] = field(default_factory=dict)
    #: Per member: the template record its own executor published in the store.
    published: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Per member: wall-clock seconds at which it was added as a learner.
    joined: Mapping[str, float] = field(default_factory=dict)
    lock_holder: str | None = None
    #: This executor's own record that the cluster formed.
    formed: bool = False
    formation: Formation | None = None
    #: Peer URL of each known member, to name list entries that carry no name yet.
    peer_urls: Mapping[str, str] = field(default_factory=dict)
    #: Members whose status request timed out (no answer, not a refusal): the seconds
    #: waited, and the wall-clock time they first stopped answering.
    unanswered: Mapping[str, float] = field(default_factory=dict)
    unanswered_since: Mapping[str, float] = field(default_factory=dict)
    #: Members that answered a status request saying they know no leader (etcd: "no
    #: leader"): alive, but not serving. Their own lists are in `other_lists`.
    leaderless: Mapping[str, StatusAnswer] = field(default_factory=dict)
    #: Wall-clock seconds each member last answered (the executor's memory), and since
    #: when the executor has watched.
    last_seen: Mapping[str, float] = field(default_factory=dict)
    watching_since: float | None = None
    #: The last quorum-loss recovery the platform recorded.
    recovery: RecoveryRecord | None = None


def superseded_names(raw: RawObservation) -> frozenset[str]:
    """Members whose incarnation a recovery dropped (see `recovery.superseded`)."""
    return frozenset(
        name
        for name in set(raw.names) | set(raw.statuses) | set(raw.leaderless)
        if is_superseded(raw.recovery, name, raw.joined.get(name))
    )


def candidate_leader(statuses: Mapping[str, StatusAnswer]) -> str | None:
    """The member to ask for the member list: one whose own status says it leads, in the
    highest term any such member reports (a deposed leader in a minority may still
    believe it leads, in an older term)."""
    leading = [(s.term, name) for name, s in statuses.items() if s.leads]
    return max(leading)[1] if leading else None


def peers_by_url(peer_urls: Mapping[str, str]) -> dict[str, str]:
    """Peer URL → member name, for `name_of`."""
    return {url: name for name, url in peer_urls.items()}


def name_of(entry: ListEntry, by_peer: Mapping[str, str]) -> str:
    """The entry's name, or the member whose peer URL it lists (a learner that has not
    started has no name yet)."""
    if entry.name:
        return entry.name
    for url in entry.peer_urls:
        if url in by_peer:
            return by_peer[url]
    return f"unknown-{entry.id:x}"


def confirmed_leader(raw: RawObservation) -> tuple[str | None, int | None]:
    """The leader and term a majority of the listed voters name (see the module doc)."""
    source = raw.list_source
    if not raw.confirmed or raw.member_list is None or source is None:
        return None, None
    own = raw.statuses.get(source)
    if own is None or not own.leads or source in superseded_names(raw):
        return None, None
    voter_ids = {e.id for e in raw.member_list if not e.is_learner}
    if own.member_id not in voter_ids:
        return None, None
    naming = sum(
        1
        for s in raw.statuses.values()
        if s.member_id in voter_ids and s.leader_id == own.member_id and s.term == own.term
    )
    if naming < majority(len(voter_ids)):
        return None, None
    return source, own.term


def own_views(raw: RawObservation, by_peer: Mapping[str, str]) -> dict[str, OwnView]:
    """Each answering member's own view of itself (see `OwnView`)."""
    lists = dict(raw.other_lists)
    if raw.list_source is not None and raw.member_list is not None:
        lists[raw.list_source] = raw.member_list
    views = {}
    for name, answer in {**raw.leaderless, **raw.statuses}.items():
        entries = lists.get(name)
        if entries is None:
            continue
        voters = tuple((name_of(e, by_peer), e.id) for e in entries if not e.is_learner)
        views[name] = OwnView(
            member_id=answer.member_id,
            applied_index=answer.applied_index,
            is_voter=any(member_id == answer.member_id for _, member_id in voters),
            voters=voters,
        )
    return views


def build_observed(raw: RawObservation) -> Observed:
    by_peer = peers_by_url(raw.peer_urls)
    listed = {name_of(e, by_peer): e for e in raw.member_list or ()}
    # A dropped incarnation's list is the old cluster's: it counts as no view at all.
    dropped = superseded_names(raw)
    views_elsewhere = {
        source: entries
        for source, entries in raw.other_lists.items()
        if source != raw.list_source and source not in dropped
    }
    elsewhere = {name_of(e, by_peer) for entries in views_elsewhere.values() for e in entries}
    by_others = {
        name
        for source, entries in views_elsewhere.items()
        for e in entries
        if (name := name_of(e, by_peer)) != source
    }
    ids_to_names = {e.id: name for name, e in listed.items()}
    for entries in raw.other_lists.values():
        for e in entries:
            ids_to_names.setdefault(e.id, name_of(e, by_peer))
    leader, term = confirmed_leader(raw)
    members = []
    for name in sorted(set(raw.names) | set(listed) | elsewhere):
        entry = listed.get(name)
        status = raw.statuses.get(name)
        if name in raw.seen:
            runtime = raw.runtimes.get(name, MemberRuntime())
        else:
            # Another cluster's member: its health comes over gRPC, its template from
            # what its own executor published in the store.
            record = raw.published.get(name, {})
            runtime = MemberRuntime(
                present=status is not None,
                running=status is not None,
                has_data=entry is not None,
                revision=record.get("revision"),
                version=record.get("version"),
            )
        place = parse_member_name(raw.federation, name)
        members.append(
            ObservedMember(
                name=name,
                cluster=place[0] if place else None,
                ordinal=place[1] if place else None,
                member_id=entry.id if entry else None,
                is_learner=bool(entry and entry.is_learner),
                ever_started=bool(entry and entry.client_urls),
                listed_elsewhere=name in elsewhere,
                listed_only_by_itself=name in elsewhere and name not in by_others,
                present=runtime.present,
                running=runtime.running,
                has_data=runtime.has_data,
                healthy=status is not None,
                applied_index=status.applied_index if status else None,
                names_leader=ids_to_names.get(status.leader_id) if status else None,
                term=status.term if status else None,
                revision=runtime.revision,
                version=(status.version if status else "") or runtime.version,
                joined_at=raw.joined.get(name),
                forced=runtime.forced,
                started_at=runtime.started_at,
                serving=runtime.serving,
            )
        )
    return Observed(
        now=raw.now,
        members=tuple(members),
        member_list_known=raw.confirmed and raw.member_list is not None,
        formed=raw.formed,
        leader=leader,
        term=term,
        lock_holder=raw.lock_holder,
        formation=raw.formation,
        # A timeout is not a fact until it has lasted: a slow machine answers late, a
        # hung member never does.
        inconclusive={
            name: waited
            for name, waited in raw.unanswered.items()
            if raw.now - raw.unanswered_since.get(name, raw.now) < NO_ANSWER_GRACE
        },
        own_views={n: v for n, v in own_views(raw, by_peer).items() if n not in dropped},
        last_seen=raw.last_seen,
        watching_since=raw.watching_since,
        recovery=raw.recovery,
    )
