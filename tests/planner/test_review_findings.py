"""The review of 148dfeb built inputs on which the planner took unsafe steps. Each test
here is one of them, fed through the executor's own interpretation of raw answers
(`build_observed`) where that is where the mistake lived. Every one failed on 148dfeb
(see the closing note of issue 16 for the step each returned there)."""

from __future__ import annotations

from tests.support.simulation.simulator import make_desired
from xlinefed.api.models import BootstrapMode
from xlinefed.planner import (
    AddLearner,
    Bootstrap,
    Formation,
    PromoteLearner,
    RemoveMember,
    RestartMember,
    StartMember,
    StartMode,
    StopMember,
    Wait,
    WaitCode,
    WipeData,
    plan,
)
from xlinefed.planner.observation import (
    ListEntry,
    MemberRuntime,
    RawObservation,
    StatusAnswer,
    build_observed,
)

TERM = 4


def entry(name: str, member_id: int, *, learner: bool = False, started: bool = True) -> ListEntry:
    return ListEntry(
        id=member_id,
        name=name if started or not learner else "",
        peer_urls=(f"http://{name}:2380",),
        client_urls=(f"http://{name}:2379",) if started else (),
        is_learner=learner,
    )


def answer(member_id: int, leader_id: int, applied: int = 1000, term: int = TERM) -> StatusAnswer:
    return StatusAnswer(member_id=member_id, leader_id=leader_id, term=term, applied_index=applied)


def up(revision: str = "r1") -> MemberRuntime:
    return MemberRuntime(present=True, running=True, has_data=True, revision=revision)


def raw(desired, **fields) -> RawObservation:
    names = tuple(sorted({m.name for m in desired.members} | set(fields.get("runtimes", {}))))
    base = {
        "now": 1000.0,
        "federation": "f",
        "names": names,
        "seen": frozenset(names),
        "runtimes": {},
        "statuses": {},
        "formed": True,
        "formation": Formation(initial_members=desired.proposed_initial_members(), formed=True),
        "peer_urls": {n: f"http://{n}:2380" for n in names},
    }
    base.update(fields)
    return RawObservation(**base)


# 1. Split brain on cluster add --------------------------------------------------------------


def test_1_a_cluster_added_to_a_formed_federation_waits_when_it_cannot_reach_the_others():
    desired = make_desired({"a": 1, "b": 1, "c": 3}, scope=frozenset({"c"}))
    formation = Formation(initial_members=("f-a-0", "f-b-0"), formed=True, formed_at="T0")
    observed = build_observed(raw(desired, seen=frozenset(), formed=False, formation=formation))
    step = plan(desired, observed)
    assert isinstance(step, Wait) and step.code is WaitCode.FEDERATION_UNREACHABLE, step
    assert "not bootstrapping: it formed at T0" in step.reason


def test_1_before_formation_only_recorded_initial_members_bootstrap():
    # c was added while a and b were still bootstrapping: its members are not initial.
    desired = make_desired({"a": 1, "b": 1, "c": 3}, scope=frozenset({"c"}))
    formation = Formation(initial_members=("f-a-0", "f-b-0"))
    step = plan(desired, build_observed(raw(desired, formed=False, formation=formation)))
    assert not isinstance(step, Bootstrap), step


def test_1_dynamic_a_new_first_cluster_cut_off_does_not_seed_a_cluster():
    desired = make_desired(
        {"n": 1, "a": 1, "b": 1}, bootstrap=BootstrapMode.DYNAMIC, scope=frozenset({"n"})
    )
    formation = Formation(initial_members=("f-a-0",), formed=True)
    step = plan(desired, build_observed(raw(desired, formed=False, formation=formation)))
    assert isinstance(step, Wait) and step.code is WaitCode.FEDERATION_UNREACHABLE, step


def test_1_no_recorded_authority_means_nobody_bootstraps():
    desired = make_desired({"a": 1, "b": 1}, scope=frozenset({"a"}))
    step = plan(desired, build_observed(raw(desired, formed=False, formation=Formation(()))))
    assert isinstance(step, Wait) and step.code is WaitCode.NO_BOOTSTRAP_AUTHORITY, step


# 2. AddLearner wiped a live voter -----------------------------------------------------------


