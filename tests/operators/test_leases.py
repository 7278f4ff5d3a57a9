"""The Lease elector's decisions (pure): who may act, who may take over, and when."""

from __future__ import annotations

import pytest

from xlinefed.operators.leases import (
    Action,
    LeaseTiming,
    Observation,
    Record,
    decide,
    holds,
    next_transitions,
    observe,
)
from xlinefed.operators.settings import LeaderElection

TIMING = LeaseTiming(duration=15, renew_deadline=10, retry_period=2)


def record(holder: str | None, version: str = "1", duration: float = 15) -> Record:
    return Record(holder=holder, duration=duration, transitions=3, resource_version=version)


def test_no_lease_is_created_and_our_own_is_renewed() -> None:
    assert decide("a", None, 0).action is Action.CREATE
    assert decide("a", Observation(record("a"), 0), 100).action is Action.RENEW


def test_a_released_lease_is_taken_at_once() -> None:
    assert decide("b", Observation(record(None), 5), 5).action is Action.TAKE


def test_another_holder_is_waited_for_a_whole_duration_from_first_sight() -> None:
    seen = observe(None, record("a"), now=100)
    assert decide("b", seen, 114.9) == decide("b", seen, 114.9)
    waiting = decide("b", seen, 110)
    assert waiting.action is Action.WAIT and waiting.expires_in == pytest.approx(5)
    assert decide("b", seen, 115).action is Action.TAKE


def test_rereading_the_same_record_keeps_the_clock_a_renewal_restarts_it() -> None:
    first = observe(None, record("a", "7"), now=100)
    same = observe(first, record("a", "7"), now=110)
    assert same is first
    renewed = observe(same, record("a", "8"), now=112)
    assert renewed is not None and renewed.seen_at == 112
    assert decide("b", renewed, 120).action is Action.WAIT  # 15s from 112, not from 100


def test_the_records_own_duration_counts_not_ours() -> None:
    seen = observe(None, record("a", duration=30), now=0)
    assert decide("b", seen, 20).action is Action.WAIT


def test_the_holder_stops_acting_before_any_candidate_may_take_over() -> None:
    """The guarantee: the holder sent its renewal at t; a candidate reads the written
    record at t or later, so it may take over at t + duration at the earliest, while
    the holder stopped acting at t + renew_deadline."""
    sent = 50.0
    seen = observe(None, record("a"), now=sent)  # the earliest a candidate can see it
    first_take = next(
        t / 10 for t in range(500, 1000) if decide("b", seen, t / 10).action is Action.TAKE
    )
    last_act = max(t / 10 for t in range(500, 1000) if holds(sent, t / 10, TIMING))
    assert last_act < first_take
    assert first_take - last_act >= TIMING.duration - TIMING.renew_deadline - 0.1


def test_a_paused_holder_is_no_leader_when_it_resumes() -> None:
    assert holds(100, 109.9, TIMING)
    assert not holds(100, 100 + 60, TIMING)  # SIGSTOPped for a minute
    assert not holds(None, 0, TIMING)


def test_transitions_count_changes_of_holder() -> None:
    assert next_transitions(None, "a") == 0
    assert next_transitions(record("a"), "a") == 3
    assert next_transitions(record("a"), "b") == 4


@pytest.mark.parametrize(
    ("duration", "deadline", "retry"), [(10, 10, 2), (15, 10, 10), (15, 20, 2), (15.5, 10, 2)]
)
def test_timing_that_breaks_the_guarantee_is_refused_naming_the_variables(
    duration: float, deadline: float, retry: float
) -> None:
    with pytest.raises(ValueError, match="XLINEFED_LEASE_DURATION"):
        LeaseTiming(duration=duration, renew_deadline=deadline, retry_period=retry)


def test_settings_come_from_the_environment() -> None:
    built = LeaderElection.build(
        {
            "XLINEFED_LEASE_IDENTITY": "pod-a",
            "XLINEFED_LEASE_NAMESPACE": "ops",
            "XLINEFED_LEASE_DURATION": "6",
            "XLINEFED_LEASE_RENEW_DEADLINE": "4",
            "XLINEFED_LEASE_RETRY_PERIOD": "1",
        },
        default_name="xlinefed-member-operator",
    )
    assert built.enabled and built.identity == "pod-a" and built.name == "xlinefed-member-operator"
    assert built.lease_namespace("watched") == "ops"
    assert built.timing == LeaseTiming(6, 4, 1)
    default = LeaderElection.build({}, default_name="x")
    assert default.identity and default.lease_namespace(None) == "default"
    assert default.lease_namespace("watched") == "watched"
    with pytest.raises(ValueError, match="XLINEFED_LEADER_ELECTION"):
        LeaderElection.build({"XLINEFED_LEADER_ELECTION": "maybe"}, default_name="x")
