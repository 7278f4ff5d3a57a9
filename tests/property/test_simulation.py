"""The planner drives a simulated consensus cluster from random start states and spec
changes to Done, while members crash, lag and lose data at random: it must always get
there in a bounded number of steps, reach exactly the spec, and keep every invariant
(and the quorum) on the way."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.simulation import stats
from tests.support.simulation.invariants import all_invariants
from tests.support.simulation.simulator import Sim, WorldFaults, make_desired, run_to_done
from tests.support.simulation.strategies import EXAMPLES, specs
from xlinefed.api.engines import Engine, profile
from xlinefed.api.models import BootstrapMode, ClusterOrder
from xlinefed.planner import RecoveryRequest

SIM_SETTINGS = settings(
    max_examples=max(10, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def step_budget(sim: Sim, fault_steps: int) -> int:
    """Generous but finite: a few dozen steps per member that has to change."""
    members = len(sim.desired.members) + len(sim.members)
    return fault_steps + 60 + 40 * members


@st.composite
def spec_changes(draw: st.DrawFn) -> dict:
    old = draw(specs(max_clusters=5))
    new = draw(specs(max_clusters=5)) if draw(st.booleans()) else dict(old)
    new_total = sum(new.values())
    engine = Engine.ETCD
    if min(sum(old.values()), new_total) >= 3 and draw(st.booleans()):
        engine = Engine.XLINE
    revision = draw(st.sampled_from(("r1", "r2")))
    if new_total == 2:
        revision = "r1"  # two voters cannot roll without losing quorum; see test_planner
    if not profile(engine).restarts_from_wal:
        revision = "r1"  # the planner holds the roll back (test_rules); nothing converges
    partitions = {c: draw(st.integers(0, r)) for c, r in new.items() if r and draw(st.booleans())}
    return {
        "old": old,
        "new": new,
        "engine": engine,
        "revision": revision,
        "partitions": partitions,
        "bootstrap": draw(st.sampled_from(BootstrapMode)),
        "cluster_order": draw(st.sampled_from(ClusterOrder)),
        "delete_data": draw(st.booleans()),
        "max_promote_lag": draw(st.sampled_from((0, 100, 1000))),
    }


def _desired(change: dict, spec: dict[str, int], revision: str, **extra):
    return make_desired(
        spec,
        **extra,
        revision=revision,
        engine=change["engine"],
        bootstrap=change["bootstrap"],
        cluster_order=change["cluster_order"],
        partitions=change["partitions"],
        max_promote_lag=change["max_promote_lag"],
        delete_data=change["delete_data"],
    )


def _as_the_federation_tier_writes_it(change: dict):
    """The new spec with every cluster leaving kept in the topology at zero replicas,
    recorded as departed, so its own operator drains it."""
    leaving = {c: 0 for c in change["old"] if c not in change["new"]}
    return _desired(
        change,
        {**change["new"], **leaving},
        change["revision"],
        departed=dict.fromkeys(leaving, 0.0),
    )


def _run(change: dict, seed: int, *, faults: bool, scoped: bool, from_scratch: bool) -> int:
    rng = random.Random(seed)
    new = _desired(change, change["new"], change["revision"])
    if scoped:
        new = _as_the_federation_tier_writes_it(change)
    if from_scratch:
        sim = Sim(desired=new, rng=rng)
    else:
        sim = Sim.converged(_desired(change, change["old"], "r1"), rng=rng)
        sim.desired = new
    scopes = None
    if scoped:
        clusters = sorted(set(change["old"]) | set(change["new"]))
        scopes = tuple(frozenset({c}) for c in clusters)
    fault_steps = rng.randint(10, 60) if faults else 0
    result = run_to_done(
        sim,
        rng,
        fault_steps=fault_steps,
        max_steps=step_budget(sim, fault_steps) * (len(scopes) if scopes else 1),
        scopes=scopes,
        check=all_invariants,
    )
    stats.count_run()
    return result.steps


@SIM_SETTINGS
@given(spec_changes(), st.integers(0, 2**32))
def test_spec_changes_converge_without_faults(change, seed):
    _run(change, seed, faults=False, scoped=False, from_scratch=False)


@SIM_SETTINGS
@given(spec_changes(), st.integers(0, 2**32))
def test_spec_changes_converge_through_crashes_lag_and_data_loss(change, seed):
    _run(change, seed, faults=True, scoped=False, from_scratch=False)


@SIM_SETTINGS
@given(spec_changes(), st.integers(0, 2**32))
def test_bootstrap_from_nothing_converges(change, seed):
    _run(change, seed, faults=True, scoped=False, from_scratch=True)


@SIM_SETTINGS
@given(spec_changes(), st.integers(0, 2**32))
def test_member_operators_one_per_cluster_converge_together(change, seed):
    """Each member cluster's operator plans with scope={its cluster}; they take turns at
    random, as independent operators would, and must all reach Done."""
    _run(change, seed, faults=True, scoped=True, from_scratch=False)


def test_many_seeded_runs_of_a_fixed_federation():
    """A plain loop, no shrinking: 3+2+2 scaled and rolled under faults, 40 seeds."""
    change = {
        "old": {"a": 3, "b": 2, "c": 2},
        "new": {"a": 2, "b": 3, "c": 2, "d": 1},
        "engine": Engine.ETCD,
        "revision": "r2",
        "partitions": {"c": 1},
        "bootstrap": BootstrapMode.STATIC,
        "cluster_order": ClusterOrder.LEADER_LAST,
        "delete_data": True,
        "max_promote_lag": 100,
    }
    steps = [
        _run(change, seed, faults=True, scoped=False, from_scratch=False) for seed in range(40)
    ]
    assert max(steps) < 400, steps


def test_paused_federation_waits_and_changes_nothing():
    desired = replace(make_desired({"a": 3}, revision="r2"), paused=True)
    sim = Sim.converged(make_desired({"a": 3}))
    sim.desired = desired
    for _ in range(5):
        step = sim.plan()
        assert step.kind == "Wait" and "paused" in step.reason  # type: ignore[attr-defined]
        sim.apply(step)
        sim.tick()
    assert {m.revision for m in sim.members.values()} == {"r1"}


# --- cross-cluster faults ------------------------------------------------------------------
# The world above crashes, lags and loses volumes. Across clusters, views are also partial,
# stale and late; these runs add those faults and judge every step against the invariants,
# "never two clusters" and "never wipe what a view has" (the simulator refuses both).

WORLD = WorldFaults(cross_cluster=True, quiet_effects=20, stale_applies=10)


@SIM_SETTINGS
@given(spec_changes(), st.integers(0, 2**32))
def test_operators_converge_through_partitions_stale_views_and_late_effects(change, seed):
    """One operator per cluster; clusters cut off for a while, members serving stale
    member lists, membership RPCs that applied but answered with an error, and steps
    applied from views gone stale while their executor paused."""
    rng = random.Random(seed)
    new = _as_the_federation_tier_writes_it(change)
    sim = Sim.converged(_desired(change, change["old"], "r1"), rng=rng)
    sim.desired = new
    scopes = tuple(frozenset({c}) for c in sorted(set(change["old"]) | set(change["new"])))
    fault_steps = rng.randint(10, 60)
    run_to_done(
        sim,
        rng,
        fault_steps=fault_steps,
        fault_rate=0.25,
        max_steps=step_budget(sim, fault_steps) * len(scopes),
        scopes=scopes,
        check=all_invariants,
        world=WORLD,
    )
    stats.count_run()


@SIM_SETTINGS
@given(
    specs(max_clusters=4, min_total=1),
    st.sampled_from(BootstrapMode),
    st.integers(1, 4),
    st.integers(0, 8),
    st.integers(0, 2**32),
)
def test_a_cluster_added_while_cut_off_never_bootstraps_a_second_cluster(
    spec, bootstrap, new_replicas, late, seed
):
    """Review finding 1: a cluster added to a formed federation whose network is not up
    yet (and a federation tier that records "formed" late) waits; it joins after the heal
    through AddLearner, and one cluster id is seen throughout."""
    rng = random.Random(seed)
    sim = Sim.converged(make_desired(spec, bootstrap=bootstrap), rng=rng)
    grown = {"n": new_replicas, **spec} if rng.random() < 0.5 else {**spec, "n": new_replicas}
    sim.desired = make_desired(grown, bootstrap=bootstrap)
    sim.cut("n", ticks=rng.randint(5, 30))
    sim.authority_lag = late
    scopes = tuple(frozenset({c}) for c in grown)
    run_to_done(
        sim,
        rng,
        max_steps=200 + 60 * len(scopes) * sum(grown.values()),
        scopes=scopes,
        check=all_invariants,
    )
    assert len(sim.cluster_uids) == 1, sim.cluster_uids
    stats.count_run()


@SIM_SETTINGS
@given(st.integers(3, 6), st.integers(1, 3), st.integers(0, 2**32))
def test_a_stale_member_list_never_gets_a_live_voter_wiped(replicas, added, seed):
    """Review finding 2: during a scale-out, members serve member lists that lag behind
    the leader's (one cut off, others slow to apply); no member anywhere is wiped or
    re-added while any view or process still has it."""
    rng = random.Random(seed)
    sim = Sim.converged(make_desired({"a": replicas, "b": 1}), rng=rng)
    sim.desired = make_desired({"a": replicas + added, "b": 1})
    for name in sorted(sim.members)[: replicas // 2]:
        sim.stale_view(name, rng.randint(3, 20))
    sim.cut("b", ticks=rng.randint(3, 20))
    scopes = (frozenset({"a"}), frozenset({"b"}))
    run_to_done(sim, rng, max_steps=600, scopes=scopes, check=all_invariants)
    stats.count_run()


@SIM_SETTINGS
@given(specs(max_clusters=3, min_total=3), st.integers(1, 3), st.integers(0, 2**32))
def test_a_cluster_that_dies_for_good_is_drained_by_the_others(spec, dead_replicas, seed):
    """Review finding 5: a cluster dies with its operator and is removed from the spec;
    after the grace period the remaining clusters remove its voters, one at a time under
    the lock, without losing the quorum."""
    rng = random.Random(seed)
    grace = 20.0
    full = {**spec, "z": dead_replicas}
    sim = Sim.converged(make_desired(full), rng=rng)
    if sum(spec.values()) <= dead_replicas:
        return  # losing z loses the quorum: nothing can drain it (a restore's job)
    sim.kill_cluster("z")
    sim.desired = make_desired({**spec, "z": 0}, departed={"z": sim.now}, lost_cluster_grace=grace)
    scopes = tuple(frozenset({c}) for c in spec)
    run_to_done(
        sim, rng, max_steps=400 + 80 * sum(full.values()), scopes=scopes, check=all_invariants
    )
    assert not [m for m in sim.listed() if m.cluster == "z"]
    assert sim.now >= grace
    stats.count_run()


@SIM_SETTINGS
@given(specs(max_clusters=4, min_total=3), st.integers(0, 2**32))
def test_a_late_operator_starts_its_static_members_with_the_initial_cluster(spec, seed):
    """Review finding 7: the operator of one cluster comes up after the others formed;
    its never-started static members join with the initial cluster, not removed as
    "data gone"."""
    rng = random.Random(seed)
    sim = Sim(desired=make_desired(spec), rng=rng)
    clusters = [c for c in spec if spec[c]]
    if len(clusters) < 2:
        return  # one cluster: no operator can be late relative to another
    late = clusters[-1]
    early = tuple(frozenset({c}) for c in spec if c != late)
    # the others run alone until a quorum formed, or for a while
    for _ in range(40):
        scope = rng.choice(early)
        sim.apply(sim.plan(scope))
        sim.tick()
    scopes = tuple(frozenset({c}) for c in spec)
    run_to_done(
        sim, rng, max_steps=400 + 60 * sum(spec.values()), scopes=scopes, check=all_invariants
    )
    stats.count_run()


@SIM_SETTINGS
@given(
    st.sampled_from(({"a": 1, "b": 1, "c": 1}, {"a": 1, "b": 2, "c": 2}, {"a": 2, "b": 2, "c": 1})),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**32),
)
def test_two_of_three_clusters_lost_for_good_are_recovered_from_the_survivor(
    spec, automatic, scoped, seed
):
    """Issue 14 item 3: clusters b and c are destroyed (processes and data), a is a
    minority. Nothing happens within the grace period; after it, spec.recovery rebuilds
    the cluster from a's most advanced member (--force-new-cluster), b's and c's new,
    empty machines come back as learners one at a time, and the federation matches the
    spec again, from a single cluster id, with every invariant checked on every step."""
    rng = random.Random(seed)
    grace = 30.0
    sim = Sim.converged(make_desired(spec), rng=rng, leader="f-b-0")
    scopes = tuple(frozenset({c}) for c in spec) if scoped else None
    for _ in range(5):
        for scope in scopes or (None,):
            sim.observe(scope)  # the executors watch: they saw b and c answer
        sim.tick()
    sim.kill_cluster("b")
    sim.kill_cluster("c")
    sim.replace_cluster("b")
    sim.replace_cluster("c")
    killed_at = sim.now
    survivors = [m for m in sim.voters() if m.cluster == "a"]
    best = max(m.applied_index for m in survivors)
    source = min(m.name for m in survivors if m.applied_index == best)
    request = (
        RecoveryRequest(automatic=True)
        if automatic
        else RecoveryRequest(from_member=source, requested_at="2026-12-07T06:00:00Z")
    )
    sim.desired = make_desired(spec, lost_cluster_grace=grace, recovery=request)
    result = run_to_done(
        sim, rng, max_steps=600 + 100 * sum(spec.values()), scopes=scopes, check=all_invariants
    )
    recovered = [line for line in result.trace if "recover the cluster from" in line]
    assert len(recovered) == 1, recovered
    assert sim.recovery is not None and sim.recovery.from_member == source
    assert sim.recovery.at >= killed_at - 1 + grace
    assert sim.recovery.revision is not None and sim.recovery.revision >= best
    assert sim.cluster_uids == {1}
    stats.count_run()


@SIM_SETTINGS
@given(st.integers(2, 12), st.integers(0, 2**32))
def test_clusters_only_cut_off_within_the_grace_are_never_recovered_around(ticks, seed):
    """The refusal: b and c are cut off (alive behind a partition), not lost, and
    spec.recovery.automatic is set; the grace period is longer than the cut, so no
    recovery happens (two clusters would), and the federation heals as it was."""
    rng = random.Random(seed)
    spec = {"a": 1, "b": 1, "c": 1}
    sim = Sim.converged(
        make_desired(spec, lost_cluster_grace=60.0, recovery=RecoveryRequest(automatic=True)),
        rng=rng,
    )
    sim.cut("b", ticks)
    sim.cut("c", ticks)
    result = run_to_done(sim, rng, max_steps=400, check=all_invariants)
    assert sim.recovery is None
    assert not [line for line in result.trace if "recover the cluster" in line]
    stats.count_run()
