"""The federation tier's decisions, pure: which XlineClusters should exist on Karmada,
which may go, and what the federation's status is.

Cross-cluster sequencing needs no orders from here: every member operator plans over the
whole topology and reads the others' progress from the store itself (health over gRPC,
templates from the revisions each publishes, the membership lock). What this tier adds is
placement and the safe removal of a cluster: a cluster dropped from the spec stays in
every topology with zero replicas until its members have left the consensus, and only
then is its XlineCluster deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from xlinefed.api import conditions
from xlinefed.api.models import (
    ConditionType,
    ConsensusStatus,
    ConsensusTemplate,
    DepartedCluster,
    FormationSpec,
    MemberClusterSpec,
    MemberStatus,
    ObjectMeta,
    Phase,
    SecurityStatus,
    StepStatus,
    XlineCluster,
    XlineClusterSpec,
    XlineFederation,
    spec_hash,
)
from xlinefed.api.validation import warnings_for
from xlinefed.planner.desired import desired_from, epoch_seconds

LABEL_FEDERATION = "xlinefed.io/federation"
LABEL_CLUSTER = "xlinefed.io/cluster"


@dataclass(frozen=True)
class ClusterView:
    """One XlineCluster as the federation operator found it on Karmada."""

    cluster_id: str
    status: ConsensusStatus | None


@dataclass(frozen=True)
class FederationPlan:
    #: Every XlineCluster that should exist, with its spec (draining ones included).
    clusters: dict[str, XlineCluster]
    #: Cluster ids whose XlineCluster (and policy) can be deleted: drained.
    delete: tuple[str, ...]
    #: Ids of clusters being drained before deletion.
    draining: tuple[str, ...]
    status: ConsensusStatus


def _members_of(status: ConsensusStatus | None, cluster: str) -> list[MemberStatus]:
    return [m for m in (status.members if status else []) if m.cluster == cluster]


def drained(view: ClusterView, expected: XlineCluster) -> bool:
    """The cluster has reached zero replicas and none of its members is in the member list,
    in its own report of the spec that asked for that."""
    status = view.status
    return (
        status is not None
        and status.observed_spec == spec_hash(expected.spec)
        and not any(m.role is not None for m in _members_of(status, view.cluster_id))
    )


def lost_and_drained(
    cluster: str,
    existing: Mapping[str, ClusterView],
    departed: Mapping[str, DepartedCluster],
    grace: float,
    now: str,
) -> bool:
    """A departed cluster past its grace period that no other cluster lists a member of:
    the remaining clusters drained it (it may never report again)."""
    since = departed.get(cluster)
    if since is None or epoch_seconds(now) - epoch_seconds(since.since) < grace:
        return False
    return not any(
        m.role is not None
        for other, view in existing.items()
        if other != cluster
        for m in _members_of(view.status, cluster)
    )


def formation_for(
    federation: XlineFederation,
    existing: Mapping[str, ClusterView],
    now: str,
    previous: ConsensusStatus | None,
) -> FormationSpec:
    """The bootstrap authority: the initial members are fixed at the first placement and
    never change; "formed" becomes true once any cluster saw a quorum, and stays."""
    recorded = previous.formation if previous else None
    if recorded is None:
        initial = desired_from(federation).proposed_initial_members()
        recorded = FormationSpec(initial_members=list(initial))
    formed = recorded.formed or any(
        v.status is not None and v.status.formed for v in existing.values()
    )
    if formed and not recorded.formed:
        recorded = recorded.model_copy(update={"formed": True, "formed_at": now})
    return recorded


def _split_with(
    federation: XlineFederation,
    leaving: list[str],
    formation: FormationSpec,
    departed: list[DepartedCluster],
) -> dict[str, XlineCluster]:
    """The split, with clusters on their way out kept at zero replicas in every topology,
    and the federation-wide facts every cluster needs (formation, departures)."""
    topology = [
        *federation.spec.clusters,
        *(MemberClusterSpec(id=c, replicas=0) for c in leaving),
    ]
    widened = federation.model_copy(
        update={"spec": federation.spec.model_copy(update={"clusters": topology})}
    )
    kept = [d for d in departed if d.id in leaving]
    return {
        cluster_id: cluster.model_copy(
            update={
                "spec": cluster.spec.model_copy(update={"formation": formation, "departed": kept})
            }
        )
        for cluster_id, cluster in split(widened).items()
    }


def plan_federation(
    federation: XlineFederation,
    existing: Mapping[str, ClusterView],
    now: str,
    previous: ConsensusStatus | None = None,
) -> FederationPlan:
    listed = {c.id for c in federation.spec.clusters}
    leaving = sorted(set(existing) - listed)
    formation = formation_for(federation, existing, now, previous)
    before = {d.id: d for d in (previous.departed if previous else [])}
    departures = {c: before.get(c) or DepartedCluster(id=c, since=now) for c in leaving}
    departed = [departures[c] for c in leaving]
    wanted = _split_with(federation, leaving, formation, departed)
    grace = float(federation.spec.lost_cluster_grace_period_seconds)
    gone = tuple(
        c
        for c in leaving
        if drained(existing[c], wanted[c]) or lost_and_drained(c, existing, departures, grace, now)
    )
    if gone:
        # Deleted clusters leave the others' topology too.
        leaving = [c for c in leaving if c not in gone]
        departed = [departures[c] for c in leaving]
        wanted = _split_with(federation, leaving, formation, departed)
    status = aggregate_status(federation, wanted, existing, tuple(leaving), now, previous)
    status = status.model_copy(update={"formation": formation, "departed": departed})
    return FederationPlan(wanted, gone, tuple(leaving), status)


def _healthy_by_most(member: MemberStatus, statuses: Mapping[str, ConsensusStatus | None]) -> bool:
    votes = [
        m.healthy
        for status in statuses.values()
        if status is not None
        for m in status.members
        if m.name == member.name
    ]
    return bool(votes) and sum(votes) * 2 > len(votes)


def aggregate_status(
    federation: XlineFederation,
    wanted: Mapping[str, XlineCluster],
    existing: Mapping[str, ClusterView],
    draining: tuple[str, ...],
    now: str,
    previous: ConsensusStatus | None,
) -> ConsensusStatus:
    statuses = {c: existing[c].status if c in existing else None for c in wanted}
    reached = {
        c: s is not None and s.observed_spec == spec_hash(wanted[c].spec)
        for c, s in statuses.items()
    }
    # Each cluster reports its own members best: it sees their pods.
    members: list[MemberStatus] = []
    for cluster, status in statuses.items():
        own = _members_of(status, cluster)
        if not own:
            own = next(
                (_members_of(s, cluster) for s in statuses.values() if _members_of(s, cluster)),
                [],
            )
        members.extend(own)
    leaders = Counter(s.leader for s in statuses.values() if s is not None and s.leader)
    leader = leaders.most_common(1)[0][0] if leaders else None
    # A cluster that died keeps its last report on Karmada for ever: a member is healthy
    # only if most of the clusters that report on it say so, not by its own word alone.
    members = [
        m.model_copy(update={"leader": m.name == leader, "healthy": _healthy_by_most(m, statuses)})
        for m in members
    ]
    total = sum(c.replicas for c in federation.spec.clusters)
    wanted = {c.id for c in federation.spec.clusters if c.replicas}
    ready = sum(1 for m in members if m.healthy and m.role is not None and m.cluster in wanted)
    phases = [s.phase for s in statuses.values() if s is not None]
    converged = (
        all(reached.values())
        and not draining
        and all(p is Phase.AVAILABLE for p in phases)
        and ready == total
    )
    activity = _activity(federation.spec.paused, converged, draining, phases, reached)
    step = next(
        (
            StepStatus(
                kind=s.current_step.kind,
                member=s.current_step.member,
                reason=f"{cluster}: {s.current_step.reason}",
            )
            for cluster, s in statuses.items()
            if s is not None and s.current_step is not None
        ),
        None,
    )
    if step is None and not converged:
        waiting = [c for c, ok in reached.items() if not ok]
        reason = (
            f"draining {', '.join(draining)} before removing it"
            if draining
            else f"waiting for {', '.join(waiting)} to report the new spec"
            if waiting
            else "waiting for every member to be healthy"
        )
        step = StepStatus(kind="Wait", reason=reason)
    warnings = warnings_for(federation.spec.clusters)
    for cluster, status in statuses.items():
        warnings.extend(
            f"{cluster}: {w}"
            for w in (status.warnings if status else [])
            if w not in warnings_for(federation.spec.clusters)
        )
    warnings.extend(trust_warnings(statuses))
    serving = leader is not None and ready > total // 2
    holder = next((s.lock_holder for s in statuses.values() if s and s.lock_holder), None)
    generation = federation.metadata.generation
    failed = [c for c, s in statuses.items() if s is not None and s.phase is Phase.FAILED]
    unhealthy = ready < total or bool(failed)
    status_conditions = [
        conditions.condition(
            previous,
            ConditionType.AVAILABLE,
            serving,
            conditions.QUORUM_SERVING if serving else conditions.NO_QUORUM,
            f"leader {leader}, {ready} of {total} members ready"
            if serving
            else "no leader reported"
            if leader is None
            else f"only {ready} of {total} members ready",
            now,
            generation,
        ),
        conditions.progressing(
            previous,
            activity,
            # Converged or paused, the condition says so itself.
            step.reason if step and activity not in (None, conditions.PAUSED) else None,
            now,
            generation,
        ),
        conditions.condition(
            previous,
            ConditionType.DEGRADED,
            unhealthy,
            conditions.INVALID_SPEC
            if failed
            else conditions.MEMBERS_UNHEALTHY
            if unhealthy
            else conditions.ALL_HEALTHY,
            f"{', '.join(failed)} refused the spec: see their warnings"
            if failed
            else f"{ready} of {total} members ready",
            now,
            generation,
        ),
    ]
    endpoints = sorted({url for s in statuses.values() if s is not None for url in s.endpoints})
    return ConsensusStatus(
        phase=conditions.phase_from(status_conditions),
        # The generation this status was computed for; whether it is reached is
        # Progressing's to say.
        observed_generation=generation,
        conditions=status_conditions,
        members=members,
        leader=leader,
        current_step=step,
        lock_holder=holder,
        warnings=warnings,
        formed=any(s.formed for s in statuses.values() if s is not None),
        ready=f"{ready}/{total}",
        clusters=",".join(f"{c.id}={c.replicas}" for c in federation.spec.clusters),
        version=conditions.running_version(members),
        endpoints=endpoints,
        security=federation_security(statuses),
    )


def _trusted(statuses: Mapping[str, ConsensusStatus | None]) -> dict[str, str | None]:
    """cluster -> the CA fingerprint its members trust (None: plain text), for the
    clusters that reported security."""
    return {
        cluster: status.security.ca_fingerprint if status.security.tls else None
        for cluster, status in sorted(statuses.items())
        if status is not None and status.security is not None
    }


def trust_warnings(statuses: Mapping[str, ConsensusStatus | None]) -> list[str]:
    """Members of clusters that trust different CAs (or where one speaks plain text)
    cannot reach each other; say which cluster trusts what."""
    trusted = _trusted(statuses)
    if len(set(trusted.values())) <= 1:
        return []
    groups: dict[str | None, list[str]] = {}
    for cluster, fingerprint in trusted.items():
        groups.setdefault(fingerprint, []).append(cluster)
    described = "; ".join(
        f"{', '.join(clusters)}: "
        + (f"CA sha256:{fingerprint[:16]}" if fingerprint else "plain text")
        for fingerprint, clusters in groups.items()
    )
    return [
        f"the member clusters do not trust one CA ({described}); every cluster's "
        "spec.tls.peerSecretRef must hold the same ca.crt (to rotate the CA, first put a "
        "bundle of both CAs in every cluster) (docs/security.md)"
    ]


def federation_security(statuses: Mapping[str, ConsensusStatus | None]) -> SecurityStatus | None:
    trusted = _trusted(statuses)
    if not trusted:
        return None
    fingerprints = set(trusted.values())
    reports = [s.security for s in statuses.values() if s is not None and s.security is not None]
    expiries = [r.certificates_expire for r in reports if r.certificates_expire]
    return SecurityStatus(
        tls=None not in fingerprints,
        auth=all(r.auth for r in reports),
        ca_fingerprint=next(iter(fingerprints)) if len(fingerprints) == 1 else None,
        certificates_expire=min(expiries) if expiries else None,
    )


#: Member phases, in the order a federation reports them as its own activity.
_MEMBER_ACTIVITY = (
    (Phase.BOOTSTRAPPING, conditions.BOOTSTRAPPING),
    (Phase.UPDATING, conditions.UPDATING),
    (Phase.SCALING, conditions.SCALING),
    (Phase.HEALING, conditions.HEALING),
    (Phase.DEGRADED, conditions.HEALING),
)


def _activity(
    paused: bool,
    converged: bool,
    draining: tuple[str, ...],
    phases: list[Phase],
    reached: Mapping[str, bool],
) -> str | None:
    """What the federation is doing, as a Progressing reason; None once converged."""
    if paused:
        return conditions.PAUSED
    if converged:
        return None
    if draining:
        return conditions.SCALING
    for phase, activity in _MEMBER_ACTIVITY:
        if phase in phases:
            return activity
    # Every member cluster is at rest, on an older spec: the new one is on its way.
    return conditions.UPDATING if not all(reached.values()) else conditions.HEALING


def split(federation: XlineFederation) -> dict[str, XlineCluster]:
    """One `XlineCluster` per member cluster, each carrying the whole topology."""
    template = ConsensusTemplate.model_validate(
        federation.spec.model_dump(exclude={"clusters"}), from_attributes=False
    )
    shared = template.model_dump()
    result: dict[str, XlineCluster] = {}
    for cluster in federation.spec.clusters:
        spec = XlineClusterSpec.model_validate(
            {
                **shared,
                "federation": federation.name,
                "cluster_id": cluster.id,
                "replicas": cluster.replicas,
                "clusters": [c.model_dump() for c in federation.spec.clusters],
            }
        )
        result[cluster.id] = XlineCluster(
            metadata=ObjectMeta(
                name=f"{federation.name}-{cluster.id}",
                namespace=federation.namespace,
                labels={
                    "xlinefed.io/federation": federation.name,
                    "xlinefed.io/cluster": cluster.id,
                },
            ),
            spec=spec,
        )
    return result
