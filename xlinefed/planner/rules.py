"""`plan(desired, observed) -> Step`: the safe-step planner.

Pure and deterministic: no I/O, no clock (time is `observed.now`), no randomness, and
every iteration is over tuples in a fixed order. Reconciliation is an ordered chain of
guarded phases (as CloudNativePG's); the first phase with something to do returns its
one step. Later phases run only once earlier ones have nothing left, so a federation
first regains health, then finishes half-done membership changes, then scales, and only
then rolls to a new template.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from xlinefed.api.engines import minor_of
from xlinefed.api.models import BootstrapMode, ClusterOrder
from xlinefed.planner.model import Desired, DesiredMember, Formation, Observed, ObservedMember
from xlinefed.planner.quorum import (
    counting_voters,
    majority,
    safe_to_promote,
    safe_to_take_down,
    voters,
)
from xlinefed.planner.recovery import Verdict, assess, superseded
from xlinefed.planner.steps import (
    AddLearner,
    Bootstrap,
    DeleteMember,
    Done,
    FinishRecovery,
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
    WaitCode,
    WipeData,
)

#: Seconds before asking again while a member we just started or restarted comes up (it
#: answers, catches up or turns healthy within a fraction of a second on a sound
#: machine); asking sooner costs one observation, asking later is time every restart,
#: learner start and promote of a rolling update or scale-out waits for nothing.
SOON = 0.2
#: The soonest we ask again: right after a start, a member's readiness is checked at
#: half the time it has been starting so far (so the wait overshoots its real start by
#: at most half), never sooner than this and never later than SOON.
SOONEST = 0.02


@dataclass(frozen=True)
class _View:
    """The inputs with the lookups every rule needs, computed once."""

    desired: Desired
    observed: Observed
    desired_names: frozenset[str]
    listed: tuple[ObservedMember, ...]

    @classmethod
    def of(cls, desired: Desired, observed: Observed) -> _View:
        return cls(
            desired=desired,
            observed=observed,
            desired_names=frozenset(m.name for m in desired.members),
            listed=tuple(m for m in observed.members if m.in_list),
        )

    def observed_member(self, name: str) -> ObservedMember:
        found = self.observed.member(name)
        if found is not None:
            return found
        wanted = next(m for m in self.desired.members if m.name == name)
        return ObservedMember(name=name, cluster=wanted.cluster, ordinal=wanted.ordinal)

    @property
    def leader(self) -> ObservedMember | None:
        name = self.observed.leader
        return self.observed.member(name) if name else None

    @property
    def leader_index(self) -> int | None:
        """The leader's own applied index. Unknown means nobody counts as caught up: any
        stand-in (the highest index someone else reported) is a lower bound of the
        leader's and would make every gap look smaller than it is."""
        leader = self.leader
        return leader.applied_index if leader is not None else None

    def caught_up(self, member: ObservedMember) -> bool:
        lead = self.leader_index
        if lead is None or member.applied_index is None:
            return False
        return lead - member.applied_index <= self.desired.max_promote_lag

    def sound(self, member: ObservedMember) -> bool:
        """Counts toward a quorum: answered, names the confirmed leader in its term, and
        is caught up with it. Answering alone proves nothing across clusters: a member
        cut off from its peers still answers, naming no leader or another term."""
        return (
            member.healthy
            and self.observed.leader is not None
            and member.names_leader == self.observed.leader
            and member.term == self.observed.term
            and self.caught_up(member)
        )

    def ours(self, member: ObservedMember) -> bool:
        return self.desired.in_scope(member.cluster, self.observed.now)

    @property
    def formation(self) -> Formation:
        """Who may bootstrap. Without a recorded formation (single-executor tests and
        tools only) the spec's members are the initial set."""
        if self.observed.formation is not None:
            return self.observed.formation
        return Formation(initial_members=self.desired.proposed_initial_members())

    def cluster_rank(self, cluster: str | None) -> int:
        clusters = self.desired.clusters
        return clusters.index(cluster) if cluster in clusters else len(clusters)


Rule = Callable[[_View], Step | None]


def ask_again(view: _View, names: Sequence[str]) -> float:
    """When to observe again while the named members come up: half of how long the most
    recently started of them has been starting, within [SOONEST, SOON]; SOON when the
    platform does not say when they started (another cluster's members)."""
    started = [
        m.started_at
        for name in names
        if (m := view.observed.member(name)) is not None and m.started_at is not None
    ]
    if not started:
        return SOON
    return min(SOON, max(SOONEST, (view.observed.now - max(started)) / 2))


