"""The federation's status, aggregated from its member clusters' reports
(`placement.aggregate_status` through `plan_federation`): a table of situations and what
the status must say — phase, the three conditions' reasons, ready, leader, the step."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.federation_tier.test_placement import T0, T1, fed
from xlinefed.api import conditions
from xlinefed.api.models import (
    ConditionType,
    ConsensusStatus,
    MemberRole,
    MemberStatus,
    Phase,
    StepStatus,
    spec_hash,
)
from xlinefed.placement import ClusterView, plan_federation

CLUSTERS = ("a", "b", "c")


@dataclass(frozen=True)
class Report:
    """What one member cluster's XlineCluster status says."""

    phase: Phase = Phase.AVAILABLE
    reached: bool = True
    leader: str | None = "demo-a-0"
    healthy: tuple[str, ...] = ("a", "b", "c")
    step: StepStatus | None = None
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    reports: dict[str, Report | None]
    phase: Phase
    available: str
    progressing: str
    degraded: str
    ready: str
    leader: str | None = "demo-a-0"
    step_reason: str | None = None
    warning: str | None = None
    spec: dict[str, object] = field(default_factory=dict)


def _all(report: Report | None = None, **override: Report | None) -> dict[str, Report | None]:
    return {c: override.get(c, report or Report()) for c in CLUSTERS}


CASES = {
    "converged": Case(
        _all(),
        Phase.AVAILABLE,
        conditions.QUORUM_SERVING,
        conditions.SPEC_REACHED,
        conditions.ALL_HEALTHY,
        "3/3",
    ),
    "one cluster has not reported the new spec": Case(
        _all(c=Report(reached=False)),
        Phase.UPDATING,
        conditions.QUORUM_SERVING,
        conditions.UPDATING,
        conditions.ALL_HEALTHY,
        "3/3",
        step_reason="waiting for c to report the new spec",
    ),
    "a cluster never reported at all": Case(
        _all(c=None),
        Phase.UPDATING,
        conditions.QUORUM_SERVING,
        conditions.UPDATING,
        conditions.ALL_HEALTHY,
        "3/3",
    ),
    "a cluster mid rolling update names its step": Case(
        _all(
            b=Report(
                phase=Phase.UPDATING,
                step=StepStatus(kind="RestartMember", member="demo-b-0", reason="restart demo-b-0"),
            )
        ),
        Phase.UPDATING,
        conditions.QUORUM_SERVING,
        conditions.UPDATING,
        conditions.ALL_HEALTHY,
        "3/3",
        step_reason="b: restart demo-b-0",
    ),
    "one member down, by most reports": Case(
        _all(Report(healthy=("a", "b"))),
        Phase.HEALING,
        conditions.QUORUM_SERVING,
        conditions.HEALING,
        conditions.MEMBERS_UNHEALTHY,
        "2/3",
    ),
    "a majority down: no quorum": Case(
        _all(Report(healthy=("a",), phase=Phase.DEGRADED)),
        Phase.DEGRADED,
        conditions.NO_QUORUM,
        conditions.HEALING,
        conditions.MEMBERS_UNHEALTHY,
        "1/3",
    ),
    "no leader reported anywhere": Case(
        _all(Report(leader=None)),
        Phase.DEGRADED,
        conditions.NO_QUORUM,
        conditions.SPEC_REACHED,
        conditions.ALL_HEALTHY,
        "3/3",
        leader=None,
    ),
    "the leader most clusters report wins over one stale report": Case(
        _all(c=Report(leader="demo-c-0")),
        Phase.AVAILABLE,
        conditions.QUORUM_SERVING,
        conditions.SPEC_REACHED,
        conditions.ALL_HEALTHY,
        "3/3",
    ),
    "a cluster refused the spec": Case(
        _all(b=Report(phase=Phase.FAILED, reached=False, warnings=("spec.version: bad",))),
        Phase.FAILED,
        conditions.QUORUM_SERVING,
        conditions.UPDATING,
        conditions.INVALID_SPEC,
        "3/3",
        warning="b: spec.version: bad",
    ),
    "paused": Case(
        _all(c=Report(reached=False)),
        Phase.PAUSED,
        conditions.QUORUM_SERVING,
        conditions.PAUSED,
        conditions.ALL_HEALTHY,
        "3/3",
        spec={"paused": True},
    ),
}


def _report(cluster: str, report: Report, reached_hash: str) -> ConsensusStatus:
    return ConsensusStatus(
        phase=report.phase,
        formed=True,
        leader=report.leader,
        observed_spec=reached_hash if report.reached else "an older spec",
        current_step=report.step,
        warnings=list(report.warnings),
        members=[
            MemberStatus(
                name=f"demo-{c}-0",
                cluster=c,
                role=MemberRole.VOTER,
                healthy=c in report.healthy,
            )
            for c in CLUSTERS
        ],
    )


@pytest.mark.parametrize("name", list(CASES))
def test_the_federation_status_says_what_its_clusters_report(name: str) -> None:
    case = CASES[name]
    spec = fed([(c, 1) for c in CLUSTERS], **case.spec)
    first = plan_federation(spec, {}, T0)

    def existing(hashes: dict[str, str]) -> dict[str, ClusterView]:
        return {
            c: ClusterView(c, None if r is None else _report(c, r, hashes.get(c, "")))
            for c, r in case.reports.items()
        }

    # The XlineClusters' specs depend on the formation the reports establish, not on
    # which spec they say they reached: plan once to learn them, then report on them.
    wanted = plan_federation(spec, existing({}), T1, first.status).clusters
    hashes = {c: spec_hash(wanted[c].spec) for c in CLUSTERS}
    status = plan_federation(spec, existing(hashes), T1, first.status).status
    reasons = {c.type: c.reason for c in status.conditions}
    assert (
        status.phase,
        reasons[ConditionType.AVAILABLE],
        reasons[ConditionType.PROGRESSING],
        reasons[ConditionType.DEGRADED],
        status.ready,
        status.leader,
    ) == (
        case.phase,
        case.available,
        case.progressing,
        case.degraded,
        case.ready,
        case.leader,
    )
    if case.step_reason is not None:
        assert status.current_step is not None and status.current_step.reason == case.step_reason
    if case.warning is not None:
        assert case.warning in status.warnings


def _secured(fingerprint: str | None, expires: str = "2027-01-01T00:00:00Z") -> ConsensusStatus:
    return ConsensusStatus(
        security={
            "tls": fingerprint is not None,
            "caFingerprint": fingerprint,
            "certificatesExpire": expires if fingerprint else None,
        }
    )


def test_clusters_that_trust_different_cas_are_named_with_the_fix() -> None:
    from xlinefed.placement import federation_security, trust_warnings

    one = {"a": _secured("ab" * 32), "b": _secured("ab" * 32, "2026-12-31T00:00:00Z")}
    assert trust_warnings(one) == []
    security = federation_security(one)
    assert security is not None and security.tls and security.ca_fingerprint == "ab" * 32
    assert security.certificates_expire == "2026-12-31T00:00:00Z"

    split = {**one, "c": _secured("cd" * 32), "d": _secured(None), "e": None}
    (warning,) = trust_warnings(split)
    assert "a, b: CA sha256:abababab" in warning and "c: CA sha256:cdcdcdcd" in warning
    assert "d: plain text" in warning and "the same ca.crt" in warning
    security = federation_security(split)
    assert security is not None and not security.tls and security.ca_fingerprint is None
    # Clusters that have not reported (old operators, not yet placed) say nothing.
    assert federation_security({"a": ConsensusStatus(), "b": None}) is None
