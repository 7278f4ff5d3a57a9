"""Removing a field from an XlineFederation's spec reaches every member cluster.

On real Karmada: a federation is created with engineArgs, an image, a partition; each is
then removed (one map key, a scalar, a whole map, a partition), and `tls` is set and
removed while paused. Each removal must be gone from every member cluster's copy of the
XlineCluster and, where it shaped the pods, from the pods' command lines. Once the
federation has settled, the federation operator writes nothing on its passes.

This failed before the operators applied their objects server-side: a JSON merge patch of
the whole object never removes a key it does not name, so the removals stopped on
Karmada's copy and the federation stayed "waiting for … to report the new spec".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e_karmada.test_federation import MEMBERS, Operators, karmada_federation, wait_reached
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until

pytestmark = [pytest.mark.stack, pytest.mark.slow]

__all__ = ["karmada_federation"]  # the module-scoped fixture, shared with the lifecycle test

API = "xlinefed.io/v1alpha1"
NAME = "removals"
CLUSTERS = MEMBERS[:3]


def member_specs(stack: Stack, namespace: str) -> dict[str, dict[str, Any]]:
    """Each member cluster's own copy of its XlineCluster's spec."""
    return {
        member: stack.member(member).get(API, "XlineCluster", f"{NAME}-{member}", namespace)["spec"]
        for member in CLUSTERS
    }


def command_lines(stack: Stack, namespace: str) -> dict[str, str]:
    """Every member pod's command line, by pod name."""
    lines = {}
    for member in CLUSTERS:
        for pod in stack.member(member).list("v1", "Pod", namespace):
            if not pod["metadata"]["name"].startswith(f"{NAME}-"):
                continue
            container = pod["spec"]["containers"][0]
            argv = [*container.get("command", []), *container.get("args", [])]
            lines[pod["metadata"]["name"]] = " ".join(argv)
    return lines


def wait_members(
    stack: Stack, namespace: str, check: Callable[[dict[str, dict[str, Any]]], bool], what: str
) -> None:
    try:
        wait_until(lambda: check(member_specs(stack, namespace)), timeout=120, what=what)
    except AssertionError as error:
        raise AssertionError(f"{error}\nmember copies: {member_specs(stack, namespace)}") from None


def patch(karmada: KubeClient, namespace: str, spec: dict[str, Any]) -> None:
    karmada.patch(API, "XlineFederation", NAME, {"spec": spec}, namespace=namespace)


def passes_since(log: str, mark: int) -> list[int]:
    """The `written=` counts of this federation's passes logged after offset `mark`."""
    return [
        int(found.group(1))
        for line in log[mark:].splitlines()
        if f"federation={NAME} " in line + " "
        and (found := re.search(r"federation pass .*written=(\d+)", line))
    ]


def test_removed_fields_reach_every_member(
    stack: Stack, karmada: KubeClient, karmada_federation: tuple[str, Operators]
) -> None:
    namespace, operators = karmada_federation
    karmada.create(
        {
            "apiVersion": API,
            "kind": "XlineFederation",
            "metadata": {"name": NAME, "namespace": namespace},
            "spec": {
                "engine": "etcd",
                "version": "3.4.23",
                "image": "registry.example/custom-etcd",
                "engineArgs": {"snapshot-count": "20000", "auto-compaction-retention": "3"},
                "updateStrategy": {"partitions": {"member1": 1}},
                "clusters": [{"id": member, "replicas": 1} for member in CLUSTERS],
            },
        }
    )
    wait_reached(karmada, namespace, operators, NAME)
    lines = command_lines(stack, namespace)
    assert len(lines) == 3 and all("--auto-compaction-retention=3" in c for c in lines.values())

    # One key of a map and a scalar removed. member1's only member sits below its
    # partition, so it keeps the old template; the others roll.
    patch(karmada, namespace, {"engineArgs": {"auto-compaction-retention": None}, "image": None})
    wait_members(
        stack,
        namespace,
        lambda specs: all(
            s.get("engineArgs") == {"snapshot-count": "20000"} and "image" not in s
            for s in specs.values()
        ),
        "the removed engineArgs key and image gone from every member's XlineCluster",
    )
    wait_reached(karmada, namespace, operators, NAME)
    lines = command_lines(stack, namespace)
    held, rolled = f"{NAME}-member1-0", [p for p in lines if p != f"{NAME}-member1-0"]
    assert "--auto-compaction-retention=3" in lines[held], lines
    # A removed key falls back to the engine's default (etcd: one hour of revisions).
    assert all(
        "--auto-compaction-retention=3" not in lines[p]
        and "--auto-compaction-retention=1h" in lines[p]
        for p in rolled
    ), lines

    # The partition and the whole map removed: member1's member rolls too.
    patch(karmada, namespace, {"engineArgs": None, "updateStrategy": {"partitions": None}})
    wait_members(
        stack,
        namespace,
        lambda specs: all(
            not s.get("engineArgs") and not (s.get("updateStrategy") or {}).get("partitions")
            for s in specs.values()
        ),
        "engineArgs and the partition gone from every member's XlineCluster",
    )
    wait_reached(karmada, namespace, operators, NAME)
    wait_until(
        lambda: all(
            "--snapshot-count" not in c
            and "--auto-compaction-retention=3" not in c
            and "--auto-compaction-retention=1h" in c
            for c in command_lines(stack, namespace).values()
        ),
        timeout=120,
        what="no pod's command line keeps a removed engine argument",
    )

    # tls set while paused (serving TLS is not this test's subject), then removed.
    patch(karmada, namespace, {"paused": True, "tls": {"peerSecretRef": "peer-certs"}})
    wait_members(
        stack,
        namespace,
        # The federation tier writes the model's defaults (enabled, validity) beside the ref.
        lambda specs: all(
            (s.get("tls") or {}).get("peerSecretRef") == "peer-certs" for s in specs.values()
        ),
        "tls in every member's XlineCluster",
    )
    # A formed plain-text federation cannot switch to TLS: each member operator refuses it.
    wait_until(
        lambda: all(
            any(
                "spec.tls.enabled: cannot change once the federation has formed" in w
                for w in (
                    stack.member(m).get(API, "XlineCluster", f"{NAME}-{m}", namespace).get("status")
                    or {}
                ).get("warnings", [])
            )
            for m in CLUSTERS
        ),
        timeout=120,
        what="every member operator refusing to switch a formed federation to TLS",
    )
    patch(karmada, namespace, {"paused": False, "tls": None})
    wait_members(
        stack,
        namespace,
        lambda specs: all("tls" not in s and not s.get("paused") for s in specs.values()),
        "tls gone from every member's XlineCluster",
    )
    wait_reached(karmada, namespace, operators, NAME)

    # Settled: the operator's passes over this federation write nothing.
    log_path = operators.logs / "federation.log"
    mark = len(log_path.read_text(errors="replace"))
    counts = wait_until(
        lambda: (
            (c := passes_since(log_path.read_text(errors="replace"), mark)) and len(c) >= 3 and c
        ),
        timeout=120,
        what="three federation passes after the federation settled",
    )
    assert counts and all(written == 0 for written in counts), counts