def plan(desired: Desired, observed: Observed) -> Step:
    if desired.paused:
        return Wait(
            "paused: spec.paused is true; set it to false to resume",
            retry_after=30.0,
            code=WaitCode.PAUSED,
        )
    view = _View.of(desired, _in_spec_order(desired, observed))
    rules: tuple[Rule, ...] = (
        (_before_quorum,)
        if not observed.member_list_known
        else (
            # A recovery's forced start is undone before anything else happens.
            _finish_recovery,
            # Healing needs no leader: a crashed member may be what a quorum is missing.
            _start_listed,
            _no_leader,
            _replace_lost_data,
            _finish_learner,
            _remove_strays,
            _version_skip,
            _scale_out,
            _scale_in,
            _delete_removed,
            _roll,
            _settle,
        )
    )
    for rule in rules:
        step = rule(view)
        if step is not None:
            return _respect_lock(view, _not_on_a_guess(view, step))
    return Done()


#: Waits a silence can cause: while members are only late, the silence is the reason.
_SILENCE_WAITS = frozenset(
    {
        WaitCode.NO_LEADER,
        WaitCode.NO_QUORUM,
        WaitCode.FEDERATION_UNREACHABLE,
        WaitCode.QUORUM_AT_RISK,
        WaitCode.NOT_READY,
        WaitCode.SETTLING,
        WaitCode.LEARNER_STARTING,
    }
)


def _not_on_a_guess(view: _View, step: Step) -> Step:
    """A member that gave no answer in time is unknown, not down (see NO_ANSWER_GRACE):
    no step acts on it, and a wait that its silence explains says so instead of
    claiming there is no leader or no quorum."""
    silent = view.observed.inconclusive
    if not silent:
        return step
    acts_on_it = not isinstance(step, Wait | Done) and step.member in silent
    if acts_on_it or (isinstance(step, Wait) and step.code in _SILENCE_WAITS):
        return Wait(
            f"no answer within {max(silent.values()):.1f}s from {', '.join(sorted(silent))} "
            "(a slow machine or link, or a member going down); asking again before acting",
            retry_after=SOON,
            code=WaitCode.NO_ANSWER,
        )
    return step


def _in_spec_order(desired: Desired, observed: Observed) -> Observed:
    """Rules take the first match in iteration order, so the members are put in one
    canonical order (spec cluster order, then ordinal, then name): the step must not depend
    on the order in which the executor happened to list them (invariant 7)."""
    rank = {cluster: i for i, cluster in enumerate(desired.clusters)}

    def key(m: ObservedMember) -> tuple[int, str, int, str]:
        ordinal = m.ordinal if m.ordinal is not None else -1
        return (rank.get(m.cluster or "", len(rank)), m.cluster or "", ordinal, m.name)

    members = tuple(sorted(observed.members, key=key))
    return observed if members == observed.members else replace(observed, members=members)


def _respect_lock(view: _View, step: Step) -> Step:
    holder = view.observed.lock_holder
    if step.needs_lock and holder is not None:
        return Wait(
            f"membership lock held by {holder}; next: {step.describe()}",
            retry_after=1.0,
            code=WaitCode.LOCK_HELD,
        )
    return step


def _ours(view: _View, members: Iterable[ObservedMember]) -> list[ObservedMember]:
    """Members this executor decides membership steps for (its own, plus those of
    clusters that left the spec or whose grace period is over)."""
    return [m for m in members if view.ours(m)]


def _local(view: _View, members: Iterable[ObservedMember]) -> list[ObservedMember]:
    """Members whose processes or pods this executor runs: only its own cluster's. A
    member of a lost cluster can be removed by anyone, but only started by its own."""
    scope = view.desired.scope
    return [m for m in members if scope is None or m.cluster in scope]


# --- before a quorum answers -------------------------------------------------------------


