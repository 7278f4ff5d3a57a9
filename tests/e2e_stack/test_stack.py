"""The stack itself: every process it started listens on loopback only, it is recorded in
pidfiles, and the Karmada pieces are wired (aggregated API, webhooks)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest

from tests.support.stack import ApiError, KubeClient, Stack
from tests.support.stack._procs import pidfiles_under

pytestmark = pytest.mark.stack


def _listening_inodes() -> dict[str, str]:
    """socket inode -> local address of every listening TCP socket (v4 and v6)."""
    found = {}
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address_hex = fields[1].split(":")[0]
            raw = bytes.fromhex(address_hex)
            # /proc prints each 32-bit word in host (little-endian) order.
            words = [raw[i : i + 4][::-1] for i in range(0, width // 2, 4)]
            found[fields[9]] = str(ipaddress.ip_address(b"".join(words)))
    return found


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_every_stack_process_listens_on_loopback_only(stack: Stack) -> None:
    records = [r for r in pidfiles_under(stack.state_dir / "pids") if r.alive()]
    names = {r.path.stem for r in records}
    for component in (
        "etcd",
        "karmada-apiserver",
        "karmada-kube-controller-manager",
        "karmada-webhook",
        "karmada-aggregated-apiserver",
        "karmada-controller-manager",
        "karmada-scheduler",
    ):
        assert component in names
    for member in stack.members:
        assert {
            f"{member}-apiserver",
            f"{member}-kube-controller-manager",
            f"{member}-hostlet",
        } <= names
    listening = _listening_inodes()
    for record in records:
        addresses = [listening[i] for i in _socket_inodes(record.pid) & listening.keys()]
        if not record.path.stem.endswith("-hostlet"):
            assert addresses, f"{record.path.stem} listens nowhere"
        for address in addresses:
            assert _loopback(address), (record.path.stem, address)


def test_cluster_api_is_served_by_the_aggregated_apiserver(karmada: KubeClient) -> None:
    service = karmada.get("apiregistration.k8s.io/v1", "APIService", "v1alpha1.cluster.karmada.io")
    assert service["spec"]["service"]["name"] == "karmada-aggregated-apiserver"
    assert any(
        c["type"] == "Available" and c["status"] == "True" for c in service["status"]["conditions"]
    )
    assert karmada.list("cluster.karmada.io/v1alpha1", "Cluster")


def test_karmada_webhook_rejects_an_invalid_policy(karmada: KubeClient, namespace: str) -> None:
    """A selector outside the policy's namespace passes the CRD schema; the webhook refuses it."""
    policy = {
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {
            "resourceSelectors": [
                {"apiVersion": "v1", "kind": "ConfigMap", "namespace": "somewhere-else"}
            ],
            "placement": {"clusterAffinity": {"clusterNames": ["member1"]}},
        },
    }
    with pytest.raises(ApiError) as raised:
        karmada.create(policy)
    assert raised.value.status == 403  # admission webhook denial
    assert "validating-config" in raised.value.body or "denied the request" in raised.value.body
    assert "namespace of resource selector" in raised.value.body


def test_webhook_sets_the_permanent_id_label(karmada: KubeClient, namespace: str) -> None:
    policy = {
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "PropagationPolicy",
        "metadata": {"name": "labelled", "namespace": namespace},
        "spec": {
            "resourceSelectors": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}],
            "placement": {"clusterAffinity": {"clusterNames": ["member1"]}},
        },
    }
    stored = karmada.create(policy)
    assert "propagationpolicy.karmada.io/permanent-id" in stored["metadata"]["labels"]
