"""Quorum arithmetic, kept in one place so every rule counts the same way."""

from __future__ import annotations

from collections.abc import Iterable

from xlinefed.planner.model import ObservedMember


def majority(voters: int) -> int:
    return voters // 2 + 1


def fault_tolerance(voters: int) -> int:
    return (voters - 1) // 2 if voters else 0


def voters(members: Iterable[ObservedMember]) -> list[ObservedMember]:
    return [m for m in members if m.is_voter]


def healthy_voters(members: Iterable[ObservedMember], *, excluding: str | None = None) -> int:
    return sum(1 for m in members if m.is_voter and m.healthy and m.name != excluding)


def safe_to_take_down(members: tuple[ObservedMember, ...], name: str, *, removes: bool) -> bool:
    """Invariant 2: after taking `name` away (stop, or remove when `removes`), the healthy
    voters left are at least a majority of the voters after the step."""
    target = next((m for m in members if m.name == name), None)
    total = len(voters(members))
    after = total - 1 if (removes and target is not None and target.is_voter) else total
    if after == 0:
        return False
    return healthy_voters(members, excluding=name) >= majority(after)


def safe_to_promote(members: tuple[ObservedMember, ...], name: str) -> bool:
    total = len(voters(members))
    learner_healthy = any(m.name == name and m.healthy for m in members)
    return healthy_voters(members) + int(learner_healthy) >= majority(total + 1)