def _before_quorum(view: _View) -> Step:
    desired, observed = view.desired, view.observed
    # Without a member list, a member the spec no longer wants may still be a voter the
    # quorum needs (a scale-in not done yet), so it is restarted too, after the wanted
    # ones; a deleted one (not present) has been removed from the list already.
    crashed = [m for m in _local(view, observed.members) if m.has_data and not m.running]
    crashed = [m for m in crashed if m.name in view.desired_names or m.present]
    # Data a recovery dropped belongs to the old cluster: never started on again.
    crashed = [m for m in crashed if not superseded(observed.recovery, m)]
    if crashed:
        member = min(
            crashed,
            key=lambda m: (
                m.name not in view.desired_names,
                view.cluster_rank(m.cluster),
                m.ordinal or 0,
            ),
        )
        return StartMember(
            member.name,
            StartMode.EXISTING,
            revision=_start_revision(view, member),
            require_data=True,  # it has data (we believe): the guard checks
        )
    formation = view.formation
    running = sum(1 for m in observed.members if m.running)
    if formation.formed or observed.formed:
        # One bootstrap per federation, ever: a cluster that cannot reach the others
        # (its network is not up yet, or it is cut off) waits for them, unless a
        # majority is gone for good and spec.recovery asks to rebuild from a survivor.
        return _recover_or_wait(view, formation, running)
    if not desired.members:
        return Wait("no members wanted", retry_after=5.0, code=WaitCode.NO_QUORUM)
    initial = formation.initial_members
    if not initial:
        return Wait(
            "no bootstrap authority yet: spec.formation.initialMembers is unset (the "
            "federation operator records it when it first places the federation)",
            retry_after=5.0,
            code=WaitCode.NO_BOOTSTRAP_AUTHORITY,
        )
    to_start = [
        name
        for name in initial
        if name in view.desired_names
        and view.ours(view.observed_member(name))
        and not view.observed_member(name).running
        and not view.observed_member(name).has_data
    ]
    if to_start:
        return Bootstrap(
            tuple(to_start),
            initial,
            revision=desired.revision,
            initial_leader=_initial_leader(view),
        )
    up = sum(1 for name in initial if (m := observed.member(name)) is not None and m.running)
    return Wait(
        f"bootstrapping: {up} of {len(initial)} initial members running, "
        f"a quorum needs {majority(len(initial))}",
        retry_after=1.0,
        code=WaitCode.BOOTSTRAPPING,
    )


def _recover_or_wait(view: _View, formation: Formation, running: int) -> Step:
    found = assess(view.desired, view.observed)
    if found.verdict is Verdict.RECOVER and found.source is not None:
        source = view.observed_member(found.source)
        return RecoverFrom(
            source.name,
            _start_revision(view, source),
            lost=found.lost,
            lost_ids=found.lost_ids,
            applied_index=found.applied_index,
            request=view.desired.recovery.key if view.desired.recovery else "",
        )
    if found.verdict is Verdict.UNDER_WAY:
        return Wait(found.reason, retry_after=found.retry_after, code=WaitCode.RECOVERING)
    if found.verdict in (Verdict.REFUSED, Verdict.DONE):
        return Wait(found.reason, retry_after=found.retry_after, code=WaitCode.RECOVERY_REFUSED)
    since = f" at {formation.formed_at}" if formation.formed_at else ""
    lost = f"; {found.reason}" if found.verdict is Verdict.NOT_REQUESTED else ""
    return Wait(
        "cannot reach a quorum of the federation (no leader answers with a majority "
        f"behind it); not bootstrapping: it formed{since}. {running} member(s) running "
        f"here; waiting for a majority to answer{lost}",
        retry_after=2.0,
        code=WaitCode.FEDERATION_UNREACHABLE,
    )


def _finish_recovery(view: _View) -> Step | None:
    """A survivor running with the force-new-cluster flag is restarted without it first:
    a later start with the flag would drop every member added since. So is the survivor
    of a recovery not finished yet (its forced process crashed and it came back normally):
    finishing records the revision reached, and regrowth waits for it."""
    record = view.observed.recovery
    for member in _local(view, view.listed):
        unfinished = (
            record is not None and not record.finished and member.name == record.from_member
        )
        if not (member.running and (member.forced or unfinished)):
            continue
        # Only the dropped voters' removal is waited for: a member another cluster's
        # executor added since (it cannot see that this one still runs forced) is the
        # regrowth, not a leftover.
        others = [
            v.name
            for v in voters(view.listed)
            if v.name != member.name and superseded(view.observed.recovery, v)
        ]
        if others:
            return Wait(
                f"{member.name} started as a new cluster but the member list still has "
                f"{', '.join(others)}; waiting for the engine to commit their removal",
                retry_after=1.0,
                code=WaitCode.RECOVERING,
            )
        if not member.healthy:
            return Wait(
                f"{member.name} is starting as a new one-member cluster (recovery)",
                retry_after=ask_again(view, [member.name]),
                code=WaitCode.RECOVERING,
            )
        return FinishRecovery(member.name, _start_revision(view, member))
    return None


