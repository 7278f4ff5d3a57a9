"""The member operator end to end: real kube-apiserver, real etcd pods via the hostlet,
the operator as a real process. One XlineCluster walks through its whole life."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_kube.conftest import (
    API,
    MemberOperator,
    consensus_view,
    member_url,
    xline_cluster,
)
from tests.support import etcd_versions
from tests.support.stack._client import ApiError, KubeClient
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.api.engines import Engine, profile
from xlinefed.consensus.client import ConsensusClient
from xlinefed.topology import member_name

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NAME = "kfed"


def resource(member1: KubeClient, namespace: str) -> dict[str, Any]:
    return member1.get(API, "XlineCluster", f"{NAME}-member1", namespace)


def reached(member1: KubeClient, namespace: str, replicas: int) -> bool:
    obj = resource(member1, namespace)
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("phase") == "Available"
        and status.get("ready") == f"{replicas}/{replicas}"
        and status.get("currentStep") is None
    )


def wait_reached(member1: KubeClient, namespace: str, replicas: int, op: MemberOperator) -> None:
    try:
        wait_until(
            lambda: reached(member1, namespace, replicas),
            timeout=150,
            what=f"{replicas} members Available",
        )
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{op.tail()}") from None


def endpoints(member1: KubeClient, namespace: str) -> list[str]:
    spec = resource(member1, namespace)["spec"]
    return [
        member_url(NAME, namespace, member_name(NAME, "member1", i))
        for i in range(spec["replicas"])
    ]


def scale(member1: KubeClient, namespace: str, replicas: int) -> None:
    member1.patch(
        API,
        "XlineCluster",
        f"{NAME}-member1",
        {"spec": {"replicas": replicas, "clusters": [{"id": "member1", "replicas": replicas}]}},
        namespace=namespace,
    )


def events(member1: KubeClient, namespace: str) -> list[dict[str, Any]]:
    items = member1.list("v1", "Event", namespace)
    # In the order they were created: timestamps have whole seconds, and two steps a
    # fraction of a second apart would tie. The resourceVersion of an object created on
    # this one API server is its store revision, which only grows (kopf posts every Event
    # as a new object, never an update).
    return sorted(
        (e for e in items if e["involvedObject"].get("kind") == "XlineCluster"),
        key=lambda e: int(e["metadata"]["resourceVersion"]),
    )


def test_create_three_members(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    member1.create(xline_cluster(NAME, member_namespace, 3))
    wait_reached(member1, member_namespace, 3, operator)
    pods = member1.list("v1", "Pod", member_namespace)
    names = {member_name(NAME, "member1", i) for i in range(3)}
    assert {p["metadata"]["name"] for p in pods} == names
    assert all(p["status"]["phase"] == "Running" for p in pods)
    voters, learners, leaders, _ = consensus_view(endpoints(member1, member_namespace))
    assert voters == names and not learners
    assert len(leaders) == 1 and 0 not in leaders
    service = member1.get("v1", "Service", NAME, member_namespace)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    # No certificates are mounted on Kubernetes yet: the status must not hide it.
    status = resource(member1, member_namespace)["status"]
    assert any(w.startswith("plain text:") for w in status.get("warnings", []))


def test_scale_out_and_in_under_a_writer(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    with SequencedWriter(lambda: endpoints(member1, member_namespace)) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        scale(member1, member_namespace, 5)
        wait_reached(member1, member_namespace, 5, operator)
        voters, learners, _, _ = consensus_view(endpoints(member1, member_namespace))
        assert len(voters) == 5 and not learners
        scale(member1, member_namespace, 3)
        wait_reached(member1, member_namespace, 3, operator)
    report = writer.verify(endpoints(member1, member_namespace))
    assert report.acknowledged > 0 and report.lost == []
    voters, learners, _, _ = consensus_view(endpoints(member1, member_namespace))
    assert voters == {member_name(NAME, "member1", i) for i in range(3)} and not learners
    # Scale-in removed the highest ordinals; their pods are gone, their PVCs retained.
    pods = {p["metadata"]["name"] for p in member1.list("v1", "Pod", member_namespace)}
    assert pods == voters
    pvcs = {
        p["metadata"]["name"] for p in member1.list("v1", "PersistentVolumeClaim", member_namespace)
    }
    assert {f"data-{NAME}-member1-3", f"data-{NAME}-member1-4"} <= pvcs
    reasons = [e["reason"] for e in events(member1, member_namespace)]
    assert reasons.count("AddLearner") >= 2 and reasons.count("PromoteLearner") >= 2
    # Learners were promoted only when caught up: each promotion's Event records the lag.
    lags = [
        int(re.search(r"\((\d+) entries behind", e["message"]).group(1))  # type: ignore[union-attr]
        for e in events(member1, member_namespace)
        if e["reason"] == "PromoteLearner"
    ]
    strategy = resource(member1, member_namespace)["spec"].get("updateStrategy") or {}
    max_lag = strategy.get("maxPromoteLag", profile(Engine.ETCD).default_promote_lag)
    assert lags and all(lag <= max_lag for lag in lags), lags


def test_metrics_count_steps_and_members(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    def scrape() -> str:
        url = f"http://127.0.0.1:{operator.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()

    text = scrape()
    added = re.search(r'xlinefed_steps_applied_total\{kind="AddLearner"\} (\S+)', text)
    assert added is not None and float(added.group(1)) >= 2
    voters = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("xlinefed_members{")
        and 'role="voter"' in line
        and 'healthy="true"' in line
    ]
    assert voters == [3.0]
    assert "xlinefed_step_duration_seconds_bucket" in text
    assert "xlinefed_lock_wait_seconds_count" in text


def client_service_addresses(member1: KubeClient, namespace: str) -> set[str]:
    """The ready pods' addresses the client Service selects, as its EndpointSlices list
    them. The endpointslice controller cannot be used here: the API server refuses
    loopback addresses in EndpointSlices, and the test kubelet's pods live on
    127.0.0.0/8; so the Service's own selector is evaluated by the real API server."""
    service = member1.get("v1", "Service", f"{NAME}-client", namespace)
    selector = ",".join(f"{k}={v}" for k, v in service["spec"]["selector"].items())
    return {
        pod["status"]["podIP"]
        for pod in member1.list("v1", "Pod", namespace, labelSelector=selector)
        if pod["metadata"].get("deletionTimestamp") is None
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (pod.get("status") or {}).get("conditions", [])
        )
    }


