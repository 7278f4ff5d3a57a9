"""`phase_from`: the phase is a summary of the conditions and never contradicts them."""

from __future__ import annotations

import itertools

import pytest

from xlinefed.api import conditions
from xlinefed.api.models import Condition, ConditionType, ConsensusStatus, Phase

A, P, D = ConditionType.AVAILABLE, ConditionType.PROGRESSING, ConditionType.DEGRADED


def c(kind: ConditionType, status: str, reason: str = "Any") -> Condition:
    return Condition(type=kind, status=status, reason=reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "phase"),
    [
        ([], Phase.PENDING),
        ([c(A, "True"), c(P, "False", "SpecReached"), c(D, "False")], Phase.AVAILABLE),
        ([c(A, "True"), c(P, "True", "Scaling"), c(D, "False")], Phase.SCALING),
        ([c(A, "True"), c(P, "True", "Updating"), c(D, "True")], Phase.UPDATING),
        ([c(A, "True"), c(P, "False", "Waiting"), c(D, "True")], Phase.HEALING),
        ([c(A, "False"), c(P, "True", "Bootstrapping"), c(D, "True")], Phase.BOOTSTRAPPING),
        ([c(A, "False"), c(P, "True", "Scaling"), c(D, "True")], Phase.DEGRADED),
        ([c(A, "Unknown", "ObservationFailed"), c(D, "True")], Phase.DEGRADED),
        ([c(A, "True"), c(P, "False", "Paused"), c(D, "True")], Phase.PAUSED),
        ([c(A, "True"), c(P, "False"), c(D, "True", "InvalidSpec")], Phase.FAILED),
        ([c(A, "True"), c(P, "True", "SomethingNew"), c(D, "False")], Phase.HEALING),
    ],
)
def test_phase_table(given: list[Condition], phase: Phase) -> None:
    assert conditions.phase_from(given) is phase


REASONS = ("Scaling", "Updating", "Healing", "Bootstrapping", "Paused", "SpecReached")


def all_condition_sets() -> list[list[Condition]]:
    sets = []
    for a, (p, reason), (d, invalid) in itertools.product(
        ("True", "False", "Unknown"),
        itertools.product(("True", "False"), REASONS),
        itertools.product(("True", "False"), (False, True)),
    ):
        sets.append(
            [c(A, a), c(P, p, reason), c(D, d, "InvalidSpec" if invalid else "MembersUnhealthy")]
        )
    return sets


@pytest.mark.parametrize("given", all_condition_sets())
def test_phase_never_contradicts_conditions(given: list[Condition]) -> None:
    by_type = {x.type: x for x in given}
    phase = conditions.phase_from(given)
    assert phase is not Phase.PENDING  # conditions exist: something was observed
    if phase is Phase.AVAILABLE:
        assert by_type[A].status == "True"
        assert by_type[P].status != "True" and by_type[D].status != "True"
    if by_type[A].status == "True":
        assert phase is not Phase.DEGRADED
    if phase in (Phase.SCALING, Phase.UPDATING, Phase.HEALING) and by_type[P].status == "True":
        assert by_type[A].status == "True"


def test_last_transition_time_moves_only_on_a_flip() -> None:
    first = conditions.condition(None, A, True, "QuorumServing", "", "2026-01-01T00:00:00Z", 1)
    before = ConsensusStatus(conditions=[first])
    same = conditions.condition(before, A, True, "QuorumServing", "x", "2026-01-01T00:05:00Z", 2)
    flipped = conditions.condition(before, A, False, "NoQuorum", "", "2026-01-01T00:06:00Z", 2)
    assert same.last_transition_time == "2026-01-01T00:00:00Z" and same.observed_generation == 2
    assert flipped.last_transition_time == "2026-01-01T00:06:00Z"


def test_an_observation_failure_withdraws_available() -> None:
    serving = ConsensusStatus(
        phase=Phase.AVAILABLE,
        conditions=[c(A, "True", "QuorumServing"), c(P, "False", "SpecReached"), c(D, "False")],
    )
    failed = conditions.observation_failed(serving, "connection refused", "2026-01-01T00:00:00Z", 4)
    by_type = {x.type: x for x in failed.conditions}
    assert by_type[A].status == "Unknown" and "connection refused" in by_type[A].message
    assert by_type[D].status == "True" and by_type[D].reason == conditions.OBSERVATION_FAILED
    assert failed.phase is Phase.DEGRADED


def test_an_invalid_spec_fails_without_forgetting_what_runs() -> None:
    serving = ConsensusStatus(
        phase=Phase.AVAILABLE, leader="f-a-0", conditions=[c(A, "True", "QuorumServing")]
    )
    refused = conditions.invalid_spec(serving, ["spec.x: bad"], "2026-01-01T00:00:00Z", 7)
    assert refused.phase is Phase.FAILED and refused.leader == "f-a-0"
    assert refused.warnings == ["spec.x: bad"] and refused.observed_generation == 7