def three_voters(desired, **fields):
    """f-a-0 leads; f-a-2 is cut off and serves a stale list without f-a-1... or not."""
    lst = (entry("f-a-0", 1), entry("f-a-1", 2), entry("f-a-2", 3))
    base = {
        "runtimes": {n: up() for n in ("f-a-0", "f-a-1", "f-a-2")},
        "statuses": {"f-a-0": answer(1, 1), "f-a-1": answer(2, 1), "f-a-2": answer(3, 1)},
        "member_list": lst,
        "list_source": "f-a-0",
        "confirmed": True,
        "other_lists": {"f-a-1": lst, "f-a-2": lst},
    }
    base.update(fields)
    return raw(desired, **base)


def test_2_a_stale_list_served_by_a_cut_off_member_does_not_make_a_live_voter_look_missing():
    desired = make_desired({"a": 3})
    stale = (entry("f-a-0", 1), entry("f-a-1", 2))  # f-a-1 never applied f-a-2's add
    observed = build_observed(
        three_voters(
            desired,
            statuses={"f-a-0": answer(1, 1), "f-a-1": answer(2, 0, applied=10, term=TERM + 1)},
            other_lists={"f-a-1": stale},
        )
    )
    step = plan(desired, observed)
    assert not isinstance(step, AddLearner | StopMember | WipeData), step


def test_2_a_member_missing_from_the_leaders_list_but_listed_elsewhere_is_left_alone():
    desired = make_desired({"a": 3})
    lst = (entry("f-a-0", 1), entry("f-a-1", 2))
    observed = build_observed(
        three_voters(
            desired,
            member_list=lst,
            statuses={"f-a-0": answer(1, 1), "f-a-1": answer(2, 1)},
            other_lists={"f-a-1": (*lst, entry("f-a-2", 3))},
        )
    )
    step = plan(desired, observed)
    assert isinstance(step, Wait) and step.code is WaitCode.VIEWS_DISAGREE, step


def test_2_an_unlisted_member_is_stopped_then_wiped_then_added_never_all_at_once():
    desired = make_desired({"a": 3})
    lst = (entry("f-a-0", 1), entry("f-a-1", 2))
    fields = {
        "member_list": lst,
        "statuses": {"f-a-0": answer(1, 1), "f-a-1": answer(2, 1)},
        "other_lists": {"f-a-1": lst},
    }
    running = build_observed(three_voters(desired, **fields))
    assert isinstance(plan(desired, running), StopMember)
    stopped = {"f-a-2": MemberRuntime(present=True, has_data=True)}
    runtimes = {"f-a-0": up(), "f-a-1": up(), **stopped}
    step = plan(desired, build_observed(three_voters(desired, runtimes=runtimes, **fields)))
    assert step == WipeData("f-a-2")
    runtimes["f-a-2"] = MemberRuntime(present=True)
    step = plan(desired, build_observed(three_voters(desired, runtimes=runtimes, **fields)))
    assert step == AddLearner("f-a-2")


def test_2_without_a_leader_nothing_is_added_or_wiped():
    desired = make_desired({"a": 3})
    lst = (entry("f-a-0", 1), entry("f-a-1", 2))
    observed = build_observed(
        three_voters(
            desired,
            member_list=lst,
            list_source="f-a-1",  # not the leader: its list may be behind
            statuses={"f-a-1": answer(2, 1)},
            other_lists={},
        )
    )
    assert observed.leader is None
    assert not isinstance(plan(desired, observed), AddLearner | StopMember | WipeData)


# 3. "Healthy" meant "answered Status" -------------------------------------------------------


def test_3_a_voter_that_answers_but_follows_no_leader_does_not_count_for_a_restart():
    desired = make_desired({"a": 3}, revision="r2")
    observed = build_observed(
        three_voters(
            desired,
            statuses={
                "f-a-0": answer(1, 1),
                "f-a-1": answer(2, 1),
                "f-a-2": answer(3, 0, applied=400, term=TERM + 3),  # cut off, campaigning
            },
        )
    )
    step = plan(desired, observed)
    assert not isinstance(step, RestartMember), step


def test_3_scale_in_never_leaves_a_majority_that_needs_a_far_behind_member():
    desired = make_desired({"a": 2})
    observed = build_observed(
        three_voters(
            desired,
            statuses={
                "f-a-0": answer(1, 1, applied=1_000_000),
                "f-a-1": answer(2, 1, applied=100),
                "f-a-2": answer(3, 1, applied=1_000_000),
            },
        )
    )
    step = plan(desired, observed)
    assert isinstance(step, Wait) and step.code is WaitCode.QUORUM_AT_RISK, step


def test_3_a_leader_named_only_by_a_minority_is_no_leader():
    desired = make_desired({"a": 3})
    observed = build_observed(
        three_voters(
            desired,
            statuses={
                "f-a-0": answer(1, 1),
                "f-a-1": answer(2, 0, term=TERM + 1),
                "f-a-2": answer(3, 0, term=TERM + 1),
            },
        )
    )
    assert observed.leader is None


