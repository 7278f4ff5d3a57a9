"""Member pods as the member operator builds them, on the real kube-apiserver: they pass
the `restricted` Pod Security Standard (the apiserver's PodSecurity admission enforces it
for the namespace), carry the scheduling defaults, and take `spec.podTemplate` overrides
(metadata in place, everything else by the one-at-a-time rolling restart)."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e_kube.conftest import API, MemberOperator, member_url, xline_cluster
from tests.support.stack._client import ApiError, KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.topology import member_name

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NAME = "pfed"
NAMESPACE = "xf-pods"
REPLICAS = 3
MEMBERS = [member_name(NAME, "member1", i) for i in range(REPLICAS)]


@pytest.fixture(scope="module")
def restricted(member1: KubeClient) -> str:
    """A namespace where the apiserver enforces the `restricted` Pod Security Standard."""
    member1.ensure(
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": NAMESPACE,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            },
        }
    )
    return NAMESPACE


@pytest.fixture(scope="module")
def pods_operator(
    stack: Stack, restricted: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MemberOperator]:
    log = tmp_path_factory.mktemp("operator") / "member1.log"
    op = MemberOperator(stack, "member1", restricted, log)
    op.start()
    yield op
    # Deleted while the operator runs, so its finalizer stops the pods; the PVCs go too
    # (a reused stack must not hand the next run a volume of this one).
    member1 = stack.member("member1")
    if member1.get_or_none(API, "XlineCluster", f"{NAME}-member1", restricted) is not None:
        member1.delete(API, "XlineCluster", f"{NAME}-member1", restricted)
        wait_until(
            lambda: member1.get_or_none(API, "XlineCluster", f"{NAME}-member1", restricted) is None,
            timeout=120,
            what="XlineCluster deleted",
        )
    op.stop()
    for claim in member1.list("v1", "PersistentVolumeClaim", restricted):
        member1.delete("v1", "PersistentVolumeClaim", claim["metadata"]["name"], restricted)


def resource(member1: KubeClient) -> dict[str, Any]:
    return member1.get(API, "XlineCluster", f"{NAME}-member1", NAMESPACE)


def available(member1: KubeClient) -> bool:
    obj = resource(member1)
    status = obj.get("status") or {}
    return (
        status.get("observedGeneration") == obj["metadata"]["generation"]
        and status.get("phase") == "Available"
        and status.get("ready") == f"{REPLICAS}/{REPLICAS}"
        and status.get("currentStep") is None
    )


def wait_available(member1: KubeClient, op: MemberOperator, timeout: float = 180) -> None:
    try:
        wait_until(lambda: available(member1), timeout=timeout, what="members Available")
    except AssertionError as error:
        raise AssertionError(f"{error}\noperator log:\n{op.tail()}") from None


def member_pods(member1: KubeClient) -> dict[str, dict[str, Any]]:
    return {
        p["metadata"]["name"]: p
        for p in member1.list("v1", "Pod", NAMESPACE)
        if p["metadata"]["name"] in MEMBERS
    }


def endpoints() -> list[str]:
    return [member_url(NAME, NAMESPACE, m) for m in MEMBERS]


def test_the_namespace_refuses_a_pod_that_breaks_the_restricted_standard(
    member1: KubeClient, restricted: str
) -> None:
    """Proves the label is enforced here, so the next test's pods passing means something."""
    with pytest.raises(ApiError) as refused:
        member1.create(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "not-restricted", "namespace": restricted},
                "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
            }
        )
    assert refused.value.status == 403
    assert "violates PodSecurity" in str(refused.value)
    assert member1.get_or_none("v1", "Pod", "not-restricted", restricted) is None


def test_a_bad_pod_template_is_refused_by_the_apiserver_naming_field_and_fix(
    member1: KubeClient, restricted: str
) -> None:
    for template, says in (
        ({"labels": {"xlinefed.io/role": "voter"}}, "remove it"),
        ({"resources": {"requests": {"cpu": "lots"}}}, "spec.podTemplate.resources.requests"),
        ({"tolerations": [{"effect": "Sometimes"}]}, "spec.podTemplate.tolerations[0].effect"),
    ):
        bad = xline_cluster("badpods", restricted, 1, podTemplate=template)
        with pytest.raises(ApiError) as refused:
            member1.create(bad)
        assert refused.value.status == 422, refused.value
        assert "spec.podTemplate" in str(refused.value) and says in str(refused.value)


