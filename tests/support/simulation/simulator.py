"""An in-memory model of one consensus cluster that carries out the planner's steps.

Not a Raft implementation: it keeps just enough state to judge the planner — the member
list (voters, learners, ids), which processes run, which have data, applied indexes, the
leader, template revisions and the membership lock — and it refuses (raises
`StepRejected`) any step a real cluster would refuse or that would break an invariant.

It is pure like the planner: randomness only through the `random.Random` a test passes
in (`rng=None` makes every choice deterministic, for golden scripts); time is a counter.

Observation goes through the executor's own interpretation, `build_observed`: the world
answers as real members would — each with its own status (a member cut off from its
peers names no leader, or an older term, and stops applying) and its own view of the
member list (a partitioned or lagging member serves a stale one) — to executors that
each reach only their own side of a partition and see only their own cluster's pods.
Faults modelled: crashes, lag, lost volumes, foreign lock holders, whole clusters cut
off (a new cluster whose network is not up yet, a partition), members serving stale
lists, clusters that die for good, late federation tiers (the "formed" fact reaching
specs late), membership RPCs that took effect but reported failure, and steps applied
from a view that has gone stale (an executor that paused between plan and apply).
Steps are carried out as `Executor.apply` does: a start uses `StartMember.revision`,
`AddLearner` only adds, `StopMember` and `WipeData` do what they say, and a removed
member's process stops (etcd shuts a removed member down).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from tests.support.simulation import stats
from xlinefed.api.engines import Engine, profile
from xlinefed.api.models import BootstrapMode, ClusterOrder
from xlinefed.planner import (
    AddLearner,
    Bootstrap,
    DeleteMember,
    Desired,
    DesiredMember,
    Done,
    FinishRecovery,
    Formation,
    Observed,
    PromoteLearner,
    RecoverFrom,
    RecoveryRecord,
    RecoveryRequest,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    Step,
    StopMember,
    TransferLeadership,
    Wait,
    WipeData,
    plan,
)
from xlinefed.planner.observation import (
    ListEntry,
    MemberRuntime,
    RawObservation,
    StatusAnswer,
    build_observed,
)
from xlinefed.planner.quorum import majority
from xlinefed.topology import parse_member_name

FEDERATION = "f"
#: Judges one planned step: `check(desired, observed, step)` returns the problems.
Checker = Callable[[Desired, Observed, Step], list[str]]
#: Entries the leader's log grows by per tick while a quorum is up (writes keep coming).
WRITES_PER_TICK = 40
#: Entries a healthy follower or learner applies per tick while behind.
CATCH_UP_PER_TICK = 4000


def make_desired(
    spec: Mapping[str, int],
    *,
    revision: str = "r1",
    engine: Engine = Engine.ETCD,
    bootstrap: BootstrapMode = BootstrapMode.STATIC,
    cluster_order: ClusterOrder = ClusterOrder.LEADER_LAST,
    partitions: Mapping[str, int] | None = None,
    max_promote_lag: int = 1000,
    delete_data: bool = False,
    paused: bool = False,
    scope: frozenset[str] | None = None,
    departed: Mapping[str, float] | None = None,
    lost_cluster_grace: float = 600.0,
    recovery: RecoveryRequest | None = None,
) -> Desired:
    """A `Desired` as `desired_from` builds it (names `f-<cluster>-<ordinal>`), without
    the pydantic round trip, so generated topologies stay cheap."""
    return Desired(
        members=tuple(
            DesiredMember(cluster=c, ordinal=i, name=f"{FEDERATION}-{c}-{i}")
            for c, replicas in spec.items()
            for i in range(replicas)
        ),
        clusters=tuple(spec),
        revision=revision,
        engine=profile(engine),
        bootstrap=bootstrap,
        cluster_order=cluster_order,
        partitions=dict(partitions or {}),
        max_promote_lag=max_promote_lag,
        delete_data_on_scale_in=delete_data,
        paused=paused,
        scope=scope,
        departed=dict(departed or {}),
        lost_cluster_grace=lost_cluster_grace,
        recovery=recovery,
    )


def parse_spec(text: str) -> dict[str, int]:
    """`"a=3 b=2"` → {"a": 3, "b": 2}."""
    result: dict[str, int] = {}
    for item in text.split():
        cluster, _, replicas = item.partition("=")
        result[cluster] = int(replicas)
    return result


class StepRejected(AssertionError):
    """The simulated cluster refuses a step: a real one would fail, or an invariant breaks."""


MAIN = 0  # the island of the connected majority (and of every cluster not cut off)


@dataclass
class SimMember:
    name: str
    cluster: str | None
    ordinal: int | None
    #: Its id in the true member list (the leader's), None when not listed.
    member_id: int | None = None
    is_learner: bool = False
    #: Has run since it was listed: it published client URLs.
    ever_started: bool = False
    #: Listed by name before it ran (a static initial member).
    named: bool = False
    present: bool = False
    running: bool = False
    has_data: bool = False
    healthy: bool = False
    applied_index: int = 0
    revision: str | None = None
    #: The id its process runs as (an earlier incarnation keeps its old one).
    run_id: int | None = None
    #: The last term it knew.
    term: int = 0
    #: Its own view of the member list when it is stale (None: it follows the leader's).
    view: tuple[ListEntry, ...] | None = None
    stale_ticks: int = 0
    joined_at: float | None = None
    #: Which bootstrapped cluster its data belongs to ("never two clusters").
    cluster_uid: int | None = None
    #: Its cluster died for good: nothing runs here any more.
    dead: bool = False
    #: It runs with the engine's force-new-cluster flag (a recovery's first start).
    forced: bool = False

    @property
    def in_list(self) -> bool:
        return self.member_id is not None

    @property
    def is_voter(self) -> bool:
        return self.in_list and not self.is_learner

    def stop(self) -> None:
        self.running = False
        self.healthy = False


def peer_url(name: str) -> str:
    return f"http://{name}:2380"


def client_url(name: str) -> str:
    return f"http://{name}:2379"


@dataclass
class Sim:
    desired: Desired
    rng: random.Random | None = None
    members: dict[str, SimMember] = field(default_factory=dict)
    leader: str | None = None
    term: int = 1
    #: A quorum has answered once (the world's truth).
    formed: bool = False
    #: The bootstrap authority the federation tier (or local controller) recorded.
    initial: tuple[str, ...] | None = None
    #: The authority's "formed" reaches the specs this many ticks after formation.
    authority_lag: int = 0
    authority_formed: bool = False
    #: Per executor scope: it has seen the cluster formed itself.
    seen_formed: set[str] = field(default_factory=set)
    #: Cluster id → island; clusters not listed are on the main island.
    islands: dict[str, int] = field(default_factory=dict)
    #: Cluster id → ticks until its cut heals by itself.
    cut_ticks: dict[str, int] = field(default_factory=dict)
    lock_holder: str | None = None
    lock_ticks: int = 0
    now: float = 0.0
    commit: int = 0
    next_id: int = 1
    cluster_uids: set[int] = field(default_factory=set)
    #: Members started with the engine's initial-leader flag (Xline `--is-leader`).
    flagged: set[str] = field(default_factory=set)
    #: Every event, for failure messages and golden scripts.
    history: list[str] = field(default_factory=list)
    #: Per executor scope: when each member last answered it (the executor's memory).
    last_seen: dict[str, dict[str, float]] = field(default_factory=dict)
    #: The last quorum-loss recovery, as the platform records it.
    recovery: RecoveryRecord | None = None

    # --- construction ---------------------------------------------------------------

    @classmethod
    def converged(
        cls,
        desired: Desired,
        *,
        rng: random.Random | None = None,
        leader: str | None = None,
        revision: str | None = None,
    ) -> Sim:
        """A formed cluster already matching `desired` (at `revision`, default desired's)."""
        sim = cls(desired=desired, rng=rng, formed=bool(desired.members), commit=100)
        sim.initial = desired.proposed_initial_members()
        sim.authority_formed = sim.formed
        if sim.formed:
            sim.cluster_uids.add(1)
        for m in desired.members:
            member_id = sim._new_id()
            sim.members[m.name] = SimMember(
                name=m.name,
                cluster=m.cluster,
                ordinal=m.ordinal,
                member_id=member_id,
                run_id=member_id,
                ever_started=True,
                named=True,
                present=True,
                running=True,
                has_data=True,
                healthy=True,
                applied_index=100,
                revision=revision or desired.revision,
                term=sim.term,
                cluster_uid=1,
            )
        if desired.members:
            names = [m.name for m in desired.members]
            sim.leader = leader or (rng.choice(names) if rng else names[0])
        return sim

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id * 7919

    def _member(self, name: str) -> SimMember:
        found = self.members.get(name)
        if found is None:
            place = parse_member_name(FEDERATION, name)
            found = SimMember(
                name=name,
                cluster=place[0] if place else None,
                ordinal=place[1] if place else None,
            )
            self.members[name] = found
        return found

    # --- reading ----------------------------------------------------------------------

    def listed(self) -> list[SimMember]:
        return [m for m in self.members.values() if m.in_list]

    def voters(self) -> list[SimMember]:
        return [m for m in self.members.values() if m.is_voter]

    def island(self, cluster: str | None) -> int:
        return self.islands.get(cluster or "", MAIN)

    def _quorum_island(self) -> int | None:
        """The island whose healthy voters are a majority of the voters, if any."""
        voters = self.voters()
        if not voters:
            return None
        counts: dict[int, int] = {}
        for v in voters:
            if v.healthy:
                counts[self.island(v.cluster)] = counts.get(self.island(v.cluster), 0) + 1
        for island, count in counts.items():
            if count >= majority(len(voters)):
                return island
        return None

    def has_quorum(self) -> bool:
        return self._quorum_island() is not None

    def connected(self, m: SimMember) -> bool:
        """It follows the current leader (same side of any partition, answering)."""
        leader = self.members.get(self.leader or "")
        return (
            leader is not None
            and m.healthy
            and m.run_id is not None
            and m.run_id == m.member_id
            and self.island(m.cluster) == self.island(leader.cluster)
        )

    def caught_up_quorum(self) -> bool:
        """A majority of the voters follow the leader within the promote bound: what a
        destructive step must never take away."""
        voters = self.voters()
        leader = self.members.get(self.leader or "")
        if not voters or leader is None:
            return False
        sound = sum(
            1
            for v in voters
            if self.connected(v)
            and leader.applied_index - v.applied_index <= self.desired.max_promote_lag
        )
        return sound >= majority(len(voters))

    def healthy_voters(self) -> int:
        return sum(1 for m in self.voters() if m.healthy)

    def _entries(self) -> tuple[ListEntry, ...]:
        return tuple(
            ListEntry(
                id=m.member_id or 0,
                name=m.name if (m.named or m.ever_started) else "",
                peer_urls=(peer_url(m.name),),
                client_urls=(client_url(m.name),) if m.ever_started else (),
                is_learner=m.is_learner,
            )
            for m in sorted(self.listed(), key=lambda m: m.name)
        )

    def _view_of(self, m: SimMember) -> tuple[ListEntry, ...]:
        # The leader's view is the configuration it replicates: never stale.
        stale = m.view is not None and m.name != self.leader
        return m.view if stale and m.view is not None else self._entries()

    def _scope_key(self, scope: frozenset[str] | None) -> str:
        return ",".join(sorted(scope)) if scope else "*"

    def raw(self, scope: frozenset[str] | None = None) -> RawObservation:
        """What the executor for `scope` (None: the local controller, which reaches every
        member) collects this instant."""
        here = self.island(min(scope)) if scope else None

        def reaches(m: SimMember) -> bool:
            return here is None or self.island(m.cluster) == here

        answering = [
            m
            for m in sorted(self.members.values(), key=lambda m: m.name)
            if m.healthy and m.run_id is not None and reaches(m)
        ]
        leader = self.members.get(self.leader or "")
        statuses = {
            m.name: StatusAnswer(
                member_id=m.run_id or 0,
                leader_id=(leader.member_id or 0) if leader and self.connected(m) else 0,
                term=self.term if self.connected(m) else m.term,
                applied_index=m.applied_index,
            )
            for m in answering
        }
        member_list: tuple[ListEntry, ...] | None = None
        source: str | None = None
        confirmed = False
        quorum = self.has_quorum()
        if leader is not None and leader.name in statuses and quorum:
            member_list, source, confirmed = self._entries(), leader.name, True
        else:
            for m in answering:
                # Its linearizable read succeeds only while it follows a leader with a
                # quorum; its list may be stale all the same.
                if self.connected(m) and quorum:
                    member_list, source, confirmed = self._view_of(m), m.name, True
                    break
        others = {m.name: self._view_of(m) for m in answering if m.name != source}
        seen = frozenset(
            name
            for name, m in self.members.items()
            if scope is None or (m.cluster in scope and not m.dead)
        )
        key = self._scope_key(scope)
        if confirmed:
            self.seen_formed.add(key)
        seen_at = self.last_seen.setdefault(key, {})
        seen_at.update(dict.fromkeys(statuses, self.now))
        if self.initial is None and self.desired.members:
            # The authority records the initial set the first time anyone asks.
            self.initial = self.desired.proposed_initial_members()
        initial = self.initial if self.initial is not None else ()
        return RawObservation(
            now=self.now,
            federation=FEDERATION,
            names=tuple(sorted({m.name for m in self.desired.members} | set(self.members))),
            seen=seen,
            runtimes={
                name: MemberRuntime(
                    present=m.present,
                    running=m.running,
                    has_data=m.has_data,
                    revision=m.revision if m.present else None,
                    forced=m.forced and m.running,
                )
                for name, m in self.members.items()
                if name in seen
            },
            statuses=statuses,
            member_list=member_list,
            list_source=source,
            confirmed=confirmed,
            other_lists=others,
            published={
                m.name: {"revision": m.revision}
                for m in self.members.values()
                if m.present and m.revision
            },
            joined={m.name: m.joined_at for m in self.members.values() if m.joined_at is not None},
            lock_holder=self.lock_holder,
            formed=key in self.seen_formed,
            formation=Formation(initial_members=initial, formed=self.authority_formed)
            if self.initial is not None
            else None,
            peer_urls={name: peer_url(name) for name in self.members}
            | {m.name: peer_url(m.name) for m in self.desired.members},
            last_seen=dict(seen_at),
            watching_since=0.0,
            recovery=self.recovery,
        )

    def observe(self, scope: frozenset[str] | None = None) -> Observed:
        return build_observed(self.raw(scope))

    def plan(self, scope: frozenset[str] | None = None) -> Step:
        desired = self.desired if scope is None else replace(self.desired, scope=scope)
        return plan(desired, self.observe(scope))

    # --- time ---------------------------------------------------------------------------

    def tick(self) -> None:
        """One round of the world: writes, replication, health, elections, the lock."""
        self.now += 1.0
        for m in self.members.values():
            if m.running and not m.healthy and not m.dead:
                m.healthy = True  # a started process answers from its next observation on
        leader = self.members.get(self.leader) if self.leader else None
        island = self._quorum_island()
        if (
            leader is None
            or not (leader.healthy and leader.is_voter)
            or island is None
            or self.island(leader.cluster) != island
        ):
            self.leader = None
            self._elect()
        if self.leader is not None:
            step = self.rng.randint(0, WRITES_PER_TICK) if self.rng else WRITES_PER_TICK
            self.commit = max(self.commit, self.members[self.leader].applied_index) + step
            self.members[self.leader].applied_index = self.commit
            for m in self.listed():
                if self.connected(m) and m.name != self.leader:
                    m.applied_index = min(self.commit, m.applied_index + CATCH_UP_PER_TICK)
                    m.term = self.term
        for m in self.members.values():
            removed = m.running and m.run_id is not None and m.member_id != m.run_id
            if (
                removed
                and self.leader
                and self.island(m.cluster) == self.island(self.members[self.leader].cluster)
            ):
                m.stop()  # it hears from the leader that it was removed
            if m.stale_ticks:
                m.stale_ticks -= 1
            if m.view is not None and not m.stale_ticks and self.connected(m):
                m.view = None  # it applied what it had missed
        for cluster in list(self.cut_ticks):
            self.cut_ticks[cluster] -= 1
            if self.cut_ticks[cluster] <= 0:
                self.heal(cluster)
        if self.has_quorum():
            self.formed = True
        if self.formed and not self.authority_formed:
            if self.authority_lag <= 0:
                self.authority_formed = True
            self.authority_lag -= 1
        if self.lock_ticks:
            self.lock_ticks -= 1
            if not self.lock_ticks:
                self.lock_holder = None

    def _elect(self) -> None:
        island = self._quorum_island()
        if island is None:
            return
        candidates = [m for m in self.voters() if m.healthy and self.island(m.cluster) == island]
        if self.desired.engine.initial_leader_flag and not self.formed:
            # Xline: a static bootstrap elects nobody unless one initial member was
            # started with --is-leader; that one leads first.
            candidates = [m for m in candidates if m.name in self.flagged]
            if not candidates:
                return
        best = max(m.applied_index for m in candidates)
        eligible = sorted(m.name for m in candidates if m.applied_index == best)
        self.leader = self.rng.choice(eligible) if self.rng else eligible[0]
        self.term += 1
        self.history.append(f"elected {self.leader}")

    # --- faults -------------------------------------------------------------------------

    def crash(self, name: str) -> None:
        m = self.members[name]
        m.stop()
        if self.leader == name:
            self.leader = None
        self.history.append(f"crash {name}")

    def lose_data(self, name: str) -> None:
        m = self.members[name]
        m.stop()
        m.has_data = False
        m.applied_index = 0
        m.cluster_uid = None
        if self.leader == name:
            self.leader = None
        self.history.append(f"lose data {name}")

    def lag(self, name: str, entries: int) -> None:
        m = self.members[name]
        m.applied_index = max(0, self.commit - entries)
        self.history.append(f"lag {name} {entries}")

    def stale_view(self, name: str, ticks: int) -> None:
        """`name` keeps serving the member list it has now for `ticks` (slow apply)."""
        m = self.members[name]
        m.view = self._view_of(m)
        m.stale_ticks = ticks
        self.history.append(f"stale view {name} for {ticks} ticks")

    def cut(self, cluster: str, ticks: int = 0) -> None:
        """Cut `cluster` off from every other: its members answer only its own executor,
        name no leader, stop applying and keep the member list they had."""
        stats.count_fault("cut")
        self.islands[cluster] = 1 + max(self.islands.values(), default=0)
        if ticks:
            self.cut_ticks[cluster] = ticks
        for m in self.members.values():
            if m.cluster == cluster:
                m.view = self._view_of(m)
                m.stale_ticks = 0
        leader = self.members.get(self.leader or "")
        if leader is not None and leader.cluster == cluster:
            self.leader = None
        self.history.append(f"cut {cluster}" + (f" for {ticks} ticks" if ticks else ""))

    def heal(self, cluster: str) -> None:
        self.islands.pop(cluster, None)
        self.cut_ticks.pop(cluster, None)
        self.history.append(f"heal {cluster}")

    def kill_cluster(self, cluster: str) -> None:
        """The cluster is gone for good: its members stop and never run again."""
        stats.count_fault("cluster-lost")
        for m in self.members.values():
            if m.cluster == cluster:
                m.stop()
                m.dead = True
                if self.leader == m.name:
                    self.leader = None
        self.history.append(f"cluster {cluster} died")

    def replace_cluster(self, cluster: str) -> None:
        """A dead cluster's machines are replaced: empty, nothing runs, nothing listed by
        the new machines (what the lost members' data and processes were is gone)."""
        for m in self.members.values():
            if m.cluster == cluster and m.dead:
                m.dead = False
                m.present = False
                m.has_data = False
                m.applied_index = 0
                m.cluster_uid = None
                m.run_id = None
                m.view = None
        self.history.append(f"cluster {cluster} replaced by empty machines")

    def hold_lock(self, holder: str, ticks: int) -> None:
        self.lock_holder = holder
        self.lock_ticks = ticks
        self.history.append(f"lock held by {holder} for {ticks} ticks")

    def can_lose_data(self, name: str) -> bool:
        """Data loss the cluster survives: a majority of voters keep their data."""
        m = self.members[name]
        if not m.has_data:
            return False
        if not m.is_voter:
            return True
        voters = self.voters()
        floor = self.desired.engine.min_voters
        if len(voters) - 1 < floor or len(self.desired.members) <= floor:
            # The engine cannot shrink to replace it (Xline #447): only a restore or a
            # member added to the spec helps, and the planner rightly waits; not a fault a
            # simulation can converge from. That includes a spec at the floor: the other
            # clusters cannot see the lost data (a running member still answers) and may
            # scale in to the floor before its own cluster replaces it (seen: 8 voters
            # shrinking to {f: 3}, f-f-0's loss allowed at 8, stuck at 3).
            return False
        keep = sum(1 for v in voters if v.has_data and v.name != name)
        return keep >= majority(len(voters))

    def inject_fault(self, rng: random.Random, *, cross_cluster: bool = False) -> None:
        """Something goes wrong at random: a crash, a lag, lost data, a foreign lock, and
        with `cross_cluster` also stale views and clusters cut off for a while."""
        kinds = ["crash", "crash", "lag", "lag", "lose", "lock"]
        if cross_cluster:
            kinds += ["stale", "stale", "cut"]
        kind = rng.choice(kinds)
        stats.count_fault(kind)
        running = sorted(m.name for m in self.members.values() if m.running)
        if kind == "lock":
            self.hold_lock("another-executor", rng.randint(1, 3))
        elif kind == "lag":
            followers = [n for n in running if n != self.leader]
            if followers:
                self.lag(rng.choice(followers), rng.randint(2000, 20000))
        elif kind == "lose":
            victims = [n for n in running if self.can_lose_data(n)]
            if victims:
                self.lose_data(rng.choice(victims))
        elif kind == "stale":
            followers = [n for n in running if n != self.leader]
            if followers:
                self.stale_view(rng.choice(followers), rng.randint(1, 6))
        elif kind == "cut":
            clusters = sorted({c for c in self.desired.clusters if c not in self.islands})
            if clusters:
                self.cut(rng.choice(clusters), rng.randint(2, 12))
        elif running:
            self.crash(rng.choice(running))

    # --- steps --------------------------------------------------------------------------

    def apply(self, step: Step, *, took_effect_quietly: bool = False) -> None:
        """Carry out one step as the executor would, refusing what a cluster would refuse
        and what would lose quorum. `took_effect_quietly`: a membership RPC that applied
        but answered with an error, so the executor did nothing after it."""
        if step.needs_lock and self.lock_holder is not None:
            raise StepRejected(f"{step.describe()}: the lock is held by {self.lock_holder}")
        quorum_before = self.has_quorum()
        sound_before = self.caught_up_quorum()
        single_voter = len(self.voters()) == 1
        self.history.append(step.describe())
        match step:
            case Wait() | Done():
                return
            case Bootstrap(members=members, initial_members=initial, revision=revision):
                self._bootstrap(members, initial, revision)
                if step.initial_leader in members:
                    self.flagged.add(step.initial_leader or "")
            case StartMember(name=name, mode=mode, revision=revision, initial_members=initial):
                self._start(name, mode, revision, initial)
                if mode is StartMode.NEW and step.initial_leader:
                    self.flagged.add(name)
            case AddLearner(name=name):
                self._add_learner(name)
            case PromoteLearner(name=name):
                self._promote(name)
            case TransferLeadership(source=source, target=target):
                self._transfer(source, target)
            case RemoveMember(name=name, member_id=member_id, stop_after=stop_after):
                self._remove(name, member_id, stop=stop_after and not took_effect_quietly)
            case StopMember(name=name):
                self._stop(name)
            case WipeData(name=name):
                self._wipe(name)
            case DeleteMember(name=name, delete_data=delete_data):
                self._delete(name, delete_data)
            case RestartMember(name=name, revision=revision):
                self._restart(name, revision)
            case RecoverFrom():
                self._recover(step)
            case FinishRecovery(name=name, revision=revision):
                self._finish_recovery(name, revision)
            case _:
                raise StepRejected(f"unknown step {step!r}")
        restart_alone = isinstance(step, RestartMember | FinishRecovery) and single_voter
        if quorum_before and not self.has_quorum() and not restart_alone:
            raise StepRejected(f"{step.describe()} lost the quorum")
        destructive = isinstance(step, RestartMember | RemoveMember | StopMember)
        if sound_before and destructive and not self.caught_up_quorum() and not restart_alone:
            raise StepRejected(
                f"{step.describe()} left no caught-up majority behind the leader (invariant 2)"
            )

    def _bootstrap(self, members: Iterable[str], initial: tuple[str, ...], revision: str) -> None:
        if self.initial is not None and set(initial) != set(self.initial):
            raise StepRejected(
                f"bootstrap with initial members {initial}, not the recorded {self.initial}: "
                "a second cluster"
            )
        if self.formed or self.has_quorum():
            # Only a late static initial member may still start `new`: it is listed by
            # name and joins the cluster the others formed. Anything else forms another.
            late = all(
                (m := self.members.get(name)) is not None
                and m.named
                and not m.ever_started
                and not m.has_data
                for name in members
            )
            if not late:
                raise StepRejected(
                    f"bootstrap of {', '.join(members)} after the federation formed: "
                    "a second cluster"
                )
        uid = min(self.cluster_uids) if self.cluster_uids else 1
        self.cluster_uids.add(uid)
        for name in initial:
            m = self._member(name)
            if m.member_id is None and not self.formed:
                m.member_id = self._new_id()
                m.named = True
        for name in members:
            m = self._member(name)
            if m.dead:
                raise StepRejected(f"bootstrap {name}: its cluster is gone")
            self._run(m, fresh=not m.has_data, revision=revision)
            m.cluster_uid = uid

    def _run(self, m: SimMember, *, fresh: bool, revision: str) -> None:
        if not revision:
            raise StepRejected(f"start {m.name}: the step names no revision")
        m.present = True
        m.running = True
        m.healthy = False
        m.run_id = m.member_id
        m.ever_started = m.ever_started or m.in_list
        m.revision = revision
        if fresh:
            m.has_data = True
            m.applied_index = 0

    def _start(self, name: str, mode: StartMode, revision: str, initial: tuple[str, ...]) -> None:
        m = self._member(name)
        if m.running:
            raise StepRejected(f"start {name}: already running")
        if m.dead:
            raise StepRejected(f"start {name}: its cluster is gone")
        if mode is StartMode.NEW:
            if m.is_learner or m.ever_started:
                raise StepRejected(f"start {name} as a new cluster, but it joins an existing one")
            if self.formed and (self.initial is None or set(initial) != set(self.initial)):
                raise StepRejected(f"start {name} new with {initial}: a second cluster")
        elif not m.in_list and not m.has_data:
            raise StepRejected(f"start {name} to join, but it is not a member")
        if self.formed and not m.has_data and m.ever_started and m.is_voter:
            raise StepRejected(f"start {name} empty under the identity of a voter")
        uid = min(self.cluster_uids) if self.cluster_uids else None
        self._run(m, fresh=not m.has_data, revision=revision)
        if m.cluster_uid is None:
            m.cluster_uid = uid

    def _add_learner(self, name: str) -> None:
        m = self._member(name)
        if m.in_list:
            raise StepRejected(f"add {name}: already in the member list")
        if m.running or m.has_data:
            raise StepRejected(f"add {name}: an earlier incarnation runs or left data")
        learners = sum(1 for x in self.listed() if x.is_learner)
        if learners >= self.desired.engine.max_learners:
            raise StepRejected(f"add {name}: {learners} learner(s) already; the engine allows one")
        if not self.has_quorum():
            raise StepRejected(f"add {name}: no quorum")
        m.applied_index = 0
        m.ever_started = False
        m.named = False
        m.member_id = self._new_id()
        m.is_learner = True
        m.joined_at = self.now

    def _promote(self, name: str) -> None:
        m = self.members.get(name)
        if m is None or not m.is_learner:
            raise StepRejected(f"promote {name}: not a learner")
        leader = self.members.get(self.leader or "")
        if leader is None:
            raise StepRejected(f"promote {name}: no leader")
        if leader.applied_index - m.applied_index > self.desired.max_promote_lag:
            raise StepRejected(f"promote {name}: not caught up (invariant 3)")
        m.is_learner = False

    def _transfer(self, source: str, target: str) -> None:
        if source != self.leader:
            raise StepRejected(f"move leadership from {source}: it does not lead")
        m = self.members.get(target)
        if m is None or not m.is_voter or not self.connected(m):
            raise StepRejected(f"move leadership to {target}: not a connected voter")
        self.leader = target

    def _remove(self, name: str, member_id: int, *, stop: bool) -> None:
        m = self.members.get(name)
        if m is None or m.member_id != member_id:
            raise StepRejected(f"remove {name}: id {member_id} is not in the member list")
        voters = self.voters()
        if m.is_voter:
            if name == self.leader and len(voters) > 1:
                raise StepRejected(f"remove {name}: it leads (invariant 4)")
            left = sum(1 for v in voters if v.healthy and v.name != name)
            if len(voters) == 1 or left < majority(len(voters) - 1):
                raise StepRejected(f"remove {name}: leaves {left} healthy voters (invariant 2)")
        m.member_id = None
        m.is_learner = False
        m.joined_at = None
        if self.connected(m) or stop:
            # etcd shuts a removed member down once it learns of the removal; one cut
            # off keeps running until it hears (see `tick`), unless the executor stops it.
            m.stop()
        if self.leader == name:
            self.leader = None

    def _stop(self, name: str) -> None:
        m = self.members.get(name)
        if m is None or m.in_list:
            raise StepRejected(f"stop {name}: it is a member")
        m.stop()

    def _wipe(self, name: str) -> None:
        m = self.members.get(name)
        if m is None or m.running:
            raise StepRejected(f"wipe {name}: it runs")
        if m.in_list:
            raise StepRejected(f"wipe {name}: it is a member")
        m.has_data = False
        m.applied_index = 0
        m.cluster_uid = None

    def _delete(self, name: str, delete_data: bool) -> None:
        m = self.members.get(name)
        if m is None:
            raise StepRejected(f"delete {name}: unknown")
        if m.in_list:
            raise StepRejected(f"delete {name}: still in the member list")
        if name in {d.name for d in self.desired.members}:
            raise StepRejected(f"delete {name}: the spec wants it")
        m.stop()
        m.present = False
        m.revision = None
        if delete_data:
            m.has_data = False
        if not m.has_data:
            del self.members[name]

    def _restart(self, name: str, revision: str) -> None:
        m = self.members.get(name)
        if m is None or not m.in_list:
            raise StepRejected(f"restart {name}: not a member")
        if m.dead:
            raise StepRejected(f"restart {name}: its cluster is gone")
        voters = self.voters()
        if m.is_voter and len(voters) > 1:
            if name == self.leader:
                raise StepRejected(f"restart {name}: it leads (invariant 4)")
            left = sum(1 for v in voters if v.healthy and v.name != name)
            if left < majority(len(voters)):
                raise StepRejected(f"restart {name}: leaves {left} healthy voters (invariant 2)")
        m.stop()
        if self.leader == name:
            self.leader = None
        m.running = True
        m.revision = revision

    def _recover(self, step: RecoverFrom) -> None:
        """etcd --force-new-cluster: the survivor restarts alone on its own data, its
        list holding only itself; whatever only the lost members had is gone."""
        m = self.members.get(step.name)
        if m is None or not m.is_voter or not m.has_data or m.dead:
            raise StepRejected(f"recover from {step.name}: not a surviving voter with data")
        if self.has_quorum():
            raise StepRejected(f"recover from {step.name} while a quorum stands: two clusters")
        kept = [v.name for v in self.voters() if v.name != step.name and v.name not in step.lost]
        if kept:
            raise StepRejected(f"recover from {step.name} keeps {kept} in no cluster")
        # A voter that runs where the survivor cannot reach it (cut off, not lost) goes on
        # as the old cluster: two clusters. One the survivor reaches hears it was
        # removed and stops (etcd refuses a removed member's messages; it exits).
        here = self.island(m.cluster)
        alive = [
            v.name
            for v in self.voters()
            if v.name != step.name and v.running and self.island(v.cluster) != here
        ]
        if alive:
            raise StepRejected(f"recover from {step.name} while {alive} run: two clusters")
        behind = [v.name for v in self.voters() if v.has_data and v.applied_index > m.applied_index]
        if behind and any(self.members[n].running for n in behind):
            raise StepRejected(f"recover from {step.name}: {behind} applied more")
        for v in self.listed():
            if v.name != step.name:
                v.member_id = None
                v.is_learner = False
                v.view = None
        m.stop()
        m.running = True
        m.forced = True
        m.revision = step.revision
        m.view = None
        m.stale_ticks = 0
        self.commit = m.applied_index
        self.leader = None
        self.recovery = RecoveryRecord(
            from_member=step.name,
            at=self.now,
            lost=step.lost,
            lost_ids=step.lost_ids,
            applied_index=step.applied_index,
            request=step.request,
        )

    def _finish_recovery(self, name: str, revision: str) -> None:
        m = self.members.get(name)
        if m is None or not m.forced or self.recovery is None:
            raise StepRejected(f"finish the recovery on {name}: it was not started forced")
        lost = [
            v.name for v in self.voters() if v.name in self.recovery.lost and v.joined_at is None
        ]
        if lost:
            raise StepRejected(f"finish the recovery on {name}: {lost} are still listed")
        m.forced = False
        m.stop()
        if self.leader == name:
            self.leader = None
        m.running = True
        m.revision = revision
        self.recovery = replace(self.recovery, revision=m.applied_index)

    # --- the goal -------------------------------------------------------------------------

    def mismatches(self) -> list[str]:
        """Why the cluster does not match `desired` yet (empty when it does)."""
        d = self.desired
        wanted = {m.name: m for m in d.members}
        problems = []
        listed = {m.name for m in self.listed()}
        if listed != set(wanted):
            problems.append(f"member list {sorted(listed)} != spec {sorted(wanted)}")
        for m in self.listed():
            if m.is_learner:
                problems.append(f"{m.name} is still a learner")
            if not (m.running and m.healthy):
                problems.append(f"{m.name} is not running")
            rolled = (m.ordinal or 0) >= d.partitions.get(m.cluster or "", 0)
            if m.name in wanted and m.revision != d.revision and rolled:
                problems.append(f"{m.name} runs {m.revision}, not {d.revision}")
        for m in self.members.values():
            if m.dead:
                continue
            if m.name not in wanted and m.present:
                problems.append(f"{m.name} is not wanted but still present")
            if m.name not in wanted and d.delete_data_on_scale_in and m.has_data:
                problems.append(f"{m.name} is not wanted but its data is kept")
        if d.members and (self.leader is None or self.leader not in wanted):
            problems.append(f"leader is {self.leader}")
        uids = {m.cluster_uid for m in self.members.values() if m.has_data and m.cluster_uid}
        if len(uids) > 1:
            problems.append(f"{len(uids)} clusters: {sorted(uids)}")
        return problems


@dataclass
class RunResult:
    steps: int
    trace: list[str]


@dataclass(frozen=True)
class WorldFaults:
    """What else goes wrong in a run besides crashes, lag and lost data."""

    #: Stale member lists and clusters cut off for a while (cross-cluster faults).
    cross_cluster: bool = False
    #: Percent of membership steps that apply but answer with an error.
    quiet_effects: int = 0
    #: Percent of passes in which an executor applies a step it planned earlier, from a
    #: view that has gone stale since (it paused between plan and apply). Steps that
    #: need the lock are planned again under it first, as `Executor` does.
    stale_applies: int = 0


def run_to_done(
    sim: Sim,
    rng: random.Random,
    *,
    fault_steps: int = 0,
    fault_rate: float = 0.15,
    max_steps: int = 2000,
    scopes: tuple[frozenset[str], ...] | None = None,
    check: Checker | None = None,
    world: WorldFaults = WorldFaults(),
) -> RunResult:
    """Observe, plan, check, apply, tick — until the planner says Done with no faults left
    to come. With `scopes`, one executor per scope (member operators) takes turns at
    random, and Done means every one of them says so.

    `check(desired, observed, step) -> list[str]` judges every planned step."""
    trace: list[str] = []
    held: dict[str, Step] = {}
    for i in range(max_steps):
        faulty = i < fault_steps
        if faulty and rng.random() < fault_rate:
            before = len(sim.history)
            sim.inject_fault(rng, cross_cluster=world.cross_cluster)
            trace.extend(f"  fault: {event}" for event in sim.history[before:])
        scope = rng.choice(scopes) if scopes else None
        key = sim._scope_key(scope)
        desired = sim.desired if scope is None else replace(sim.desired, scope=scope)
        observed = sim.observe(scope)
        step = plan(desired, observed)
        stats.count_step()
        trace.append(f"{i:4} [{key}] {step.describe()}")
        if check is not None and (problems := check(desired, observed, step)):
            raise AssertionError(_failure("invariant violated", problems, trace))
        if isinstance(step, Done) and i >= fault_steps:
            others = [sim.plan(s) for s in scopes or ()]
            if all(isinstance(s, Done) for s in others):
                if problems := sim.mismatches():
                    raise AssertionError(_failure("Done before converging", problems, trace))
                return RunResult(steps=i + 1, trace=trace)
        if faulty and world.stale_applies and key in held:
            old = held.pop(key)
            stats.count_fault("stale-apply")
            if not old.needs_lock:
                trace.append(f"     [{key}] late: {old.describe()}")
                step = old
        elif faulty and world.stale_applies and rng.randint(0, 99) < world.stale_applies:
            held[key] = step
            sim.tick()
            continue
        quiet = faulty and step.changes_membership and rng.randint(0, 99) < world.quiet_effects
        if quiet:
            stats.count_fault("quiet-effect")
        try:
            sim.apply(step, took_effect_quietly=quiet)
        except StepRejected as error:
            stats.count_unsafe()
            raise AssertionError(_failure("step rejected", [str(error)], trace)) from error
        stats.saw_cluster_ids(len(sim.cluster_uids))
        sim.tick()
    raise AssertionError(_failure(f"no Done after {max_steps} steps", sim.mismatches(), trace))


def _failure(what: str, problems: list[str], trace: list[str]) -> str:
    return "\n".join([f"{what}: {'; '.join(problems)}", "last steps:", *trace[-40:]])
