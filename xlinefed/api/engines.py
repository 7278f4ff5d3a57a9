"""What each consensus engine allows, as data the planner and validation read.

The rules never branch on the engine's name; they read these fields. Sources:
etcd 3.4+ allows one learner at a time (its refusal of adds for a few seconds after a
member starts, "unhealthy cluster", is retried by the consensus client); Xline cannot
grow from one member or shrink below three (Xline issue #447) and has no joint
consensus (#970).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Engine(StrEnum):
    XLINE = "xline"
    ETCD = "etcd"


@dataclass(frozen=True)
class EngineProfile:
    engine: Engine
    #: Members join as learners first (invariant 3); without it, adds would be voters.
    supports_learners: bool
    #: Learners allowed in the cluster at once (etcd: `--experimental-max-learners`, 1).
    max_learners: int
    #: The engine can hand leadership to a named member (etcd MoveLeader).
    supports_move_leader: bool
    #: The fewest voters the engine can run with; a spec below it is rejected.
    min_voters: int
    #: Default image repository and the binary inside it.
    default_image: str
    binary: str


ENGINES: dict[Engine, EngineProfile] = {
    Engine.ETCD: EngineProfile(
        engine=Engine.ETCD,
        supports_learners=True,
        max_learners=1,
        supports_move_leader=True,
        min_voters=1,
        default_image="quay.io/coreos/etcd",
        binary="etcd",
    ),
    Engine.XLINE: EngineProfile(
        engine=Engine.XLINE,
        supports_learners=True,
        max_learners=1,
        supports_move_leader=True,
        min_voters=3,
        default_image="ghcr.io/xline-kv/xline",
        binary="xline",
    ),
}


def profile(engine: Engine) -> EngineProfile:
    return ENGINES[engine]
