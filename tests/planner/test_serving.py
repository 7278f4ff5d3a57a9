"""A rolling restart goes on only when the restarted member's pod serves again (its Ready
condition), not as soon as it answers over gRPC: seen on the real apiserver
(tests/e2e_kube/test_member_pods.py), the next restart came ~2 s before the readiness
probe passed, and at one moment none of the three pods of the cluster was Ready."""

from __future__ import annotations

from dataclasses import replace

from tests.planner.test_review_findings import three_voters, up
from tests.support.simulation.simulator import make_desired
from xlinefed.planner import RestartMember, Wait, WaitCode, plan
from xlinefed.planner.observation import build_observed


def test_a_roll_waits_for_the_restarted_pod_to_be_ready() -> None:
    desired = make_desired({"a": 3}, revision="r2")
    runtimes = {
        "f-a-0": up("r1"),
        "f-a-1": up("r1"),
        # Restarted with the new template, answering over gRPC, its pod not Ready yet.
        "f-a-2": replace(up("r2"), serving=False),
    }
    step = plan(desired, build_observed(three_voters(desired, runtimes=runtimes)))
    assert isinstance(step, Wait) and step.code is WaitCode.NOT_READY, step
    assert "f-a-2" in step.reason


def test_the_roll_goes_on_once_it_is_ready_or_where_the_platform_cannot_tell() -> None:
    desired = make_desired({"a": 3}, revision="r2")
    for serving in (True, None):
        runtimes = {
            "f-a-0": up("r1"),
            "f-a-1": up("r1"),
            "f-a-2": replace(up("r2"), serving=serving),
        }
        step = plan(desired, build_observed(three_voters(desired, runtimes=runtimes)))
        assert isinstance(step, RestartMember), (serving, step)
