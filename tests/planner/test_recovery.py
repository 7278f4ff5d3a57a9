"""Quorum-loss recovery decisions (docs/recovery.md), fed through the executor's own
interpretation of raw answers (`build_observed`): a survivor that answers with no leader
(etcd 3.4: Status errors "no leader"), the lost members' last answers, the request."""

from __future__ import annotations

from dataclasses import replace

from tests.support.simulation.simulator import make_desired
from xlinefed.api.engines import Engine
from xlinefed.planner import (
    FinishRecovery,
    RecoverFrom,
    RecoveryRecord,
    RecoveryRequest,
    Wait,
    WaitCode,
    plan,
)
from xlinefed.planner.observation import (
    ListEntry,
    MemberRuntime,
    RawObservation,
    StatusAnswer,
    build_observed,
)

NAMES = ("f-a-0", "f-b-0", "f-c-0")
IDS = {"f-a-0": 11, "f-b-0": 22, "f-c-0": 33}
NOW = 10_000.0
GRACE = 60.0


def entries(names=NAMES) -> tuple[ListEntry, ...]:
    return tuple(
        ListEntry(IDS[n], n, (f"http://{n}:2380",), (f"http://{n}:2379",), False) for n in names
    )


def lost_quorum(
    *,
    survivors: dict[str, int] | None = None,
    seen_ago: float = 2 * GRACE,
    unanswered: tuple[str, ...] = (),
    recovery: RecoveryRecord | None = None,
) -> RawObservation:
    """b and c gone (no process, no answer); the survivors answer with no leader."""
    survivors = survivors if survivors is not None else {"f-a-0": 500}
    return RawObservation(
        now=NOW,
        federation="f",
        names=NAMES,
        seen=frozenset(NAMES),
        runtimes={
            n: MemberRuntime(
                present=True, running=n in survivors, has_data=n in survivors, revision="r1"
            )
            for n in NAMES
        },
        statuses={},
        leaderless={
            n: StatusAnswer(member_id=IDS[n], leader_id=0, term=3, applied_index=index)
            for n, index in survivors.items()
        },
        member_list=None,
        list_source=None,
        confirmed=False,
        other_lists={n: entries() for n in survivors},
        formed=True,
        peer_urls={n: f"http://{n}:2380" for n in NAMES},
        unanswered=dict.fromkeys(unanswered, 1.0),
        unanswered_since=dict.fromkeys(unanswered, NOW),
        last_seen={n: NOW - seen_ago for n in NAMES if n not in survivors},
        watching_since=0.0,
        recovery=recovery,
    )


def desired(request: RecoveryRequest | None, engine: Engine = Engine.ETCD):
    spec = {"a": 1, "b": 1, "c": 1}
    return make_desired(spec, engine=engine, lost_cluster_grace=GRACE, recovery=request)


EXPLICIT = RecoveryRequest(from_member="f-a-0", requested_at="2026-12-07T06:00:00Z")


def test_recovers_from_the_named_survivor_once_the_lost_were_silent_for_the_grace():
    step = plan(desired(EXPLICIT), build_observed(lost_quorum()))
    assert isinstance(step, RecoverFrom), step
    assert step.name == "f-a-0"
    assert set(step.lost) == {"f-b-0", "f-c-0"}
    assert set(step.lost_ids) == {22, 33}
    assert step.applied_index == 500
    assert step.request == EXPLICIT.key


def test_refused_while_a_lost_member_was_seen_within_the_grace():
    step = plan(desired(EXPLICIT), build_observed(lost_quorum(seen_ago=5.0)))
    assert isinstance(step, Wait) and step.code is WaitCode.RECOVERY_REFUSED, step
    assert "was last seen 5s ago" in step.reason
    assert "may be alive behind a partition" in step.reason
    assert "allowed in 55s" in step.reason


def test_refused_while_a_lost_member_only_timed_out():
    step = plan(desired(EXPLICIT), build_observed(lost_quorum(unanswered=("f-b-0",))))
    assert isinstance(step, Wait), step
    assert "no answer" in step.reason


def test_not_requested_says_how_to_ask():
    step = plan(desired(None), build_observed(lost_quorum()))
    assert isinstance(step, Wait) and step.code is WaitCode.FEDERATION_UNREACHABLE
    assert "quorum lost: 1 of 3 voters answer" in step.reason
    assert "xlinefed local recover" in step.reason


