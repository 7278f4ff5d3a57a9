"""Two federation operator replicas on the real Karmada API server: one holds the Lease
and places the XlineClusters; SIGKILL it and the other takes over within the lease,
carries out a spec change the dead one never saw, and nothing is placed twice."""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e_karmada.test_federation import (
    API,
    NAME,
    Operators,
    federation,
    set_clusters,
    wait_reached,
)
from tests.e2e_kube.conftest import LEASE_ENV, install_crds
from tests.e2e_kube.test_member_operator_ha import assert_waited_out, lease_spec
from tests.support.stack._client import KubeClient, api_enabled
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

MEMBERS = ("member1", "member2", "member3")
REPLICAS = ("federation-a", "federation-b")
LEASE = "xlinefed-federation-operator"
DURATION = float(LEASE_ENV["XLINEFED_LEASE_DURATION"])
MARGIN = 10.0


@pytest.fixture(scope="module")
def ha_federation(
    stack: Stack, karmada: KubeClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Operators]]:
    install_crds(karmada)
    for member in MEMBERS:
        install_crds(stack.member(member))
    namespace = f"fedha-{uuid.uuid4().hex[:6]}"
    karmada.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    for member in MEMBERS:
        wait_until(
            lambda m=member: stack.member(m).get_or_none("v1", "Namespace", namespace),
            timeout=60,
            what=f"namespace {namespace} in {member}",
        )
        wait_until(
            lambda m=member: api_enabled(karmada, m, API, "XlineCluster"),
            timeout=180,
            what=f"Karmada to see the XlineCluster API in {member}",
        )
    operators = Operators(stack, namespace, tmp_path_factory.mktemp("ha-operators"))
    for which in (*REPLICAS, *MEMBERS):
        operators.start(which)
    yield namespace, operators
    operators.stop_all()


def holder(karmada: KubeClient, namespace: str) -> str | None:
    return lease_spec(karmada, namespace, LEASE).get("holderIdentity")


def placed_events(karmada: KubeClient, namespace: str) -> list[str]:
    """Every cluster id the federation operators said they placed, once per Event."""
    return [
        cluster_id
        for e in karmada.list("v1", "Event", namespace)
        if e["involvedObject"].get("kind") == "XlineFederation" and e["reason"] == "ClustersPlaced"
        for cluster_id in e["message"].removeprefix("placed XlineClusters in ").split(", ")
    ]


def passes(operators: Operators, which: str) -> int:
    return (operators.logs / f"{which}.log").read_text(errors="replace").count("federation pass")


def test_killing_the_federation_leader_hands_over_within_the_lease(
    karmada: KubeClient, ha_federation: tuple[str, Operators]
) -> None:
    namespace, operators = ha_federation
    leader = wait_until(lambda: holder(karmada, namespace), timeout=60, what="a Lease holder")
    assert leader in REPLICAS
    standby = next(r for r in REPLICAS if r != leader)
    spec: dict[str, Any] = {
        "engine": "etcd",
        "version": "3.4.23",
        "clusters": [{"id": "member1", "replicas": 2}, {"id": "member2", "replicas": 1}],
    }
    karmada.create(
        {
            "apiVersion": API,
            "kind": "XlineFederation",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": spec,
        }
    )
    wait_reached(karmada, namespace, operators)
    assert passes(operators, standby) == 0, "the standby reconciled"
    operators.processes[leader].kill()  # SIGKILL: no release, the Lease must expire
    last = lease_spec(karmada, namespace, LEASE)
    # A change only the new leader can carry out: a third cluster joins.
    set_clusters(karmada, namespace, [*spec["clusters"], {"id": "member3", "replicas": 1}])
    wait_until(
        lambda: holder(karmada, namespace) == standby,
        timeout=DURATION + MARGIN,
        what=f"{standby} taking the Lease over within {DURATION:g}s + {MARGIN:g}s",
    )
    assert_waited_out(last, lease_spec(karmada, namespace, LEASE))
    wait_reached(karmada, namespace, operators)
    assert passes(operators, standby) > 0
    counts = collections.Counter(placed_events(karmada, namespace))
    assert counts == {"member1": 1, "member2": 1, "member3": 1}, counts
    status = federation(karmada, namespace)["status"]
    assert status["ready"] == "4/4"
