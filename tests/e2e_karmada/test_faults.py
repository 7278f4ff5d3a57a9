"""Whole member clusters failing under the real Karmada stack: a cluster added while it is
cut off from the others must not bootstrap a second consensus cluster and joins once its
network is up; a cluster lost for good is drained by the others after its grace period.

The cut is built like tests/chaos/_partition.py: every process's outgoing loopback
sockets leave from 127.0.0.1, so addresses alone cannot tell the clusters apart; the
sending process can. Each member cluster's hostlet is moved into a cgroup (v2) of its
own before any pod of the test starts (its pods' processes inherit it) and each member
operator starts in its cluster's cgroup; a cut is one nftables table of our own on the
output hook that drops loopback traffic between the isolated cluster's cgroup and the
other clusters' pod IP blocks (and back), connections included. The test process and the
federation operator are in no such cgroup and keep reaching everything.

Cluster ids are Karmada Cluster names, so the stack's member1, member2 and member3 play
east, west and north in the first test, and a, b and c in the second.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.chaos._partition import CGROUP_BASE, cgroup2_mount, ensure_nft, nft_table
from tests.e2e_karmada.test_federation import (
    API,
    NAME,
    Operators,
    assert_truthful,
    endpoints,
    federation,
    reached,
    set_clusters,
)
from tests.e2e_kube.conftest import LEASE_ENV, consensus_view, install_crds
from tests.support.stack import _procs
from tests.support.stack._client import KubeClient, api_enabled
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.api.models import PortsSpec
from xlinefed.topology import member_name

#: What a cluster cut off from a formed federation may say it waits for.
WAITS_WHILE_CUT = ("FederationUnreachable", "NoAnswer")

pytestmark = [pytest.mark.stack, pytest.mark.slow]

CLUSTERS = ("member1", "member2", "member3")
POLICY_API = "policy.karmada.io/v1alpha1"
MARK = "0x7a110c1d"
PORTS = (PortsSpec().client, PortsSpec().peer)
#: How long the cut-off cluster is watched waiting (it retries every second or two).
CUT_HOLD = 12.0
GRACE = 20


# --- cgroups and the cut ----------------------------------------------------------------


def cgroup_of(pid: int, mount: Path) -> Path:
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return mount / line[3:].lstrip("/")
    raise AssertionError(f"process {pid} is in no cgroup v2")


class ClusterCgroups:
    """One cgroup (v2) per member cluster for its hostlet, pods and operator, and a cut of
    one cluster from the others' pods (our own nftables table, removed on heal)."""

    def __init__(self, stack: Stack, clusters: Sequence[str]) -> None:
        self.stack = stack
        self.clusters = list(clusters)
        self.nft = ensure_nft()
        self.mount = cgroup2_mount()
        self.root = self.mount / f"xlfkarmada-{os.getpid()}"
        self.table = f"xlfkarmada_{os.getpid()}"
        self.cut_active = False
        #: Every process moved, with the cgroup it came from (to move it back).
        self.home: dict[int, Path] = {}
        self.root.mkdir(exist_ok=True)
        for cluster in self.clusters:
            self.path(cluster).mkdir(exist_ok=True)

    def path(self, cluster: str) -> Path:
        return self.root / cluster

    def move(self, pid: int, cluster: str) -> None:
        self.home.setdefault(pid, cgroup_of(pid, self.mount))
        (self.path(cluster) / "cgroup.procs").write_text(f"{pid}\n")
        assert cgroup_of(pid, self.mount) == self.path(cluster)

    def pids(self, cluster: str) -> list[int]:
        text = (self.path(cluster) / "cgroup.procs").read_text()
        return [int(p) for p in text.split()]

    def wrap(self, cluster: str, argv: Sequence[str]) -> list[str]:
        """`argv` started inside the cluster's cgroup (the shell moves itself, then execs)."""
        script = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["/bin/sh", "-c", script, str(self.path(cluster)), *argv]

    def _match(self, cluster: str) -> str:
        path = self.path(cluster)
        level = len(path.relative_to(self.mount).parts)
        return f'socket cgroupv2 level {level} "{path.relative_to(CGROUP_BASE)}"'

    def ruleset(self, isolated: str) -> str:
        blocks = {c: f"{self.stack.hostlet(c).ip_prefix}.0.0/16" for c in self.clusters}
        others = [c for c in self.clusters if c != isolated]
        ports = ", ".join(map(str, PORTS))

        def rule(sender: str, to: list[str]) -> str:
            return (
                f'    oif "lo" {self._match(sender)} ip daddr {{ {", ".join(to)} }} '
                f"tcp dport {{ {ports} }} ct mark set {MARK} drop\n"
            )

        body = rule(isolated, [blocks[c] for c in others])
        body += "".join(rule(c, [blocks[isolated]]) for c in others)
        return nft_table(self.table, body, MARK)

    def cut(self, isolated: str) -> None:
        subprocess.run([self.nft, "-f", "-"], input=self.ruleset(isolated), text=True, check=True)
        self.cut_active = True

    def heal(self) -> None:
        if self.cut_active:
            subprocess.run([self.nft, "delete", "table", "inet", self.table], check=True)
            self.cut_active = False

    def cleanup(self) -> list[str]:
        """Heal, move every process left in our cgroups back where it came from (pods of
        a moved hostlet go where the hostlet came from), remove the cgroups."""
        problems = []
        try:
            self.heal()
        except subprocess.CalledProcessError as error:
            problems.append(f"nft: {error}")
        fallback = next(iter(self.home.values()), self.mount)
        for cluster in self.clusters:
            with contextlib.suppress(FileNotFoundError):
                for pid in self.pids(cluster):
                    target = self.home.get(pid, fallback)
                    with contextlib.suppress(ProcessLookupError):
                        (target / "cgroup.procs").write_text(f"{pid}\n")
            try:
                self.path(cluster).rmdir()
            except FileNotFoundError:
                pass
            except OSError as error:
                problems.append(f"{self.path(cluster)}: {error}")
        try:
            self.root.rmdir()
        except OSError as error:
            problems.append(f"{self.root}: {error}")
        return problems


