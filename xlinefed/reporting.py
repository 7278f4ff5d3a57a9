"""From one observation and the step taken to the resource status both tiers report."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from xlinefed.api import conditions
from xlinefed.api.models import (
    ConditionType,
    ConsensusStatus,
    MemberClusterSpec,
    MemberRole,
    MemberStatus,
    RecoveryStatus,
    StepStatus,
)
from xlinefed.api.validation import warnings_for
from xlinefed.executor import Outcome
from xlinefed.planner import (
    AddLearner,
    DeleteMember,
    Desired,
    Done,
    FinishRecovery,
    PromoteLearner,
    RecoverFrom,
    RemoveMember,
    RestartMember,
    StopMember,
    TransferLeadership,
    Wait,
    WipeData,
)
from xlinefed.planner.recovery import when
from xlinefed.planner.steps import WaitCode


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _available(status: ConsensusStatus | None) -> bool:
    return bool(
        status
        and any(c.type is ConditionType.AVAILABLE and c.status == "True" for c in status.conditions)
    )


def activity_of(desired: Desired, outcome: Outcome, *, held: bool = False) -> str | None:
    """What is in progress, as a Progressing reason (`conditions.ACTIVITIES`), `PAUSED`,
    or None when nothing is (the spec is reached, or the planner only waits). `held`:
    silent members' last reports stand in for them, so their silence is no activity."""
    observed = outcome.snapshot.observed
    silent = observed.inconclusive if held else {}
    if desired.paused:
        return conditions.PAUSED
    if not observed.member_list_known:
        return None if observed.formed or silent else conditions.BOOTSTRAPPING
    step = outcome.step
    if isinstance(step, Done):
        return None
    if isinstance(
        step, AddLearner | PromoteLearner | RemoveMember | DeleteMember | StopMember | WipeData
    ):
        return conditions.SCALING
    if isinstance(step, RestartMember | TransferLeadership):
        return conditions.UPDATING
    listed = {m.name for m in observed.members if m.in_list}
    wanted = {m.name for m in desired.members}
    if listed != wanted or any(m.is_learner for m in observed.members):
        return conditions.SCALING
    if any(m.in_list and m.revision != desired.revision for m in observed.members):
        return conditions.UPDATING
    if any(m.in_list and not m.healthy and m.name not in silent for m in observed.members):
        return conditions.HEALING
    return None if isinstance(step, Wait) else conditions.HEALING


#: The share of the backend quota at which the status warns (etcd raises its NOSPACE alarm
#: and refuses writes at the quota).
QUOTA_WARNING_SHARE = 0.8


def plain_text_warning(fix: str) -> str:
    """The warning every status carries while its members speak plain text."""
    return (
        "plain text: any client that reaches a member can read and write the store, the "
        f"operator's keys under /xlinefed/ included; {fix} (docs/security.md)"
    )


def quota_warnings(db_sizes: Mapping[str, int], quota: int | None) -> list[str]:
    """A warning per member whose database (Maintenance.Status dbSize) is at or above
    QUOTA_WARNING_SHARE of the quota, with what to do."""
    if not quota:
        return []
    return [
        f"{name}: database {size / 2**20:.1f} MiB is {size / quota:.0%} of its "
        f"{quota / 2**20:.0f} MiB quota; at the quota etcd refuses writes (NOSPACE alarm): "
        "compact and defragment, or raise spec.engineArgs.quota-backend-bytes"
        for name, size in sorted(db_sizes.items())
        if size >= QUOTA_WARNING_SHARE * quota
    ]


#: Waits whose reason is about a (possible) quorum-loss recovery.
_RECOVERY_WAITS = frozenset({WaitCode.RECOVERY_REFUSED, WaitCode.RECOVERING})


def recovery_status(desired: Desired, outcome: Outcome) -> RecoveryStatus | None:
    """status.recovery: the last recovery on record (from whom, when, what it dropped,
    the revision reached) and, while one is asked for or under way, what happens now."""
    record = outcome.snapshot.observed.recovery
    step = outcome.step
    message = None
    if isinstance(step, Wait) and (
        step.code in _RECOVERY_WAITS
        or (desired.recovery is not None and "quorum lost" in step.reason)
    ):
        message = step.reason
    elif isinstance(step, RecoverFrom | FinishRecovery):
        message = step.describe() + (f" failed: {outcome.error}" if outcome.error else "")
    elif isinstance(step, Wait) and "quorum lost" in step.reason:
        message = step.reason
    if record is None and message is None:
        return None
    if record is None:
        asked = desired.recovery is not None and (
            desired.recovery.automatic or desired.recovery.from_member is not None
        )
        return RecoveryStatus(phase="Refused" if asked else "NotRequested", message=message)
    return RecoveryStatus(
        from_member=record.from_member,
        at=when(record.at),
        lost=list(record.lost),
        applied_index=record.applied_index,
        revision=record.revision,
        request=record.request or None,
        phase="Recovered" if record.finished else "Forcing",
        message=message,
    )


