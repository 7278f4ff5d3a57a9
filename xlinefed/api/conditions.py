"""Status conditions, built one way for every tier, and the phase they imply.

Conditions follow `metav1.Condition`: a type, a True/False/Unknown status, a reason
(a CamelCase constant below), a message, the generation it was computed for, and the
time its status last flipped. `phase` is only a one-word summary of them for printer
columns, derived by `phase_from` — so a phase can never contradict its conditions.
Time is passed in.
"""

from __future__ import annotations

from collections.abc import Sequence

from xlinefed.api.models import Condition, ConditionType, ConsensusStatus, MemberStatus, Phase

# -- reasons -------------------------------------------------------------------------------
# Available
QUORUM_SERVING = "QuorumServing"
NO_QUORUM = "NoQuorum"
OBSERVATION_FAILED = "ObservationFailed"
# Progressing: what is in progress (the phase names), or why nothing is.
BOOTSTRAPPING = Phase.BOOTSTRAPPING.value
SCALING = Phase.SCALING.value
UPDATING = Phase.UPDATING.value
HEALING = Phase.HEALING.value
PAUSED = Phase.PAUSED.value
SPEC_REACHED = "SpecReached"
WAITING = "Waiting"
# Degraded
ALL_HEALTHY = "AllHealthy"
MEMBERS_UNHEALTHY = "MembersUnhealthy"
INVALID_SPEC = "InvalidSpec"
#: The Secrets spec.tls names cannot be used (Kubernetes); nothing is started or changed.
CERTIFICATES_INVALID = "CertificatesInvalid"
APPLY_FAILED = "ApplyFailed"

#: Progressing reasons that are an activity, and the phase each shows as.
ACTIVITIES = {
    BOOTSTRAPPING: Phase.BOOTSTRAPPING,
    SCALING: Phase.SCALING,
    UPDATING: Phase.UPDATING,
    HEALING: Phase.HEALING,
}


def condition(
    previous: ConsensusStatus | None,
    kind: ConditionType,
    value: bool | None,
    reason: str,
    message: str,
    now: str,
    generation: int | None = None,
) -> Condition:
    """A condition whose lastTransitionTime moves only when its status flips; `None`
    for `value` is Unknown (nothing could be observed)."""
    status = "Unknown" if value is None else "True" if value else "False"
    before = next((c for c in (previous.conditions if previous else []) if c.type == kind), None)
    since = before.last_transition_time if before and before.status == status else now
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )


def progressing(
    previous: ConsensusStatus | None,
    activity: str | None,
    message: str | None,
    now: str,
    generation: int | None,
) -> Condition:
    """The Progressing condition for an activity (a reason in ACTIVITIES, or PAUSED),
    or for none; `message` says what is in progress or waited for."""
    if activity == PAUSED:
        return condition(
            previous,
            ConditionType.PROGRESSING,
            False,
            PAUSED,
            "spec.paused is true; set it to false to resume",
            now,
            generation,
        )
    if activity is None:
        return condition(
            previous,
            ConditionType.PROGRESSING,
            False,
            SPEC_REACHED if message is None else WAITING,
            message or "spec reached",
            now,
            generation,
        )
    return condition(
        previous,
        ConditionType.PROGRESSING,
        True,
        activity,
        message or activity.lower(),
        now,
        generation,
    )


def running_version(members: Sequence[MemberStatus]) -> str | None:
    """What the listed members report running: one version, or several during an
    upgrade ("3.4.23,3.4.24")."""
    return (
        ",".join(sorted({m.version for m in members if m.version and m.role is not None})) or None
    )


def phase_from(conditions: Sequence[Condition]) -> Phase:
    """The phase the conditions say, first match wins:

    ==============  ===========================================================
    Pending         no conditions yet (nothing observed)
    Failed          Degraded=True because the spec is invalid
    Paused          Progressing=False, reason Paused
    Bootstrapping   Progressing=True, reason Bootstrapping (Available may be False)
    Degraded        Available is not True
    Scaling, …      Progressing=True: its reason (Scaling, Updating, Healing)
    Healing         Degraded=True (members unhealthy, nothing in progress yet)
    Available       otherwise
    ==============  ===========================================================
    """
    by_type = {c.type: c for c in conditions}
    if not by_type:
        return Phase.PENDING
    available = by_type.get(ConditionType.AVAILABLE)
    progressing = by_type.get(ConditionType.PROGRESSING)
    degraded = by_type.get(ConditionType.DEGRADED)
    if degraded and degraded.status == "True" and degraded.reason == INVALID_SPEC:
        return Phase.FAILED
    if progressing and progressing.reason == PAUSED:
        return Phase.PAUSED
    activity = (
        ACTIVITIES.get(progressing.reason, Phase.HEALING)
        if progressing and progressing.status == "True"
        else None
    )
    if activity is Phase.BOOTSTRAPPING:
        return activity
    if available is None or available.status != "True":
        return Phase.DEGRADED
    if activity is not None:
        return activity
    if degraded and degraded.status == "True":
        return Phase.HEALING
    return Phase.AVAILABLE


def invalid_spec(
    previous: ConsensusStatus,
    problems: Sequence[str],
    now: str,
    generation: int | None,
    *,
    reason: str = INVALID_SPEC,
) -> ConsensusStatus:
    """The status of an object whose spec (or what it names: `CERTIFICATES_INVALID`) was
    refused: what ran keeps running; the status says why nothing more happens."""
    conditions = [c for c in previous.conditions if c.type is not ConditionType.DEGRADED]
    conditions.append(
        condition(
            previous,
            ConditionType.DEGRADED,
            True,
            reason,
            "; ".join(problems),
            now,
            generation,
        )
    )
    return previous.model_copy(
        update={
            "conditions": conditions,
            "phase": phase_from(conditions),
            "warnings": list(problems),
            "observed_generation": generation,
        }
    )


def observation_failed(
    previous: ConsensusStatus, error: str, now: str, generation: int | None
) -> ConsensusStatus:
    """The status after a pass that could not observe: nothing known is claimed. The
    members' last report stays for reference; Available turns Unknown."""
    conditions = [
        condition(
            previous,
            ConditionType.AVAILABLE,
            None,
            OBSERVATION_FAILED,
            f"could not observe: {error}",
            now,
            generation,
        ),
        *(c for c in previous.conditions if c.type is ConditionType.PROGRESSING),
        condition(
            previous,
            ConditionType.DEGRADED,
            True,
            OBSERVATION_FAILED,
            f"could not observe: {error}",
            now,
            generation,
        ),
    ]
    return previous.model_copy(update={"conditions": conditions, "phase": phase_from(conditions)})


def apply_failed(
    previous: ConsensusStatus, error: str, now: str, generation: int | None
) -> ConsensusStatus:
    """The status after a pass whose writes were refused: what serves still serves
    (Available is kept), Degraded says what could not be written."""
    conditions = [
        *(c for c in previous.conditions if c.type is not ConditionType.DEGRADED),
        condition(previous, ConditionType.DEGRADED, True, APPLY_FAILED, error, now, generation),
    ]
    return previous.model_copy(update={"conditions": conditions, "phase": phase_from(conditions)})
