"""Two ways an observation can mislead, from plain data: a member that answered late
(a timeout is not a fact until it lasts), and a removed member that still lists itself."""

from __future__ import annotations

from tests.planner.test_review_findings import answer, entry, three_voters, up
from tests.support.simulation.simulator import make_desired
from xlinefed.planner import DeleteMember, RemoveMember, Wait, WaitCode, plan
from xlinefed.planner.model import NO_ANSWER_GRACE
from xlinefed.planner.observation import build_observed

NOW = 1000.0  # the `now` of three_voters' observations


def test_a_member_late_for_less_than_the_grace_is_inconclusive():
    desired = make_desired({"a": 3})
    fresh = build_observed(
        three_voters(desired, unanswered={"f-a-2": 2.0}, unanswered_since={"f-a-2": NOW - 5})
    )
    assert fresh.inconclusive == {"f-a-2": 2.0}
    lasting = build_observed(
        three_voters(
            desired,
            unanswered={"f-a-2": 2.0},
            unanswered_since={"f-a-2": NOW - NO_ANSWER_GRACE - 1},
        )
    )
    assert lasting.inconclusive == {}


def test_nothing_is_done_to_a_member_on_a_timeout():
    # Cluster a's executor; f-b-0 was added as a learner long ago and cluster b has not
    # started it (so it is removed after the grace) ...
    desired = make_desired({"a": 3, "b": 1}, scope=frozenset({"a"}))
    lst = (entry("f-a-0", 1), entry("f-a-1", 2), entry("f-a-2", 3), entry("f-b-0", 4, learner=True))
    fields = {
        "names": ("f-a-0", "f-a-1", "f-a-2", "f-b-0"),
        "seen": frozenset({"f-a-0", "f-a-1", "f-a-2"}),
        "member_list": lst,
        "other_lists": {"f-a-1": lst, "f-a-2": lst},
        "joined": {"f-b-0": NOW - 700},
    }
    gone = build_observed(three_voters(desired, **fields))
    assert isinstance(plan(desired, gone), RemoveMember)
    # ... but not when it only failed to answer in time: it may be running, and slow.
    late = build_observed(
        three_voters(
            desired, unanswered={"f-b-0": 2.0}, unanswered_since={"f-b-0": NOW - 1}, **fields
        )
    )
    step = plan(desired, late)
    assert isinstance(step, Wait) and step.code is WaitCode.NO_ANSWER, step
    assert "f-b-0" in step.reason and "no answer within 2.0s" in step.reason


def test_a_wait_for_a_leader_names_the_silence():
    desired = make_desired({"a": 3})
    silent = {"f-a-0": 2.0, "f-a-1": 2.0}
    observed = build_observed(
        three_voters(
            desired,
            statuses={"f-a-2": answer(3, 0)},
            unanswered=silent,
            unanswered_since={n: NOW - 1 for n in silent},
        )
    )
    step = plan(desired, observed)
    assert isinstance(step, Wait) and step.code is WaitCode.NO_ANSWER, step


def test_a_removed_member_listing_only_itself_is_stopped_not_reported_done():
    desired = make_desired({"a": 2})
    leaders_list = (entry("f-a-0", 1), entry("f-a-1", 2))
    runtimes = {"f-a-0": up(desired.revision), "f-a-1": up(desired.revision), "f-a-2": up()}
    observed = build_observed(
        three_voters(
            desired,
            runtimes=runtimes,
            member_list=leaders_list,
            # The removed member has not noticed yet: its own list still has it.
            other_lists={"f-a-1": leaders_list, "f-a-2": (*leaders_list, entry("f-a-2", 3))},
        )
    )
    assert plan(desired, observed) == DeleteMember("f-a-2", delete_data=False)


def test_a_removed_member_another_view_still_has_is_left_alone():
    desired = make_desired({"a": 2})
    leaders_list = (entry("f-a-0", 1), entry("f-a-1", 2))
    stale = (*leaders_list, entry("f-a-2", 3))
    runtimes = {"f-a-0": up(desired.revision), "f-a-1": up(desired.revision), "f-a-2": up()}
    observed = build_observed(
        three_voters(
            desired,
            runtimes=runtimes,
            member_list=leaders_list,
            other_lists={"f-a-1": stale, "f-a-2": stale},
        )
    )
    assert not isinstance(plan(desired, observed), DeleteMember)
