"""Start and stop the real Kubernetes + Karmada test stack on loopback.

`Stack.start(["member1", "member2"])` starts, from the binaries `hack/stack/build.sh`
builds (and caches):

- one etcd (Debian's `/usr/bin/etcd`), each API server under its own `--etcd-prefix`;
- the Karmada API server: kube-apiserver + kube-controller-manager with Karmada's CRDs
  (from the pinned karmada module, with the ResourceBinding/ClusterResourceBinding
  conversion-webhook patches), Karmada's webhook configurations and the
  `v1alpha1.cluster.karmada.io` APIService (an ExternalName Service to 127.0.0.1), then
  karmada-webhook, karmada-aggregated-apiserver, karmada-controller-manager and
  karmada-scheduler;
- per member: kube-apiserver + kube-controller-manager + a hostlet (tests/support/stack/hostlet.py,
  the kubelet stand-in), registered in Karmada as a Push `Cluster` with the objects
  `karmadactl join` creates.

Every listener is bound to 127.0.0.1 (health and metrics endpoints included); every
webhook and the APIService point at `https://127.0.0.1:<port>`. Everything the stack
starts is recorded in pidfiles under the state directory, and `stop()` / `down()` stop
exactly those processes, also after a crashed run. See docs/stack.md.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tests.support.stack import _pki, _procs
from tests.support.stack._client import ApiError, Credentials, KubeClient, Obj, write_kubeconfig
from tests.support.stack._hosts import remove_entries
from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "hack" / "stack" / "build.sh"
DEFAULT_STATE = Path(os.environ.get("XLINEFED_STACK_STATE", "/tmp/xlinefed-stack"))
ETCD = os.environ.get("XLINEFED_STACK_ETCD", "/usr/bin/etcd")
KARMADA = "karmada"
SYSTEM_NAMESPACE = "karmada-system"
CLUSTER_NAMESPACE = "karmada-cluster"
KARMADA_SYSTEM_LABEL = {"karmada.io/system": "true"}

#: kube-controller-manager controllers of the Karmada API server (as Karmada's chart).
KARMADA_KCM_CONTROLLERS = (
    "namespace,garbagecollector,serviceaccount-token,ttl-after-finished,bootstrapsigner,"
    "tokencleaner,csrcleaner,csrsigning,clusterrole-aggregation"
)


class StackError(RuntimeError):
    """The stack could not be built, started or reached."""


class StackInUse(StackError):
    """Another live process owns the stack in this state dir."""


def claim(state_dir: Path) -> IO[str]:
    """Lock `state_dir` for this process (an flock on `<state_dir>.lock`, kept open).

    The lock dies with its process, so a crashed owner never blocks a new start, while
    a live one (another engineer's pytest session) is never torn down by ours.
    """
    state_dir.parent.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir.with_name(state_dir.name + ".lock"), "a+")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StackInUse(f"{state_dir} is in use by another live process") from None
    return handle


def build(*, force: bool = False) -> Path:
    """Run hack/stack/build.sh (a no-op when the cache matches); return the bin dir."""
    argv = ["bash", str(BUILD_SCRIPT)] + (["--force"] if force else [])
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


#: Ports of the stack's components: below Linux's ephemeral range (32768-60999), where
#: a port found free can be taken by some outgoing connection before the component binds
#: it (seen: member1's kube-apiserver exited "bind: address already in use" and the start
#: waited out its deadline), and below local mode's members (21000-31999).
STACK_PORTS = range(10000, 21000)
_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nobody listens on, not handed out before by this process; from a
    random point of STACK_PORTS, so that two stacks starting at once rarely race."""
    start = random.randrange(len(STACK_PORTS))
    for step in range(len(STACK_PORTS)):
        port = STACK_PORTS[(start + step) % len(STACK_PORTS)]
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise StackError(f"no free port in {STACK_PORTS.start}-{STACK_PORTS.stop - 1}")


def stack_id(state_dir: Path) -> str:
    """A short id derived from the state dir: tags /etc/hosts lines, picks pod IP blocks."""
    return hashlib.sha1(str(state_dir.resolve()).encode()).hexdigest()[:8]


def ip_prefix(state_dir: Path, index: int) -> str:
    """The 127.<n> prefix of the /16 the index-th member's hostlet gives pod IPs from.

    Stacks with different state dirs get different ranges (modulo collisions of a
    28-slot hash), so two stacks on one machine rarely share pod IPs.
    """
    slot = int(stack_id(state_dir), 16) % 28
    return f"127.{20 + slot * 8 + index}"


@dataclass
class HostletHandle:
    """One member's node agent: its node, pod IP block, log, and start/stop control."""

    cluster: str
    node_name: str
    ip_prefix: str
    config_path: Path
    log_path: Path
    pidfile_path: Path
    _stack: Stack = field(repr=False)

    @property
    def pid(self) -> int | None:
        record = _procs.PidFile.read(self.pidfile_path)
        return record.pid if record and record.alive() else None

    def running(self) -> bool:
        return self.pid is not None

    def stop(self) -> None:
        """Stop the agent gracefully: it kills its pods' processes and hosts entries."""
        record = _procs.PidFile.read(self.pidfile_path)
        if record:
            _procs.terminate([record], grace=30)

    def kill(self) -> None:
        """SIGKILL the agent only (its pod processes keep running), like a crashed kubelet."""
        record = _procs.PidFile.read(self.pidfile_path)
        if record and record.alive():
            os.kill(record.pid, 9)
            wait_until(lambda: not record.alive(), timeout=10, what=f"hostlet {self.cluster} dies")

    def start(self) -> None:
        if not self.running():
            self._stack._spawn_hostlet(self.cluster)


@dataclass
class Stack:
    """A running stack; build with `Stack.start(...)` or `Stack.attach(...)`."""

    state_dir: Path
    members: list[str]
    bin_dir: Path
    ports: dict[str, int]
    started_seconds: float = 0.0
    images: list[tuple[str, str]] = field(default_factory=list)
    _hostlets: dict[str, HostletHandle] = field(default_factory=dict)
    _lock: IO[str] | None = field(default=None, repr=False)
    #: What each component was started with, to start it again (`_revive`).
    _launched: dict[str, tuple[list[str], dict[str, Any]]] = field(default_factory=dict, repr=False)
    _revived: dict[str, int] = field(default_factory=dict, repr=False)

    # -- public API ----------------------------------------------------------------------

    @property
    def karmada_kubeconfig(self) -> Path:
        return self.kubeconfig(KARMADA)

    def member_kubeconfig(self, name: str) -> Path:
        if name not in self.members:
            raise KeyError(f"no member {name!r} in {self.members}")
        return self.kubeconfig(name)

    def kubeconfig(self, cluster: str) -> Path:
        return self.state_dir / "kubeconfig" / f"{cluster}.yaml"

    def karmada(self) -> KubeClient:
        """An admin client of the Karmada API server."""
        return KubeClient.from_kubeconfig(self.karmada_kubeconfig)

    def member(self, name: str) -> KubeClient:
        """An admin client of a member API server."""
        return KubeClient.from_kubeconfig(self.member_kubeconfig(name))

    def hostlet(self, name: str) -> HostletHandle:
        return self._hostlets[name]

    @property
    def pki(self) -> _pki.Pki:
        return _pki.load(self.state_dir / "pki")

    def log(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    def env(self) -> dict[str, str]:
        """Environment variables describing the stack (for `python -m tests.support.stack env`)."""
        values = {
            "XLINEFED_STACK_STATE": str(self.state_dir),
            "KARMADA_KUBECONFIG": str(self.karmada_kubeconfig),
            "XLINEFED_STACK_MEMBERS": ",".join(self.members),
            "KUBECONFIG": ":".join(str(self.kubeconfig(c)) for c in [KARMADA, *self.members]),
        }
        for member in self.members:
            key = "MEMBER_KUBECONFIG_" + member.upper().replace("-", "_")
            values[key] = str(self.member_kubeconfig(member))
        return values

    def stop(self) -> None:
        down(self.state_dir)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- start ---------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        members: Iterable[str] = ("member1", "member2"),
        *,
        state_dir: Path | None = None,
        bin_dir: Path | None = None,
        timeout: float = 300.0,
        images: Iterable[tuple[str, str]] = (),
    ) -> Stack:
        """Build (cached), clean up leftovers in `state_dir`, start everything, wait Ready.

        `images` adds hostlet rules (image-name substring, local binary) ahead of the
        built-in ones (`etcd` → /usr/bin/etcd, `xline` → xline on PATH).
        """
        members = list(members)
        if len(set(members)) != len(members) or KARMADA in members or not members:
            raise ValueError(f"member names must be distinct, non-empty and not {KARMADA!r}")
        state_dir = (state_dir or DEFAULT_STATE).resolve()
        lock = claim(state_dir)
        bin_dir = bin_dir or build()
        down(state_dir)
        if state_dir.exists():
            shutil.rmtree(state_dir)
        for sub in ("pki", "logs", "pids", "kubeconfig", "etcd", "volumes", "pods"):
            (state_dir / sub).mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        ports = {"etcd": free_port(), "etcd-peer": free_port()}
        for cluster in [KARMADA, *members]:
            ports[f"{cluster}-apiserver"] = free_port()
            ports[f"{cluster}-kcm"] = free_port()
        for name in (
            "webhook",
            "webhook-metrics",
            "webhook-health",
            "aggregated-apiserver",
            "controller-manager-metrics",
            "controller-manager-health",
            "scheduler-metrics",
            "scheduler-health",
        ):
            ports[f"karmada-{name}"] = free_port()
        stack = cls(
            state_dir=state_dir, members=members, bin_dir=bin_dir, ports=ports, images=list(images)
        )
        stack._lock = lock
        try:
            stack._start(timeout)
        except BaseException:
            stack.stop()
            raise
        stack.started_seconds = time.monotonic() - began
        stack._save()
        return stack

    @classmethod
    def attach(cls, state_dir: Path | None = None) -> Stack:
        """The stack described by `<state_dir>/stack.json` (started earlier, maybe elsewhere)."""
        state_dir = (state_dir or DEFAULT_STATE).resolve()
        try:
            record = json.loads((state_dir / "stack.json").read_text())
        except FileNotFoundError:
            raise StackError(
                f"no stack in {state_dir} (run `python -m tests.support.stack up`)"
            ) from None
        stack = cls(
            state_dir=state_dir,
            members=record["members"],
            bin_dir=Path(record["bin_dir"]),
            ports=record["ports"],
            started_seconds=record.get("started_seconds", 0.0),
        )
        for index, member in enumerate(stack.members):
            stack._hostlets[member] = stack._hostlet_handle(member, index)
        return stack

    def _save(self) -> None:
        record = {
            "members": self.members,
            "bin_dir": str(self.bin_dir),
            "ports": self.ports,
            "started_seconds": round(self.started_seconds, 1),
            "stack_id": stack_id(self.state_dir),
        }
        (self.state_dir / "stack.json").write_text(json.dumps(record, indent=2) + "\n")

    def _url(self, cluster: str) -> str:
        return f"https://127.0.0.1:{self.ports[f'{cluster}-apiserver']}"

    def _spawn(self, name: str, argv: list[str], **kwargs: Any) -> None:
        _procs.spawn(
            name, argv, pid_dir=self.state_dir / "pids", log_dir=self.state_dir / "logs", **kwargs
        )
        self._launched[name] = (argv, kwargs)

    def _revive(self, names: tuple[str, ...], limit: int = 3) -> None:
        """Start again a component that exited while the stack was coming up.

        On a loaded machine karmada-aggregated-apiserver can exit at once ("TLS handshake
        timeout" reading its config from the Karmada API server); nothing in the stack
        would restart it, and the start would time out waiting for its APIService.
        """
        for name in names:
            record = _procs.PidFile.read(self.state_dir / "pids" / f"{name}.pid")
            if name not in self._launched or (record is not None and record.alive()):
                continue
            if self._revived.get(name, 0) >= limit:
                raise StackError(f"{name} exited {limit + 1} times; see {self.log(name)}")
            self._revived[name] = self._revived.get(name, 0) + 1
            argv, kwargs = self._launched[name]
            self._spawn(name, argv, **kwargs)

    def _start(self, timeout: float) -> None:
        # On a loaded machine a component may exit at start (a "TLS handshake timeout"
        # talking to its API server) and nothing would start it again: a watchdog does,
        # while the stack comes up.
        settled = threading.Event()

        def watchdog() -> None:
            while not settled.wait(0.5):
                try:
                    self._revive(tuple(list(self._launched)))
                except RuntimeError as error:  # StackError; or the dict grew meanwhile
                    if not isinstance(error, StackError):
                        continue
                    print(f"stack watchdog: {error}", file=sys.stderr)
                    return

        threading.Thread(target=watchdog, daemon=True, name="stack-watchdog").start()
        try:
            self._start_until(timeout)
        finally:
            settled.set()

    def _start_until(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pki = _pki.generate(self.state_dir / "pki", [KARMADA, *self.members])
        admin = Credentials(server="", ca=pki.ca.cert, cert=pki.admin.cert, key=pki.admin.key)
        for cluster in [KARMADA, *self.members]:
            write_kubeconfig(
                self.kubeconfig(cluster),
                cluster,
                Credentials(self._url(cluster), admin.ca, admin.cert, admin.key),
            )
        self._start_etcd()
        for cluster in [KARMADA, *self.members]:
            self._start_apiserver(cluster, pki)
            self._start_kcm(cluster, pki)
        self._start_karmada_servers(pki)

        def left() -> float:
            return max(1.0, deadline - time.monotonic())

        errors: list[BaseException] = []

        def guarded(fn: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                try:
                    fn()
                except BaseException as error:
                    errors.append(error)
                    raise

            return run

        with ThreadPoolExecutor(max_workers=1 + len(self.members)) as pool:
            futures = [pool.submit(guarded(lambda: self._setup_karmada(pki, left)))]
            for index, member in enumerate(self.members):
                futures.append(
                    pool.submit(guarded(lambda m=member, i=index: self._setup_member(m, i, left)))
                )
            for future in futures:
                future.result()
        karmada = self.karmada()
        for member in self.members:
            wait_until(
                lambda m=member: _condition(
                    karmada.get("cluster.karmada.io/v1alpha1", "Cluster", m), "Ready"
                ),
                timeout=left(),
                what=f"Karmada Cluster {member} Ready",
            )

    # -- components ----------------------------------------------------------------------

    def _start_etcd(self) -> None:
        client, peer = self.ports["etcd"], self.ports["etcd-peer"]
        self._spawn(
            "etcd",
            [
                ETCD,
                "--name=stack",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{client}",
                f"--advertise-client-urls=http://127.0.0.1:{client}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=stack=http://127.0.0.1:{peer}",
                "--logger=zap",
                "--log-outputs=stderr",
                "--quota-backend-bytes=4294967296",
            ],
        )

        def healthy() -> bool:
            url = f"http://127.0.0.1:{client}/health"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return json.loads(answer.read()).get("health") == "true"

        wait_until(healthy, timeout=30, what="etcd healthy")

    def _start_apiserver(self, cluster: str, pki: _pki.Pki) -> None:
        sa = pki.service_account_key(cluster)
        argv = [
            str(self.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            f"--etcd-prefix=/{cluster}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.ports[f'{cluster}-apiserver']}",
            f"--tls-cert-file={pki.serving.cert}",
            f"--tls-private-key-file={pki.serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-account-issuer=https://{cluster}.xlinefed-stack.local",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=Node,RBAC",
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            f"--proxy-client-cert-file={pki.front_proxy_client.cert}",
            f"--proxy-client-key-file={pki.front_proxy_client.key}",
            f"--requestheader-client-ca-file={pki.front_proxy_ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        ]
        if cluster == KARMADA:
            argv.append("--disable-admission-plugins=StorageObjectInUseProtection,ServiceAccount")
        self._spawn(f"{cluster}-apiserver", argv)

    def _start_kcm(self, cluster: str, pki: _pki.Pki) -> None:
        kubeconfig = self.kubeconfig(cluster)
        controllers = KARMADA_KCM_CONTROLLERS if cluster == KARMADA else "*"
        self._spawn(
            f"{cluster}-kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={self.ports[f'{cluster}-kcm']}",
                f"--service-account-private-key-file={pki.service_account_key(cluster).key}",
                f"--root-ca-file={pki.ca.cert}",
                f"--cluster-signing-cert-file={pki.ca.cert}",
                f"--cluster-signing-key-file={pki.ca.key}",
                f"--cluster-name={cluster}",
                f"--controllers={controllers}",
                "--leader-elect=false",
                "--use-service-account-credentials=false",
                "--profiling=false",
            ],
        )

    def _start_karmada_servers(self, pki: _pki.Pki) -> None:
        """karmada-webhook and karmada-aggregated-apiserver (no CRDs needed to start)."""
        kubeconfig = self.kubeconfig(KARMADA)
        p = self.ports
        cert_dir = self.state_dir / "pki" / "webhook"
        cert_dir.mkdir(exist_ok=True)
        shutil.copy(pki.serving.cert, cert_dir / "tls.crt")
        shutil.copy(pki.serving.key, cert_dir / "tls.key")
        self._spawn(
            "karmada-webhook",
            [
                str(self.bin_dir / "karmada-webhook"),
                f"--kubeconfig={kubeconfig}",
                "--bind-address=127.0.0.1",
                f"--secure-port={p['karmada-webhook']}",
                f"--cert-dir={cert_dir}",
                f"--metrics-bind-address=127.0.0.1:{p['karmada-webhook-metrics']}",
                f"--health-probe-bind-address=127.0.0.1:{p['karmada-webhook-health']}",
            ],
        )
        self._spawn(
            "karmada-aggregated-apiserver",
            [
                str(self.bin_dir / "karmada-aggregated-apiserver"),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
                f"--etcd-prefix=/{KARMADA}",
                "--bind-address=127.0.0.1",
                f"--secure-port={p['karmada-aggregated-apiserver']}",
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                "--audit-log-path=-",
                "--audit-log-maxage=0",
                "--audit-log-maxbackup=0",
            ],
        )

    def _start_karmada_controllers(self) -> None:
        kubeconfig = self.kubeconfig(KARMADA)
        p = self.ports
        self._spawn(
            "karmada-controller-manager",
            [
                str(self.bin_dir / "karmada-controller-manager"),
                f"--kubeconfig={kubeconfig}",
                f"--metrics-bind-address=127.0.0.1:{p['karmada-controller-manager-metrics']}",
                f"--health-probe-bind-address=127.0.0.1:{p['karmada-controller-manager-health']}",
                "--leader-elect=false",
                "--cluster-status-update-frequency=5s",
            ],
        )
        self._spawn(
            "karmada-scheduler",
            [
                str(self.bin_dir / "karmada-scheduler"),
                f"--kubeconfig={kubeconfig}",
                f"--metrics-bind-address=127.0.0.1:{p['karmada-scheduler-metrics']}",
                f"--health-probe-bind-address=127.0.0.1:{p['karmada-scheduler-health']}",
                "--leader-elect=false",
            ],
        )

    def _wait_ready(self, cluster: str, timeout: float) -> KubeClient:
        client = KubeClient.from_kubeconfig(self.kubeconfig(cluster))
        wait_until(
            lambda: client.request("GET", "/readyz", raw=True) == "ok",
            timeout=timeout,
            what=f"{cluster} kube-apiserver /readyz",
        )
        return client

    # -- Karmada control plane -------------------------------------------------------------

    def _setup_karmada(self, pki: _pki.Pki, left: Callable[[], float]) -> None:
        client = self._wait_ready(KARMADA, left())
        ca_bundle = base64.b64encode(pki.ca.cert.read_bytes()).decode()
        for namespace in (SYSTEM_NAMESPACE, CLUSTER_NAMESPACE):
            client.ensure(_namespace(namespace))
        client.ensure(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "karmada-version", "namespace": SYSTEM_NAMESPACE},
                "data": {"karmadaVersion": _karmada_version(self.bin_dir)},
            }
        )
        webhook = f"https://127.0.0.1:{self.ports['karmada-webhook']}"
        crds = list(karmada_crds(self.bin_dir / "karmada-crds", webhook, ca_bundle))
        for crd in crds:
            client.apply(crd)
        for configuration in webhook_configurations(webhook, ca_bundle):
            client.apply(configuration)
        client.apply(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "karmada-aggregated-apiserver", "namespace": SYSTEM_NAMESPACE},
                "spec": {"type": "ExternalName", "externalName": "127.0.0.1"},
            }
        )
        client.apply(
            {
                "apiVersion": "apiregistration.k8s.io/v1",
                "kind": "APIService",
                "metadata": {"name": "v1alpha1.cluster.karmada.io"},
                "spec": {
                    "group": "cluster.karmada.io",
                    "version": "v1alpha1",
                    "groupPriorityMinimum": 2000,
                    "versionPriority": 10,
                    "caBundle": ca_bundle,
                    "service": {
                        "name": "karmada-aggregated-apiserver",
                        "namespace": SYSTEM_NAMESPACE,
                        "port": self.ports["karmada-aggregated-apiserver"],
                    },
                },
            }
        )
        for crd in crds:
            name = crd["metadata"]["name"]
            wait_until(
                lambda n=name: _condition(
                    client.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", n),
                    "Established",
                ),
                timeout=left(),
                what=f"CRD {name} Established",
            )
        self._start_karmada_controllers()

        def served() -> bool:
            return _condition(
                client.get(
                    "apiregistration.k8s.io/v1", "APIService", "v1alpha1.cluster.karmada.io"
                ),
                "Available",
            )

        wait_until(
            served,
            timeout=left(),
            what="APIService v1alpha1.cluster.karmada.io Available",
        )

    # -- members ---------------------------------------------------------------------------

    def _hostlet_handle(self, member: str, index: int) -> HostletHandle:
        return HostletHandle(
            cluster=member,
            node_name=f"hostlet-{member}",
            ip_prefix=ip_prefix(self.state_dir, index),
            config_path=self.state_dir / "hostlet" / f"{member}.json",
            log_path=self.log(f"{member}-hostlet"),
            pidfile_path=self.state_dir / "pids" / f"{member}-hostlet.pid",
            _stack=self,
        )

    def _spawn_hostlet(self, member: str) -> None:
        handle = self._hostlets[member]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._spawn(
            f"{member}-hostlet",
            [sys.executable, "-m", "tests.support.stack.hostlet", str(handle.config_path)],
            env=env,
            cwd=REPO,
        )

    def _setup_member(self, member: str, index: int, left: Callable[[], float]) -> None:
        client = self._wait_ready(member, left())
        handle = self._hostlet_handle(member, index)
        self._hostlets[member] = handle
        handle.config_path.parent.mkdir(exist_ok=True)
        handle.config_path.write_text(
            json.dumps(
                {
                    "cluster": member,
                    "kubeconfig": str(self.member_kubeconfig(member)),
                    "node_name": handle.node_name,
                    "ip_prefix": handle.ip_prefix,
                    "stack_id": stack_id(self.state_dir),
                    "pid_dir": str(self.state_dir / "pids" / "pods" / member),
                    "volumes_dir": str(self.state_dir / "volumes" / member),
                    "pods_dir": str(self.state_dir / "pods" / member),
                    "images": [list(rule) for rule in self.images],
                },
                indent=2,
            )
        )
        self._spawn_hostlet(member)
        self._join(member, client, left)

    def _join(self, member: str, client: KubeClient, left: Callable[[], float]) -> None:
        """Register `member` in Karmada as a Push cluster, as `karmadactl join` does."""
        client.ensure(_namespace(CLUSTER_NAMESPACE, KARMADA_SYSTEM_LABEL))
        tokens = {}
        for account in ("karmada-impersonator", f"karmada-{member}"):
            meta = {"name": account, "namespace": CLUSTER_NAMESPACE, "labels": KARMADA_SYSTEM_LABEL}
            client.ensure({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta})
            if account != "karmada-impersonator":
                role = f"karmada-controller-manager:{account}"
                rbac = "rbac.authorization.k8s.io/v1"
                client.ensure(
                    {
                        "apiVersion": rbac,
                        "kind": "ClusterRole",
                        "metadata": {"name": role, "labels": KARMADA_SYSTEM_LABEL},
                        "rules": [
                            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                            {"nonResourceURLs": ["*"], "verbs": ["get"]},
                        ],
                    }
                )
                client.ensure(
                    {
                        "apiVersion": rbac,
                        "kind": "ClusterRoleBinding",
                        "metadata": {"name": role, "labels": KARMADA_SYSTEM_LABEL},
                        "subjects": [
                            {
                                "kind": "ServiceAccount",
                                "name": account,
                                "namespace": CLUSTER_NAMESPACE,
                            }
                        ],
                        "roleRef": {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "ClusterRole",
                            "name": role,
                        },
                    }
                )
            client.ensure(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "type": "kubernetes.io/service-account-token",
                    "metadata": {
                        "name": account,
                        "namespace": CLUSTER_NAMESPACE,
                        "annotations": {"kubernetes.io/service-account.name": account},
                    },
                }
            )
            tokens[account] = wait_until(
                lambda a=account: (
                    client.get("v1", "Secret", a, CLUSTER_NAMESPACE).get("data", {}).get("token")
                    and client.get("v1", "Secret", a, CLUSTER_NAMESPACE)["data"]
                ),
                timeout=left(),
                what=f"{member}: token of service account {account}",
            )
        cluster_id = client.get("v1", "Namespace", "kube-system")["metadata"]["uid"]

        karmada = self.karmada()
        karmada.ensure(_namespace(CLUSTER_NAMESPACE, KARMADA_SYSTEM_LABEL))
        credentials = tokens[f"karmada-{member}"]
        secrets = {
            member: {"caBundle": credentials["ca.crt"], "token": credentials["token"]},
            f"{member}-impersonator": {"token": tokens["karmada-impersonator"]["token"]},
        }
        for name, data in secrets.items():
            karmada.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": name,
                        "namespace": CLUSTER_NAMESPACE,
                        "labels": KARMADA_SYSTEM_LABEL,
                    },
                    "data": data,
                }
            )
        cluster = {
            "apiVersion": "cluster.karmada.io/v1alpha1",
            "kind": "Cluster",
            "metadata": {"name": member},
            "spec": {
                "id": cluster_id,
                "syncMode": "Push",
                "apiEndpoint": self._url(member),
                "secretRef": {"namespace": CLUSTER_NAMESPACE, "name": member},
                "impersonatorSecretRef": {
                    "namespace": CLUSTER_NAMESPACE,
                    "name": f"{member}-impersonator",
                },
            },
        }
        stored = wait_until(
            lambda: _create_or_get(karmada, cluster),
            timeout=left(),
            what=f"Karmada Cluster {member} created (aggregated API served)",
        )
        owner = {
            "apiVersion": "cluster.karmada.io/v1alpha1",
            "kind": "Cluster",
            "name": member,
            "uid": stored["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
        for name in secrets:
            karmada.patch(
                "v1",
                "Secret",
                name,
                {"metadata": {"ownerReferences": [owner]}},
                CLUSTER_NAMESPACE,
            )


# -- helpers ---------------------------------------------------------------------------------


def _namespace(name: str, labels: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _condition(obj: Obj | None, kind: str) -> bool:
    if not obj:
        return False
    for condition in obj.get("status", {}).get("conditions", []) or []:
        if condition.get("type") == kind:
            return condition.get("status") == "True"
    return False


def _create_or_get(client: KubeClient, obj: Obj) -> Obj:
    try:
        return client.create(obj)
    except ApiError as error:
        if error.conflict:
            return client.get(obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        raise


def _karmada_version(bin_dir: Path) -> str:
    stamp = (bin_dir / "STAMP").read_text().splitlines()
    for word in " ".join(stamp[1:]).split():
        if word.startswith("karmada="):
            return word.split("=", 1)[1]
    return "unknown"


def karmada_crds(crd_dir: Path, webhook: str, ca_bundle: str) -> Iterable[Obj]:
    """Karmada's CRDs as its kustomization lists them, with the conversion patches.

    The patches point ResourceBinding and ClusterResourceBinding conversion at
    karmada-webhook; here at `<webhook>/convert` on loopback.
    """
    kustomization = yaml.safe_load((crd_dir / "kustomization.yaml").read_text())
    patched = set()
    for patch in kustomization.get("patches", []):
        text = (crd_dir / patch["path"]).read_text()
        patched.add(yaml.safe_load(text.replace("{{", "").replace("}}", ""))["metadata"]["name"])
    for resource in kustomization["resources"]:
        crd = yaml.safe_load((crd_dir / resource).read_text())
        if crd["metadata"]["name"] in patched:
            crd["spec"]["conversion"] = {
                "strategy": "Webhook",
                "webhook": {
                    "clientConfig": {"url": f"{webhook}/convert", "caBundle": ca_bundle},
                    "conversionReviewVersions": ["v1"],
                },
            }
        yield crd


# (name, path, api group, resource, scope, operations) of Karmada's admission webhooks,
# as its Helm chart registers them.
_MUTATING = [
    ("propagationpolicy", "policy.karmada.io", "propagationpolicies", "Namespaced", "CU"),
    (
        "clusterpropagationpolicy",
        "policy.karmada.io",
        "clusterpropagationpolicies",
        "Cluster",
        "CU",
    ),
    ("overridepolicy", "policy.karmada.io", "overridepolicies", "Namespaced", "CU"),
    ("resourcebinding", "work.karmada.io", "resourcebindings", "Namespaced", "C"),
    ("clusterresourcebinding", "work.karmada.io", "clusterresourcebindings", "Cluster", "C"),
    ("work", "work.karmada.io", "works", "Namespaced", "CU"),
    ("federatedhpa", "autoscaling.karmada.io", "federatedhpas", "Namespaced", "CU"),
    ("multiclusterservice", "networking.karmada.io", "multiclusterservices", "Namespaced", "CU"),
]
_VALIDATING = [
    ("propagationpolicy", "policy.karmada.io", "propagationpolicies", "Namespaced", "CU"),
    (
        "clusterpropagationpolicy",
        "policy.karmada.io",
        "clusterpropagationpolicies",
        "Cluster",
        "CU",
    ),
    ("overridepolicy", "policy.karmada.io", "overridepolicies", "Namespaced", "CU"),
    ("clusteroverridepolicy", "policy.karmada.io", "clusteroverridepolicies", "Cluster", "CU"),
    (
        "resourceinterpreterwebhookconfiguration",
        "config.karmada.io",
        "resourceinterpreterwebhookconfigurations",
        "Cluster",
        "CU",
    ),
    (
        "resourceinterpretercustomization",
        "config.karmada.io",
        "resourceinterpretercustomizations",
        "Cluster",
        "CU",
    ),
    ("federatedresourcequota", "policy.karmada.io", "federatedresourcequotas", "Namespaced", "CU"),
    ("multiclusteringress", "networking.karmada.io", "multiclusteringresses", "Namespaced", "CU"),
    ("multiclusterservice", "networking.karmada.io", "multiclusterservices", "Namespaced", "CU"),
    ("resourcedeletionprotection", "*", "*", "*", "D"),
    ("resourcebinding", "work.karmada.io", "resourcebindings", "Namespaced", "CU"),
]
_OPERATIONS = {"C": "CREATE", "U": "UPDATE", "D": "DELETE"}
# Hooks not named `<resource kind>.karmada.io` in Karmada's chart.
_HOOK_NAMES = {
    "federatedhpa": "autoscaling.karmada.io",
    "resourceinterpreterwebhookconfiguration": "config.karmada.io",
}


def webhook_configurations(webhook: str, ca_bundle: str) -> list[Obj]:
    """Karmada's Mutating/ValidatingWebhookConfiguration, pointed at loopback."""

    def hooks(table: list[tuple[str, str, str, str, str]], verb: str) -> list[Obj]:
        result = []
        for name, group, resource, scope, ops in table:
            hook: Obj = {
                "name": _HOOK_NAMES.get(name, f"{name}.karmada.io"),
                "rules": [
                    {
                        "operations": [_OPERATIONS[o] for o in ops],
                        "apiGroups": [group],
                        "apiVersions": ["*"],
                        "resources": [resource],
                        "scope": scope,
                    }
                ],
                "clientConfig": {"url": f"{webhook}/{verb}-{name}", "caBundle": ca_bundle},
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "timeoutSeconds": 10 if name == "resourceinterpretercustomization" else 3,
            }
            if name == "resourcedeletionprotection":
                hook["objectSelector"] = {
                    "matchExpressions": [
                        {
                            "key": "resourcetemplate.karmada.io/deletion-protected",
                            "operator": "Exists",
                        }
                    ]
                }
            if verb == "validate" and name == "resourcebinding":
                hook["sideEffects"] = "NoneOnDryRun"
            result.append(hook)
        return result

    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingWebhookConfiguration",
            "metadata": {"name": "mutating-config", "labels": {"app": "karmada-webhook"}},
            "webhooks": hooks(_MUTATING, "mutate"),
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "validating-config", "labels": {"app": "karmada-webhook"}},
            "webhooks": hooks(_VALIDATING, "validate"),
        },
    ]


def down(state_dir: Path | None = None) -> list[str]:
    """Stop everything a stack in `state_dir` started (hostlets first); return what was stopped.

    Works from the pidfiles alone, so it also cleans up after a crashed run. The
    hostlets are stopped first so they can kill their pods and drop their /etc/hosts
    entries; whatever is left (pods of a killed hostlet, components) is stopped next, and
    /etc/hosts entries tagged with this stack's id are removed.
    """
    state_dir = (state_dir or DEFAULT_STATE).resolve()
    pid_dir = state_dir / "pids"
    stopped: list[str] = []
    if pid_dir.exists():
        hostlets = [p for p in _procs.pidfiles_under(pid_dir) if p.path.stem.endswith("-hostlet")]
        stopped += [p.path.stem for p in hostlets if p.alive()]
        _procs.terminate(hostlets, grace=30)
        pods = _procs.pidfiles_under(pid_dir / "pods") if (pid_dir / "pods").exists() else []
        stopped += [f"pod:{p.path.stem}" for p in pods if p.alive()]
        _procs.terminate(pods, grace=10)
        # Karmada's own components first, then controller-managers, API servers, etcd.
        # The stack's state is thrown away, so the servers' graceful shutdown (up to 15 s
        # for some) is not waited for: SIGKILL follows SIGTERM after 3 s.
        for group in _stop_order(_procs.pidfiles_under(pid_dir)):
            stopped += [p.path.stem for p in group if p.alive()]
            _procs.terminate(group, grace=3)
    with contextlib.suppress(OSError):
        remove_entries(stack_id(state_dir))
    (state_dir / "stack.json").unlink(missing_ok=True)
    return stopped


def _stop_order(records: list[_procs.PidFile]) -> list[list[_procs.PidFile]]:
    def rank(record: _procs.PidFile) -> int:
        stem = record.path.stem
        if stem.endswith("-kube-controller-manager"):
            return 1
        if stem.startswith("karmada-") and stem != "karmada-apiserver":
            return 0
        if stem.endswith("-apiserver"):
            return 2
        return 3

    return [[r for r in records if rank(r) == index] for index in range(4)]