class FaultOperators(Operators):
    """The operators of test_federation, a member operator optionally started in its
    cluster's cgroup, and killed (SIGKILL) by PID like a crashed pod."""

    def __init__(
        self, stack: Stack, namespace: str, logs: Path, cgroups: ClusterCgroups | None
    ) -> None:
        super().__init__(stack, namespace, logs)
        self.cgroups = cgroups

    def start(self, which: str) -> None:
        if self.cgroups is None or which not in self.cgroups.clusters:
            super().start(which)
            return
        env = {
            **os.environ,
            **LEASE_ENV,
            "KUBECONFIG": str(self.stack.member_kubeconfig(which)),
            "XLINEFED_RECONCILE_INTERVAL": "1",
        }
        argv = [sys.executable, "-m", "xlinefed.cli", "member-operator", "--cluster-id", which]
        argv += ["--namespace", self.namespace]
        with (self.logs / f"{which}.log").open("ab") as out:
            self.processes[which] = subprocess.Popen(
                self.cgroups.wrap(which, argv),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        pid = self.processes[which].pid
        wait_until(
            lambda: cgroup_of(pid, self.cgroups.mount) == self.cgroups.path(which),
            timeout=10,
            what=f"the {which} operator in its cgroup",
        )

    def running(self, which: str) -> bool:
        process = self.processes.get(which)
        return process is not None and process.poll() is None

    def kill(self, which: str) -> None:
        process = self.processes[which]
        process.kill()
        process.wait(timeout=30)

    def log(self, which: str) -> str:
        return (self.logs / f"{which}.log").read_text(errors="replace")


# --- the federation under test ------------------------------------------------------------


class Scenario:
    """One federation in a fresh namespace with its own operators; `close` deletes it,
    starts again what the test killed so it can clean up, and restores the cgroups."""

    def __init__(
        self, stack: Stack, karmada: KubeClient, logs: Path, *, cgroups: bool = False
    ) -> None:
        self.stack, self.karmada, self.logs = stack, karmada, logs
        self.namespace = f"faults-{uuid.uuid4().hex[:6]}"
        self.clients = {c: stack.member(c) for c in CLUSTERS}
        self.want_cgroups = cgroups
        self.cgroups: ClusterCgroups | None = None
        self.operators = FaultOperators(stack, self.namespace, logs, None)
        self.killed_hostlets: list[str] = []

    def open(self) -> None:
        if self.want_cgroups:
            self.cgroups = ClusterCgroups(self.stack, CLUSTERS)
            self.operators.cgroups = self.cgroups
        self.karmada.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
        )
        for cluster in CLUSTERS:
            wait_until(
                lambda c=cluster: self.clients[c].get_or_none("v1", "Namespace", self.namespace),
                timeout=60,
                what=f"namespace {self.namespace} in {cluster}",
            )

    def create(self, clusters: dict[str, int], **spec: Any) -> None:
        self.karmada.create(
            {
                "apiVersion": API,
                "kind": "XlineFederation",
                "metadata": {"name": NAME, "namespace": self.namespace},
                "spec": {
                    "engine": "etcd",
                    "version": "3.4.23",
                    "clusters": [{"id": c, "replicas": n} for c, n in clusters.items()],
                    **spec,
                },
            }
        )

    def federation(self) -> dict[str, Any]:
        return federation(self.karmada, self.namespace)

    def cluster_status(self, cluster: str) -> dict[str, Any]:
        """The XlineCluster's status as its own member cluster's API server has it."""
        obj = self.clients[cluster].get_or_none(
            API, "XlineCluster", f"{NAME}-{cluster}", self.namespace
        )
        return ((obj or {}).get("status")) or {}

    def pods(self, cluster: str) -> list[dict[str, Any]]:
        return self.clients[cluster].list("v1", "Pod", self.namespace)

    def evidence(self) -> str:
        statuses = {c: self.cluster_status(c).get("currentStep") for c in CLUSTERS}
        return (
            f"federation status: {self.federation().get('status')}\n"
            f"member steps: {statuses}\n{self.operators.tails(40)}"
        )

    def wait_reached(self, timeout: float) -> None:
        try:
            wait_until(
                lambda: reached(self.karmada, self.namespace),
                timeout=timeout,
                what="the federation Available at its spec",
            )
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.evidence()}") from None

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> Any:
        try:
            return wait_until(predicate, timeout=timeout, what=what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{self.evidence()}") from None

    def close(self) -> None:
        problems: list[str] = []

        def attempt(what: str, action: Callable[[], object]) -> None:
            try:
                action()
            except Exception as error:  # keep cleaning up; report at the end
                problems.append(f"{what}: {error}")

        if self.cgroups is not None:
            attempt("heal", self.cgroups.heal)
        # What the test killed comes back so that deleting the federation can finish: the
        # member operator's finalizer stops the pods, the hostlet removes them.
        for cluster in self.killed_hostlets:
            attempt(f"restart hostlet {cluster}", self.stack.hostlet(cluster).start)
        for which in ("federation", *CLUSTERS):
            if which in self.operators.processes and not self.operators.running(which):
                attempt(f"restart operator {which}", lambda w=which: self.operators.start(w))
        attempt(
            "delete the XlineFederation",
            lambda: self.karmada.delete(API, "XlineFederation", NAME, self.namespace),
        )
        attempt(
            "XlineFederation gone",
            lambda: wait_until(
                lambda: (
                    self.karmada.get_or_none(API, "XlineFederation", NAME, self.namespace) is None
                ),
                timeout=60,
                what="the XlineFederation deleted",
            ),
        )
        attempt(
            "member clusters cleaned",
            lambda: wait_until(
                lambda: all(
                    not self.pods(c)
                    and not self.clients[c].list(API, "XlineCluster", self.namespace)
                    for c in CLUSTERS
                ),
                timeout=90,
                what="every member cluster's XlineCluster and pods deleted",
            ),
        )
        self.operators.stop_all()
        if self.cgroups is not None:
            problems += self.cgroups.cleanup()
        attempt(
            "delete the namespace",
            lambda: self.karmada.delete("v1", "Namespace", self.namespace),
        )
        if problems:
            raise AssertionError("clean-up: " + "; ".join(problems))


@pytest.fixture(scope="module")
def fault_stack(stack: Stack, karmada: KubeClient) -> Stack:
    # A component that died at start (e.g. a port taken by another process meanwhile)
    # makes these tests hang in odd places: without Karmada's kube-controller-manager
    # (its garbage collector) nothing deleted on Karmada ever leaves the members.
    dead = [
        record.path.stem
        for record in _procs.pidfiles_under(stack.state_dir / "pids")
        if record.path.parent == stack.state_dir / "pids" and not record.alive()
    ]
    assert not dead, f"stack components not running: {dead}; see {stack.state_dir / 'logs'}"
    install_crds(karmada)
    for cluster in CLUSTERS:
        install_crds(stack.member(cluster))
    for cluster in CLUSTERS:
        wait_until(
            lambda c=cluster: api_enabled(karmada, c, API, "XlineCluster"),
            timeout=180,
            what=f"Karmada to see the XlineCluster API in {cluster}",
        )
    return stack


@pytest.fixture
def scenario_factory(
    fault_stack: Stack, karmada: KubeClient, tmp_path: Path
) -> Iterator[Callable[..., Scenario]]:
    made: list[Scenario] = []

    def make(**kwargs: Any) -> Scenario:
        scenario = Scenario(fault_stack, karmada, tmp_path, **kwargs)
        made.append(scenario)
        scenario.open()
        return scenario

    yield make
    for scenario in made:
        scenario.close()


# --- observations -------------------------------------------------------------------------


def etcd_status(
    urls: Sequence[str], wrap: Callable[[list[str]], list[str]] | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    """`etcdctl endpoint status -w json` (Debian's etcd-client; etcd 3.4's header carries
    the cluster id): (exit code, the statuses that answered, stderr)."""
    argv = [
        "etcdctl",
        f"--endpoints={','.join(urls)}",
        "--dial-timeout=2s",
        "--command-timeout=3s",
        "endpoint",
        "status",
        "-w",
        "json",
    ]
    env = {**os.environ, "ETCDCTL_API": "3"}
    result = subprocess.run(
        wrap(argv) if wrap else argv, capture_output=True, text=True, env=env, timeout=60
    )
    answered = json.loads(result.stdout) if result.stdout.strip() else []
    return result.returncode, answered, result.stderr


def move_leader(namespace: str, urls: Sequence[str], cluster: str) -> str | None:
    """Make the member of `cluster` lead (`etcdctl move-leader` on the current leader);
    returns the member id (hex) that led before, None if it led already."""
    code, answered, err = etcd_status(urls)
    assert code == 0 and len(answered) == len(urls), (answered, err)
    by_id = {a["Status"]["header"]["member_id"]: a["Endpoint"] for a in answered}
    leader = answered[0]["Status"]["leader"]
    target_url = url_of(namespace, cluster, 0)
    target = next(i for i, url in by_id.items() if url == target_url)
    if leader == target:
        return None
    env = {**os.environ, "ETCDCTL_API": "3"}
    argv = ["etcdctl", f"--endpoints={by_id[leader]}", "move-leader", f"{target:x}"]
    subprocess.run(argv, check=True, capture_output=True, env=env, timeout=30)
    return f"{leader:x}"


def url_of(namespace: str, cluster: str, ordinal: int) -> str:
    return (
        f"http://{member_name(NAME, cluster, ordinal)}.{cluster}.{NAME}.{namespace}"
        ".svc.clusterset.local:2379"
    )


def applied_steps(log: str, kind: str) -> list[str]:
    return [line for line in log.splitlines() if "step applied" in line and f"step={kind} " in line]


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class PhasedWriter(SequencedWriter):
    """The sequenced writer, with the longest gap between acknowledged writes in a window."""

    def gap_between(self, start: float, end: float) -> float:
        times = [start, *(t for t in self._ack_times if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(times))


# --- (i) a cluster added while cut off ----------------------------------------------------


def test_cluster_added_while_cut_off_joins_after_the_heal(
    scenario_factory: Callable[..., Scenario],
) -> None:
    east, west, north = CLUSTERS  # north: 3 replicas, added while cut off
    sc = scenario_factory(cgroups=True)
    cgroups = sc.cgroups
    assert cgroups is not None
    stack, karmada, namespace = sc.stack, sc.karmada, sc.namespace
    # Every process of a cluster in its cgroup before the first pod starts: the hostlet
    # (its pods inherit it) and the member operator.
    for cluster in CLUSTERS:
        pid = stack.hostlet(cluster).pid
        assert pid is not None, f"the hostlet of {cluster} is not running"
        cgroups.move(pid, cluster)
    for which in ("federation", *CLUSTERS):
        sc.operators.start(which)

    sc.create({east: 1, west: 1})
    sc.wait_reached(timeout=150)
    assert_truthful(karmada, namespace)
    formation = sc.wait(
        lambda: (
            (sc.federation()["status"].get("formation") or {}).get("formed")
            and sc.federation()["status"]["formation"]
        ),
        timeout=30,
        what="the federation recording that it formed",
    )
    assert formation["initialMembers"] == [member_name(NAME, east, 0), member_name(NAME, west, 0)]
    assert formation.get("formedAt"), formation
    formed_urls = endpoints(karmada, namespace)
    north_names = {member_name(NAME, north, i) for i in range(3)}
    started_new: list[str] = []
    seen_north_pods: set[str] = set()

    def check_north_pods() -> None:
        for pod in sc.pods(north):
            seen_north_pods.add(pod["metadata"]["name"])
            container = pod["spec"]["containers"][0]
            argv = [*(container.get("command") or []), *(container.get("args") or [])]
            if "--initial-cluster-state=new" in argv:
                started_new.append(pod["metadata"]["name"])

    with PhasedWriter(lambda: formed_urls) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        cgroups.cut(north)
        # The cut holds: from north's cgroup east's member does not answer; from here it does.
        code, _, _ = etcd_status([url_of(namespace, east, 0)], lambda a: cgroups.wrap(north, a))
        assert code != 0, "north's cgroup still reaches east's member through the cut"
        code, answered, err = etcd_status([url_of(namespace, east, 0)])
        assert code == 0 and len(answered) == 1, err

        set_clusters(
            karmada,
            namespace,
            [
                {"id": east, "replicas": 1},
                {"id": west, "replicas": 1},
                {"id": north, "replicas": 3},
            ],
        )
        first = sc.wait(
            lambda: (
                (sc.cluster_status(north).get("currentStep") or {}).get("code")
                == "FederationUnreachable"
                and sc.cluster_status(north)["currentStep"]
            ),
            # Within NO_ANSWER_GRACE the silence is reported as NoAnswer first.
            timeout=90,
            what="north waiting for the federation (not bootstrapping)",
        )
        assert first["kind"] == "Wait", first
        assert "not bootstrapping: it formed at" in first["reason"], first
        assert formation["formedAt"] in first["reason"], (formation, first)
        # Watch it wait for a while: every sample must still be the wait, no north pod may
        # start a new cluster, the consensus must not grow, the federation must not claim
        # to be whole.
        samples = 0
        fed_views: set[str] = set()
        held_from = time.monotonic()
        while time.monotonic() - held_from < CUT_HOLD:
            check_north_pods()
            assert not started_new, f"north started {started_new} with a new cluster"
            step = sc.cluster_status(north).get("currentStep") or {}
            # Either wait is truthful while cut off: the silence (NoAnswer, whenever a
            # probe times out anew) or the unreachable federation.
            assert step.get("kind") == "Wait" and step.get("code") in WAITS_WHILE_CUT, (
                f"north stopped waiting while cut off: {step}\n{sc.evidence()}"
            )
            status = sc.federation().get("status") or {}
            assert status.get("ready") != "5/5" and status.get("phase") != "Available", status
            fed_views.add(f"phase={status.get('phase')} ready={status.get('ready')}")
            voters, learners, _, _ = consensus_view(formed_urls)
            assert voters == {member_name(NAME, east, 0), member_name(NAME, west, 0)}, voters
            assert not learners, learners
            samples += 1
            time.sleep(0.5)  # sampling period while holding the cut, not synchronisation
        cut_pods = sorted(seen_north_pods)
        cgroups.heal()

        sc.wait_reached(timeout=200)
        assert_truthful(karmada, namespace)
        voters, learners, leaders, _ = consensus_view(endpoints(karmada, namespace))
        assert len(voters) == 5 and north_names <= voters and not learners, (voters, learners)
        assert len(leaders) == 1, leaders
    check_north_pods()
    assert not started_new, f"north started {started_new} with a new cluster"

    # North's pod processes ran in north's cgroup (the cut applied to them), every start
    # of their engine (the hostlet logs each argv it runs, init containers' included)
    # joined an existing cluster, and north's operator never bootstrapped.
    pods_dir = stack.state_dir / "logs" / "pods" / north
    starts = [
        line
        for path in sorted(pods_dir.glob(f"{namespace}_*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if line.startswith("--- hostlet ") and "--initial-cluster-state=" in line
    ]
    assert len(starts) >= 3, starts
    assert all("--initial-cluster-state=existing" in line for line in starts), starts
    pid_dir = stack.state_dir / "pids" / "pods" / north
    for pod in sc.pods(north):
        record = _procs.PidFile.read(pid_dir / f"{pod['metadata']['uid']}.pid")
        assert record is not None and record.alive(), pod["metadata"]["name"]
        assert cgroup_of(record.pid, cgroups.mount) == cgroups.path(north)
    north_log = sc.operators.log(north)
    assert not applied_steps(north_log, "Bootstrap"), applied_steps(north_log, "Bootstrap")
    assert len(applied_steps(north_log, "AddLearner")) == 3, applied_steps(north_log, "AddLearner")

    # One consensus cluster: every member reports the same cluster id.
    all_urls = endpoints(karmada, namespace)
    code, answered, err = etcd_status(all_urls)
    assert code == 0 and len(answered) == 5, (code, answered, err)
    cluster_ids = {a["Status"]["header"]["cluster_id"] for a in answered}
    member_ids = {a["Status"]["header"]["member_id"] for a in answered}
    assert len(cluster_ids) == 1, answered
    assert len(member_ids) == 5, answered

    report = writer.verify(all_urls)
    print(
        f"\n(i) cut-off cluster added: {samples} samples over {CUT_HOLD:.0f}s of cut, "
        f"north pods while cut: {cut_pods}, federation {sorted(fed_views)}; "
        f"writes acknowledged {report.acknowledged}, "
        f"failed {report.failed}, lost {len(report.lost)}, longest gap "
        f"{report.longest_gap:.2f}s; cluster ids seen: {sorted(f'{i:x}' for i in cluster_ids)}"
    )
    assert report.acknowledged > 0 and report.lost == [], report


# --- (iv) a cluster lost for good ---------------------------------------------------------


def test_cluster_lost_for_good_is_drained_by_the_others(
    scenario_factory: Callable[..., Scenario],
) -> None:
    a, b, c = CLUSTERS
    sc = scenario_factory()
    stack, karmada, namespace = sc.stack, sc.karmada, sc.namespace
    for which in ("federation", *CLUSTERS):
        sc.operators.start(which)
    sc.create({a: 1, b: 1, c: 1}, lostClusterGracePeriodSeconds=GRACE)
    sc.wait_reached(timeout=150)
    assert_truthful(karmada, namespace)
    names = {x: member_name(NAME, x, 0) for x in CLUSTERS}
    survivors = [url_of(namespace, a, 0), url_of(namespace, b, 0)]
    leader_before = sc.federation()["status"]["leader"]

    with PhasedWriter(lambda: survivors) as writer:
        wait_until(lambda: len(writer.acknowledged) >= 5, timeout=30, what="first writes")
        # The worst case: the cluster lost for good holds the leadership, so its loss
        # forces an election (moved there out of band; no operator moves it back).
        moved_from = move_leader(namespace, [url_of(namespace, x, 0) for x in CLUSTERS], c)
        sc.wait(
            lambda: sc.federation()["status"].get("leader") == names[c],
            timeout=30,
            what=f"the federation status naming {names[c]} the leader",
        )
        failed_before_kill = writer.failed
        # c is lost for good: its operator, its hostlet (nothing restarts its pods) and its
        # pods' processes, all by PID.
        killed_at = time.monotonic()
        pods = sc.pods(c)
        assert [p["metadata"]["name"] for p in pods] == [names[c]], pods
        sc.operators.kill(c)
        stack.hostlet(c).kill()
        sc.killed_hostlets.append(c)
        pid_dir = stack.state_dir / "pids" / "pods" / c
        records = [_procs.PidFile.read(pid_dir / f"{p['metadata']['uid']}.pid") for p in pods]
        assert all(r is not None and r.alive() for r in records), records
        for record in records:
            assert record is not None
            os.killpg(record.pid, signal.SIGKILL)
        wait_until(
            lambda: not any(r is not None and r.alive() for r in records),
            timeout=10,
            what=f"{c}'s etcd processes dead",
        )
        # a and b still form a quorum of the three voters, under one leader of theirs.
        sc.wait(
            lambda: (
                (view := consensus_view(survivors))[0] == set(names.values())
                and len(view[2]) == 1
                and 0 not in view[2]
            ),
            timeout=30,
            what="a and b agreeing on a leader",
        )
        acked = len(writer.acknowledged)
        wait_until(
            lambda: len(writer.acknowledged) >= acked + 10,
            timeout=30,
            what="writes going on without c",
        )
        settled_at = time.monotonic()
        failed_in_election = writer.failed - failed_before_kill
        fed_views: list[str] = []

        def fed_view() -> str:
            status = sc.federation().get("status") or {}
            dead = next((m for m in status.get("members", []) if m["name"] == names[c]), {})
            return (
                f"phase={status.get('phase')} ready={status.get('ready')} "
                f"{names[c]}: healthy={dead.get('healthy')} role={dead.get('role')}"
            )

        fed_views.append("after the kill: " + fed_view())
        # A dead cluster's last report never changes again: the federation must not take
        # its word that its member is healthy (it did on 51a7622: Available 3/3).
        sc.wait(
            lambda: (
                (st := sc.federation().get("status") or {}).get("phase") != "Available"
                and not next((m for m in st.get("members", []) if m["name"] == names[c]), {}).get(
                    "healthy"
                )
            ),
            timeout=30,
            what=f"the federation reporting {names[c]} unhealthy and itself not Available",
        )

        set_clusters(karmada, namespace, [{"id": a, "replicas": 1}, {"id": b, "replicas": 1}])
        departed = sc.wait(
            lambda: [
                d for d in sc.federation().get("status", {}).get("departed") or [] if d["id"] == c
            ],
            timeout=30,
            what=f"the federation recording that {c} departed",
        )
        deadline = epoch(departed[0]["since"]) + GRACE
        # Before the grace period ends, a (the first remaining cluster) names the departure
        # and waits; c's member stays in the member list; c's XlineCluster stays.
        step = sc.wait(
            lambda: (
                (s := sc.cluster_status(a).get("currentStep") or {}).get("code")
                == "DrainingElsewhere"
                and s
            ),
            timeout=max(1.0, deadline - time.time() - 1),
            what=f"{a} reporting that {c} is drained elsewhere",
        )
        assert "takes over in" in step["reason"] and names[c] in step["reason"], step
        assert c in step["reason"], step
        # The federation says so too (the first cluster's step, aggregated on Karmada).
        sc.wait(
            lambda: (
                "takes over in"
                in (sc.federation()["status"].get("currentStep") or {}).get("reason", "")
            ),
            timeout=max(1.0, deadline - time.time() - 1),
            what="the federation status naming the departure",
        )
        b_steps = set()
        samples = 0
        while time.time() < deadline - 2:
            voters, learners, _, _ = consensus_view(survivors)
            assert voters == set(names.values()) and not learners, (
                f"{c}'s member left before the grace period ended: {voters}\n{sc.evidence()}"
            )
            assert karmada.get_or_none(API, "XlineCluster", f"{NAME}-{c}", namespace) is not None
            current = sc.cluster_status(a).get("currentStep") or {}
            assert current.get("code") == "DrainingElsewhere", current
            b_status = sc.cluster_status(b)
            b_code = (b_status.get("currentStep") or {}).get("code") or "Done"
            b_steps.add(f"{b_code} phase={b_status.get('phase')} ready={b_status.get('ready')}")
            view = "in the grace period: " + fed_view()
            if view not in fed_views:
                fed_views.append(view)
            status = sc.federation()["status"]
            assert status.get("phase") != "Available", status
            ready, _, total = (status.get("ready") or "0/0").partition("/")
            assert int(ready) <= int(total), f"more ready than the spec has: {status}"
            assert "takes over in" in (status.get("currentStep") or {}).get("reason", ""), status
            samples += 1
            time.sleep(0.5)  # sampling period until the grace period ends, not synchronisation
        assert not stack.hostlet(c).running() and not sc.operators.running(c)
        code, answered, _ = etcd_status([url_of(namespace, c, 0)])
        assert code != 0 and not answered, f"{c}'s member answers again: {answered}"

        # After it, a removes c's member (one RemoveMember, quorum kept), the federation
        # operator deletes c's XlineCluster and policy, and the federation is Available.
        sc.wait(
            lambda: consensus_view(survivors)[0] == {names[a], names[b]},
            timeout=60,
            what=f"{names[c]} removed from the member list",
        )
        removed_at = time.monotonic()
        sc.wait(
            lambda: (
                karmada.get_or_none(API, "XlineCluster", f"{NAME}-{c}", namespace) is None
                and karmada.get_or_none(POLICY_API, "PropagationPolicy", f"{NAME}-{c}", namespace)
                is None
            ),
            timeout=60,
            what=f"{c}'s XlineCluster and PropagationPolicy deleted on Karmada",
        )
        sc.wait_reached(timeout=90)
        assert_truthful(karmada, namespace)
        status = sc.federation()["status"]
        assert status["ready"] == "2/2" and not status.get("departed"), status
        drain_gap = writer.gap_between(settled_at, time.monotonic())
        kill_gap = writer.gap_between(killed_at, settled_at)
        failed_in_drain = writer.failed - failed_in_election - failed_before_kill
    removes = applied_steps(sc.operators.log(a), "RemoveMember")
    assert len(removes) == 1 and f"member={names[c]} " in removes[0], removes
    assert not applied_steps(sc.operators.log(b), "RemoveMember")
    # Quorum kept: the writer fails in the election after the kill, if at all; the drain
    # costs no more than an election would (writes have a 1 s deadline; none failed in
    # the runs so far).
    assert failed_in_drain <= 3, f"{failed_in_drain} writes failed while c was drained"
    assert drain_gap < 5.0, f"writes stalled {drain_gap:.1f}s while c was drained"
    assert kill_gap < 15.0, f"writes stalled {kill_gap:.1f}s after c was killed"
    report = writer.verify(survivors)
    print(
        f"\n(iv) lost cluster drained: leader {leader_before}, moved from {moved_from} to "
        f"{names[c]} before the kill; {samples} samples in the "
        f"grace period ({a}: DrainingElsewhere; {b}: {sorted(b_steps)}); removed "
        f"{removed_at - killed_at:.1f}s after the kill; writes acknowledged "
        f"{report.acknowledged}, failed {report.failed} ({failed_before_kill} before the kill, "
        f"{failed_in_election} in the "
        f"election, {failed_in_drain} in the drain), lost {len(report.lost)}, longest gap "
        f"after the kill {kill_gap:.2f}s, in the drain {drain_gap:.2f}s; federation status "
        f"{fed_views}"
    )
    assert report.acknowledged > 0 and report.lost == [], report
