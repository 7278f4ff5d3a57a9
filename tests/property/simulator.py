"""An in-memory model of one consensus cluster that carries out the planner's steps.

Not a Raft implementation: it keeps just enough state to judge the planner — the member
list (voters, learners, ids), which processes run, which have data, applied indexes, the
leader, template revisions and the membership lock — and it refuses (raises
`StepRejected`) any step a real cluster would refuse or that would break an invariant.

It is pure like the planner: randomness only through the `random.Random` a test passes
in (`rng=None` makes every choice deterministic, for golden scripts); time is a counter.
The executor's conventions are copied from `xlinefed/executor.py`: every start uses the
desired revision, `AddLearner` wipes a previous incarnation's data, a member list that
no quorum answers is not shown (no ids), and a removed member's process stops.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from tests.property import stats
from xlinefed.api.engines import Engine, profile
from xlinefed.api.models import BootstrapMode, ClusterOrder
from xlinefed.planner import (
    AddLearner,
    Bootstrap,
    DeleteMember,
    Desired,
    DesiredMember,
    Done,
    Observed,
    ObservedMember,
    PromoteLearner,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    Step,
    TransferLeadership,
    Wait,
    plan,
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


@dataclass
class SimMember:
    name: str
    cluster: str | None
    ordinal: int | None
    member_id: int | None = None
    is_learner: bool = False
    ever_started: bool = False
    present: bool = False
    running: bool = False
    has_data: bool = False
    healthy: bool = False
    applied_index: int = 0
    revision: str | None = None

    @property
    def in_list(self) -> bool:
        return self.member_id is not None

    @property
    def is_voter(self) -> bool:
        return self.in_list and not self.is_learner

    def stop(self) -> None:
        self.running = False
        self.healthy = False


@dataclass
class Sim:
    desired: Desired
    rng: random.Random | None = None
    members: dict[str, SimMember] = field(default_factory=dict)
    leader: str | None = None
    formed: bool = False
    lock_holder: str | None = None
    lock_ticks: int = 0
    now: float = 0.0
    commit: int = 0
    next_id: int = 1
    #: Every event, for failure messages and golden scripts.
    history: list[str] = field(default_factory=list)

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
        for m in desired.members:
            sim.members[m.name] = SimMember(
                name=m.name,
                cluster=m.cluster,
                ordinal=m.ordinal,
                member_id=sim._new_id(),
                ever_started=True,
                present=True,
                running=True,
                has_data=True,
                healthy=True,
                applied_index=100,
                revision=revision or desired.revision,
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

    def healthy_voters(self) -> int:
        return sum(1 for m in self.voters() if m.healthy)

    def has_quorum(self) -> bool:
        voters = self.voters()
        return bool(voters) and self.healthy_voters() >= majority(len(voters))

    def observe(self, scope: frozenset[str] | None = None) -> Observed:
        del scope  # every executor sees the whole member list
        known = self.has_quorum()
        members = tuple(
            ObservedMember(
                name=m.name,
                cluster=m.cluster,
                ordinal=m.ordinal,
                member_id=m.member_id if known else None,
                is_learner=m.is_learner and known,
                ever_started=m.ever_started and known,
                present=m.present,
                running=m.running,
                has_data=m.has_data,
                healthy=m.healthy,
                applied_index=m.applied_index if m.healthy else None,
                revision=m.revision if m.present else None,
            )
            for m in sorted(self.members.values(), key=lambda m: m.name)
        )
        return Observed(
            now=self.now,
            members=members,
            member_list_known=known,
            formed=self.formed,
            leader=self.leader if known else None,
            lock_holder=self.lock_holder,
        )

    def plan(self, scope: frozenset[str] | None = None) -> Step:
        desired = self.desired if scope is None else replace(self.desired, scope=scope)
        return plan(desired, self.observe())

    # --- time ---------------------------------------------------------------------------

    def tick(self) -> None:
        """One round of the world: writes, replication, health, elections, the lock."""
        self.now += 1.0
        for m in self.members.values():
            if m.running and not m.healthy:
                m.healthy = True  # a started process answers from its next observation on
        leader = self.members.get(self.leader) if self.leader else None
        if leader is None or not (leader.healthy and leader.is_voter) or not self.has_quorum():
            self.leader = None
            self._elect()
        if self.leader is not None:
            step = self.rng.randint(0, WRITES_PER_TICK) if self.rng else WRITES_PER_TICK
            self.commit = max(self.commit, self.members[self.leader].applied_index) + step
            self.members[self.leader].applied_index = self.commit
            for m in self.listed():
                if m.healthy and m.name != self.leader:
                    m.applied_index = min(self.commit, m.applied_index + CATCH_UP_PER_TICK)
        if self.has_quorum():
            self.formed = True
        if self.lock_ticks:
            self.lock_ticks -= 1
            if not self.lock_ticks:
                self.lock_holder = None

    def _elect(self) -> None:
        if not self.has_quorum():
            return
        candidates = [m for m in self.voters() if m.healthy]
        best = max(m.applied_index for m in candidates)
        eligible = sorted(m.name for m in candidates if m.applied_index == best)
        self.leader = self.rng.choice(eligible) if self.rng else eligible[0]
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
        if self.leader == name:
            self.leader = None
        self.history.append(f"lose data {name}")

    def lag(self, name: str, entries: int) -> None:
        m = self.members[name]
        m.applied_index = max(0, self.commit - entries)
        self.history.append(f"lag {name} {entries}")

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
        if len(voters) - 1 < self.desired.engine.min_voters:
            # The engine cannot shrink to replace it (Xline #447): only a restore helps,
            # and the planner rightly waits; not a fault a simulation can converge from.
            return False
        keep = sum(1 for v in voters if v.has_data and v.name != name)
        return keep >= majority(len(voters))

    def inject_fault(self, rng: random.Random) -> None:
        """Something goes wrong at random: a crash, a lag, lost data, or a foreign lock."""
        kind = rng.choice(("crash", "crash", "lag", "lag", "lose", "lock"))
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
        elif running:
            self.crash(rng.choice(running))

    # --- steps --------------------------------------------------------------------------

    def apply(self, step: Step) -> None:
        """Carry out one step as the executor would, refusing what a cluster would refuse
        and what would lose quorum."""
        if step.needs_lock and self.lock_holder is not None:
            raise StepRejected(f"{step.describe()}: the lock is held by {self.lock_holder}")
        quorum_before = self.has_quorum()
        single_voter = len(self.voters()) == 1
        self.history.append(step.describe())
        match step:
            case Wait() | Done():
                return
            case Bootstrap(members=members, initial_members=initial):
                self._bootstrap(members, initial)
            case StartMember(name=name, mode=mode):
                self._start(name, mode)
            case AddLearner(name=name):
                self._add_learner(name)
            case PromoteLearner(name=name):
                self._promote(name)
            case TransferLeadership(source=source, target=target):
                self._transfer(source, target)
            case RemoveMember(name=name, member_id=member_id):
                self._remove(name, member_id)
            case DeleteMember(name=name, delete_data=delete_data):
                self._delete(name, delete_data)
            case RestartMember(name=name, revision=revision):
                self._restart(name, revision)
            case _:
                raise StepRejected(f"unknown step {step!r}")
        if quorum_before and not self.has_quorum():
            restart_alone = isinstance(step, RestartMember) and single_voter
            if not restart_alone:
                raise StepRejected(f"{step.describe()} lost the quorum")

    def _bootstrap(self, members: Iterable[str], initial: tuple[str, ...]) -> None:
        if self.formed or self.has_quorum():
            raise StepRejected("bootstrap of a cluster that has formed")
        for name in initial:
            m = self._member(name)
            if m.member_id is None:
                m.member_id = self._new_id()
        for name in members:
            self._run(self._member(name), fresh=not self._member(name).has_data)

    def _run(self, m: SimMember, *, fresh: bool) -> None:
        m.present = True
        m.running = True
        m.healthy = False
        m.ever_started = m.ever_started or m.in_list
        m.revision = self.desired.revision
        if fresh:
            m.has_data = True
            m.applied_index = 0

    def _start(self, name: str, mode: StartMode) -> None:
        m = self._member(name)
        if m.running:
            raise StepRejected(f"start {name}: already running")
        if mode is StartMode.NEW and (m.is_learner or (self.formed and m.ever_started)):
            raise StepRejected(f"start {name} as a new cluster, but it joins an existing one")
        self._run(m, fresh=not m.has_data)

    def _add_learner(self, name: str) -> None:
        m = self._member(name)
        if m.in_list:
            raise StepRejected(f"add {name}: already in the member list")
        learners = sum(1 for x in self.listed() if x.is_learner)
        if learners >= self.desired.engine.max_learners:
            raise StepRejected(f"add {name}: {learners} learner(s) already; the engine allows one")
        if not self.has_quorum():
            raise StepRejected(f"add {name}: no quorum")
        m.stop()
        m.has_data = False  # the executor wipes a previous incarnation's data
        m.applied_index = 0
        m.ever_started = False
        m.member_id = self._new_id()
        m.is_learner = True

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
        if m is None or not m.is_voter or not m.healthy:
            raise StepRejected(f"move leadership to {target}: not a healthy voter")
        self.leader = target

    def _remove(self, name: str, member_id: int) -> None:
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
        m.stop()  # a removed member shuts itself down
        if self.leader == name:
            self.leader = None

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
            if m.name not in wanted and m.present:
                problems.append(f"{m.name} is not wanted but still present")
            if m.name not in wanted and d.delete_data_on_scale_in and m.has_data:
                problems.append(f"{m.name} is not wanted but its data is kept")
        if d.members and (self.leader is None or self.leader not in wanted):
            problems.append(f"leader is {self.leader}")
        return problems


@dataclass
class RunResult:
    steps: int
    trace: list[str]


def run_to_done(
    sim: Sim,
    rng: random.Random,
    *,
    fault_steps: int = 0,
    fault_rate: float = 0.15,
    max_steps: int = 2000,
    scopes: tuple[frozenset[str], ...] | None = None,
    check: Checker | None = None,
) -> RunResult:
    """Observe, plan, check, apply, tick — until the planner says Done with no faults left
    to come. With `scopes`, one executor per scope (member operators) takes turns at
    random, and Done means every one of them says so.

    `check(desired, observed, step) -> list[str]` judges every planned step."""
    trace: list[str] = []
    for i in range(max_steps):
        if i < fault_steps and rng.random() < fault_rate:
            before = len(sim.history)
            sim.inject_fault(rng)
            trace.extend(f"  fault: {event}" for event in sim.history[before:])
        scope = rng.choice(scopes) if scopes else None
        desired = sim.desired if scope is None else replace(sim.desired, scope=scope)
        observed = sim.observe()
        step = plan(desired, observed)
        stats.count_step()
        trace.append(f"{i:4} [{','.join(sorted(scope)) if scope else '*'}] {step.describe()}")
        if check is not None and (problems := check(desired, observed, step)):
            raise AssertionError(_failure("invariant violated", problems, trace))
        if isinstance(step, Done) and i >= fault_steps:
            others = [sim.plan(s) for s in scopes or ()]
            if all(isinstance(s, Done) for s in others):
                if problems := sim.mismatches():
                    raise AssertionError(_failure("Done before converging", problems, trace))
                return RunResult(steps=i + 1, trace=trace)
        try:
            sim.apply(step)
        except StepRejected as error:
            raise AssertionError(_failure("step rejected", [str(error)], trace)) from error
        sim.tick()
    raise AssertionError(_failure(f"no Done after {max_steps} steps", sim.mismatches(), trace))


def _failure(what: str, problems: list[str], trace: list[str]) -> str:
    return "\n".join([f"{what}: {'; '.join(problems)}", "last steps:", *trace[-40:]])