def _initial_leader(view: _View) -> str | None:
    """The first recorded initial member, for an engine that needs one named; every
    executor derives the same one from the same record."""
    initial = view.formation.initial_members
    return initial[0] if initial and view.desired.engine.initial_leader_flag else None


def _start_revision(view: _View, member: ObservedMember) -> str:
    """A crashed member comes back on the template it ran, not the desired one: the
    rolling order and partitions decide when it moves on."""
    return member.revision or view.desired.revision


# --- health first -------------------------------------------------------------------------


def _no_leader(view: _View) -> Step | None:
    if view.leader is None:
        return Wait(
            "no leader confirmed: no member that leads is named by a majority of the voters "
            "in its term",
            retry_after=0.5,
            code=WaitCode.NO_LEADER,
        )
    return None


def _replace_lost_data(view: _View) -> Step | None:
    """A member that started once but whose data is gone must be removed and re-added:
    restarting it empty would let it vote without the log it promised to keep."""
    for member in _ours(view, view.listed):
        if member.ever_started and not member.has_data:
            if member.name == view.observed.leader:
                # It still leads from open file handles; hand leadership over first.
                return _move_leadership(view, member)
            remaining = len(voters(view.listed)) - (1 if member.is_voter else 0)
            if member.is_voter and remaining < view.desired.engine.min_voters:
                return Wait(
                    f"{member.name} lost its data, but {view.desired.engine.engine.value} cannot "
                    f"shrink below {view.desired.engine.min_voters} voters to replace it "
                    "(Xline issue #447); restore the data or add a member first",
                    retry_after=30.0,
                    code=WaitCode.ENGINE_LIMIT,
                )
            if not _safe(view, member, removes=True):
                return _quorum_wait(view, f"remove {member.name}, whose data is gone")
            return RemoveMember(
                member.name,
                member.member_id or 0,
                "its data is gone",
                stop_after=member.name in view.desired_names and bool(_local(view, [member])),
            )
    return None


def _start_listed(view: _View) -> Step | None:
    """Members in the member list whose process is not running are started: a crash is
    healed, a freshly added learner gets its process, a late static member joins."""
    # A voter the spec no longer wants is started again only while the quorum needs it;
    # otherwise it is left for scale-in to remove (it may never start again: its cluster
    # is gone, or its binary refuses).
    candidates = [
        m
        for m in _local(view, view.listed)
        if not m.running
        and (m.has_data or not m.ever_started)
        and (m.name in view.desired_names or (m.is_voter and not _safe(view, m, removes=True)))
    ]
    if not candidates:
        return None
    member = min(candidates, key=lambda m: (view.cluster_rank(m.cluster), m.ordinal or 0))
    initial = view.formation.initial_members
    # A static initial member that never ran (it never published client URLs) starts
    # with the initial cluster, as the others did; etcd lets it join late that way.
    late_initial = member.is_voter and not member.ever_started and member.name in initial
    if late_initial and view.desired.bootstrap is BootstrapMode.STATIC:
        return StartMember(
            member.name,
            StartMode.NEW,
            revision=view.desired.revision,
            initial_members=initial,
            initial_leader=member.name == _initial_leader(view),
        )
    # A learner that never ran starts empty; anyone else must find its data.
    return StartMember(
        member.name,
        StartMode.EXISTING,
        revision=_start_revision(view, member),
        require_data=member.ever_started or member.has_data,
    )


def _safe(view: _View, member: ObservedMember, *, removes: bool) -> bool:
    return safe_to_take_down(view.observed.members, member.name, removes=removes, counts=view.sound)


def _quorum_wait(view: _View, action: str) -> Wait:
    members = view.observed.members
    sick = sorted(m.name for m in voters(members) if not view.sound(m))
    return Wait(
        f"cannot {action} yet: {counting_voters(members, view.sound)} of "
        f"{len(voters(members))} voters healthy and caught up with the leader (not: "
        f"{', '.join(sick) or 'none'}), and the step must leave a majority of the "
        "configuration after it",
        retry_after=1.0,
        code=WaitCode.QUORUM_AT_RISK,
    )


# --- membership changes -------------------------------------------------------------------


