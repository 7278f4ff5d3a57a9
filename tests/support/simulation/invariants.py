"""The invariants of DESIGN.md ("The safe-step planner"), as checks of one planned step.

Each `invariant_N(desired, observed, step)` returns what is wrong with `step` as the
planner's answer to (desired, observed); an empty list means it holds. The property
tests call one each; the simulator calls `all_invariants` on every step it takes.
"""

from __future__ import annotations

from collections.abc import Callable

from xlinefed.api.models import BootstrapMode, ClusterOrder
from xlinefed.planner import (
    ALL_STEPS,
    AddLearner,
    Bootstrap,
    DeleteMember,
    Desired,
    Observed,
    ObservedMember,
    PromoteLearner,
    RecoverFrom,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    Step,
    StopMember,
    TransferLeadership,
    Wait,
    WipeData,
)
from xlinefed.planner.quorum import majority

# --- helpers ------------------------------------------------------------------------------


def listed(o: Observed) -> list[ObservedMember]:
    return [m for m in o.members if m.in_list]


def voters(o: Observed) -> list[ObservedMember]:
    return [m for m in o.members if m.is_voter]


def leader_of(o: Observed) -> ObservedMember | None:
    return o.member(o.leader) if o.leader else None


def caught_up(d: Desired, o: Observed, m: ObservedMember) -> bool:
    leader = leader_of(o)
    if leader is None or leader.applied_index is None or m.applied_index is None:
        return False
    return leader.applied_index - m.applied_index <= d.max_promote_lag


def counts(d: Desired, o: Observed, m: ObservedMember) -> bool:
    """A voter that counts toward a quorum: it answered, follows the confirmed leader in
    its term, and is caught up with it (DESIGN.md, "Safety in a world with real faults")."""
    return (
        m.healthy
        and o.leader is not None
        and m.names_leader == o.leader
        and m.term == o.term
        and caught_up(d, o, m)
    )


def lost_data(m: ObservedMember) -> bool:
    return m.ever_started and not m.has_data


def partition(d: Desired, cluster: str | None) -> int:
    return d.partitions.get(cluster or "", 0)


def outdated(d: Desired, m: ObservedMember) -> bool:
    wanted = {x.name for x in d.members}
    return (
        m.in_list
        and m.name in wanted
        and m.revision != d.revision
        and (m.ordinal or 0) >= partition(d, m.cluster)
    )


def target(o: Observed, step: Step) -> ObservedMember | None:
    return o.member(step.member) if step.member else None


# --- the invariants -----------------------------------------------------------------------


def invariant_1(d: Desired, o: Observed, step: Step) -> list[str]:
    """One membership change at a time, every one under the global lock. The one
    exception is a quorum-loss recovery (no quorum to take the lock in), judged by
    `recovery_is_fenced` instead."""
    problems = []
    if isinstance(step, RecoverFrom):
        return []
    if step.changes_membership and not step.needs_lock:
        problems.append(f"{step.kind} changes membership without the lock")
    if step.needs_lock and o.lock_holder is not None:
        problems.append(f"{step.describe()} while {o.lock_holder} holds the lock")
    if not step.changes_membership:
        return problems
    if not o.member_list_known:
        problems.append(f"{step.describe()} without a readable member list")
    wanted = {m.name for m in d.members}
    learners = [m for m in listed(o) if m.is_learner]
    if isinstance(step, AddLearner) and len(learners) >= d.engine.max_learners:
        problems.append(f"add while {[m.name for m in learners]} are learners")
    # A wanted learner is an add in flight: until it is promoted, only it may change.
    # Removing a member whose data is gone is a repair, not a change of the plan.
    joining = [m.name for m in learners if m.name in wanted and m.name != step.member]
    t = target(o, step)
    repair = isinstance(step, RemoveMember) and t is not None and lost_data(t)
    # Promoting or removing a learner finishes or cancels an add that is already in
    # flight (only possible with several learners, an engine allowing more than one).
    settles = t is not None and t.is_learner and not isinstance(step, AddLearner)
    if joining and not (repair or settles):
        problems.append(f"{step.describe()} while {joining} is joining")
    return problems


