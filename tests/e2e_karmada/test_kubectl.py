"""`kubectl xlinefed` (the real `kubectl-xlinefed` entry point, in a subprocess) against the
real Karmada API server of the test stack.

Kept cheap for CI: no member operator and no etcd pod runs here.
- `status`: the XlineFederation and its XlineClusters are written on the Karmada API
  server directly, status included (a namespace no operator watches, no
  PropagationPolicy, so nothing else writes there): their status is what the federation
  operator and Karmada write for a running 3-member federation across two clusters (built
  from our own `ConsensusStatus` model, so it passes the CRD's schema).
- `pause` / `resume`: the real federation operator runs on a second namespace, and its
  own report (Progressing=Paused for the current generation) is waited for.
- Errors: a missing name, a member cluster's API server (not Karmada), a closed port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e_karmada.test_federation import Operators
from tests.e2e_kube.conftest import install_crds
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from xlinefed.api.loading import parse
from xlinefed.api.models import Condition as ConditionModel
from xlinefed.api.models import (
    ConditionType,
    ConsensusStatus,
    MemberRole,
    MemberStatus,
    Phase,
    StepStatus,
    XlineFederation,
)
from xlinefed.placement import split
from xlinefed.platforms.karmada.manifests import xline_cluster

pytestmark = [pytest.mark.stack]

API = "xlinefed.io/v1alpha1"
PLUGIN = Path(sys.executable).parent / "kubectl-xlinefed"


def kubectl_xlinefed(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "COLUMNS": "250"}
    return subprocess.run([str(PLUGIN), *args], env=env, capture_output=True, text=True, timeout=60)


def _namespace(karmada: KubeClient, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    karmada.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


@pytest.fixture(scope="module")
def day2(
    stack: Stack, karmada: KubeClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Operators]]:
    """(namespace of written status, namespace the federation operator runs on, it)."""
    install_crds(karmada)
    written, operated = _namespace(karmada, "kc"), _namespace(karmada, "kco")
    operators = Operators(stack, operated, tmp_path_factory.mktemp("kubectl-operators"))
    operators.start("federation")
    try:
        yield written, operated, operators
    finally:
        operators.stop_all()
        for namespace in (written, operated):
            karmada.delete("v1", "Namespace", namespace)


def _document(status: ConsensusStatus) -> dict[str, Any]:
    return status.model_dump(by_alias=True, exclude_none=True, mode="json")


def _member(name: str, cluster: str, index: int, **extra: Any) -> MemberStatus:
    return MemberStatus(
        name=name,
        cluster=cluster,
        id=f"{abs(hash(name)) % 2**32:x}",
        role=extra.pop("role", MemberRole.VOTER),
        version="3.4.23",
        healthy=True,
        raft_index=index,
        **extra,
    )


def _condition(kind: ConditionType, status: str, reason: str, message: str) -> ConditionModel:
    return ConditionModel(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time="2026-12-07T12:00:00Z",
        observed_generation=1,
    )


def write_running_federation(karmada: KubeClient, namespace: str, name: str) -> None:
    spec = {
        "engine": "etcd",
        "version": "3.4.23",
        "clusters": [{"id": "member1", "replicas": 2}, {"id": "member2", "replicas": 1}],
    }
    karmada.create(
        {
            "apiVersion": API,
            "kind": "XlineFederation",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec,
        }
    )
    members = [
        _member(f"{name}-member1-0", "member1", 120, leader=True),
        _member(f"{name}-member1-1", "member1", 118),
        _member(f"{name}-member2-0", "member2", 97, role=MemberRole.LEARNER),
    ]
    conditions = [
        _condition(ConditionType.AVAILABLE, "True", "QuorumServing", "leader, 3 of 3 ready"),
        _condition(ConditionType.PROGRESSING, "True", "Scaling", "promoting a learner"),
        _condition(ConditionType.DEGRADED, "False", "AllHealthy", "3 of 3 members ready"),
    ]
    promote = StepStatus(
        kind="PromoteLearner",
        member=f"{name}-member2-0",
        reason=f"promote {name}-member2-0 once it has caught up",
    )
    federation_status = ConsensusStatus(
        phase=Phase.SCALING,
        observed_generation=1,
        conditions=conditions,
        members=members,
        leader=f"{name}-member1-0",
        current_step=promote.model_copy(update={"reason": f"member2: {promote.reason}"}),
        ready="3/3",
        clusters="member1=2,member2=1",
        version="3.4.23",
    )
    karmada.patch(
        API,
        "XlineFederation",
        name,
        {"status": _document(federation_status)},
        namespace=namespace,
        subresource="status",
    )
    # Each member cluster's XlineCluster on Karmada, as the federation operator places
    # it and with the status Karmada collected from that cluster.
    # Each member cluster's XlineCluster on Karmada, as the federation operator places
    # it (our own split), with the status Karmada collected from that cluster.
    stored = karmada.get(API, "XlineFederation", name, namespace)
    placed = split(parse(XlineFederation, stored))
    for cluster, step in (("member1", None), ("member2", promote)):
        karmada.create(xline_cluster(placed[cluster]))
        own = ConsensusStatus(
            phase=Phase.SCALING if step else Phase.AVAILABLE,
            observed_generation=1,
            members=members,
            leader=f"{name}-member1-0",
            current_step=step,
        )
        karmada.patch(
            API,
            "XlineCluster",
            f"{name}-{cluster}",
            {"status": _document(own)},
            namespace=namespace,
            subresource="status",
        )


@pytest.fixture(scope="module")
def shown(karmada: KubeClient, day2: tuple[str, str, Operators]) -> str:
    """The namespace of the written running federation `shown`."""
    write_running_federation(karmada, day2[0], "shown")
    return day2[0]


def test_status_shows_every_member_the_leader_lag_and_step(stack: Stack, shown: str) -> None:
    namespace = shown
    done = kubectl_xlinefed(stack.karmada_kubeconfig, "status", "shown", "-n", namespace)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert f"XlineFederation {namespace}/shown" in out
    assert "phase Scaling" in out and "paused no" in out
    assert "members: spec 3, in the member list 3, ready 3/3" in out
    assert "leader shown-member1-0" in out
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if "│ shown-" in line}
    assert set(lines) == {"shown-member1-0", "shown-member1-1", "shown-member2-0"}, out
    cells = {m: [c.strip() for c in line.split("│")[1:-1]] for m, line in lines.items()}
    # member, cluster, role, leader, version, healthy, raft index, lag, step
    assert cells["shown-member1-0"][1:8] == ["member1", "voter", "★", "3.4.23", "yes", "120", "0"]
    assert cells["shown-member1-1"][6:8] == ["118", "2"]
    assert cells["shown-member2-0"][1:3] == ["member2", "learner"]
    assert cells["shown-member2-0"][7] == "23"
    assert cells["shown-member2-0"][8].startswith("PromoteLearner: promote shown-member2-0")
    assert cells["shown-member1-0"][8] == "" and cells["shown-member1-1"][8] == ""

    as_json = kubectl_xlinefed(
        stack.karmada_kubeconfig, "status", "shown", "-n", namespace, "-o", "json"
    )
    assert as_json.returncode == 0, as_json.stderr
    assert '"clusterStatus"' in as_json.stdout


def test_kubectl_runs_it_as_its_xlinefed_plugin(stack: Stack, shown: str) -> None:
    """kubectl (Debian's package) finds `kubectl-xlinefed` on PATH, as users run it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (Debian package kubectl)")
    env = {
        **os.environ,
        "PATH": f"{PLUGIN.parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "COLUMNS": "250",
    }
    done = subprocess.run(
        [kubectl, "xlinefed", "status", "shown", "-n", shown],
        env={**env, "KUBECONFIG": str(stack.karmada_kubeconfig)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "leader shown-member1-0" in done.stdout and "shown-member2-0" in done.stdout


def _progressing(karmada: KubeClient, namespace: str, name: str) -> tuple[str | None, bool]:
    """Progressing's reason, and whether the status describes the current generation."""
    body = karmada.get(API, "XlineFederation", name, namespace)
    status = body.get("status") or {}
    reason = next(
        (c["reason"] for c in status.get("conditions", []) if c["type"] == "Progressing"), None
    )
    return reason, status.get("observedGeneration") == body["metadata"]["generation"]


def test_pause_and_resume_flip_spec_paused_and_the_operator_reports_it(
    stack: Stack, karmada: KubeClient, day2: tuple[str, str, Operators]
) -> None:
    _, namespace, operators = day2
    karmada.create(
        {
            "apiVersion": API,
            "kind": "XlineFederation",
            "metadata": {"name": "held", "namespace": namespace},
            "spec": {
                "engine": "etcd",
                "version": "3.4.23",
                "clusters": [{"id": "member1", "replicas": 1}],
            },
        }
    )
    kubeconfig = stack.karmada_kubeconfig
    wait_until(
        lambda: _progressing(karmada, namespace, "held")[1],
        timeout=60,
        what="the federation operator's first pass",
    )

    paused = kubectl_xlinefed(kubeconfig, "pause", "held", "-n", namespace)
    assert paused.returncode == 0, paused.stderr
    assert "spec.paused false → true" in paused.stdout, paused.stdout
    body = karmada.get(API, "XlineFederation", "held", namespace)
    assert body["spec"]["paused"] is True
    managers = {f["manager"] for f in body["metadata"].get("managedFields", [])}
    assert "kubectl-xlinefed" in managers
    try:
        wait_until(
            lambda: _progressing(karmada, namespace, "held") == ("Paused", True),
            timeout=60,
            what="the federation operator to report Paused",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\n{operators.tails()}") from None
    again = kubectl_xlinefed(kubeconfig, "pause", "held", "-n", namespace)
    assert again.returncode == 0, again.stderr
    assert "is already paused" in again.stdout and "nothing changed" in again.stdout
    shown = kubectl_xlinefed(kubeconfig, "status", "held", "-n", namespace)
    assert shown.returncode == 0, shown.stderr
    assert "paused yes" in shown.stdout and "phase Paused" in shown.stdout, shown.stdout

    resumed = kubectl_xlinefed(kubeconfig, "resume", "held", "-n", namespace)
    assert resumed.returncode == 0, resumed.stderr
    assert "spec.paused true → false" in resumed.stdout
    assert karmada.get(API, "XlineFederation", "held", namespace)["spec"]["paused"] is False
    wait_until(
        lambda: (p := _progressing(karmada, namespace, "held"))[1] and p[0] != "Paused",
        timeout=60,
        what="the federation operator to report it resumed",
    )
    assert (
        "is already not paused"
        in kubectl_xlinefed(kubeconfig, "resume", "held", "-n", namespace).stdout
    )


def test_a_missing_name_says_where_it_looked(
    stack: Stack, day2: tuple[str, str, Operators]
) -> None:
    namespace = day2[0]
    done = kubectl_xlinefed(stack.karmada_kubeconfig, "status", "nowhere", "-n", namespace)
    assert done.returncode == 1
    assert "XlineFederation 'nowhere' not found" in done.stderr
    assert f"namespace {namespace!r}" in done.stderr and "context karmada" in done.stderr
    paused = kubectl_xlinefed(stack.karmada_kubeconfig, "pause", "nowhere", "-n", namespace)
    assert paused.returncode == 1 and "not found" in paused.stderr


def test_a_member_api_server_is_not_karmada(stack: Stack, day2: tuple[str, str, Operators]) -> None:
    member = stack.members[0]
    done = kubectl_xlinefed(stack.member_kubeconfig(member), "status", "shown")
    assert done.returncode == 1
    assert "is not a Karmada API server" in done.stderr, done.stderr
    assert f"context {member}" in done.stderr


def test_an_unreachable_api_server_is_named(stack: Stack, tmp_path: Path) -> None:
    """A real closed port on loopback (nothing listens on port 1)."""
    config = yaml.safe_load(stack.karmada_kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:1"
    closed = tmp_path / "closed.yaml"
    closed.write_text(yaml.safe_dump(config))
    done = kubectl_xlinefed(closed, "status", "shown")
    assert done.returncode == 1
    assert "cannot reach the API server" in done.stderr and "127.0.0.1:1" in done.stderr


def test_a_kubeconfig_list_uses_the_first_files_current_context(stack: Stack, shown: str) -> None:
    """As kubectl does: in KUBECONFIG=a:b the first file that sets current-context wins
    (kubernetes_asyncio's own merge lets the last one win)."""
    listed = f"{stack.karmada_kubeconfig}{os.pathsep}{stack.member_kubeconfig(stack.members[0])}"
    env = {**os.environ, "KUBECONFIG": listed, "COLUMNS": "250"}
    done = subprocess.run(
        [str(PLUGIN), "status", "shown", "-n", shown],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "leader shown-member1-0" in done.stdout