def _finish_learner(view: _View) -> Step | None:
    """A learner in the list is promoted once caught up; one not wanted is removed; one
    whose cluster never starts it is removed after the grace period."""
    for learner in (m for m in view.listed if m.is_learner):
        if learner.name not in view.desired_names:
            continue  # _remove_strays handles it
        if not view.ours(learner):
            joined = learner.joined_at
            stale = (
                not learner.healthy
                and joined is not None
                and view.observed.now - joined >= view.desired.lost_cluster_grace
            )
            if stale:
                return RemoveMember(
                    learner.name,
                    learner.member_id or 0,
                    f"cluster {learner.cluster} did not start it within "
                    f"{view.desired.lost_cluster_grace:.0f}s",
                )
            left = (joined or 0.0) + view.desired.lost_cluster_grace - view.observed.now
            until = (
                f"; removed in {left:.0f}s unless its cluster starts it"
                if joined is not None and not learner.healthy
                else ""
            )
            return Wait(
                f"learner {learner.name} of cluster {learner.cluster} is joining{until}",
                code=WaitCode.LEARNER_JOINING,
            )
        if not learner.running or not learner.healthy:
            return Wait(
                f"learner {learner.name} is starting",
                retry_after=ask_again(view, [learner.name]),
                code=WaitCode.LEARNER_STARTING,
            )
        if not view.caught_up(learner):
            lead = view.leader_index
            gap = "?" if lead is None else lead - (learner.applied_index or 0)
            return Wait(
                f"learner {learner.name} is catching up: {gap} entries behind the leader "
                f"(promote at <= {view.desired.max_promote_lag})",
                retry_after=SOON,
                code=WaitCode.CATCHING_UP,
            )
        if not safe_to_promote(view.observed.members, learner.name, view.sound):
            return _quorum_wait(view, f"promote {learner.name}")
        lag = (view.leader_index or 0) - (learner.applied_index or 0)
        return PromoteLearner(learner.name, lag=max(lag, 0))
    return None


def _remove_strays(view: _View) -> Step | None:
    """Learners nobody wants and entries that are not ours leave first: they block adds."""
    for member in _ours(view, view.listed):
        stray = member.cluster is None or (
            member.is_learner and member.name not in view.desired_names
        )
        if stray:
            if member.is_voter and not _safe(view, member, removes=True):
                return _quorum_wait(view, f"remove unknown member {member.name}")
            if member.name == view.observed.leader:
                return _move_leadership(view, member)
            return RemoveMember(member.name, member.member_id or 0, "not part of the spec")
    return None


def _version_skip(view: _View) -> Step | None:
    """No member starts on the spec's release while another runs a release more than one
    minor older (etcd: 3.6 joins only a cluster at 3.5, and 3.4's data must pass through
    3.5). Validation refuses such a spec change when it knows the previous spec; this
    catches the rest (an edit made mid-roll, or a spec that skipped validation)."""
    wanted = view.desired.version
    if not (view.desired.engine.one_minor_at_a_time and wanted):
        return None
    major, minor = minor_of(wanted)
    behind = sorted(
        {
            m.version
            for m in view.listed
            if m.version and minor_of(m.version)[0] == major and minor_of(m.version)[1] < minor - 1
        }
    )
    if not behind:
        return None
    return Wait(
        f"spec.version {wanted} skips a minor: members run {', '.join(behind)} and "
        f"{view.desired.engine.engine.value} upgrades one minor at a time; set spec.version "
        f"to a {major}.{minor - 1} release, let the roll finish, then upgrade to {wanted}",
        retry_after=30.0,
        code=WaitCode.VERSION_SKIP,
    )


