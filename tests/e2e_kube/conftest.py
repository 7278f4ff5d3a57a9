"""The member operator against a real kube-apiserver, with hostlets running real etcd."""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack, free_port
from tests.support.wait import wait_until
from xlinefed.certificates import Issued
from xlinefed.consensus.client import ClientTLS, ConsensusClient, MemberInfo

REPO = Path(__file__).resolve().parents[2]
API = "xlinefed.io/v1alpha1"


def install_crds(client: KubeClient) -> None:
    for path in sorted((REPO / "deploy" / "crds").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                client.apply(doc)
    for name in (
        "xlineclusters.xlinefed.io",
        "xlinefederations.xlinefed.io",
        "xlinebackups.xlinefed.io",
    ):
        wait_until(
            lambda name=name: any(
                c["type"] == "Established" and c["status"] == "True"
                for c in client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", name)
                .get("status", {})
                .get("conditions", [])
            ),
            timeout=30,
            what=f"CRD {name} established",
        )


#: Short Lease timing for tests (production: 15/10/2): an operator restarted after a
#: SIGKILL waits out its predecessor's Lease before it reconciles.
#: Not shorter: on a loaded 2-core CI machine an API request can take seconds, and a
#: leader that misses its renew deadline stands down for a lease.
LEASE_ENV = {
    "XLINEFED_LEASE_DURATION": "8",
    "XLINEFED_LEASE_RENEW_DEADLINE": "6",
    "XLINEFED_LEASE_RETRY_PERIOD": "1",
}


class MemberOperator:
    """`xlinefed member-operator` as a real process, stopped by PID."""

    def __init__(
        self, stack: Stack, cluster: str, namespace: str, log: Path, identity: str | None = None
    ) -> None:
        self.stack, self.cluster, self.namespace, self.log = stack, cluster, namespace, log
        self.identity = identity
        self.process: subprocess.Popen[bytes] | None = None
        self.metrics_port = free_port()

    def start(self) -> None:
        env = {
            **os.environ,
            **LEASE_ENV,
            "KUBECONFIG": str(self.stack.member_kubeconfig(self.cluster)),
            "XLINEFED_RECONCILE_INTERVAL": "1",
        }
        if self.identity is not None:
            env["XLINEFED_LEASE_IDENTITY"] = self.identity
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xlinefed.cli",
                    "member-operator",
                    "--cluster-id",
                    self.cluster,
                    "--namespace",
                    self.namespace,
                    "--metrics-port",
                    str(self.metrics_port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="module")
def member1(stack: Stack) -> KubeClient:
    client = stack.member("member1")
    install_crds(client)
    return client


@pytest.fixture(scope="module")
def member_namespace(member1: KubeClient) -> Iterator[str]:
    name = "xf-member"
    member1.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name


@pytest.fixture(scope="module")
def operator(
    stack: Stack, member_namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MemberOperator]:
    log = tmp_path_factory.mktemp("operator") / "member1.log"
    op = MemberOperator(stack, "member1", member_namespace, log)
    op.start()
    yield op
    op.stop()


def xline_cluster(name: str, namespace: str, replicas: int, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "XlineCluster",
        "metadata": {"name": f"{name}-member1", "namespace": namespace},
        "spec": {
            "engine": "etcd",
            "version": "3.4.23",
            "federation": name,
            "clusterId": "member1",
            "replicas": replicas,
            "clusters": [{"id": "member1", "replicas": replicas}],
            **spec,
        },
    }


def member_url(federation: str, namespace: str, member: str) -> str:
    return f"http://{member}.member1.{federation}.{namespace}.svc.clusterset.local:2379"


def _named(member: MemberInfo) -> str:
    """The entry's name, else the member its peer URL names (`<member>.<cluster>…`), as
    the executor does: an Xline learner restarted soon after it joined can publish an
    empty name (docs/engines.md)."""
    if member.name or not member.peer_urls:
        return member.name
    return urlsplit(member.peer_urls[0]).hostname.split(".")[0]  # type: ignore[union-attr]


def consensus_view(
    endpoints: list[str], tls: ClientTLS | None = None
) -> tuple[set[str], set[str], set[int], int]:
    """(voter names, learner names, leader ids seen, highest raft term)."""

    async def read() -> tuple[set[str], set[str], set[int], int]:
        async with ConsensusClient(endpoints, timeout=3.0, tls=tls) as client:
            members = await client.member_list()
            statuses = [await client.status(e) for e in endpoints]
        return (
            {_named(m) for m in members if not m.is_learner},
            {_named(m) for m in members if m.is_learner},
            {s.leader_id for s in statuses},
            max(s.raft_term for s in statuses),
        )

    return asyncio.run(read())


def tls_secret(name: str, namespace: str, leaf: Issued, ca: Issued) -> dict[str, Any]:
    """A kubernetes.io/tls Secret with ca.crt, as cert-manager writes it."""
    data = {"tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": ca.cert}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
    }


def cluster_status(client: KubeClient, federation: str, namespace: str) -> dict[str, Any]:
    return client.get(API, "XlineCluster", f"{federation}-member1", namespace).get("status") or {}


def cluster_reached(client: KubeClient, federation: str, namespace: str, replicas: int) -> bool:
    """The member1 XlineCluster of `federation` settled at `replicas`, for its generation."""
    obj = client.get(API, "XlineCluster", f"{federation}-member1", namespace)
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("phase") == "Available"
        and status.get("ready") == f"{replicas}/{replicas}"
        and status.get("currentStep") is None
    )


def delete_cluster(client: KubeClient, federation: str, namespace: str) -> None:
    """Delete the member1 XlineCluster and wait until its finalizer ran."""
    name = f"{federation}-member1"
    client.delete(API, "XlineCluster", name, namespace)
    wait_until(
        lambda: client.get_or_none(API, "XlineCluster", name, namespace) is None,
        timeout=120,
        what=f"XlineCluster {name} deleted (its finalizer run)",
    )


def member_in(stack: Stack, namespace: str) -> KubeClient:
    """member1's API server with the CRDs installed and `namespace` present."""
    client = stack.member("member1")
    install_crds(client)
    client.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    return client
