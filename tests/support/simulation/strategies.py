"""Hypothesis strategies: generated topologies (1-7 clusters, 0-7 replicas each) and
observed states anywhere between bootstrap and chaos (crashed, lagging, data lost,
learners, strays, the leader anywhere, the lock held by someone else)."""

from __future__ import annotations

import os
from dataclasses import replace

from hypothesis import strategies as st

from tests.support.simulation.simulator import FEDERATION, make_desired
from xlinefed.api.engines import Engine, profile
from xlinefed.api.models import BootstrapMode, ClusterOrder
from xlinefed.planner import (
    Desired,
    Formation,
    Observed,
    ObservedMember,
    OwnView,
    RecoveryRecord,
    RecoveryRequest,
)

#: Examples per property test; raise it for a longer soak (`XLINEFED_PROPERTY_EXAMPLES`).
EXAMPLES = int(os.environ.get("XLINEFED_PROPERTY_EXAMPLES", "300"))

CLUSTER_IDS = ("a", "b", "c", "d", "e", "f", "g")
REVISIONS = ("r1", "r2")


@st.composite
def specs(draw: st.DrawFn, *, min_total: int = 1, max_clusters: int = 7) -> dict[str, int]:
    """{cluster: replicas}: 1-7 clusters in a random order, 0-7 replicas each."""
    n = draw(st.integers(1, max_clusters))
    ids = draw(st.permutations(CLUSTER_IDS))[:n]
    spec = {c: draw(st.integers(0, 7)) for c in ids}
    if sum(spec.values()) < min_total:
        spec[ids[0]] = min_total
    return spec


@st.composite
def desireds(draw: st.DrawFn, spec: dict[str, int] | None = None) -> Desired:
    spec = spec if spec is not None else draw(specs())
    clusters = list(spec)
    partitions = {
        c: draw(st.integers(0, spec[c] + 1)) for c in clusters if draw(st.booleans()) and spec[c]
    }
    engine = Engine.XLINE if sum(spec.values()) >= 3 and draw(st.booleans()) else Engine.ETCD
    scope = None
    if draw(st.integers(0, 3)) == 0:
        scope = frozenset(draw(st.sets(st.sampled_from(clusters), min_size=1, max_size=2)))
    return make_desired(
        spec,
        revision=draw(st.sampled_from(REVISIONS)),
        engine=engine,
        bootstrap=draw(st.sampled_from(BootstrapMode)),
        cluster_order=draw(st.sampled_from(ClusterOrder)),
        partitions=partitions,
        max_promote_lag=draw(st.sampled_from((0, 10, 1000))),
        delete_data=draw(st.booleans()),
        paused=draw(st.integers(0, 30)) == 0,
        scope=scope,
    )


def _flaw(draw: st.DrawFn, chaos: int) -> bool:
    """True with probability `chaos` percent."""
    return draw(st.integers(0, 99)) < chaos