def _scale_out(view: _View) -> Step | None:
    listed_names = {m.name for m in view.listed}
    missing = [m for m in view.desired.members if m.name not in listed_names]
    ours = [m for m in missing if view.desired.in_scope(m.cluster, view.observed.now)]
    if not ours:
        return None
    record = view.observed.recovery
    if record is not None and not record.finished:
        # The survivor still runs forced: it is restarted normally first (a one-voter
        # restart; with a second voter added it would lose the quorum).
        return Wait(
            f"the recovery from {record.from_member} is not finished (it still runs with "
            "the force-new-cluster flag); regrowing after it",
            retry_after=1.0,
            code=WaitCode.RECOVERING,
        )
    member: DesiredMember = ours[0]
    seen = view.observed_member(member.name)
    # Nothing that another view still lists, that runs or that has data is re-added:
    # the leader's list may be ahead of a member's, never the other way round, so wait
    # for the views to agree, then stop, then wipe, then add.
    if seen.listed_elsewhere:
        return Wait(
            f"{member.name} is not in the leader's member list but another member still "
            "lists it; waiting for the views to agree",
            code=WaitCode.VIEWS_DISAGREE,
        )
    if seen.running:
        return StopMember(member.name, "not in the leader's member list; it rejoins as a learner")
    if seen.has_data:
        return WipeData(member.name)
    learners = sum(1 for m in view.listed if m.is_learner)
    if learners >= view.desired.engine.max_learners:
        return Wait(
            "another learner is joining; the engine allows one at a time",
            code=WaitCode.LEARNER_JOINING,
        )
    # Sick members elsewhere (a dead cluster) do not block adds: a learner does not vote.
    return AddLearner(member.name)


def _scale_in_order(view: _View, member: ObservedMember) -> tuple[int, int, int, int]:
    # A member that does not count toward quorum goes first: nothing restarts a member
    # the spec no longer wants, and while it stays in the configuration every other
    # removal needs it (removing it instead leaves the healthy share the same or larger).
    # Then clusters gone from the spec, then spec order; highest ordinal first.
    dead = 0 if member.is_voter and not view.sound(member) else 1
    gone = 0 if member.cluster not in view.desired.clusters else 1
    return (dead, gone, view.cluster_rank(member.cluster), -(member.ordinal or 0))


def _scale_in(view: _View) -> Step | None:
    unwanted = [m for m in _ours(view, view.listed) if m.name not in view.desired_names]
    if not unwanted:
        return _departed_elsewhere(view)
    member = min(unwanted, key=lambda m: _scale_in_order(view, m))
    if member.name == view.observed.leader:
        return _move_leadership(view, member)
    remaining = len(voters(view.listed)) - (1 if member.is_voter else 0)
    if member.is_voter and remaining < view.desired.engine.min_voters:
        return Wait(
            f"{view.desired.engine.engine.value} cannot shrink below "
            f"{view.desired.engine.min_voters} voters (Xline issue #447)",
            retry_after=30.0,
            code=WaitCode.ENGINE_LIMIT,
        )
    if not _safe(view, member, removes=True):
        return _quorum_wait(view, f"remove {member.name}")
    return RemoveMember(member.name, member.member_id or 0, "scaled in")


def _departed_elsewhere(view: _View) -> Step | None:
    """A departed cluster drains itself while its operator lives; the cluster that takes
    over after the grace period says how long it will wait (its Done would be a lie)."""
    desired, now = view.desired, view.observed.now
    left = [
        m for m in view.listed if m.name not in view.desired_names and m.cluster in desired.departed
    ]
    if not left or desired.scope is None:
        return None
    heir = next((c for c in desired.clusters if c not in desired.departed), None)
    if heir not in desired.scope:
        return None
    cluster = left[0].cluster or ""
    remaining = desired.departed[cluster] + desired.lost_cluster_grace - now
    return Wait(
        f"{', '.join(m.name for m in left)} of departed cluster {cluster} are drained by its "
        f"own operator; this one takes over in {max(remaining, 0):.0f}s",
        retry_after=min(30.0, max(remaining, 1.0)),
        code=WaitCode.DRAINING_ELSEWHERE,
    )


def _delete_removed(view: _View) -> Step | None:
    for member in _local(view, view.observed.members):
        if member.in_list or member.name in view.desired_names:
            continue
        if member.listed_elsewhere:
            if member.present and member.listed_only_by_itself:
                # Removed, and only its own stale view still has it: stop it rather than
                # report the spec reached beside it; its data waits until no view has it.
                return DeleteMember(member.name, delete_data=False)
            continue
        delete_data = view.desired.delete_data_on_scale_in
        if member.present or (delete_data and member.has_data):
            return DeleteMember(member.name, delete_data=delete_data)
    return None


# --- rolling update -----------------------------------------------------------------------


def _partition(view: _View, cluster: str | None) -> int:
    return view.desired.partitions.get(cluster or "", 0)


def _outdated(view: _View, member: ObservedMember) -> bool:
    return (
        member.in_list
        and member.name in view.desired_names
        and member.revision != view.desired.revision
        and (member.ordinal or 0) >= _partition(view, member.cluster)
    )


