"""What the planner reads: the desired federation and what the executor observed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from xlinefed.api.engines import EngineProfile
from xlinefed.api.models import BootstrapMode, ClusterOrder

#: Seconds a member may go unanswered (timeouts, not refusals) before that counts as a
#: fact: a loaded machine or a congested link answers late; a hung process never does.
NO_ANSWER_GRACE = 30.0


@dataclass(frozen=True, order=True)
class DesiredMember:
    cluster: str
    ordinal: int
    name: str


@dataclass(frozen=True)
class RecoveryRequest:
    """`spec.recovery`: rebuild from one survivor once a majority is gone for good."""

    #: The surviving voter to rebuild from; None with `automatic`.
    from_member: str | None = None
    #: Pick the survivor with the highest applied index, after the grace period.
    automatic: bool = False
    #: `spec.recovery.requestedAt`: an explicit recovery is carried out once per value.
    requested_at: str | None = None

    @property
    def key(self) -> str:
        """What a recovery record answers: the explicit request, or 'automatic'."""
        if self.from_member is None:
            return "automatic"
        return f"{self.from_member}@{self.requested_at or ''}"


@dataclass(frozen=True)
class RecoveryRecord:
    """The last quorum-loss recovery, as the platform recorded it (the audit trail)."""

    from_member: str
    #: Wall-clock seconds at which the survivor was restarted as a new cluster.
    at: float
    #: The voters the recovery dropped, and their member ids in the old cluster.
    lost: tuple[str, ...]
    lost_ids: tuple[int, ...] = ()
    applied_index: int | None = None
    #: `RecoveryRequest.key` of the request it answered.
    request: str = ""
    #: The store revision the recovered cluster reached; None until it is finished.
    revision: int | None = None

    @property
    def finished(self) -> bool:
        return self.revision is not None


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
    #: The release the spec asks for (spec.version); "" when unknown.
    version: str = ""
    #: The backend quota members run with (bytes), for the status's warning near it.
    quota_bytes: int | None = None
    bootstrap: BootstrapMode = BootstrapMode.STATIC
    cluster_order: ClusterOrder = ClusterOrder.LEADER_LAST
    partitions: Mapping[str, int] = field(default_factory=dict)
    #: A learner is caught up when leader.applied_index - learner.applied_index <= this.
    max_promote_lag: int = 1000
    delete_data_on_scale_in: bool = False
    paused: bool = False
    #: The clusters this executor acts on (a member operator: its own); None = all (local).
    scope: frozenset[str] | None = None
    #: Clusters the federation tier has taken out of the spec, with the wall-clock time
    #: (seconds) they left. They stay in `clusters` at zero replicas so their own operator
    #: drains them; once `lost_cluster_grace` has passed, the first remaining cluster's
    #: executor drains whatever is left (the cluster may be gone for good).
    departed: Mapping[str, float] = field(default_factory=dict)
    #: Seconds a departed cluster, or a learner whose cluster never starts it, is given;
    #: also how long every lost voter must be silent before a quorum-loss recovery.
    lost_cluster_grace: float = 600.0
    recovery: RecoveryRequest | None = None

    def proposed_initial_members(self) -> tuple[str, ...]:
        """The initial member set this spec proposes, for an authority to record once:
        static, every member; dynamic, the first (the seed)."""
        members = self.members if self.bootstrap is BootstrapMode.STATIC else self.members[:1]
        return tuple(m.name for m in members)

    def owner(self, cluster: str | None, now: float) -> str | None:
        """The cluster whose executor acts on members of `cluster`.

        A member of a cluster the spec no longer lists (or of none), or of a departed
        cluster past its grace period, belongs to the first remaining cluster's executor,
        so that a cluster that is gone is still drained by someone."""
        remaining = [c for c in self.clusters if not self.expired(c, now)]
        if cluster in remaining:
            return cluster
        return remaining[0] if remaining else (self.clusters[0] if self.clusters else None)

    def expired(self, cluster: str | None, now: float) -> bool:
        since = self.departed.get(cluster or "")
        return since is not None and now - since >= self.lost_cluster_grace

    def in_scope(self, cluster: str | None, now: float = 0.0) -> bool:
        if self.scope is None:
            return True
        return self.owner(cluster, now) in self.scope


@dataclass(frozen=True)
class ObservedMember:
    name: str
    #: None for a member-list entry that is not ours (its name does not parse).
    cluster: str | None
    ordinal: int | None
    #: The consensus member id while it is in the member list, else None.
    member_id: int | None = None
    is_learner: bool = False
    #: The leader's member list shows it has started at least once: it published its
    #: client URLs (a static initial member is listed by name before it ever runs).
    ever_started: bool = False
    #: Some member other than the leader lists it (a stale or not yet applied view): it
    #: must not be wiped or re-added while any view still has it.
    listed_elsewhere: bool = False
    #: The only view besides the leader's that has it is its own: a member the leader
    #: removed still lists itself until its process notices and exits.
    listed_only_by_itself: bool = False
    #: The platform has a process or pod for it (running or not).
    present: bool = False
    running: bool = False
    #: Its data directory holds consensus state.
    has_data: bool = False
    #: It answered a status request in this observation.
    healthy: bool = False
    applied_index: int | None = None
    #: The leader (by name) and the term its status named; a member cut off from its
    #: peers names no leader, or another term.
    names_leader: str | None = None
    term: int | None = None
    #: Wall-clock seconds at which it was added as a learner (recorded in the store by
    #: the executor that added it); None when unknown.
    joined_at: float | None = None
    #: The template revision its process was started with.
    revision: str | None = None
    #: The release it runs: what its status reports, else what it was started with.
    version: str | None = None
    #: Its process runs with the engine's force-new-cluster flag (a recovery's first
    #: start): it must be restarted normally before anything else happens.
    forced: bool = False
    #: Wall-clock seconds at which the platform last started its process or pod; None
    #: when the platform cannot see it (another cluster's) or does not know.
    started_at: float | None = None
    #: The platform counts it as serving (a pod's Ready condition); None where it has no
    #: such notion (local mode) or cannot see it (another cluster's member).
    serving: bool | None = None

    @property
    def in_list(self) -> bool:
        return self.member_id is not None

    @property
    def is_voter(self) -> bool:
        return self.in_list and not self.is_learner


@dataclass(frozen=True)
class Formation:
    """Bootstrap authority: a federation-wide fact, never re-derived by one cluster from
    what it can reach. The federation tier carries it in every XlineCluster's spec; the
    local controller keeps it in its state."""

    #: The members that start with `--initial-cluster-state new`, fixed once per
    #: federation (static: the spec's members when it was first placed; dynamic: the
    #: seed). Empty: no authority has decided yet, so nobody bootstraps.
    initial_members: tuple[str, ...]
    #: The federation has formed (some executor saw its quorum answer): from now on every
    #: new member anywhere joins as a learner.
    formed: bool = False
    #: When it formed, for the wait reason (RFC 3339, as recorded).
    formed_at: str | None = None


@dataclass(frozen=True)
class OwnView:
    """What an answering member says of itself, leader or none: what recovery reads while
    no quorum is confirmed."""

    member_id: int
    applied_index: int
    #: It is a voter in its own member list.
    is_voter: bool
    #: The voters its own member list names: (name, member id).
    voters: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class Observed:
    #: Wall-clock seconds on the executor's clock; the only notion of time the planner has.
    now: float
    members: tuple[ObservedMember, ...]
    #: The leader's member list could be read and a linearizable read through the same
    #: endpoint proved a quorum behind it.
    member_list_known: bool
    #: This executor has seen the cluster formed (its own record). The federation-wide
    #: fact is `formation.formed`; either one forbids a bootstrap.
    formed: bool
    #: The leader a majority of the listed voters names, in the majority's term, and
    #: whose own status says it leads; None when no such leader is confirmed.
    leader: str | None = None
    #: The term that leader leads in.
    term: int | None = None
    #: The membership lock's holder if it is not us; None when free or ours.
    lock_holder: str | None = None
    #: Who may bootstrap. None: derived from the spec (single-executor tests only).
    formation: Formation | None = None
    #: Members that gave no answer in time, for less than NO_ANSWER_GRACE, with the
    #: seconds waited: unknown, not down. Nothing is done to them on that evidence.
    inconclusive: Mapping[str, float] = field(default_factory=dict)
    #: Per answering member (with or without a leader): its own view (see OwnView).
    own_views: Mapping[str, OwnView] = field(default_factory=dict)
    #: Wall-clock seconds each member last answered a status request, as far as this
    #: executor remembers; a member missing here has not answered since `watching_since`.
    last_seen: Mapping[str, float] = field(default_factory=dict)
    #: Since when this executor has watched (its memory of `last_seen` starts there);
    #: None: unknown, so every member counts as just seen (recovery waits).
    watching_since: float | None = None
    #: The last quorum-loss recovery the platform recorded.
    recovery: RecoveryRecord | None = None

    def member(self, name: str) -> ObservedMember | None:
        for member in self.members:
            if member.name == name:
                return member
        return None
