"""The member operator end to end on a real Xline: real kube-apiserver, Xline pods run by
the hostlet (it maps `*xline*` images to the binary the tests find, see
tests/support/xline.py), the operator as a real process. The same walk as on etcd
(`test_member_operator.py`): bootstrap, scale-out and in, a rolling update (held back
with the engine limit on Xline v0.7.0, docs/engines.md), kill -9 of a follower and of
the leader; a writer throughout, every acknowledged write read back, membership equals
the spec, one leader. Without a binary these are skipped loudly (tests/conftest.py)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e_kube.conftest import (
    API,
    MemberOperator,
    consensus_view,
    member_url,
    xline_cluster,
)
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from tests.support.xline import XLINE_VERSION, xline_binary
from xlinefed.api.engines import Engine, profile
from xlinefed.topology import member_name

pytestmark = [pytest.mark.stack, pytest.mark.slow, pytest.mark.xline]

NAME = "kxl"
NAMESPACE = "xf-member-xline"


@pytest.fixture(scope="module")
def xline_namespace(member1: KubeClient) -> Iterator[str]:
    # The hostlets were started with the test's environment; they find the binary
    # through XLINEFED_XLINE_BIN, which the root conftest requires for `xline` tests.
    assert xline_binary() is not None
    member1.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
    yield NAMESPACE


@pytest.fixture(scope="module")
def xline_operator(
    stack: Stack, xline_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MemberOperator]:
    log = tmp_path_factory.mktemp("operator-xline") / "member1.log"
    op = MemberOperator(stack, "member1", xline_namespace, log)
    op.start()
    yield op
    op.stop()


def resource(member1: KubeClient) -> dict[str, Any]:
    return member1.get(API, "XlineCluster", f"{NAME}-member1", NAMESPACE)


def reached(member1: KubeClient, replicas: int) -> bool:
    obj = resource(member1)
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("phase") == "Available"
        and status.get("ready") == f"{replicas}/{replicas}"
        and status.get("currentStep") is None
    )


def wait_reached(member1: KubeClient, replicas: int, op: MemberOperator) -> None:
    try:
        wait_until(lambda: reached(member1, replicas), timeout=180, what=f"{replicas} Available")
    except AssertionError as error:
        step = (resource(member1).get("status") or {}).get("currentStep")
        raise AssertionError(f"{error}\nstep: {step}\noperator log:\n{op.tail()}") from None


def names(replicas: int) -> set[str]:
    return {member_name(NAME, "member1", i) for i in range(replicas)}


def endpoints(member1: KubeClient) -> list[str]:
    replicas = resource(member1)["spec"]["replicas"]
    return [member_url(NAME, NAMESPACE, m) for m in sorted(names(replicas))]


def scale(member1: KubeClient, replicas: int) -> None:
    member1.patch(
        API,
        "XlineCluster",
        f"{NAME}-member1",
        {"spec": {"replicas": replicas, "clusters": [{"id": "member1", "replicas": replicas}]}},
        namespace=NAMESPACE,
    )


def assert_converged(member1: KubeClient, replicas: int) -> None:
    voters, learners, leaders, _ = consensus_view(endpoints(member1))
    assert voters == names(replicas) and not learners
    assert len(leaders) == 1 and 0 not in leaders, leaders
    reported = {m.get("version") for m in resource(member1)["status"]["members"]}
    assert reported == {profile(Engine.XLINE).reported_version(XLINE_VERSION)}, reported


def test_create_three_members(
    member1: KubeClient, xline_namespace: str, xline_operator: MemberOperator
) -> None:
    member1.create(xline_cluster(NAME, xline_namespace, 3, engine="xline", version=XLINE_VERSION))
    wait_reached(member1, 3, xline_operator)
    pods = member1.list("v1", "Pod", xline_namespace)
    assert {p["metadata"]["name"] for p in pods} == names(3)
    assert all(p["status"]["phase"] == "Running" for p in pods)
    containers = [p["spec"]["containers"][0] for p in pods]
    assert all(c["image"] == f"ghcr.io/xline-kv/xline:{XLINE_VERSION}" for c in containers)
    # Exactly one initial member started as the initial leader of the static bootstrap.
    assert sum("--is-leader" in c["args"] for c in containers) == 1
    # Readiness over gRPC health (Xline's client port speaks gRPC only) passes.
    wait_until(
        lambda: all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions", [])
            )
            for p in member1.list("v1", "Pod", xline_namespace)
        ),
        timeout=60,
        what="every Xline pod Ready",
    )
    assert_converged(member1, 3)


def test_scale_out_and_in_under_a_writer(
    member1: KubeClient, xline_namespace: str, xline_operator: MemberOperator
) -> None:
    with SequencedWriter(lambda: endpoints(member1)) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        scale(member1, 5)
        wait_reached(member1, 5, xline_operator)
        assert_converged(member1, 5)
        scale(member1, 3)
        wait_reached(member1, 3, xline_operator)
    report = writer.verify(endpoints(member1))
    assert report.acknowledged > 0 and report.lost == []
    assert_converged(member1, 3)
    assert {p["metadata"]["name"] for p in member1.list("v1", "Pod", xline_namespace)} == names(3)


def test_a_rolling_update_is_held_back_with_the_engine_limit(
    member1: KubeClient, xline_namespace: str, xline_operator: MemberOperator
) -> None:
    member1.patch(
        API,
        "XlineCluster",
        f"{NAME}-member1",
        {"spec": {"engineArgs": {"log-level": "warn"}}},
        namespace=xline_namespace,
    )

    def held_back() -> bool:
        step = (resource(member1).get("status") or {}).get("currentStep") or {}
        return step.get("code") == "EngineLimit"

    wait_until(held_back, timeout=60, what="the roll held back with EngineLimit")
    assert "WAL corrupted" in resource(member1)["status"]["currentStep"]["reason"]
    member1.patch(
        API,
        "XlineCluster",
        f"{NAME}-member1",
        {"spec": {"engineArgs": None}},
        namespace=xline_namespace,
    )
    wait_reached(member1, 3, xline_operator)
    assert_converged(member1, 3)


def _kill_under_writer(member1: KubeClient, victim: str, op: MemberOperator) -> None:
    pod = member1.get("v1", "Pod", victim, NAMESPACE)
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    uid = pod["metadata"]["uid"]
    with SequencedWriter(lambda: endpoints(member1)) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        os.kill(pid, signal.SIGKILL)
        # restartPolicy Never: the operator replaces the pod (same volume, start guard).
        wait_until(
            lambda: (
                (p := member1.get_or_none("v1", "Pod", victim, NAMESPACE)) is not None
                and p["metadata"]["uid"] != uid
                and p["status"].get("phase") == "Running"
            ),
            timeout=120,
            what=f"{victim} running in a new pod",
        )
        wait_reached(member1, 3, op)
        count = len(writer.acknowledged)
        wait_until(lambda: len(writer.acknowledged) >= count + 5, timeout=60, what="writes go on")
    report = writer.verify(endpoints(member1))
    assert report.acknowledged > 0 and report.lost == []
    assert_converged(member1, 3)


def test_kill_a_follower(
    member1: KubeClient, xline_namespace: str, xline_operator: MemberOperator
) -> None:
    members = resource(member1)["status"]["members"]
    victim = sorted(m["name"] for m in members if not m.get("leader"))[-1]
    _kill_under_writer(member1, victim, xline_operator)


def test_kill_the_leader(
    member1: KubeClient, xline_namespace: str, xline_operator: MemberOperator
) -> None:
    members = resource(member1)["status"]["members"]
    victim = next(m["name"] for m in members if m.get("leader"))
    _kill_under_writer(member1, victim, xline_operator)


def test_delete_removes_the_pods(
    member1: KubeClient, xline_namespace: str, xline_operator: MemberOperator
) -> None:
    member1.delete(API, "XlineCluster", f"{NAME}-member1", xline_namespace)
    wait_until(
        lambda: not member1.list("v1", "Pod", xline_namespace), timeout=90, what="pods deleted"
    )