def invariant_2(d: Desired, o: Observed, step: Step) -> list[str]:
    """No step leaves fewer healthy voters than a majority of the voters after it."""
    vs = voters(o)
    t = target(o, step)
    if isinstance(step, PromoteLearner):
        sound = sum(1 for v in vs if counts(d, o, v)) + int(t is not None and counts(d, o, t))
        if sound < majority(len(vs) + 1):
            return [f"{step.describe()} leaves {sound} caught-up of {len(vs) + 1} voters"]
        return []
    if not isinstance(step, RestartMember | RemoveMember | DeleteMember | StopMember):
        return []
    if t is None or not t.is_voter:
        return []
    if isinstance(step, DeleteMember | StopMember):
        return [f"{step.describe()}: it is a voter"]
    if isinstance(step, RestartMember) and len(vs) == 1:
        return []  # a single voter cannot roll without downtime; the planner accepts it
    after = len(vs) - 1 if isinstance(step, RemoveMember) else len(vs)
    left = sum(1 for v in vs if counts(d, o, v) and v.name != t.name)
    if after == 0 or left < majority(after):
        return [f"{step.describe()} leaves {left} caught-up of {after} voters"]
    return []


def invariant_3(d: Desired, o: Observed, step: Step) -> list[str]:
    """New members join as learners; a learner is promoted only once caught up."""
    wanted = {m.name for m in d.members}
    t = target(o, step)
    if isinstance(step, AddLearner):
        problems = []
        if step.name not in wanted:
            problems.append(f"adds {step.name}, which the spec does not want")
        if t is not None and t.in_list:
            problems.append(f"adds {step.name}, which is in the member list")
        place = next((m for m in d.members if m.name == step.name), None)
        if place is not None and not d.in_scope(place.cluster):
            problems.append(f"adds {step.name}, outside the executor's scope")
        return problems
    if isinstance(step, PromoteLearner):
        if t is None or not t.is_learner:
            return [f"promotes {step.name}, which is not a learner"]
        if not (t.running and t.healthy and caught_up(d, o, t)):
            leader = leader_of(o)
            return [
                f"promotes {t.name} at applied {t.applied_index} while the leader "
                f"is at {leader.applied_index if leader else None} "
                f"(max lag {d.max_promote_lag})"
            ]
        return []
    new_start = isinstance(step, StartMember) and step.mode is StartMode.NEW
    if new_start and t is not None and t.is_learner:
        return [f"starts learner {t.name} as a new cluster"]
    if isinstance(step, Bootstrap) and (o.formed or o.member_list_known):
        return ["bootstraps a cluster that has formed"]
    if isinstance(step, Bootstrap) and o.formation is not None:
        if o.formation.formed:
            return ["bootstraps although the federation formed"]
        if set(step.initial_members) != set(o.formation.initial_members):
            return [f"bootstraps {step.initial_members}, not the recorded initial members"]
        if not set(step.members) <= set(o.formation.initial_members):
            return [f"bootstraps {step.members}, which are not all initial members"]
    dynamic = isinstance(step, Bootstrap) and d.bootstrap is BootstrapMode.DYNAMIC
    if dynamic and len(step.initial_members) != 1:  # type: ignore[attr-defined]
        return [f"dynamic bootstrap with {len(step.initial_members)} initial members"]
    return []


def invariant_4(d: Desired, o: Observed, step: Step) -> list[str]:
    """The leader is never stopped or removed; leadership goes to a healthy, updated voter
    (in a finished cluster when there is one)."""
    vs = voters(o)
    takes_down = isinstance(step, RestartMember | RemoveMember | DeleteMember)
    if takes_down and step.member == o.leader and len(vs) > 1:
        return [f"{step.describe()}: it leads"]
    if not isinstance(step, TransferLeadership):
        return []
    if step.source != o.leader:
        return [f"{step.describe()}, but {o.leader} leads"]
    t = o.member(step.target)
    if t is None or not (t.is_voter and t.running and t.healthy) or t.name == step.source:
        return [f"{step.describe()}: the target is not another healthy voter"]
    wanted = {m.name for m in d.members}
    candidates = [m for m in vs if counts(d, o, m) and m.name != step.source and m.name in wanted]
    if t.name not in {m.name for m in candidates}:
        return [f"{step.describe()}: the target is not a caught-up voter the spec wants"]
    updated = [m for m in candidates if m.revision == d.revision]
    if updated and t.revision != d.revision:
        return [f"{step.describe()}: {[m.name for m in updated]} already run {d.revision}"]
    unfinished = {m.cluster for m in listed(o) if outdated(d, m)}
    finished = [m for m in updated if m.cluster not in unfinished]
    if finished and t.revision == d.revision and t.cluster in unfinished:
        return [f"{step.describe()}: {[m.name for m in finished]} are in finished clusters"]
    return []


