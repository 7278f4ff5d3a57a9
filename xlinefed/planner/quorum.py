"""Quorum arithmetic, kept in one place so every rule counts the same way.

A voter *counts* toward a quorum only when it is sound: it answered, it names the
confirmed leader in the confirmed term, and its applied index is within the bound of the
leader's (`_View.sound` in the rules decides that). A member that merely answers a
status request may be cut off from its peers or far behind; a majority that needs it
cannot commit anything soon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from xlinefed.planner.model import ObservedMember

Counts = Callable[[ObservedMember], bool]


def majority(voters: int) -> int:
    return voters // 2 + 1


def fault_tolerance(voters: int) -> int:
    return (voters - 1) // 2 if voters else 0


def voters(members: Iterable[ObservedMember]) -> list[ObservedMember]:
    return [m for m in members if m.is_voter]


def counting_voters(
    members: Iterable[ObservedMember], counts: Counts, *, excluding: str | None = None
) -> int:
    return sum(1 for m in members if m.is_voter and m.name != excluding and counts(m))


def safe_to_take_down(
    members: tuple[ObservedMember, ...], name: str, *, removes: bool, counts: Counts
) -> bool:
    """Invariant 2: after taking `name` away (stop, or remove when `removes`), the sound
    voters left are at least a majority of the configuration after the step."""
    target = next((m for m in members if m.name == name), None)
    total = len(voters(members))
    after = total - 1 if (removes and target is not None and target.is_voter) else total
    if after == 0:
        return False
    return counting_voters(members, counts, excluding=name) >= majority(after)


def safe_to_promote(members: tuple[ObservedMember, ...], name: str, counts: Counts) -> bool:
    """After promotion the configuration has one more voter; its sound voters (the
    learner included when it is caught up) must still be a majority of it."""
    total = len(voters(members))
    learner = next((m for m in members if m.name == name), None)
    learner_counts = learner is not None and learner.healthy and counts(learner)
    return counting_voters(members, counts) + int(learner_counts) >= majority(total + 1)