class ClientServiceSampler:
    """During a scale-out, asks every address behind the client Service whether it is a
    learner: an application connecting through the Service must never reach one (a
    learner refuses client requests with "rpc not supported for learner")."""

    def __init__(self, member1: KubeClient, namespace: str) -> None:
        self.member1, self.namespace = member1, namespace
        self.samples = 0
        self.learners_reached: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ClientServiceSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        while not self._stop.is_set():
            addresses = client_service_addresses(self.member1, self.namespace)
            for address in addresses:
                url = f"http://{address}:2379"
                try:
                    async with ConsensusClient([url], timeout=2.0) as client:
                        status = await client.status(url)
                except Exception:
                    continue  # a member that stopped answering is not a learner
                if status.is_learner:
                    self.learners_reached.append(address)
            self.samples += 1
            self._stop.wait(0.05)  # sampling period, not synchronisation


def test_the_client_service_reaches_voters_only(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    pods = {p["metadata"]["name"]: p for p in member1.list("v1", "Pod", member_namespace)}
    voter_ips = {p["status"]["podIP"] for p in pods.values()}
    try:
        wait_until(
            lambda: client_service_addresses(member1, member_namespace) == voter_ips,
            timeout=60,
            what="the client Service's endpoints to be the three voters",
        )
    except AssertionError as error:
        labels = {
            p["metadata"]["name"]: p["metadata"].get("labels")
            for p in member1.list("v1", "Pod", member_namespace)
        }
        raise AssertionError(f"{error}\nvoters {voter_ips}\npod labels {labels}") from None
    status = resource(member1, member_namespace)["status"]
    clusterset = f"http://{NAME}-client.{member_namespace}.svc.clusterset.local:2379"
    assert set(status["endpoints"]) == {*endpoints(member1, member_namespace), clusterset}
    with ClientServiceSampler(member1, member_namespace) as sampler:
        scale(member1, member_namespace, 4)
        wait_reached(member1, member_namespace, 4, operator)
        wait_until(
            lambda: len(client_service_addresses(member1, member_namespace)) == 4,
            timeout=60,
            what="the promoted member behind the client Service",
        )
    assert sampler.samples > 0 and sampler.learners_reached == [], sampler.learners_reached
    labels = {
        p["metadata"]["name"]: p["metadata"]["labels"].get("xlinefed.io/role")
        for p in member1.list("v1", "Pod", member_namespace)
    }
    assert set(labels.values()) == {"voter"}, labels
    scale(member1, member_namespace, 3)
    wait_reached(member1, member_namespace, 3, operator)


def test_rolling_update_moves_leadership_first(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    eps = endpoints(member1, member_namespace)
    _, _, leaders_before, term_before = consensus_view(eps)
    seen_before = len(events(member1, member_namespace))
    member1.patch(
        API,
        "XlineCluster",
        f"{NAME}-member1",
        {"spec": {"version": "3.4.24"}},
        namespace=member_namespace,
    )
    wait_reached(member1, member_namespace, 3, operator)
    pods = member1.list("v1", "Pod", member_namespace)
    assert {p["metadata"]["annotations"]["xlinefed.io/version"] for p in pods} == {"3.4.24"}
    new = events(member1, member_namespace)[seen_before:]
    steps = [
        (e["reason"], e["message"])
        for e in new
        if e["reason"] in ("RestartMember", "TransferLeadership")
    ]
    restarts = [m for r, m in steps if r == "RestartMember"]
    transfers = [m for r, m in steps if r == "TransferLeadership"]
    assert len(restarts) == 3 and len(transfers) == 1
    # The old leader restarted only after leadership had moved away from it.
    transfer_at = next(i for i, (r, _) in enumerate(steps) if r == "TransferLeadership")
    old_leader = transfers[0].split(" from ")[1].split(" to ")[0]
    restart_of_leader = next(
        i for i, (r, m) in enumerate(steps) if r == "RestartMember" and f" {old_leader} " in m
    )
    assert transfer_at < restart_of_leader
    # No unplanned election: the term moved once, for the planned transfer.
    _, _, leaders_after, term_after = consensus_view(eps)
    assert len(leaders_after) == 1
    assert term_after - term_before == len(transfers), (term_before, term_after, steps)
    assert leaders_before != leaders_after


def test_a_member_whose_volume_empties_is_replaced_not_restarted_empty(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    """Issue 16, finding 8: the PVC object is kept but the volume's contents are gone.
    The pod's start guard reads the volume, refuses to start the member empty under its
    old identity, and the operator replaces it (remove, then add back as a learner)."""
    status = resource(member1, member_namespace)["status"]
    victim = next(m for m in status["members"] if not m.get("leader"))
    old_id = victim["id"]
    pvc = member1.get("v1", "PersistentVolumeClaim", f"data-{victim['name']}", member_namespace)
    volume = member1.get("v1", "PersistentVolume", pvc["spec"]["volumeName"])
    host_dir = Path(volume["spec"]["hostPath"]["path"])
    found = sorted(str(p.relative_to(host_dir)) for p in host_dir.rglob("*"))[:20]
    assert (host_dir / "data" / "member" / "wal").is_dir(), f"no WAL on the volume: {found}"
    pod = member1.get("v1", "Pod", victim["name"], member_namespace)
    pid = int(pod["status"]["containerStatuses"][0]["containerID"].split("://")[1])
    seen_before = len(events(member1, member_namespace))
    with SequencedWriter(lambda: endpoints(member1, member_namespace)) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not _alive(pid), timeout=10, what="the member's process gone")
        for child in host_dir.iterdir():  # the volume empties; the PVC stays
            shutil.rmtree(child) if child.is_dir() else child.unlink()

        def replaced() -> bool:
            now = resource(member1, member_namespace).get("status") or {}
            member = next((m for m in now.get("members", []) if m["name"] == victim["name"]), {})
            return member.get("id") not in (None, old_id) and reached(member1, member_namespace, 3)

        wait_until(replaced, timeout=150, what=f"{victim['name']} replaced under a new id")
    report = writer.verify(endpoints(member1, member_namespace))
    assert report.acknowledged > 0 and report.lost == []
    new = [(e["reason"], e["message"]) for e in events(member1, member_namespace)[seen_before:]]
    assert (
        "RemoveMember",
        f"remove {victim['name']} from the member list (its data is gone)",
    ) in new
    voters, learners, leaders, _ = consensus_view(endpoints(member1, member_namespace))
    assert len(voters) == 3 and not learners and len(leaders) == 1


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def test_operator_killed_mid_scale_converges_after_restart(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    scale(member1, member_namespace, 5)
    wait_until(
        lambda: (resource(member1, member_namespace).get("status") or {}).get("phase") == "Scaling",
        timeout=60,
        what="the scale-out under way",
    )
    operator.kill()
    operator.start()
    wait_reached(member1, member_namespace, 5, operator)
    voters, learners, leaders, _ = consensus_view(endpoints(member1, member_namespace))
    assert len(voters) == 5 and not learners and len(leaders) == 1


def test_operator_killed_at_every_step_boundary_converges(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    """kill -9 the operator right after each step it reports (its Event), restart it, and
    repeat through a whole scale-in: it resumes from the store every time."""
    seen = len(events(member1, member_namespace))
    scale(member1, member_namespace, 3)
    kills = 0
    while not reached(member1, member_namespace, 3):

        def next_step(seen: int = seen) -> bool:
            steps = [
                e
                for e in events(member1, member_namespace)[seen:]
                if e["reason"] in ("RemoveMember", "DeleteMember", "TransferLeadership")
            ]
            return bool(steps) or reached(member1, member_namespace, 3)

        wait_until(next_step, timeout=120, what="the next step or convergence")
        if reached(member1, member_namespace, 3):
            break
        operator.kill()
        kills += 1
        seen = len(events(member1, member_namespace))
        operator.start()
        assert kills <= 10, "more step boundaries than a 5 -> 3 scale-in has"
    assert kills >= 1
    voters, learners, leaders, _ = consensus_view(endpoints(member1, member_namespace))
    assert voters == {member_name(NAME, "member1", i) for i in range(3)} and not learners
    assert len(leaders) == 1


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        (
            {"clusters": [{"id": "member1", "replicas": 3}, {"id": "member1", "replicas": 1}]},
            "spec.clusters",
        ),
        ({"replicas": -1}, "spec.replicas"),
        ({"engine": "zookeeper"}, "spec.engine"),
        ({"network": {"dnsTemplate": "{cluster}.example"}}, "spec.network.dnsTemplate"),
        ({"updateStrategy": {"partitions": {"member1": 9}}}, "spec.updateStrategy.partitions"),
        ({"version": "3.3.0"}, "spec.version"),
    ],
)
def test_bad_specs_are_rejected_by_the_apiserver(
    member1: KubeClient,
    member_namespace: str,
    operator: MemberOperator,
    patch: dict[str, Any],
    field: str,
) -> None:
    before = resource(member1, member_namespace)
    with pytest.raises(ApiError) as raised:
        member1.patch(
            API, "XlineCluster", f"{NAME}-member1", {"spec": patch}, namespace=member_namespace
        )
    assert raised.value.status == 422
    assert field in raised.value.body
    after = resource(member1, member_namespace)
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


def test_version_upgrade_one_minor_under_a_writer(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    """3.4 → 3.5 through the member operator: the test kubelet runs the release an image
    tag names (hack/etcd/build.sh's cache; Debian's 3.4.23 for any 3.4). The skip to 3.6 is
    refused by the real apiserver's transition rule first. Then every acknowledged write
    reads back, every member's Maintenance.Status reports the release, and the member list
    keeps its ids (a roll restarts in place)."""
    target, skip = etcd_versions.release_of("3.5"), etcd_versions.release_of("3.6")
    before = resource(member1, member_namespace)
    with pytest.raises(ApiError) as raised:
        member1.patch(
            API,
            "XlineCluster",
            f"{NAME}-member1",
            {"spec": {"version": skip}},
            namespace=member_namespace,
        )
    assert raised.value.status == 422 and "skips a minor version" in raised.value.body
    assert (
        resource(member1, member_namespace)["metadata"]["generation"]
        == (before["metadata"]["generation"])
    )

    def reported() -> tuple[set[str], set[int]]:
        async def read() -> tuple[set[str], set[int]]:
            eps = endpoints(member1, member_namespace)
            async with ConsensusClient(eps, timeout=3.0) as client:
                versions = {(await client.status(e)).version for e in eps}
                ids = {m.id for m in await client.member_list()}
            return versions, ids

        return asyncio.run(read())

    _, ids = reported()
    with SequencedWriter(lambda: endpoints(member1, member_namespace)) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        member1.patch(
            API,
            "XlineCluster",
            f"{NAME}-member1",
            {"spec": {"version": target}},
            namespace=member_namespace,
        )
        wait_until(lambda: reported()[0] == {target}, timeout=180, what=f"every member on {target}")
        wait_reached(member1, member_namespace, 3, operator)
        count = len(writer.acknowledged)
        wait_until(lambda: len(writer.acknowledged) >= count + 5, timeout=30, what="later writes")
    report = writer.verify(endpoints(member1, member_namespace))
    assert report.acknowledged > 0 and report.lost == []
    versions, now_ids = reported()
    assert versions == {target} and now_ids == ids
    pods = member1.list("v1", "Pod", member_namespace)
    assert {p["metadata"]["annotations"]["xlinefed.io/version"] for p in pods} == {target}


def test_delete_removes_pods_and_keeps_pvcs(
    member1: KubeClient, member_namespace: str, operator: MemberOperator
) -> None:
    member1.delete(API, "XlineCluster", f"{NAME}-member1", member_namespace)
    wait_until(
        lambda: not member1.list("v1", "Pod", member_namespace), timeout=90, what="pods deleted"
    )
    wait_until(
        lambda: (
            member1.get_or_none(API, "XlineCluster", f"{NAME}-member1", member_namespace) is None
        ),
        timeout=60,
        what="the finalizer released",
    )
    pvcs = member1.list("v1", "PersistentVolumeClaim", member_namespace)
    assert len(pvcs) == 5  # storage.onScaleIn: retain (the default)