def update_order(d: Desired, o: Observed) -> list[str]:
    clusters = list(d.clusters)
    leader = leader_of(o)
    if d.cluster_order is ClusterOrder.LEADER_LAST and leader and leader.cluster in clusters:
        clusters.remove(leader.cluster)
        clusters.append(leader.cluster)
    return clusters


def invariant_5(d: Desired, o: Observed, step: Step) -> list[str]:
    """Rolling updates: one member at a time, cluster by cluster (the leader's last under
    LeaderLast), highest ordinal first with the leader last in its cluster, ordinals below
    the partition untouched."""
    if not isinstance(step, RestartMember):
        return []
    t = target(o, step)
    if step.revision != d.revision:
        return [f"{step.describe()}: the spec's revision is {d.revision}"]
    if t is None or not outdated(d, t):
        why = "below its partition" if t is not None and t.revision != d.revision else "current"
        return [f"{step.describe()}: it is {why}"]
    problems = []
    behind = [
        m.name
        for m in listed(o)
        if not (m.running and (counts(d, o, m) if m.is_voter else caught_up(d, o, m)))
        and m.name != t.name
    ]
    if behind:
        problems.append(f"{step.describe()} while {behind} are not ready")
    # Highest ordinal first, except that the leader goes last in its cluster.
    leader_name = o.leader
    higher = [
        m.name
        for m in listed(o)
        if m.cluster == t.cluster
        and outdated(d, m)
        and m.name != leader_name
        and (t.name == leader_name or (m.ordinal or 0) > (t.ordinal or 0))
    ]
    if higher:
        problems.append(f"{step.describe()} before higher ordinals {higher}")
    order = update_order(d, o)
    if t.cluster in order:
        earlier = set(order[: order.index(t.cluster)])
        first = [m.name for m in listed(o) if m.cluster in earlier and outdated(d, m)]
        if first:
            problems.append(f"{step.describe()} before {first} of earlier clusters {order}")
    return problems


def invariant_6(d: Desired, o: Observed, step: Step) -> list[str]:
    """Scale-out adds the lowest missing ordinal first (clusters in spec order); scale-in
    removes the highest ordinal first — except a voter that does not count toward quorum
    (down, cut off or behind), which may go first: nothing restarts a member the spec no
    longer wants, and while it stays every other removal needs it."""
    present = {m.name for m in listed(o)}
    if isinstance(step, AddLearner):
        missing = [m for m in d.members if m.name not in present and d.in_scope(m.cluster)]
        if missing and missing[0].name != step.name:
            return [f"{step.describe()} before {missing[0].name}"]
        return []
    t = target(o, step)
    wanted = {m.name for m in d.members}
    if isinstance(step, RemoveMember) and t is not None and t.is_voter and not lost_data(t):
        if t.name in wanted:
            return [f"{step.describe()}: the spec wants it and its data is intact"]
        if t.cluster is None or not counts(d, o, t):
            return []
        higher = [
            m.name
            for m in voters(o)
            if m.cluster == t.cluster
            and m.name not in wanted
            and (m.ordinal or 0) > (t.ordinal or 0)
            and not lost_data(m)
        ]
        if higher:
            return [f"{step.describe()} before higher ordinals {higher}"]
    if isinstance(step, DeleteMember) and (t is None or t.in_list or t.name in wanted):
        return [f"{step.describe()}: it is listed or wanted"]
    return []


