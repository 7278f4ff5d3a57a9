"""Two member operator replicas against one member cluster (real kube-apiserver, real
etcd pods): exactly one holds the Lease and reconciles; SIGKILL it mid-scale and the
standby takes over within the lease; SIGSTOP it past its lease and, when it resumes, it
acts no more. The Events and both operators' logs show no step taken twice."""

from __future__ import annotations

import collections
import os
import re
import signal
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from tests.e2e_kube.conftest import LEASE_ENV, MemberOperator, consensus_view, xline_cluster
from tests.e2e_kube.test_member_operator import NAME, endpoints, events, reached, scale
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from xlinefed.topology import member_name

pytestmark = [pytest.mark.stack, pytest.mark.slow]

LEASE = "xlinefed-member-operator"
DURATION = float(LEASE_ENV["XLINEFED_LEASE_DURATION"])
#: Time for the standby's next retry, its writes and a loaded 2-core machine.
MARGIN = 10.0
STEP_LINE = re.compile(r" step applied step=(\S+) member=(\S+)")
#: Steps each of which a scale by one member takes once per member.
ONCE = ("AddLearner", "PromoteLearner", "RemoveMember", "DeleteMember")


@pytest.fixture(scope="module")
def ha_namespace(member1: KubeClient) -> Iterator[str]:
    name = "xf-ha"
    member1.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name


@pytest.fixture(scope="module")
def replicas(
    stack: Stack, ha_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, MemberOperator]]:
    logs = tmp_path_factory.mktemp("ha-operators")
    ops = {
        who: MemberOperator(stack, "member1", ha_namespace, logs / f"{who}.log", identity=who)
        for who in ("replica-a", "replica-b")
    }
    for op in ops.values():
        op.start()
    yield ops
    for op in ops.values():
        if op.process is not None and op.process.poll() is None:
            os.kill(op.process.pid, signal.SIGCONT)  # a stopped one cannot terminate
        op.stop()


def lease_spec(client: KubeClient, namespace: str, name: str = LEASE) -> dict[str, Any]:
    lease = client.get_or_none("coordination.k8s.io/v1", "Lease", name, namespace)
    return dict((lease or {}).get("spec") or {})


def holder(member1: KubeClient, namespace: str) -> str | None:
    return lease_spec(member1, namespace).get("holderIdentity")


def micro_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def assert_waited_out(before: dict[str, Any], after: dict[str, Any]) -> None:
    """The new holder took over no sooner than a whole lease after the old holder's last
    renewal. Both times are written by processes on this one machine (one wall clock);
    the operators themselves never compare them."""
    gap = (micro_time(after["acquireTime"]) - micro_time(before["renewTime"])).total_seconds()
    assert gap >= before["leaseDurationSeconds"], (before, after)
    assert after["leaseTransitions"] == before["leaseTransitions"] + 1


def tails(ops: dict[str, MemberOperator]) -> str:
    return "\n".join(f"--- {who}\n{op.tail(40)}" for who, op in ops.items())


def applied(ops: dict[str, MemberOperator]) -> list[tuple[str, str, str]]:
    """(replica, step, member) of every step either replica's executor applied."""
    return [
        (who, *match.groups())
        for who, op in ops.items()
        for match in STEP_LINE.finditer(op.log.read_text(errors="replace"))
    ]


def _member_in(message: str) -> str:
    found = re.search(rf"{NAME}-member1-\d+", message)
    return found.group(0) if found else message


def assert_no_step_twice(
    member1: KubeClient, namespace: str, ops: dict[str, MemberOperator]
) -> None:
    by_logs = collections.Counter((step, member) for _, step, member in applied(ops))
    twice = {key: n for key, n in by_logs.items() if n > 1 and key[0] in ONCE}
    assert not twice, f"steps applied twice (operator logs): {twice}\n{tails(ops)}"
    named = collections.Counter(
        (e["reason"], _member_in(e["message"]))
        for e in events(member1, namespace)
        if e["reason"] in ONCE
    )
    twice = {key: n for key, n in named.items() if n > 1}
    assert not twice, f"steps posted twice (Events): {twice}"


def wait_converged(
    member1: KubeClient, namespace: str, n: int, ops: dict[str, MemberOperator]
) -> None:
    try:
        wait_until(lambda: reached(member1, namespace, n), timeout=180, what=f"{n} Available")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{tails(ops)}") from None
    voters, learners, leaders, _ = consensus_view(endpoints(member1, namespace))
    assert voters == {member_name(NAME, "member1", i) for i in range(n)} and not learners
    assert len(leaders) == 1