def build_status(
    desired: Desired,
    clusters: Sequence[MemberClusterSpec],
    generation: int | None,
    outcome: Outcome,
    previous: ConsensusStatus | None = None,
    observed_spec: str | None = None,
    client_url: Callable[[str], str] | None = None,
) -> ConsensusStatus:
    """The status one tier reports after a pass; `client_url` names where each member
    serves clients, for `endpoints`."""
    snapshot = outcome.snapshot
    observed = snapshot.observed
    versions = {
        name: (status.version if status else None) for name, status in snapshot.statuses.items()
    }
    members = [
        MemberStatus(
            name=m.name,
            cluster=m.cluster or "?",
            id=f"{m.member_id:x}" if m.member_id is not None else None,
            role=(MemberRole.LEARNER if m.is_learner else MemberRole.VOTER) if m.in_list else None,
            leader=m.name == observed.leader,
            # What the member itself reports; the template's version only while it does
            # not answer (Xline v0.7.0 reports 0.6.1: see docs/engines.md).
            version=versions.get(m.name)
            or (snapshot.runtimes[m.name].version if m.name in snapshot.runtimes else None),
            healthy=m.healthy,
            raft_index=m.applied_index,
        )
        for m in observed.members
        if m.in_list or m.running or m.name in {d.name for d in desired.members}
    ]
    # Members that only answered late are unknown, not down: their last report stands
    # (all of it, when the member list itself could not be read in time).
    silent = observed.inconclusive
    last = previous if silent and previous is not None and previous.members else None
    held = last is not None
    if last is not None and not observed.member_list_known:
        members = list(last.members)
    elif last is not None:
        before = {m.name: m for m in last.members}
        members = [before.get(m.name, m) if m.name in silent else m for m in members]
    leader = observed.leader or (last.leader if last is not None else None)
    ready = sum(1 for m in members if m.healthy and m.role is not None)
    step = outcome.step
    step_status = None
    if not isinstance(step, Done):
        reason = step.reason if isinstance(step, Wait) else step.describe()
        if outcome.error:
            reason = f"{step.describe()} failed: {outcome.error}"
        code = step.code.value if isinstance(step, Wait) else None
        step_status = StepStatus(kind=step.kind, member=step.member, reason=reason, code=code)
    serving = observed.member_list_known and observed.leader is not None
    late = ""
    if silent:
        late = (
            f"; no answer within {max(silent.values()):.1f}s from {', '.join(sorted(silent))}, "
            "so their last report stands"
        )
        serving = serving or _available(last)
    degraded = [m.name for m in members if not m.healthy]
    now = now_rfc3339()
    status_conditions = [
        conditions.condition(
            previous,
            ConditionType.AVAILABLE,
            serving,
            conditions.QUORUM_SERVING if serving else conditions.NO_QUORUM,
            (f"leader {leader}" if serving else "no leader answers") + late,
            now,
            generation,
        ),
        conditions.progressing(
            previous,
            activity_of(desired, outcome, held=held),
            step_status.reason if step_status else None,
            now,
            generation,
        ),
        conditions.condition(
            previous,
            ConditionType.DEGRADED,
            bool(degraded),
            conditions.MEMBERS_UNHEALTHY if degraded else conditions.ALL_HEALTHY,
            ", ".join(degraded) if degraded else "every member answers",
            now,
            generation,
        ),
    ]
    endpoints = (
        [client_url(m.name) for m in members if m.role is MemberRole.VOTER and m.healthy]
        if client_url is not None
        else []
    )
    return ConsensusStatus(
        phase=conditions.phase_from(status_conditions),
        observed_generation=generation,
        conditions=status_conditions,
        members=members,
        leader=leader,
        current_step=step_status,
        lock_holder=snapshot.lock_holder,
        warnings=warnings_for(clusters)
        + quota_warnings(
            {name: s.db_size for name, s in snapshot.statuses.items() if s is not None},
            desired.quota_bytes,
        ),
        formed=observed.formed,
        observed_spec=observed_spec,
        ready=f"{ready}/{len(desired.members)}",
        clusters=",".join(f"{c.id}={c.replicas}" for c in clusters),
        version=conditions.running_version(members),
        endpoints=endpoints,
        recovery=recovery_status(desired, outcome),
    )