@st.composite
def observed_member(
    draw: st.DrawFn,
    name: str,
    cluster: str | None,
    ordinal: int | None,
    *,
    wanted: bool,
    chaos: int,
) -> ObservedMember:
    listed = not _flaw(draw, chaos) if wanted else draw(st.booleans())
    learner = listed and _flaw(draw, chaos // 2 + 2)
    has_data = not _flaw(draw, chaos // 2)
    running = has_data and not _flaw(draw, chaos)
    present = running or draw(st.booleans())
    healthy = running and not _flaw(draw, chaos)
    ever_started = listed and (running or has_data or draw(st.booleans()))
    if listed and not ever_started and not running:
        ever_started = draw(st.booleans())
    lag = draw(st.sampled_from((0, 5, 50, 5000))) if _flaw(draw, chaos + 2) else 0
    return ObservedMember(
        name=name,
        cluster=cluster,
        ordinal=ordinal,
        member_id=draw(st.integers(1, 2**32)) if listed else None,
        is_learner=learner,
        ever_started=ever_started,
        present=present,
        running=running,
        has_data=has_data,
        healthy=healthy,
        applied_index=10_000 - lag if healthy else None,
        revision=draw(st.sampled_from(REVISIONS)) if present else None,
    )


@st.composite
def observeds(draw: st.DrawFn, desired: Desired) -> Observed:
    """A state the executor could observe for `desired`: wanted members in any state,
    unwanted ordinals and clusters, strays with names that are not ours."""
    names: dict[str, tuple[str | None, int | None]] = {
        m.name: (m.cluster, m.ordinal) for m in desired.members
    }
    for cluster in desired.clusters[: draw(st.integers(0, 3))]:
        top = sum(1 for m in desired.members if m.cluster == cluster)
        for ordinal in range(top, top + draw(st.integers(0, 2))):
            names[f"{FEDERATION}-{cluster}-{ordinal}"] = (cluster, ordinal)
    for cluster in draw(st.sets(st.sampled_from(("x", "y")), max_size=2)):
        for ordinal in range(draw(st.integers(1, 2))):
            names[f"{FEDERATION}-{cluster}-{ordinal}"] = (cluster, ordinal)
    if draw(st.integers(0, 5)) == 0:
        names["stranger"] = (None, None)
    chaos = draw(st.sampled_from((0, 5, 25, 60)))
    wanted = {m.name for m in desired.members}
    members = []
    for name, (cluster, ordinal) in names.items():
        if _flaw(draw, chaos // 2 + 2 if name in wanted else 50):
            continue  # never created, or long gone
        members.append(
            draw(observed_member(name, cluster, ordinal, wanted=name in wanted, chaos=chaos))
        )
    known = not _flaw(draw, 10 + chaos // 2)
    if not known:
        members = [replace(m, member_id=None, is_learner=False) for m in members]
    electable = [m.name for m in members if m.is_voter and m.healthy]
    leader = draw(st.sampled_from(electable)) if electable and draw(st.integers(0, 9)) else None
    if leader is not None:
        # The leader's applied index is the highest (it has everything committed).
        top = max((m.applied_index or 0) for m in members) + draw(st.integers(0, 20))
        members = [replace(m, applied_index=top) if m.name == leader else m for m in members]
    members = [draw(_views_of(m, leader, chaos)) for m in members]
    members = draw(st.permutations(members))
    formation = None
    if draw(st.booleans()):
        initial = draw(st.sampled_from((desired.proposed_initial_members(), ())))
        formation = Formation(initial_members=initial, formed=draw(st.booleans()))
    return Observed(
        now=float(draw(st.integers(0, 10_000))),
        members=tuple(members),
        member_list_known=known,
        formed=known or draw(st.booleans()),
        leader=leader,
        term=TERM if leader else None,
        lock_holder="another-executor" if draw(st.integers(0, 5)) == 0 else None,
        formation=formation,
    )


TERM = 7


@st.composite
def _views_of(draw: st.DrawFn, m: ObservedMember, leader: str | None, chaos: int) -> ObservedMember:
    """What a member's own answers say: whom it follows, in which term (cut off: nobody,
    or an older term), and whether some member's list still has it."""
    follows = m.healthy and leader is not None and not _flaw(draw, chaos // 2)
    term = TERM if follows else draw(st.sampled_from((TERM - 1, TERM, TERM + 1)))
    return replace(
        m,
        names_leader=leader if follows else None,
        term=term if m.healthy else None,
        listed_elsewhere=_flaw(draw, chaos // 3),
        joined_at=float(draw(st.integers(0, 10_000))) if m.is_learner and _flaw(draw, 50) else None,
    )


@st.composite
def situations(draw: st.DrawFn) -> tuple[Desired, Observed]:
    desired = draw(desireds())
    return desired, draw(observeds(desired))


@st.composite
def steady_situations(draw: st.DrawFn, *, rejoining: bool = False) -> tuple[Desired, Observed]:
    """A formed, mostly healthy federation (an old spec, members on either revision) under
    a new spec: the states where scaling, promotion, hand-over and rolling steps happen.
    `rejoining`: always with an earlier incarnation of a wanted member that was removed and
    left its data behind (the stale-list case), everyone on the spec's revision, so the
    scale-out rule is what answers."""
    old = draw(specs(min_total=2) if rejoining else specs())
    new = dict(old)
    changes = draw(st.sets(st.sampled_from(list(old)), max_size=len(old)))
    for cluster in changes if draw(st.booleans()) else ():
        new[cluster] = draw(st.integers(0, 7))
    if draw(st.integers(0, 5)) == 0:
        new[draw(st.sampled_from([c for c in CLUSTER_IDS if c not in old] or ["a"]))] = 2
    if sum(new.values()) == 0:
        new = dict(old)
    desired = draw(desireds(new))
    desired = replace(desired, paused=False)
    members = [
        ObservedMember(
            name=f"{FEDERATION}-{c}-{i}",
            cluster=c,
            ordinal=i,
            member_id=1000 + n,
            ever_started=True,
            present=True,
            running=True,
            has_data=True,
            healthy=True,
            applied_index=10_000,
            revision=desired.revision if rejoining else draw(st.sampled_from(REVISIONS)),
            term=TERM,
        )
        for n, (c, i) in enumerate((c, i) for c, r in old.items() for i in range(r))
    ]
    listed = {m.name for m in members}
    missing = [m for m in desired.members if m.name not in listed]
    wanted_back = [m for m in members if m.name in {d.name for d in desired.members}]
    if rejoining and not missing and len(wanted_back) > 1:
        # Make room: a member of the old spec was removed and is wanted back.
        gone = draw(st.sampled_from(wanted_back))
        members.remove(gone)
        missing = [m for m in desired.members if m.name == gone.name]
    if missing and not rejoining and draw(st.booleans()):
        joining = draw(st.sampled_from(missing))
        running = draw(st.booleans())
        members.append(
            ObservedMember(
                name=joining.name,
                cluster=joining.cluster,
                ordinal=joining.ordinal,
                member_id=999,
                is_learner=True,
                ever_started=running,
                present=running,
                running=running,
                has_data=running,
                healthy=running,
                applied_index=draw(st.sampled_from((0, 9_000, 9_995, 10_000))) if running else None,
                revision=desired.revision if running else None,
                term=TERM if running else None,
            )
        )
    leftover = [m for m in missing if m.name not in {x.name for x in members}]
    if leftover and (rejoining or draw(st.integers(0, 3)) == 0):
        # An earlier incarnation of a wanted member: removed, but it left data behind
        # (and may still run, cut off from hearing that it was removed).
        old_one = draw(st.sampled_from(leftover))
        running = draw(st.booleans())
        members.append(
            ObservedMember(
                name=old_one.name,
                cluster=old_one.cluster,
                ordinal=old_one.ordinal,
                present=True,
                running=running,
                has_data=True,
                healthy=running,
                applied_index=5_000 if running else None,
                revision=desired.revision,
                term=TERM - 1 if running else None,
                listed_elsewhere=draw(st.integers(0, 3)) == 0,
            )
        )
    unwanted = [i for i, m in enumerate(members) if m.name not in {d.name for d in desired.members}]
    if unwanted and not rejoining and draw(st.integers(0, 3)) == 0:
        # Scaled in: removed from the member list, its process and data not yet deleted
        # (an operator that stopped between the two steps).
        i = draw(st.sampled_from(unwanted))
        running = draw(st.booleans())
        members[i] = replace(
            members[i],
            member_id=None,
            running=running,
            healthy=False,
            applied_index=None,
            names_leader=None,
            term=None,
        )
    if members and not rejoining and draw(st.integers(0, 3)) == 0:
        i = draw(st.integers(0, len(members) - 1))
        fault = draw(st.sampled_from(("crash", "lag", "sick", "lost", "cut", "stale")))
        m = members[i]
        members[i] = {
            "crash": replace(m, running=False, healthy=False, applied_index=None),
            "lag": replace(m, applied_index=m.applied_index and m.applied_index - 5000),
            "sick": replace(m, healthy=False, applied_index=None),
            "lost": replace(m, running=False, healthy=False, has_data=False, applied_index=None),
            # answers, but follows nobody: cut off from its peers
            "cut": replace(m, term=TERM + 1, applied_index=9_000),
            "stale": replace(m, listed_elsewhere=True),
        }[fault]
    electable = [m.name for m in members if m.is_voter and m.healthy and m.term == TERM]
    leader = draw(st.sampled_from(electable)) if electable else None
    top = 10_000 + draw(st.sampled_from((0, 0, 5, 50)))
    members = [replace(m, applied_index=top) if m.name == leader else m for m in members]
    members = [
        replace(m, names_leader=leader) if m.healthy and m.term == TERM else m for m in members
    ]
    return desired, Observed(
        now=0.0,
        members=tuple(draw(st.permutations(members))),
        member_list_known=bool(electable) and len(electable) * 2 > len(members),
        formed=True,
        leader=leader,
        term=TERM if leader else None,
        lock_holder="another-executor" if draw(st.integers(0, 7)) == 0 else None,
    )


@st.composite
def quorum_lost_situations(draw: st.DrawFn) -> tuple[Desired, Observed]:
    """A formed federation that lost a majority of its voters (whole clusters gone, or
    cut off): survivors answer with no leader, the lost ones have been silent for some
    time (within the grace period or past it, or only timed out just now), spec.recovery
    asks for nothing, names a survivor (or a lost or lagging member), or is automatic;
    or a recovery is under way (the survivor runs forced, alone in its list)."""
    ids_ = draw(st.permutations(CLUSTER_IDS))[: draw(st.integers(1, 5))]
    spec = {c: draw(st.integers(1, 2)) for c in ids_}
    grace = float(draw(st.sampled_from((0, 60, 600))))
    desired = draw(desireds(spec))
    voters = list(desired.members)
    ids = {m.name: 5000 + i for i, m in enumerate(voters)}
    names = [m.name for m in voters]
    survivors = draw(
        st.sets(
            st.sampled_from(names),
            min_size=int(draw(st.integers(0, 9)) > 0),
            max_size=max(1, len(voters) // 2),
        )
    )
    now = 10_000.0
    forced = bool(survivors) and draw(st.integers(0, 5)) == 0
    request = draw(
        st.sampled_from(
            (
                None,
                RecoveryRequest(automatic=True),
                RecoveryRequest(
                    from_member=draw(st.sampled_from(sorted(survivors) or names))
                    if draw(st.integers(0, 4))
                    else draw(st.sampled_from(names)),
                    requested_at="2026-12-07T05:00:00Z",
                ),
            )
        )
    )
    desired = replace(desired, lost_cluster_grace=grace, recovery=request, paused=False)
    if draw(st.integers(0, 3)) == 0:
        desired = replace(desired, engine=profile(Engine.XLINE))
    members = []
    views = {}
    voter_ids = tuple((m.name, ids[m.name]) for m in voters)
    for m in voters:
        alive = m.name in survivors
        applied = 10_000 - draw(st.sampled_from((0, 0, 7, 400))) if alive else None
        members.append(
            ObservedMember(
                name=m.name,
                cluster=m.cluster,
                ordinal=m.ordinal,
                member_id=None,
                ever_started=True,
                present=alive,
                running=alive,
                has_data=alive,
                healthy=alive,
                applied_index=applied,
                revision=desired.revision if alive else None,
                term=TERM if alive else None,
            )
        )
        if alive and applied is not None:
            views[m.name] = OwnView(
                member_id=ids[m.name], applied_index=applied, is_voter=True, voters=voter_ids
            )
    last_seen = {
        m.name: now - draw(st.sampled_from((5.0, 59.0, 61.0, 700.0, 700.0, 700.0)))
        for m in voters
        if m.name not in survivors and draw(st.integers(0, 5))
    }
    inconclusive = {
        m.name: 1.0 for m in voters if m.name not in survivors and draw(st.integers(0, 15)) == 0
    }
    observed = Observed(
        now=now,
        members=tuple(draw(st.permutations(members))),
        member_list_known=False,
        formed=True,
        inconclusive=inconclusive,
        own_views=views,
        last_seen=last_seen,
        watching_since=draw(st.sampled_from((None, 0.0, 0.0, now - 30.0))),
        lock_holder="another-executor" if draw(st.integers(0, 7)) == 0 else None,
    )
    if forced:
        # Under way: the survivor restarted forced and leads a one-member list.
        source = draw(st.sampled_from(sorted(survivors)))
        record = RecoveryRecord(
            from_member=source,
            at=now - 5.0,
            lost=tuple(n for n, _ in voter_ids if n != source),
            request=request.key if request else "automatic",
        )
        others_listed = draw(st.integers(0, 4)) == 0
        listed = [
            replace(
                m,
                member_id=ids[m.name] if m.name == source or others_listed else None,
                forced=m.name == source,
                names_leader=source if m.name == source else None,
            )
            for m in observed.members
        ]
        observed = replace(
            observed,
            members=tuple(listed),
            member_list_known=True,
            leader=source,
            term=TERM,
            recovery=record,
            own_views={},
        )
    return desired, observed


def any_situation() -> st.SearchStrategy[tuple[Desired, Observed]]:
    return st.one_of(
        situations(),
        steady_situations(),
        steady_situations(rejoining=True),
        quorum_lost_situations(),
    )
