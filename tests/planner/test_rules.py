"""Example tests, one or two per rule: the boundaries the golden scripts do not show."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.support.simulation.invariants import all_invariants
from tests.support.simulation.simulator import Sim, make_desired
from xlinefed.api.engines import Engine
from xlinefed.api.models import XlineFederation
from xlinefed.planner import (
    AddLearner,
    Done,
    PromoteLearner,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    TransferLeadership,
    Wait,
    WaitCode,
    plan,
)
from xlinefed.planner.desired import desired_from


def checked(sim: Sim, scope: frozenset[str] | None = None):
    desired = sim.desired if scope is None else replace(sim.desired, scope=scope)
    observed = sim.observe(scope)
    step = plan(desired, observed)
    assert not all_invariants(desired, observed, step), all_invariants(desired, observed, step)
    return step


def joining(spec: dict[str, int], new: dict[str, int], *, lag: int) -> Sim:
    """A converged `spec`, scaled to `new`, with the first new member added and started."""
    sim = Sim.converged(make_desired(spec, max_promote_lag=lag))
    sim.desired = make_desired(new, max_promote_lag=lag)
    for _ in range(2):
        sim.apply(checked(sim))
        sim.tick()
    return sim


@pytest.mark.parametrize(("behind", "promoted"), [(100, True), (101, False), (0, True)])
def test_caught_up_is_the_leader_applied_index_minus_the_learners_at_most_the_bound(
    behind, promoted
):
    sim = joining({"a": 3}, {"a": 4}, lag=100)
    leader = sim.members[sim.leader or ""]
    sim.members["f-a-3"].applied_index = leader.applied_index - behind
    step = checked(sim)
    if promoted:
        assert step == PromoteLearner("f-a-3")
    else:
        assert isinstance(step, Wait) and "101 entries behind" in step.reason


def test_a_learner_is_not_promoted_while_it_is_unhealthy_or_the_leader_is_unknown():
    sim = joining({"a": 3}, {"a": 4}, lag=100)
    sim.members["f-a-3"].healthy = False
    assert isinstance(checked(sim), Wait)
    sim.members["f-a-3"].healthy = True
    sim.leader = None
    assert checked(sim).code is WaitCode.FEDERATION_UNREACHABLE


def test_scale_out_adds_the_lowest_missing_ordinal_in_spec_cluster_order():
    sim = Sim.converged(make_desired({"b": 1, "a": 1}))
    sim.desired = make_desired({"b": 3, "a": 3})
    assert checked(sim) == AddLearner("f-b-1")


def test_no_second_learner_while_one_joins_but_a_sick_minority_does_not_block_adds():
    sim = joining({"a": 3}, {"a": 5}, lag=0)
    sim.lag("f-a-3", 5000)
    step = checked(sim)
    assert isinstance(step, Wait) and "catching up" in step.reason
    sim = Sim.converged(make_desired({"a": 3}))
    sim.desired = make_desired({"a": 4})
    sim.members["f-a-1"].healthy = False
    sim.members["f-a-1"].running = True
    # One sick voter of three: with the new member, 3 of 4 voters are healthy, a majority,
    # so a sick member (say, in a dead cluster) does not block the add.
    assert checked(sim) == AddLearner("f-a-3")


def test_the_lock_held_by_another_executor_turns_every_membership_step_into_a_wait():
    sim = Sim.converged(make_desired({"a": 3}))
    sim.desired = make_desired({"a": 4})
    sim.lock_holder = "operator-b"
    step = checked(sim)
    assert isinstance(step, Wait)
    assert "operator-b" in step.reason and "add f-a-4" not in step.reason
    assert "add f-a-3 as a learner" in step.reason
    sim.crash("f-a-2")
    assert checked(sim) == StartMember(
        "f-a-2", StartMode.EXISTING, revision="r1", require_data=True
    )  # needs no lock


def test_scale_in_moves_leadership_first_then_removes_highest_ordinal_first():
    sim = Sim.converged(make_desired({"a": 5}), leader="f-a-4")
    sim.desired = make_desired({"a": 3})
    assert checked(sim) == TransferLeadership("f-a-4", "f-a-0")
    sim.apply(checked(sim))
    assert checked(sim) == RemoveMember("f-a-4", sim.members["f-a-4"].member_id or 0, "scaled in")


def test_xline_does_not_shrink_below_three_voters():
    sim = Sim.converged(make_desired({"a": 4}, engine=Engine.XLINE))
    sim.desired = make_desired({"a": 2}, engine=Engine.XLINE)
    assert isinstance(checked(sim), RemoveMember)
    sim.apply(checked(sim))
    step = checked(sim)
    assert isinstance(step, Wait) and "#447" in step.reason


def test_the_quorum_guard_holds_back_a_restart_while_another_voter_is_down():
    sim = Sim.converged(make_desired({"a": 3}), leader="f-a-0")
    sim.desired = make_desired({"a": 3}, revision="r2")
    sim.crash("f-a-1")
    assert checked(sim) == StartMember(
        "f-a-1", StartMode.EXISTING, revision="r1", require_data=True
    )
    sim.members["f-a-1"].running = True  # running but not answering
    step = checked(sim)
    assert isinstance(step, Wait) and "f-a-1" in step.reason


def test_a_single_voter_is_restarted_in_place_but_two_voters_never_roll():
    """One voter: downtime is unavoidable, the planner restarts it. Two voters: any
    restart loses the quorum, so the planner waits for ever (the spec warns about even
    totals). Recorded here so that a change of either behaviour is a decision."""
    sim = Sim.converged(make_desired({"a": 1}))
    sim.desired = make_desired({"a": 1}, revision="r2")
    assert checked(sim) == RestartMember("f-a-0", "r2")
    sim = Sim.converged(make_desired({"a": 1, "b": 1}), leader="f-a-0")
    sim.desired = make_desired({"a": 1, "b": 1}, revision="r2")
    step = checked(sim)
    assert isinstance(step, Wait) and "majority" in step.reason


def test_partition_keeps_lower_ordinals_and_a_full_partition_means_done():
    sim = Sim.converged(make_desired({"a": 3}), leader="f-a-0")
    sim.desired = make_desired({"a": 3}, revision="r2", partitions={"a": 3})
    assert checked(sim) == Done()
    sim.desired = make_desired({"a": 3}, revision="r2", partitions={"a": 2})
    assert checked(sim) == RestartMember("f-a-2", "r2")


def test_leader_last_updates_the_leaders_cluster_last_and_hands_over_to_an_updated_voter():
    sim = Sim.converged(make_desired({"a": 1, "b": 1, "c": 1}), leader="f-a-0")
    sim.desired = make_desired({"a": 1, "b": 1, "c": 1}, revision="r2")
    order = []
    for _ in range(20):
        step = checked(sim)
        if isinstance(step, Done):
            break
        order.append(step)
        sim.apply(step)
        sim.tick()
    assert order == [
        RestartMember("f-b-0", "r2"),
        RestartMember("f-c-0", "r2"),
        TransferLeadership("f-a-0", "f-b-0"),
        RestartMember("f-a-0", "r2"),
    ]


def test_an_engine_without_move_leader_waits_instead_of_stopping_the_leader():
    sim = Sim.converged(make_desired({"a": 3}), leader="f-a-2")
    desired = make_desired({"a": 3}, revision="r2")
    sim.desired = replace(desired, engine=replace(desired.engine, supports_move_leader=False))
    # The leader goes last in its cluster: the others roll first, then the planner waits
    # instead of stopping the leader.
    restarted = []
    for _ in range(50):
        step = checked(sim)
        if isinstance(step, Wait) and "cannot move leadership" in step.reason:
            break
        if isinstance(step, RestartMember):
            restarted.append(step.name)
        sim.apply(step) if not isinstance(step, Wait) else sim.tick()
    else:
        raise AssertionError("the planner never settled on waiting for the leader")
    assert restarted == ["f-a-1", "f-a-0"]


def test_data_loss_of_the_leader_hands_leadership_over_before_the_removal():
    sim = Sim.converged(make_desired({"a": 3}), leader="f-a-0")
    sim.members["f-a-0"].has_data = False  # observed before the process noticed
    assert checked(sim) == TransferLeadership("f-a-0", "f-a-1")
    sim.apply(checked(sim))
    assert checked(sim) == RemoveMember(
        "f-a-0", sim.members["f-a-0"].member_id or 0, "its data is gone", stop_after=True
    )


def test_scope_a_member_operator_touches_only_its_own_cluster():
    sim = Sim.converged(make_desired({"a": 2, "b": 1}), leader="f-a-0")
    sim.desired = make_desired({"a": 2, "b": 2})
    assert checked(sim, frozenset({"a"})) == Done()
    assert checked(sim, frozenset({"b"})) == AddLearner("f-b-1")
    sim.crash("f-b-0")
    assert checked(sim, frozenset({"a"})) == Done()
    assert checked(sim, frozenset({"b"})) == StartMember(
        "f-b-0", StartMode.EXISTING, revision="r1", require_data=True
    )


def test_without_quorum_crashed_members_restart_wanted_ones_first():
    sim = Sim.converged(make_desired({"a": 3}), leader="f-a-0")
    sim.desired = make_desired({"a": 1})
    for name in ("f-a-0", "f-a-1", "f-a-2"):
        sim.crash(name)
    assert checked(sim) == StartMember(
        "f-a-0", StartMode.EXISTING, revision="r1", require_data=True
    )
    sim.apply(checked(sim))
    # f-a-0 alone is no quorum of three: a member being scaled in must come back too.
    assert checked(sim) == StartMember(
        "f-a-1", StartMode.EXISTING, revision="r1", require_data=True
    )


def test_the_builder_names_members_as_the_real_desired_from_does():
    resource = XlineFederation.model_validate(
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineFederation",
            "metadata": {"name": "f"},
            "spec": {
                "version": "3.5.17",
                "clusters": [{"id": "a", "replicas": 3}, {"id": "b", "replicas": 2}],
            },
        }
    )
    real = desired_from(resource)
    built = make_desired({"a": 3, "b": 2})
    assert real.members == built.members and real.clusters == built.clusters
    assert real.max_promote_lag == built.max_promote_lag


def test_an_engine_whose_members_do_not_restart_from_their_log_is_not_rolled():
    """Xline v0.7.0: a restarted member found its WAL corrupted and never rejoined."""
    sim = Sim.converged(make_desired({"a": 3}, engine=Engine.XLINE))
    sim.desired = make_desired({"a": 3}, engine=Engine.XLINE, revision="r2")
    step = checked(sim)
    assert isinstance(step, Wait) and step.code is WaitCode.ENGINE_LIMIT, step
    assert "WAL corrupted" in step.reason


@pytest.mark.parametrize(
    ("started_ago", "asked_after"),
    [(None, 0.2), (0.04, 0.05), (0.3, 0.15), (5.0, 0.2), (-3.0, 0.05)],
)
def test_a_member_coming_up_is_asked_again_at_half_the_time_it_has_been_starting(
    started_ago, asked_after
):
    """Right after a start the next look comes soon (a restart of a rolling update waits
    for the member, not for a fixed 0.2 s); later, or when the platform cannot say when
    it started (another cluster's member), every 0.2 s. A clock behind the platform's
    (negative age) asks at the soonest."""
    sim = joining({"a": 3}, {"a": 4}, lag=100)
    sim.members["f-a-3"].healthy = False
    observed = sim.observe(None)
    started = None if started_ago is None else observed.now - started_ago
    members = tuple(
        replace(m, started_at=started) if m.name == "f-a-3" else m for m in observed.members
    )
    step = plan(sim.desired, replace(observed, members=members))
    assert isinstance(step, Wait) and step.code is WaitCode.LEARNER_STARTING, step
    assert step.retry_after == pytest.approx(asked_after)


def test_scale_in_removes_a_dead_unwanted_member_before_a_live_one():
    """Found by the simulator (old {b: 1, c: 1} → new {a: 1}, f-c-0 crashed): nothing
    restarts a member its spec no longer wants, and removing the live f-b-0 first needs
    f-c-0 healthy — a wait for ever. Removing the dead one first is safe (2 of 2 left)."""
    sim = Sim.converged(make_desired({"c": 1, "b": 1, "a": 1}))
    sim.desired = make_desired({"a": 1})
    leader = sim.leader
    assert leader is not None
    # The leader is the live one that stays (a's); c's member is down for good.
    if leader != "f-a-0":
        sim.apply(TransferLeadership(leader, "f-a-0"))
        sim.tick()
    sim.crash("f-c-0")
    step = checked(sim)
    assert step == RemoveMember("f-c-0", sim.members["f-c-0"].member_id, "scaled in"), step