def never_wipe_what_a_view_has(d: Desired, o: Observed, step: Step) -> list[str]:
    """Nothing that runs, has data or appears in any observed member list is wiped or
    re-added; data goes only once no list has the member and it is stopped."""
    t = target(o, step)
    if t is None:
        return []
    listed_somewhere = t.in_list or t.listed_elsewhere
    if isinstance(step, AddLearner) and (listed_somewhere or t.running or t.has_data):
        return [f"{step.describe()}: it is listed, runs or has data"]
    if isinstance(step, WipeData) and (listed_somewhere or t.running):
        return [f"{step.describe()}: it is listed or runs"]
    if isinstance(step, StopMember) and listed_somewhere:
        return [f"{step.describe()}: a member list has it"]
    if isinstance(step, DeleteMember) and step.delete_data and listed_somewhere:
        return [f"{step.describe()}: a member list has it"]
    return []


def destructive_steps_act_on_the_leaders_view(d: Desired, o: Observed, step: Step) -> list[str]:
    """Removals, stops and wipes need a confirmed leader: its list is the truth."""
    destructive = isinstance(step, RemoveMember | StopMember | WipeData | RestartMember)
    if destructive and (o.leader is None or not o.member_list_known):
        return [f"{step.describe()} without a confirmed leader's member list"]
    return []


def recovery_is_fenced(d: Desired, o: Observed, step: Step) -> list[str]:
    """A quorum-loss recovery (docs/recovery.md) happens only when asked for, while no
    quorum is confirmed and the answering voters are fewer than a majority of the most
    advanced survivor's configuration, from that survivor (or one as far), and only once
    every lost voter has been silent for the whole grace period and none merely timed
    out; never for an engine without a force-new-cluster start."""
    if not isinstance(step, RecoverFrom):
        return []
    problems = []
    request = d.recovery
    if request is None or not (request.automatic or request.from_member is not None):
        problems.append(f"{step.describe()} without spec.recovery")
    if request is not None and request.from_member not in (None, step.name):
        problems.append(f"{step.describe()} but spec.recovery.fromMember={request.from_member}")
    if d.engine.force_new_cluster_flag is None:
        problems.append(f"{step.describe()} on {d.engine.engine.value}, which has no such start")
    if o.member_list_known:
        problems.append(f"{step.describe()} while a quorum is confirmed")
    views = o.own_views
    own = views.get(step.name)
    if own is None or not own.is_voter:
        problems.append(f"{step.describe()}: {step.name} is not an answering voter")
        return problems
    if any(v.is_voter and v.applied_index > own.applied_index for v in views.values()):
        problems.append(f"{step.describe()}: another survivor has applied more")
    answering = [name for name, _ in own.voters if name in views]
    if len(answering) >= majority(len(own.voters)):
        problems.append(f"{step.describe()} while {answering} (a majority) answer")
    for name, _ in own.voters:
        if name in views:
            continue
        if name in o.inconclusive:
            problems.append(f"{step.describe()} while {name} only timed out")
        seen = o.last_seen.get(name, o.watching_since)
        # Never seen and not watched: silent from now on, so a grace period counts from
        # now and a grace of 0 (the user's "do not wait") is met at once (a CI run drew
        # that case and the old "never seen is too recent" check called it unsafe).
        seen = o.now if seen is None else seen
        if o.now - seen < d.lost_cluster_grace:
            problems.append(f"{step.describe()}: {name} was seen within the grace period")
    return problems


def closed_set(d: Desired, o: Observed, step: Step) -> list[str]:
    """Exactly one step from the closed set; a Wait says why."""
    if type(step) not in ALL_STEPS:
        return [f"{step!r} is not one of the planner's steps"]
    if isinstance(step, Wait) and (not step.reason or step.retry_after <= 0):
        return [f"{step!r}: a wait needs a reason and a positive retry"]
    if d.paused and not isinstance(step, Wait):
        return [f"{step.describe()} while paused"]
    return []


INVARIANTS: tuple[Callable[[Desired, Observed, Step], list[str]], ...] = (
    closed_set,
    invariant_1,
    invariant_2,
    invariant_3,
    invariant_4,
    invariant_5,
    invariant_6,
    never_wipe_what_a_view_has,
    destructive_steps_act_on_the_leaders_view,
    recovery_is_fenced,
)


def all_invariants(d: Desired, o: Observed, step: Step) -> list[str]:
    return [problem for check in INVARIANTS for problem in check(d, o, step)]
