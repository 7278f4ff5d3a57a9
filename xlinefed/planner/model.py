"""What the planner reads: the desired federation and what the executor observed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xlinefed.api.engines import EngineProfile
from xlinefed.api.models import BootstrapMode, ClusterOrder


@dataclass(frozen=True, order=True)
class DesiredMember:
    cluster: str
    ordinal: int
    name: str


@dataclass(frozen=True)
class Desired:
    #: Every member the spec asks for, clusters in spec order, ordinals ascending.
    members: tuple[DesiredMember, ...]
    #: Cluster ids in spec order (clusters with zero replicas included).
    clusters: tuple[str, ...]
    #: Identifies the member template (version + engine args); members running another
    #: revision are rolled.
    revision: str
    engine: EngineProfile
    bootstrap: BootstrapMode = BootstrapMode.STATIC
    cluster_order: ClusterOrder = ClusterOrder.LEADER_LAST
    partitions: Mapping[str, int] = field(default_factory=dict)
    #: A learner is caught up when leader.applied_index - learner.applied_index <= this.
    max_promote_lag: int = 1000
    delete_data_on_scale_in: bool = False
    paused: bool = False
    #: The clusters this executor acts on (a member operator: its own); None = all (local).
    scope: frozenset[str] | None = None

    def in_scope(self, cluster: str | None) -> bool:
        if self.scope is None:
            return True
        # A member of a cluster the spec no longer lists (or of none) belongs to the first
        # cluster's executor, so that a cluster that is gone is still drained by someone.
        owner = (
            cluster if cluster in self.clusters else (self.clusters[0] if self.clusters else None)
        )
        return owner in self.scope


@dataclass(frozen=True)
class ObservedMember:
    name: str
    #: None for a member-list entry that is not ours (its name does not parse).
    cluster: str | None
    ordinal: int | None
    #: The consensus member id while it is in the member list, else None.
    member_id: int | None = None
    is_learner: bool = False
    #: The member list shows it has started at least once (etcd: non-empty name).
    ever_started: bool = False
    #: The platform has a process or pod for it (running or not).
    present: bool = False
    running: bool = False
    #: Its data directory holds consensus state.
    has_data: bool = False
    #: It answered a status request in this observation.
    healthy: bool = False
    applied_index: int | None = None
    #: The template revision its process was started with.
    revision: str | None = None

    @property
    def in_list(self) -> bool:
        return self.member_id is not None

    @property
    def is_voter(self) -> bool:
        return self.in_list and not self.is_learner


@dataclass(frozen=True)
class Observed:
    #: Seconds on the executor's clock; the only notion of time the planner has.
    now: float
    members: tuple[ObservedMember, ...]
    #: The member list could be read (a quorum answered).
    member_list_known: bool
    #: The cluster has been formed once (recorded by the executor); static bootstrap
    #: starts initial members only before that.
    formed: bool
    leader: str | None = None
    #: The membership lock's holder if it is not us; None when free or ours.
    lock_holder: str | None = None

    def member(self, name: str) -> ObservedMember | None:
        for member in self.members:
            if member.name == name:
                return member
        return None