def test_exactly_one_replica_holds_the_lease_and_reconciles(
    member1: KubeClient, ha_namespace: str, replicas: dict[str, MemberOperator]
) -> None:
    leader = wait_until(lambda: holder(member1, ha_namespace), timeout=60, what="a Lease holder")
    assert leader in replicas
    standby = next(who for who in replicas if who != leader)
    wait_until(
        lambda: "standing by" in replicas[standby].log.read_text(errors="replace"),
        timeout=30,
        what=f"{standby} standing by",
    )
    member1.create(xline_cluster(NAME, ha_namespace, 3))
    wait_converged(member1, ha_namespace, 3, replicas)
    assert holder(member1, ha_namespace) == leader
    # Only the leader ran kopf: every step is in its log, none in the standby's.
    assert {who for who, _, _ in applied(replicas)} == {leader}


def test_killing_the_leader_mid_scale_hands_over_within_the_lease(
    member1: KubeClient, ha_namespace: str, replicas: dict[str, MemberOperator]
) -> None:
    leader = holder(member1, ha_namespace)
    assert leader in replicas
    standby = next(who for who in replicas if who != leader)
    seen = len(events(member1, ha_namespace))
    scale(member1, ha_namespace, 5)
    wait_until(
        lambda: any(e["reason"] == "AddLearner" for e in events(member1, ha_namespace)[seen:]),
        timeout=120,
        what="the scale-out's first step",
    )
    replicas[leader].kill()  # SIGKILL: no release, the Lease must expire
    last = lease_spec(member1, ha_namespace)
    wait_until(
        lambda: holder(member1, ha_namespace) == standby,
        timeout=DURATION + MARGIN,
        what=f"{standby} taking the Lease over within {DURATION:g}s + {MARGIN:g}s",
    )
    # Not before the lease expired: never two leaders.
    assert_waited_out(last, lease_spec(member1, ha_namespace))
    wait_converged(member1, ha_namespace, 5, replicas)
    assert any(who == standby for who, _, _ in applied(replicas)), "the standby never acted"
    assert_no_step_twice(member1, ha_namespace, replicas)


def test_a_leader_paused_past_its_lease_does_not_act_when_it_resumes(
    member1: KubeClient, ha_namespace: str, replicas: dict[str, MemberOperator]
) -> None:
    leader = holder(member1, ha_namespace)
    assert leader in replicas
    standby = next(who for who in replicas if who != leader)
    restarted_at = len(replicas[standby].log.read_bytes())
    replicas[standby].start()  # the killed one comes back, as its pod would
    wait_until(
        lambda: b"standing by" in replicas[standby].log.read_bytes()[restarted_at:],
        timeout=60,
        what=f"{standby} standing by again",
    )
    paused = replicas[leader].process
    assert paused is not None
    seen = len(events(member1, ha_namespace))
    scale(member1, ha_namespace, 3)
    wait_until(
        lambda: any(
            e["reason"] in ("RemoveMember", "DeleteMember", "TransferLeadership")
            for e in events(member1, ha_namespace)[seen:]
        ),
        timeout=120,
        what="the scale-in's first step",
    )
    os.kill(paused.pid, signal.SIGSTOP)
    last = lease_spec(member1, ha_namespace)
    wait_until(
        lambda: holder(member1, ha_namespace) == standby,
        timeout=DURATION + MARGIN,
        what=f"{standby} taking over from the paused {leader}",
    )
    assert_waited_out(last, lease_spec(member1, ha_namespace))
    steps_before = [a for a in applied(replicas) if a[0] == leader]
    resumed_at = len(replicas[leader].log.read_bytes())
    os.kill(paused.pid, signal.SIGCONT)
    # It notices its renew deadline passed, stops kopf and stands by again.
    wait_until(
        lambda: b"standing by" in replicas[leader].log.read_bytes()[resumed_at:],
        timeout=60,
        what=f"{leader} standing by after it resumed",
    )
    wait_converged(member1, ha_namespace, 3, replicas)
    after = replicas[leader].log.read_bytes()[resumed_at:].decode(errors="replace")
    assert "lost the lease" in after, after
    assert "step applied" not in after, after
    assert [a for a in applied(replicas) if a[0] == leader] == steps_before
    assert paused.poll() is None, "a lost Lease is no reason to exit"
    assert holder(member1, ha_namespace) == standby
    assert_no_step_twice(member1, ha_namespace, replicas)
    # Standing by again, it still stops at once on SIGTERM (kopf's handlers are gone).
    paused.terminate()
    wait_until(lambda: paused.poll() is not None, timeout=15, what=f"{leader} stopping")
    assert paused.returncode == -signal.SIGTERM
