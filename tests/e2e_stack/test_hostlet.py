"""The hostlet runs pods as real processes: a pod with an etcd container becomes Running
on a member, a real etcd answers on the pod's IP and DNS name, and deleting the pod stops
the process while the claim's data stays for the next pod."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import KubeClient, Stack
from tests.support.stack._procs import start_time
from tests.support.wait import wait_until

pytestmark = pytest.mark.stack


@pytest.fixture
def member_namespace(stack: Stack) -> Iterator[tuple[KubeClient, str]]:
    """A namespace created directly in the first member (not through Karmada)."""
    client = stack.member(stack.members[0])
    name = f"h-{uuid.uuid4().hex[:8]}"
    client.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    wait_until(
        lambda: client.get_or_none("v1", "ServiceAccount", "default", name),
        timeout=30,
        what="default service account",
    )
    yield client, name
    client.delete("v1", "Namespace", name)
    # Clean up what the test started: its pods' processes are gone before the next test
    # (test_stack checks every live pod process listens somewhere, and on loopback only).
    wait_until(
        lambda: not client.list("v1", "Pod", name),
        timeout=90,
        what=f"the pods of namespace {name} gone",
    )


def _etcd_pod(name: str, namespace: str, claim: str, dns_name: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"xlinefed.io/dns-names": dns_name},
        },
        "spec": {
            "hostname": name,
            "subdomain": "etcd",
            "terminationGracePeriodSeconds": 10,
            "containers": [
                {
                    "name": "etcd",
                    "image": "quay.io/coreos/etcd:v3.5.17",
                    "command": ["/usr/local/bin/etcd"],
                    "args": [
                        "--name=$(POD_NAME)",
                        "--data-dir=/var/lib/etcd/data",
                        "--listen-client-urls=http://0.0.0.0:2379",
                        "--advertise-client-urls=http://$(POD_IP):2379",
                        "--listen-peer-urls=http://0.0.0.0:2380",
                        "--initial-advertise-peer-urls=http://$(POD_IP):2380",
                        "--initial-cluster=$(POD_NAME)=http://$(POD_IP):2380",
                    ],
                    "env": [
                        {
                            "name": "POD_NAME",
                            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
                        },
                        {
                            "name": "POD_IP",
                            "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}},
                        },
                    ],
                    "ports": [{"name": "client", "containerPort": 2379}],
                    "readinessProbe": {
                        "httpGet": {"path": "/health", "port": "client"},
                        "periodSeconds": 1,
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/var/lib/etcd"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def _ready_pod(client: KubeClient, namespace: str, name: str) -> dict:
    def ready() -> dict | None:
        pod = client.get("v1", "Pod", name, namespace)
        status = pod.get("status", {})
        conditions = {c["type"]: c["status"] for c in status.get("conditions", [])}
        if status.get("phase") == "Running" and conditions.get("Ready") == "True":
            return pod
        return None

    return wait_until(ready, timeout=60, what=f"pod {name} Running and Ready")


def _etcd(ip_or_name: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{ip_or_name}:2379{path}", data=data)
    with urllib.request.urlopen(request, timeout=3) as answer:
        return json.loads(answer.read())


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _pid(pod: dict) -> int:
    container_id = pod["status"]["containerStatuses"][0]["containerID"]
    return int(container_id.removeprefix("hostlet://"))


def test_etcd_pod_runs_answers_and_keeps_its_data(
    stack: Stack, member_namespace: tuple[KubeClient, str]
) -> None:
    client, namespace = member_namespace
    member = stack.members[0]
    client.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-e0", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    dns_name = f"e0.{member}.fed.{namespace}.svc.clusterset.local"
    client.create(_etcd_pod("e0", namespace, "data-e0", dns_name))

    pod = _ready_pod(client, namespace, "e0")
    ip = pod["status"]["podIP"]
    assert ip.startswith(stack.hostlet(member).ip_prefix + ".")
    assert pod["spec"]["nodeName"] == stack.hostlet(member).node_name
    pvc = client.get("v1", "PersistentVolumeClaim", "data-e0", namespace)
    assert pvc["status"]["phase"] == "Bound"

    # A real etcd, on the pod's own IP and under its cross-cluster DNS name.
    assert _etcd(ip, "/health")["health"] == "true"
    assert socket.gethostbyname(dns_name) == ip
    assert socket.gethostbyname(f"e0.etcd.{namespace}.svc.cluster.local") == ip
    _etcd(ip, "/v3/kv/put", {"key": _b64("answer"), "value": _b64("42")})
    pid = _pid(pod)
    assert start_time(pid) is not None

    client.delete("v1", "Pod", "e0", namespace)
    wait_until(
        lambda: client.get_or_none("v1", "Pod", "e0", namespace) is None,
        timeout=30,
        what="pod e0 removed",
    )
    assert start_time(pid) is None, "the etcd process outlived its pod"
    with pytest.raises(OSError):
        socket.create_connection((ip, 2379), timeout=1).close()
    with pytest.raises(OSError):
        socket.gethostbyname(dns_name)

    # The claim's directory outlived the pod; a new pod on the same claim sees the key.
    volume = client.get("v1", "PersistentVolume", pvc["spec"]["volumeName"])
    data_dir = Path(volume["spec"]["hostPath"]["path"])
    assert (data_dir / "data" / "member" / "snap" / "db").exists()
    client.create(_etcd_pod("e0", namespace, "data-e0", dns_name))
    pod = _ready_pod(client, namespace, "e0")
    answer = _etcd(pod["status"]["podIP"], "/v3/kv/range", {"key": _b64("answer")})
    assert base64.b64decode(answer["kvs"][0]["value"]).decode() == "42"


def test_a_dead_process_is_restarted_and_counted(
    stack: Stack, member_namespace: tuple[KubeClient, str]
) -> None:
    client, namespace = member_namespace
    client.create(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-e1", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
    )
    client.create(
        _etcd_pod("e1", namespace, "data-e1", f"e1.x.fed.{namespace}.svc.clusterset.local")
    )
    first = _ready_pod(client, namespace, "e1")
    pid = _pid(first)
    os.kill(pid, signal.SIGKILL)

    def restarted() -> dict | None:
        current = client.get("v1", "Pod", "e1", namespace)
        statuses = current["status"].get("containerStatuses", [])
        if statuses and statuses[0]["restartCount"] >= 1 and statuses[0]["ready"]:
            return current
        return None

    again = wait_until(restarted, timeout=60, what="e1 restarted and Ready")
    assert _pid(again) != pid
    assert again["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    assert _etcd(again["status"]["podIP"], "/health")["health"] == "true"


def _sleeper(name: str, namespace: str, host_dir: Path) -> dict:
    """A shell pod whose readiness is a file in a hostPath volume the test controls."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["/bin/sh", "-c", "echo started > /work/pid; exec sleep 3600"],
                    "readinessProbe": {
                        "exec": {"command": ["test", "-f", "/work/ready"]},
                        "periodSeconds": 1,
                        "failureThreshold": 1,
                    },
                    "volumeMounts": [{"name": "work", "mountPath": "/work"}],
                }
            ],
            "volumes": [{"name": "work", "hostPath": {"path": str(host_dir)}}],
        },
    }


