"""The closed set of steps the planner returns. Plain, immutable data.

A step names members, never URLs or pods: the executor resolves those through the
platform. `needs_lock` marks steps that change membership or take a voter away; the
executor applies them only while holding the global membership lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar


class StartMode(StrEnum):
    #: Part of the initial member set of a static bootstrap (`--initial-cluster-state new`).
    NEW = "new"
    #: Joins or rejoins a running cluster (`--initial-cluster-state existing`).
    EXISTING = "existing"


@dataclass(frozen=True)
class Step:
    needs_lock: ClassVar[bool] = False
    #: Changes the member list (invariant 1 counts these).
    changes_membership: ClassVar[bool] = False

    @property
    def kind(self) -> str:
        return type(self).__name__

    @property
    def member(self) -> str | None:
        return None

    def describe(self) -> str:
        raise NotImplementedError


class WaitCode(StrEnum):
    """Why the planner waits: a stable code for tests, Events and metrics; the human
    detail (numbers, names) is in `Wait.reason`."""

    PAUSED = "Paused"
    LOCK_HELD = "LockHeld"
    BOOTSTRAPPING = "Bootstrapping"
    NO_BOOTSTRAP_AUTHORITY = "NoBootstrapAuthority"
    FEDERATION_UNREACHABLE = "FederationUnreachable"
    NO_QUORUM = "NoQuorum"
    NO_LEADER = "NoLeader"
    ENGINE_LIMIT = "EngineLimit"
    QUORUM_AT_RISK = "QuorumAtRisk"
    LEARNER_JOINING = "LearnerJoining"
    LEARNER_STARTING = "LearnerStarting"
    CATCHING_UP = "CatchingUp"
    VIEWS_DISAGREE = "ViewsDisagree"
    OTHER_CLUSTER_FIRST = "OtherClusterFirst"
    DRAINING_ELSEWHERE = "DrainingElsewhere"
    NOT_READY = "NotReady"
    NO_SUCCESSOR = "NoSuccessor"
    SETTLING = "Settling"
    NO_ANSWER = "NoAnswer"
    VERSION_SKIP = "VersionSkip"
    #: A majority of the voters is gone and no recovery is asked for (spec.recovery).
    QUORUM_LOST = "QuorumLost"
    #: A recovery is asked for and refused for now (see the reason: who was seen when).
    RECOVERY_REFUSED = "RecoveryRefused"
    #: A recovery is under way (the survivor starts forced, or is being finished).
    RECOVERING = "Recovering"


@dataclass(frozen=True)
class Bootstrap(Step):
    """Start the initial members of a new cluster together (static) or the seed (dynamic)."""

    members: tuple[str, ...]
    initial_members: tuple[str, ...]
    #: The template they start on.
    revision: str = ""
    #: The initial member that starts as the leader, for engines that need one named
    #: (Xline's `--is-leader`); None for the others.
    initial_leader: str | None = None

    def describe(self) -> str:
        return (
            f"bootstrap {', '.join(self.members)} (initial cluster of {len(self.initial_members)})"
        )


@dataclass(frozen=True)
class AddLearner(Step):
    needs_lock: ClassVar[bool] = True
    changes_membership: ClassVar[bool] = True
    name: str

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"add {self.name} as a learner"


@dataclass(frozen=True)
class StartMember(Step):
    name: str
    mode: StartMode
    #: The template it starts on: a crashed member comes back on the one it ran (the
    #: rolling order and partitions decide when it moves on), a new one on the desired.
    revision: str = ""
    #: NEW only: the initial member set it bootstraps with (the recorded formation).
    #: EXISTING members get the leader's member list.
    initial_members: tuple[str, ...] = ()
    #: NEW only: it is the initial leader the engine needs named (see Bootstrap).
    initial_leader: bool = False
    #: It ran before, so it must find its data: the platform refuses to start it empty
    #: (a pod's start guard reports the loss instead, and the member is replaced).
    require_data: bool = False

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"start {self.name} ({self.mode.value} cluster)"


@dataclass(frozen=True)
class PromoteLearner(Step):
    needs_lock: ClassVar[bool] = True
    changes_membership: ClassVar[bool] = True
    name: str
    #: Entries the learner was behind the leader when promotion was chosen (for the
    #: record; it never exceeds the spec's maxPromoteLag). Not part of the step's identity.
    lag: int = field(default=0, compare=False)

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"promote learner {self.name} to voter ({self.lag} entries behind the leader)"


@dataclass(frozen=True)
class TransferLeadership(Step):
    needs_lock: ClassVar[bool] = True
    source: str
    target: str

    @property
    def member(self) -> str:
        return self.source

    def describe(self) -> str:
        return f"move leadership from {self.source} to {self.target}"


@dataclass(frozen=True)
class RemoveMember(Step):
    needs_lock: ClassVar[bool] = True
    changes_membership: ClassVar[bool] = True
    name: str
    member_id: int
    reason: str
    #: Stop its process after the remove (a desired member removed because its data is
    #: gone comes back through AddLearner; a scaled-in one is deleted by DeleteMember).
    stop_after: bool = False

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"remove {self.name} from the member list ({self.reason})"


@dataclass(frozen=True)
class StopMember(Step):
    """Stop a wanted member the leader's member list does not have (a removed member
    still running, an earlier incarnation), keeping its data: it must rejoin as a new
    learner, and nothing that runs is ever wiped."""

    needs_lock: ClassVar[bool] = True
    name: str
    reason: str

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"stop {self.name} ({self.reason})"


@dataclass(frozen=True)
class WipeData(Step):
    """Delete the data an earlier incarnation of a wanted member left, once no observed
    member list has it and its process is stopped, so it can join as a new learner."""

    needs_lock: ClassVar[bool] = True
    name: str

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"wipe the data {self.name}'s earlier incarnation left"


@dataclass(frozen=True)
class DeleteMember(Step):
    """Stop a member that is no longer in the member list and free its place."""

    name: str
    delete_data: bool

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        data = "deleting" if self.delete_data else "keeping"
        return f"delete {self.name}, {data} its data"


@dataclass(frozen=True)
class RestartMember(Step):
    """Stop a member and start it again with the desired template (version, args)."""

    needs_lock: ClassVar[bool] = True
    name: str
    revision: str

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"restart {self.name} with template {self.revision}"


@dataclass(frozen=True)
class RecoverFrom(Step):
    """Quorum-loss recovery, first half: stop the surviving voter `name` and start it once
    with the engine's force-new-cluster flag on its own data, so it comes up as a
    one-member cluster that has committed the removal of every other member. There is no
    quorum to take the lock in; the planner's grace period and refusals are the fence."""

    changes_membership: ClassVar[bool] = True
    name: str
    revision: str
    #: The voters it drops (gone for good), with their ids in the old cluster.
    lost: tuple[str, ...]
    lost_ids: tuple[int, ...] = ()
    #: Its applied index when the recovery was chosen (what the new cluster starts from).
    applied_index: int = 0
    #: `RecoveryRequest.key` it answers.
    request: str = ""

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return (
            f"recover the cluster from {self.name} (applied index {self.applied_index}): "
            f"restart it as a new one-member cluster, dropping {', '.join(self.lost)}"
        )


@dataclass(frozen=True)
class FinishRecovery(Step):
    """Quorum-loss recovery, second half: record the revision the recovered cluster
    reached, then restart the survivor without the force-new-cluster flag (a later start
    with it would drop every member added since). Regrowth follows through the usual
    rules: one learner at a time, promoted once caught up."""

    needs_lock: ClassVar[bool] = True
    name: str
    revision: str

    @property
    def member(self) -> str:
        return self.name

    def describe(self) -> str:
        return f"finish the recovery: restart {self.name} without --force-new-cluster"


@dataclass(frozen=True)
class Wait(Step):
    reason: str
    retry_after: float = 1.0
    code: WaitCode = WaitCode.NOT_READY

    def describe(self) -> str:
        return f"wait: {self.reason}"


@dataclass(frozen=True)
class Done(Step):
    def describe(self) -> str:
        return "done: the federation matches the spec"


ALL_STEPS: tuple[type[Step], ...] = (
    Bootstrap,
    AddLearner,
    StartMember,
    PromoteLearner,
    TransferLeadership,
    RemoveMember,
    StopMember,
    WipeData,
    DeleteMember,
    RestartMember,
    RecoverFrom,
    FinishRecovery,
    Wait,
    Done,
)