def test_a_named_survivor_behind_another_is_refused_and_the_better_one_named():
    raw = lost_quorum(survivors={"f-a-0": 400, "f-b-0": 0})  # b answers too: 2 of 3
    # Two of three answer: a majority stands (they will elect); nothing to recover.
    assert not isinstance(plan(desired(EXPLICIT), build_observed(raw)), RecoverFrom)
    five = {**IDS, "f-d-0": 44, "f-e-0": 55}
    names = (*NAMES, "f-d-0", "f-e-0")
    raw = lost_quorum(survivors={"f-a-0": 400, "f-b-0": 450})
    raw = replace(
        raw,
        names=names,
        seen=frozenset(names),
        runtimes={
            **raw.runtimes,
            "f-d-0": MemberRuntime(present=True, running=False, has_data=False),
            "f-e-0": MemberRuntime(present=True, running=False, has_data=False),
        },
        other_lists={
            n: tuple(
                ListEntry(five[m], m, (f"http://{m}:2380",), (f"http://{m}:2379",), False)
                for m in names
            )
            for n in ("f-a-0", "f-b-0")
        },
        peer_urls={n: f"http://{n}:2380" for n in names},
        last_seen={n: NOW - 2 * GRACE for n in ("f-c-0", "f-d-0", "f-e-0")},
    )
    spec = make_desired(
        {"a": 1, "b": 1, "c": 1, "d": 1, "e": 1}, lost_cluster_grace=GRACE, recovery=EXPLICIT
    )
    step = plan(spec, build_observed(raw))
    assert isinstance(step, Wait) and step.code is WaitCode.RECOVERY_REFUSED, step
    assert "50 entries behind f-b-0" in step.reason and "name f-b-0" in step.reason
    automatic = plan(replace(spec, recovery=RecoveryRequest(automatic=True)), build_observed(raw))
    assert isinstance(automatic, RecoverFrom) and automatic.name == "f-b-0"
    # The other survivor is dropped too: the new cluster has only f-b-0.
    assert "f-a-0" in automatic.lost


def test_xline_is_refused_with_the_alternative():
    step = plan(desired(EXPLICIT, Engine.XLINE), build_observed(lost_quorum()))
    assert isinstance(step, Wait) and step.code is WaitCode.RECOVERY_REFUSED, step
    assert "restore from a backup" in step.reason


def test_a_request_carried_out_already_is_not_repeated():
    record = RecoveryRecord(
        from_member="f-a-0", at=NOW - 100, lost=("f-b-0", "f-c-0"), request=EXPLICIT.key, revision=9
    )
    step = plan(desired(EXPLICIT), build_observed(lost_quorum(recovery=record)))
    assert isinstance(step, Wait) and "was carried out" in step.reason, step


def test_the_forced_survivor_is_finished_before_anything_else():
    record = RecoveryRecord(from_member="f-a-0", at=NOW - 5, lost=("f-b-0", "f-c-0"))
    raw = replace(
        lost_quorum(recovery=record),
        runtimes={
            "f-a-0": MemberRuntime(
                present=True, running=True, has_data=True, revision="r1", forced=True
            ),
            "f-b-0": MemberRuntime(present=True, running=False, has_data=False),
            "f-c-0": MemberRuntime(present=True, running=False, has_data=False),
        },
        leaderless={},
        statuses={"f-a-0": StatusAnswer(member_id=11, leader_id=11, term=4, applied_index=501)},
        member_list=entries(("f-a-0",)),
        list_source="f-a-0",
        confirmed=True,
        other_lists={},
    )
    step = plan(desired(EXPLICIT), build_observed(raw))
    assert isinstance(step, FinishRecovery) and step.name == "f-a-0", step
    # Finished (revision recorded, no longer forced): regrowth, one learner at a time.
    done = replace(record, revision=77)
    raw = replace(
        raw,
        recovery=done,
        runtimes={
            **raw.runtimes,
            "f-a-0": MemberRuntime(present=True, running=True, has_data=True, revision="r1"),
        },
    )
    step = plan(desired(EXPLICIT), build_observed(raw))
    assert step.kind == "AddLearner" and step.member == "f-b-0", step
