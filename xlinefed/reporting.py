"""From one observation and the step taken to the resource status both tiers report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from xlinefed.api.conditions import condition
from xlinefed.api.models import (
    ConditionType,
    ConsensusStatus,
    MemberClusterSpec,
    MemberRole,
    MemberStatus,
    Phase,
    StepStatus,
)
from xlinefed.api.validation import warnings_for
from xlinefed.executor import Outcome
from xlinefed.planner import (
    AddLearner,
    DeleteMember,
    Desired,
    Done,
    PromoteLearner,
    RemoveMember,
    RestartMember,
    StopMember,
    TransferLeadership,
    Wait,
    WipeData,
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def phase_of(desired: Desired, outcome: Outcome) -> Phase:
    observed = outcome.snapshot.observed
    if desired.paused:
        return Phase.PAUSED
    if not observed.member_list_known:
        return Phase.DEGRADED if observed.formed else Phase.BOOTSTRAPPING
    step = outcome.step
    if isinstance(step, Done):
        return Phase.AVAILABLE
    if isinstance(
        step, AddLearner | PromoteLearner | RemoveMember | DeleteMember | StopMember | WipeData
    ):
        return Phase.SCALING
    if isinstance(step, RestartMember | TransferLeadership):
        return Phase.UPDATING
    listed = {m.name for m in observed.members if m.in_list}
    wanted = {m.name for m in desired.members}
    if listed != wanted or any(m.is_learner for m in observed.members):
        return Phase.SCALING
    if any(m.in_list and m.revision != desired.revision for m in observed.members):
        return Phase.UPDATING
    if any(m.in_list and not m.healthy for m in observed.members):
        return Phase.HEALING
    return Phase.AVAILABLE if isinstance(outcome.step, Wait) else Phase.HEALING


def build_status(
    desired: Desired,
    clusters: Sequence[MemberClusterSpec],
    version: str,
    generation: int | None,
    outcome: Outcome,
    previous: ConsensusStatus | None = None,
    observed_spec: str | None = None,
) -> ConsensusStatus:
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
    ready = sum(1 for m in members if m.healthy and m.role is not None)
    phase = phase_of(desired, outcome)
    step = outcome.step
    step_status = None
    if not isinstance(step, Done):
        reason = step.reason if isinstance(step, Wait) else step.describe()
        if outcome.error:
            reason = f"{step.describe()} failed: {outcome.error}"
        code = step.code.value if isinstance(step, Wait) else None
        step_status = StepStatus(kind=step.kind, member=step.member, reason=reason, code=code)
    serving = observed.member_list_known and observed.leader is not None
    degraded = [m.name for m in members if not m.healthy]
    now = _now()
    conditions = [
        condition(
            previous,
            ConditionType.AVAILABLE,
            serving,
            "QuorumServing" if serving else "NoQuorum",
            f"leader {observed.leader}" if serving else "no leader answers",
            now,
        ),
        condition(
            previous,
            ConditionType.PROGRESSING,
            not isinstance(step, Done),
            step.kind,
            step_status.reason if step_status else "spec reached",
            now,
        ),
        condition(
            previous,
            ConditionType.DEGRADED,
            bool(degraded),
            "MembersUnhealthy" if degraded else "AllHealthy",
            ", ".join(degraded) if degraded else "every member answers",
            now,
        ),
    ]
    return ConsensusStatus(
        phase=phase,
        observed_generation=generation,
        conditions=conditions,
        members=members,
        leader=observed.leader,
        current_step=step_status,
        lock_holder=snapshot.lock_holder,
        warnings=warnings_for(clusters),
        formed=observed.formed,
        observed_spec=observed_spec,
        ready=f"{ready}/{len(desired.members)}",
        clusters=",".join(f"{c.id}={c.replicas}" for c in clusters),
        version=version,
    )