def test_member_pods_pass_the_restricted_standard_with_the_scheduling_defaults(
    member1: KubeClient, restricted: str, pods_operator: MemberOperator
) -> None:
    member1.create(xline_cluster(NAME, restricted, REPLICAS))
    wait_available(member1, pods_operator)
    wait_until(
        lambda: (
            len(member_pods(member1)) == REPLICAS
            and all(_ready(p) for p in member_pods(member1).values())
        ),
        timeout=60,
        what="every member pod Ready",
    )
    pods = member_pods(member1)
    assert set(pods) == set(MEMBERS)
    for pod in pods.values():
        spec = pod["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in [*spec["initContainers"], *spec["containers"]]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        # The scheduling defaults, as the apiserver stored (and validated) them.
        engine = spec["containers"][0]
        assert engine["resources"] == {
            "requests": {"cpu": "250m", "memory": "512Mi"},
            "limits": {"memory": "2Gi"},
        }
        selector = {"matchLabels": {"xlinefed.io/federation": NAME}}
        anti = spec["affinity"]["podAntiAffinity"]
        assert anti["preferredDuringSchedulingIgnoredDuringExecution"] == [
            {
                "weight": 100,
                "podAffinityTerm": {
                    "labelSelector": selector,
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
        assert spec["topologySpreadConstraints"] == [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": selector,
            }
        ]


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions
    )


class PodWatcher:
    """Every change of the member pods, from a watch: the fewest Ready at any moment and
    every UID each member had."""

    def __init__(self, client: KubeClient) -> None:
        # A client of its own: one connection is not to be shared between threads.
        self.client = KubeClient(client.creds)
        self.uids: dict[str, list[str]] = {m: [] for m in MEMBERS}
        self.ready: dict[str, bool] = {}
        self.fewest_ready = REPLICAS
        self.timeline: list[tuple[Any, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _see(self, pod: dict[str, Any], deleted: bool = False) -> None:
        name, uid = pod["metadata"]["name"], pod["metadata"]["uid"]
        if name not in self.uids:
            return
        if uid not in self.uids[name]:
            self.uids[name].append(uid)
        self.ready[name] = not deleted and _ready(pod)
        # (when, member, uid, phase, deleted, Ready, Ready members): shown on failure.
        self.timeline.append(
            (
                round(time.monotonic(), 2),
                name,
                uid[:6],
                (pod.get("status") or {}).get("phase"),
                deleted,
                self.ready[name],
                sum(self.ready.values()),
            )
        )
        if len(self.ready) == REPLICAS:  # once the listing has seen them all
            self.fewest_ready = min(self.fewest_ready, sum(self.ready.values()))

    def _run(self) -> None:
        path = f"/api/v1/namespaces/{NAMESPACE}/pods"
        listed = self.client.request("GET", path)
        for pod in listed["items"]:
            self._see(pod)
        version = listed["metadata"]["resourceVersion"]
        while not self._stop.is_set():
            for event in self.client.watch(path, version, timeout_seconds=5):
                obj = event["object"]
                if event["type"] == "ERROR":
                    raise AssertionError(f"pod watch failed: {obj}")
                version = obj["metadata"]["resourceVersion"]
                if event["type"] != "BOOKMARK":
                    self._see(obj, deleted=event["type"] == "DELETED")
                if self._stop.is_set():
                    return

    def __enter__(self) -> PodWatcher:
        self._thread.start()
        wait_until(lambda: len(self.ready) == REPLICAS, timeout=30, what="pods listed")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def patch_template(member1: KubeClient, template: dict[str, Any]) -> None:
    member1.patch(
        API, "XlineCluster", f"{NAME}-member1", {"spec": {"podTemplate": template}}, NAMESPACE
    )


def _identity(pod: dict[str, Any]) -> tuple[str, int, str]:
    """(pod UID, engine restarts, when the engine started): all kept by an in-place patch."""
    engine = pod["status"]["containerStatuses"][0]
    return pod["metadata"]["uid"], engine["restartCount"], engine["state"]["running"]["startedAt"]


def test_a_label_change_reaches_the_running_pods_without_restarting_them(
    member1: KubeClient, restricted: str, pods_operator: MemberOperator
) -> None:
    before = {name: _identity(pod) for name, pod in member_pods(member1).items()}
    patch_template(
        member1, {"labels": {"team": "storage"}, "annotations": {"example.com/owner": "ops"}}
    )

    def labelled() -> bool:
        pods = member_pods(member1).values()
        return len(pods) == REPLICAS and all(
            p["metadata"]["labels"].get("team") == "storage"
            and p["metadata"]["annotations"].get("example.com/owner") == "ops"
            for p in pods
        )

    wait_until(labelled, timeout=60, what="template labels on every pod")
    wait_available(member1, pods_operator)
    after = {name: _identity(pod) for name, pod in member_pods(member1).items()}
    assert after == before
    # A key dropped from the template is dropped from the pods, still in place.
    patch_template(member1, {"labels": {"team": None}, "annotations": {"example.com/owner": None}})
    wait_until(
        lambda: all(
            "team" not in p["metadata"]["labels"]
            and "example.com/owner" not in p["metadata"]["annotations"]
            for p in member_pods(member1).values()
        ),
        timeout=60,
        what="template labels removed from every pod",
    )
    after = {name: _identity(pod) for name, pod in member_pods(member1).items()}
    assert after == before


def test_a_resources_change_rolls_the_members_one_at_a_time_under_a_writer(
    member1: KubeClient, restricted: str, pods_operator: MemberOperator
) -> None:
    wanted = {"requests": {"cpu": "300m", "memory": "600Mi"}, "limits": {"memory": "3Gi"}}
    wait_until(
        lambda: all(_ready(p) for p in member_pods(member1).values()),
        timeout=60,
        what="every member pod Ready: "
        + str([p["status"].get("conditions") for p in member_pods(member1).values()]),
    )
    with PodWatcher(member1) as watcher, SequencedWriter(endpoints) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        patch_template(member1, {"resources": wanted})
        wait_until(
            lambda: (
                all(
                    p["spec"]["containers"][0]["resources"] == wanted
                    for p in member_pods(member1).values()
                )
                and len(member_pods(member1)) == REPLICAS
            ),
            timeout=240,
            what="every pod replaced with the new resources",
        )
        wait_available(member1, pods_operator)
    report = writer.verify(endpoints())
    assert report.acknowledged > 0 and report.lost == []
    # Each member replaced exactly once, and never two down together.
    assert all(len(uids) == 2 for uids in watcher.uids.values()), watcher.uids
    timeline = "\n".join(map(str, watcher.timeline))
    assert watcher.fewest_ready == REPLICAS - 1, f"{timeline}\n{pods_operator.tail(80)}"


def budget(member1: KubeClient) -> dict[str, Any] | None:
    return member1.get_or_none("policy/v1", "PodDisruptionBudget", f"{NAME}-voters", NAMESPACE)


def budget_is(member1: KubeClient, allowed: int) -> bool:
    """The operator allows `allowed` evictions of the three voters and the disruption
    controller has computed from it (for the PDB's current generation)."""
    pdb = budget(member1)
    if pdb is None:
        return False
    status = pdb.get("status") or {}
    return (
        pdb["spec"].get("minAvailable") == REPLICAS - allowed
        and status.get("observedGeneration") == pdb["metadata"]["generation"]
        and status.get("disruptionsAllowed") == allowed
    )


def evict(member1: KubeClient, pod: str) -> None:
    member1.request(
        "POST",
        f"/api/v1/namespaces/{NAMESPACE}/pods/{pod}/eviction",
        {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": pod, "namespace": NAMESPACE},
        },
    )


def engine_pid(pod: dict[str, Any]) -> int:
    """The hostlet runs the engine as a local process and names it in the containerID."""
    container_id = pod["status"]["containerStatuses"][0]["containerID"]
    assert container_id.startswith("hostlet://"), container_id
    return int(container_id.removeprefix("hostlet://"))


def test_evictions_are_refused_while_a_voter_is_down_and_allowed_when_safe(
    member1: KubeClient, restricted: str, pods_operator: MemberOperator
) -> None:
    wait_available(member1, pods_operator)
    try:
        wait_until(lambda: budget_is(member1, 1), timeout=60, what="budget of one eviction")
    except AssertionError as error:
        raise AssertionError(f"{error}: {budget(member1)}\n{pods_operator.tail(30)}") from None
    frozen = member_pods(member1)[MEMBERS[0]]
    pid = engine_pid(frozen)
    # A voter that stops answering (its process stopped, not gone: its pod stays, so
    # only the federation's view of its health says it is down).
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: budget_is(member1, 0), timeout=60, what="budget of no eviction")
        with pytest.raises(ApiError) as refused:
            evict(member1, MEMBERS[1])
        assert refused.value.status == 429, refused.value
        assert "disruption budget" in str(refused.value)
        assert member1.get_or_none("v1", "Pod", MEMBERS[1], NAMESPACE) is not None
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: budget_is(member1, 1), timeout=90, what="budget of one eviction again")
    uid = member_pods(member1)[MEMBERS[1]]["metadata"]["uid"]
    evict(member1, MEMBERS[1])
    # Evicted, the member is started again by the operator in a new pod.
    wait_until(
        lambda: (
            (pod := member_pods(member1).get(MEMBERS[1])) is not None
            and pod["metadata"]["uid"] != uid
        ),
        timeout=60,
        what="the evicted member back in a new pod",
    )
    wait_available(member1, pods_operator)