# 5. A lost cluster blocked forever ----------------------------------------------------------


def test_5_after_the_grace_period_the_first_remaining_cluster_removes_a_lost_clusters_voter():
    desired = make_desired(
        {"a": 2, "b": 1, "z": 0},
        departed={"z": 100.0},
        lost_cluster_grace=600.0,
        scope=frozenset({"a"}),
    )
    lst = (entry("f-a-0", 1), entry("f-a-1", 2), entry("f-b-0", 3), entry("f-z-0", 4))
    fields = {
        "seen": frozenset({"f-a-0", "f-a-1"}),
        "runtimes": {"f-a-0": up(), "f-a-1": up()},
        "statuses": {"f-a-0": answer(1, 1), "f-a-1": answer(2, 1), "f-b-0": answer(3, 1)},
        "member_list": lst,
        "list_source": "f-a-0",
        "confirmed": True,
        "names": ("f-a-0", "f-a-1", "f-b-0"),
    }
    early = plan(desired, build_observed(raw(desired, now=650.0, **fields)))
    assert isinstance(early, Wait) and early.code is WaitCode.DRAINING_ELSEWHERE, early
    assert "takes over in 50s" in early.reason
    late = plan(desired, build_observed(raw(desired, now=700.0, **fields)))
    assert late == RemoveMember("f-z-0", 4, "scaled in")


def test_5_a_learner_its_cluster_never_starts_is_removed_after_the_grace_period():
    desired = make_desired({"a": 3, "b": 1}, lost_cluster_grace=600.0, scope=frozenset({"a"}))
    lst = (entry("f-a-0", 1), entry("f-a-1", 2), entry("f-a-2", 3))
    lst += (entry("f-b-0", 9, learner=True, started=False),)
    fields = {
        "seen": frozenset({"f-a-0", "f-a-1", "f-a-2"}),
        "runtimes": {n: up() for n in ("f-a-0", "f-a-1", "f-a-2")},
        "statuses": {"f-a-0": answer(1, 1), "f-a-1": answer(2, 1), "f-a-2": answer(3, 1)},
        "member_list": lst,
        "list_source": "f-a-0",
        "confirmed": True,
        "joined": {"f-b-0": 100.0},
    }
    waiting = plan(desired, build_observed(raw(desired, now=500.0, **fields)))
    assert isinstance(waiting, Wait) and waiting.code is WaitCode.LEARNER_JOINING
    assert "removed in 200s" in waiting.reason
    step = plan(desired, build_observed(raw(desired, now=701.0, **fields)))
    assert isinstance(step, RemoveMember) and step.name == "f-b-0", step


# 6. Catch-up fell back to the highest index anyone reported ---------------------------------


def test_6_a_learner_is_not_promoted_when_the_leaders_own_index_is_unknown():
    desired = make_desired({"a": 4})
    lst = (entry("f-a-0", 1), entry("f-a-1", 2), entry("f-a-2", 3), entry("f-a-3", 4, learner=True))
    observed = build_observed(
        raw(
            desired,
            runtimes={n: up() for n in ("f-a-0", "f-a-1", "f-a-2", "f-a-3")},
            statuses={  # the leader f-a-0 did not answer in time
                "f-a-1": answer(2, 1, applied=200),
                "f-a-2": answer(3, 1, applied=200),
                "f-a-3": answer(4, 1, applied=100),
            },
            member_list=lst,
            list_source="f-a-1",
            confirmed=True,
        )
    )
    assert not isinstance(plan(desired, observed), PromoteLearner)


# 7. A late static member was removed as "data gone" -----------------------------------------


def test_7_a_static_member_listed_by_name_that_never_ran_starts_with_the_initial_cluster():
    desired = make_desired({"a": 3})
    late = ListEntry(4, "f-a-2", ("http://f-a-2:2380",), (), False)  # named, never started
    observed = build_observed(
        three_voters(
            desired,
            runtimes={"f-a-0": up(), "f-a-1": up()},
            statuses={"f-a-0": answer(1, 1), "f-a-1": answer(2, 1)},
            member_list=(entry("f-a-0", 1), entry("f-a-1", 2), late),
            other_lists={},
        )
    )
    step = plan(desired, observed)
    assert step == StartMember(
        "f-a-2", StartMode.NEW, revision="r1", initial_members=("f-a-0", "f-a-1", "f-a-2")
    )
