"""Status conditions, built one way for every tier. Time is passed in."""

from __future__ import annotations

from xlinefed.api.models import Condition, ConditionType, ConsensusStatus


def condition(
    previous: ConsensusStatus | None,
    kind: ConditionType,
    value: bool,
    reason: str,
    message: str,
    now: str,
) -> Condition:
    """A condition whose lastTransitionTime moves only when its status flips."""
    status = "True" if value else "False"
    before = next((c for c in (previous.conditions if previous else []) if c.type == kind), None)
    since = before.last_transition_time if before and before.status == status else now
    return Condition(
        type=kind, status=status, reason=reason, message=message, last_transition_time=since
    )