def _update_order(view: _View) -> list[str]:
    clusters = list(view.desired.clusters)
    if view.desired.cluster_order is ClusterOrder.LEADER_LAST:
        leader = view.leader
        if leader is not None and leader.cluster in clusters:
            clusters.remove(leader.cluster)
            clusters.append(leader.cluster)
    return clusters


def _roll(view: _View) -> Step | None:
    outdated = [m for m in view.listed if _outdated(view, m)]
    if not outdated:
        return None
    engine = view.desired.engine
    if not engine.restarts_from_wal:
        return Wait(
            f"{engine.engine.value} members cannot be restarted from their own log (seen with "
            "Xline v0.7.0: 'WAL corrupted' on restart), so a rolling update would lose them one "
            f"by one; {len(outdated)} member(s) keep their template. Revert the template change "
            "(see docs/engines.md)",
            retry_after=30.0,
            code=WaitCode.ENGINE_LIMIT,
        )
    # A member the platform does not count as serving yet (its pod not Ready) is not
    # ready either, though it answers over gRPC: restarting the next one then would leave
    # the Services with fewer endpoints, and a disruption budget with fewer available
    # pods, than one restart at a time means (seen: all three pods of a cluster unready
    # at once, gRPC health having come back ~2 s before the readiness probe passed).
    not_ready = [
        m.name
        for m in view.listed
        if not (m.running and (view.sound(m) if m.is_voter else view.caught_up(m)))
        or m.serving is False
    ]
    if not_ready:
        return Wait(
            f"waiting for {', '.join(not_ready)} to be healthy and caught up before the next "
            "restart",
            retry_after=ask_again(view, not_ready),
            code=WaitCode.NOT_READY,
        )
    for cluster in _update_order(view):
        in_cluster = [m for m in outdated if m.cluster == cluster]
        if not in_cluster:
            continue
        if not view.desired.in_scope(cluster, view.observed.now):
            return Wait(
                f"cluster {cluster} updates first",
                retry_after=2.0,
                code=WaitCode.OTHER_CLUSTER_FIRST,
            )
        # Highest ordinal first, but the leader last in its cluster: by its turn another
        # member is updated and can take over, so leadership moves once, not twice.
        member = max(
            in_cluster,
            key=lambda m: (m.name != view.observed.leader, m.ordinal or 0),
        )
        if member.name == view.observed.leader and len(voters(view.listed)) > 1:
            return _move_leadership(view, member)
        several = len(voters(view.listed)) > 1
        if member.is_voter and several and not _safe(view, member, removes=False):
            return _quorum_wait(view, f"restart {member.name}")
        return RestartMember(member.name, view.desired.revision)
    return None


def _move_leadership(view: _View, leader: ObservedMember) -> Step:
    """Invariant 4: the leader is never stopped or removed; pick its successor.

    Preference: a healthy, caught-up, desired voter already on the desired revision, in a
    cluster that has finished updating, in spec order. If no voter is updated yet (e.g. a
    partition holds the others back) any healthy desired voter will do: waiting would
    deadlock, and the new leader is not about to be restarted.
    """
    if not view.desired.engine.supports_move_leader:
        return Wait(
            f"{leader.name} leads and the engine cannot move leadership",
            5.0,
            code=WaitCode.ENGINE_LIMIT,
        )
    candidates = [
        m
        for m in view.listed
        if m.is_voter and view.sound(m) and m.name != leader.name and m.name in view.desired_names
    ]
    if not candidates:
        return Wait(
            f"no healthy, caught-up voter can take leadership from {leader.name}",
            code=WaitCode.NO_SUCCESSOR,
        )
    unfinished = {m.cluster for m in view.listed if _outdated(view, m)}

    def preference(m: ObservedMember) -> tuple[int, int, int, int]:
        return (
            0 if m.revision == view.desired.revision else 1,
            0 if m.cluster not in unfinished else 1,
            view.cluster_rank(m.cluster),
            m.ordinal or 0,
        )

    target = min(candidates, key=preference)
    return TransferLeadership(leader.name, target.name)


def _settle(view: _View) -> Step | None:
    """Done means reached *and* healthy: the last restarted member must answer first."""
    pending = [
        m.name for m in _local(view, view.listed) if m.name in view.desired_names and not m.healthy
    ]
    if pending:
        return Wait(
            f"waiting for {', '.join(pending)} to become healthy",
            retry_after=ask_again(view, pending),
            code=WaitCode.SETTLING,
        )
    return None
