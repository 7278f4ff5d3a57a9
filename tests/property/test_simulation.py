"""The planner drives a simulated consensus cluster from random start states and spec
changes to Done, while members crash, lag and lose data at random: it must always get
there in a bounded number of steps, reach exactly the spec, and keep every invariant
(and the quorum) on the way."""

from __future__ import annotations

import random
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.property import stats
from tests.property.invariants import all_invariants
from tests.property.simulator import Sim, make_desired, run_to_done
from tests.property.strategies import EXAMPLES, specs
from xlinefed.api.engines import Engine
from xlinefed.api.models import BootstrapMode, ClusterOrder

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


def _desired(change: dict, spec: dict[str, int], revision: str):
    return make_desired(
        spec,
        revision=revision,
        engine=change["engine"],
        bootstrap=change["bootstrap"],
        cluster_order=change["cluster_order"],
        partitions=change["partitions"],
        max_promote_lag=change["max_promote_lag"],
        delete_data=change["delete_data"],
    )


def _run(change: dict, seed: int, *, faults: bool, scoped: bool, from_scratch: bool) -> int:
    rng = random.Random(seed)
    new = _desired(change, change["new"], change["revision"])
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