def _ready(client: KubeClient, namespace: str, name: str) -> str | None:
    pod = client.get("v1", "Pod", name, namespace)
    conditions = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    if pod.get("status", {}).get("phase") != "Running":
        return None
    return conditions.get("Ready")


def test_readiness_follows_the_exec_probe(
    member_namespace: tuple[KubeClient, str], tmp_path: Path
) -> None:
    client, namespace = member_namespace
    client.create(_sleeper("s0", namespace, tmp_path))
    wait_until(
        lambda: _ready(client, namespace, "s0") == "False",
        timeout=30,
        what="s0 Running, not Ready",
    )
    # The process runs with /work rewritten to the hostPath directory.
    wait_until(lambda: (tmp_path / "pid").exists(), timeout=10, what="pid file written")
    (tmp_path / "ready").touch()
    wait_until(lambda: _ready(client, namespace, "s0") == "True", timeout=30, what="s0 Ready")
    (tmp_path / "ready").unlink()
    wait_until(lambda: _ready(client, namespace, "s0") == "False", timeout=30, what="s0 unready")


def test_a_restarted_hostlet_adopts_running_pods(
    stack: Stack, member_namespace: tuple[KubeClient, str], tmp_path: Path
) -> None:
    client, namespace = member_namespace
    hostlet = stack.hostlet(stack.members[0])
    (tmp_path / "ready").touch()
    client.create(_sleeper("s1", namespace, tmp_path))
    wait_until(lambda: _ready(client, namespace, "s1") == "True", timeout=30, what="s1 Ready")
    pid = _pid(client.get("v1", "Pod", "s1", namespace))

    hostlet.kill()  # like a crashed kubelet: the pod's process keeps running
    assert start_time(pid) is not None
    hostlet.start()
    wait_until(hostlet.running, timeout=10, what="hostlet running again")

    # The new agent keeps the same process and still acts on the pod: deletion stops it.
    (tmp_path / "ready").unlink()
    wait_until(lambda: _ready(client, namespace, "s1") == "False", timeout=30, what="s1 unready")
    assert _pid(client.get("v1", "Pod", "s1", namespace)) == pid
    client.delete("v1", "Pod", "s1", namespace)
    wait_until(
        lambda: client.get_or_none("v1", "Pod", "s1", namespace) is None,
        timeout=30,
        what="s1 removed",
    )
    assert start_time(pid) is None
