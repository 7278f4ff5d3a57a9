"""hostlet: the kubelet stand-in of the test stack, one per member API server.

It registers a Ready Node (and keeps its Lease and heartbeat fresh), binds the pods
nobody scheduled to that node (there is no kube-scheduler), and runs each pod's first
container as a local process:

- the binary comes from the image (`*etcd*:v<release>` → that etcd release where local mode
  finds it, e.g. hack/etcd/build.sh's cache, else Debian's etcd; `*xline*` → `xline` on PATH)
  or from the command's first element (`etcd`, `/usr/local/bin/etcd` → etcd; an absolute
  path that exists here, or a name on PATH, runs as is), followed by the command's rest
  and the args, with `$(VAR)` references expanded as Kubernetes does;
- env comes from `env` (values, fieldRef, configMapKeyRef, secretKeyRef) and `envFrom`;
- each pod gets its own loopback IP from this hostlet's 127.<n>.0.0/16 block, reported as
  status.podIP; the value `0.0.0.0` in args/env is replaced by that IP, since all pods
  share the host's network namespace; for the same reason a declared container port
  named `metrics` (a port a pod's engine binds on every address, as Xline does) gets a
  free host port of the pod's own, substituted where an arg ends in `=<that port>`;
- volumes are host directories: a PVC gets a hostPath PersistentVolume this hostlet
  provisions (pre-bound to the claim, reclaim policy Retain; kube-controller-manager's
  binder binds them), so its data outlives the pod; emptyDir, configMap and secret
  volumes are directories under the pod's directory, the last two written as the
  kubelet's atomic writer does and re-read while the pod runs (a rotated Secret reaches a
  running process within VOLUME_RESYNC seconds). There is no mount namespace, so
  "mounting" is substitution: any arg or env value (and workingDir) containing a
  volumeMount's mountPath is rewritten to the host directory;
- the pod's DNS names resolve through tagged /etc/hosts entries (tests/support/stack/_hosts.py):
  the names in the annotation `xlinefed.io/dns-names` (comma-separated, e.g.
  `<pod>.<cluster>.<federation>.<ns>.svc.clusterset.local`) and, when the pod sets
  hostname and subdomain, `<hostname>.<subdomain>.<ns>.svc.cluster.local`;
- init containers run first, to completion and in order (their output goes to the pod's
  log, a failure's tail becomes the termination message); one that fails fails the pod
  under restartPolicy Never and is retried otherwise; the command `xlinefed` runs this
  test's own `python -m xlinefed.cli` (the operator's image);
- status: phase, podIP, hostIP, startTime, the conditions PodScheduled, Initialized,
  ContainersReady and Ready, container state, restartCount; readiness from the
  readinessProbe (httpGet, tcpSocket, grpc, exec; against the pod IP), liveness and startup
  probes likewise; the process is restarted per restartPolicy with a short back-off;
- deleting a pod (deletionTimestamp) sends SIGTERM to the process group, SIGKILL after
  the grace period, then removes the pod object with grace 0, as a kubelet does.

Stopping the hostlet (SIGTERM) stops its pods' processes and removes its /etc/hosts
entries; a SIGKILLed hostlet leaves its pods running, and a new hostlet adopts them from
their pidfiles. The loop is level-triggered: watches on pods and claims only wake it up;
each pass lists pods and claims and acts on the whole picture (and at least every second,
for heartbeats, retries and deleted pods whose processes have stopped).

Client: tests/support/stack/_client.py (blocking, stdlib) rather than kubernetes_asyncio,
because this is process supervision with blocking probes and one thread per pod.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.stack import _hosts
from tests.support.stack._client import ApiError, KubeClient, Obj
from tests.support.stack._procs import PidFile, write_pidfile
from xlinefed.api.engines import Engine
from xlinefed.platforms.local.platform import EngineNotFound, find_binary

log = logging.getLogger("hostlet")

DNS_ANNOTATION = "xlinefed.io/dns-names"
ETCD_BINARY = os.environ.get("XLINEFED_STACK_ETCD", "/usr/bin/etcd")
RESYNC_INTERVAL = 1.0  # seconds between full syncs when nothing changes
SYNC_SPACING = 0.05  # minimum pause between syncs, to coalesce bursts of events
HEARTBEAT_INTERVAL = 10.0
VOLUME_RESYNC = 2.0  # seconds between re-reads of a running pod's secret/configMap volumes
KUBELET_VERSION = "v1.36.5-hostlet"


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- images and commands -------------------------------------------------------------------


def _which(name: str) -> str | None:
    if name == "xline" and os.environ.get("XLINEFED_XLINE_BIN"):
        return os.environ["XLINEFED_XLINE_BIN"]
    return shutil.which(name)


def default_images() -> list[tuple[str, str | None]]:
    """(image substring, local binary) rules, first match wins."""
    return [("etcd", ETCD_BINARY), ("xline", _which("xline"))]


_COMMAND_ALIASES = {"etcd": ETCD_BINARY, "etcdctl": "/usr/bin/etcdctl"}


def etcd_for_image(image: str) -> str:
    """The etcd binary for an image `…/etcd:v<release>`: that release when local mode finds
    it (hack/etcd/build.sh's cache, XLINEFED_BIN_DIR, or Debian's when it is that release),
    else Debian's etcd (so `:v3.4.24` still runs 3.4.23, as a kubelet pulling a patch
    release would run a compatible one)."""
    tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
    if tag:
        try:
            return find_binary(Engine.ETCD, tag)[0]
        except (EngineNotFound, ValueError):
            pass
    return ETCD_BINARY


def map_command_head(head: str, image: str = "") -> str | None:
    """The local binary for a container command's first element, if there is one."""
    base = os.path.basename(head)
    if base == "etcd" and "etcd" in image:
        return etcd_for_image(image)
    if base in _COMMAND_ALIASES:
        return _COMMAND_ALIASES[base]
    if base == "xline":
        return _which("xline")
    if os.path.isabs(head) and os.access(head, os.X_OK):
        return head
    return _which(head)


def resolve_argv(
    image: str,
    command: list[str],
    args: list[str],
    images: list[tuple[str, str | None]],
) -> list[str]:
    """The argv to run for a container, or ValueError when nothing local matches."""
    if command and os.path.basename(command[0]) == "xlinefed":
        # The operator's image: this test's own xlinefed.
        return [sys.executable, "-m", "xlinefed.cli", *command[1:], *args]
    if command:
        binary = map_command_head(command[0], image)
        if not binary:
            raise ValueError(f"no local binary for command {command[0]!r}")
        return [binary, *command[1:], *args]
    for pattern, binary in images:
        if pattern in image:
            if not binary:
                raise ValueError(f"image {image!r} maps to a binary that is not installed")
            return [binary, *args]
    raise ValueError(f"no local binary for image {image!r}")


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def free_tcp_port() -> int:
    """A port nothing listens on now (the kernel picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _grpc_serving(host: str, port: int, timeout: float) -> bool:
    """A Kubernetes `grpc` probe: grpc.health.v1.Health/Check for the server as a whole
    answers SERVING. The messages are encoded by hand (an empty request; the response's
    field 1 is the status, 1 = SERVING) so no generated stubs are needed."""
    import grpc  # the project's own dependency; imported here, only pods probed so need it

    with grpc.insecure_channel(f"{host}:{port}") as channel:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        try:
            answer = check(b"", timeout=timeout)
        except grpc.RpcError:
            return False
    return bytes(answer) == b"\x08\x01"


def expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion: defined vars substituted, `$$` escapes `$`."""

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _VAR.sub(replace, value)


def write_atomically(target: Path, files: dict[str, bytes]) -> bool:
    """The kubelet's atomic writer for secret and configMap volumes: the files live in a
    timestamped directory, `..data` links to it, and each visible name links through
    `..data`; an update writes a new directory and swaps `..data` with one rename, so a
    reader sees every old file or every new one (a certificate never beside the other
    key). Returns whether anything changed."""
    current = target / "..data"
    if current.is_symlink():
        held = current.resolve()
        found = {str(p.relative_to(held)): p.read_bytes() for p in held.rglob("*") if p.is_file()}
        if found == files:
            return False
    fresh = target / f"..{time.time_ns()}"
    for path, value in files.items():
        (fresh / path).parent.mkdir(parents=True, exist_ok=True)
        (fresh / path).write_bytes(value)
    old = current.resolve() if current.is_symlink() else None
    link = target / "..data_tmp"
    link.unlink(missing_ok=True)
    link.symlink_to(fresh.name)
    os.replace(link, current)
    for path in files:
        visible = target / path.split("/")[0]
        if not visible.is_symlink():
            if visible.is_dir():
                shutil.rmtree(visible)
            visible.unlink(missing_ok=True)
            visible.symlink_to(f"..data/{path.split('/')[0]}")
    if old is not None and old != fresh:
        shutil.rmtree(old, ignore_errors=True)
    return True


def rewrite_paths(value: str, mounts: list[tuple[str, str]]) -> str:
    """Replace each mountPath occurring in `value` (as a path) with its host directory."""
    for mount_path, host_dir in sorted(mounts, key=lambda m: -len(m[0])):
        pattern = r"(?<![\w.-])" + re.escape(mount_path.rstrip("/")) + r"(?=/|$|[^\w.-])"
        value = re.sub(pattern, lambda _m, h=host_dir: h, value)
    return value


# -- pod workers ---------------------------------------------------------------------------


@dataclass
class ProbeState:
    spec: Obj | None
    successes: int = 0
    failures: int = 0
    passed: bool = False
    next_at: float = 0.0


@dataclass
class ContainerRun:
    """What is known about the current or last run of the pod's container."""

    pid: int | None = None
    process: subprocess.Popen[bytes] | None = None
    pidfile: PidFile | None = None
    started_at: str | None = None
    started_mono: float = 0.0
    restarts: int = 0
    last_terminated: Obj | None = None
    terminated: Obj | None = None
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    next_start: float = 0.0


class PodWorker(threading.Thread):
    """Runs one pod's container and reports its status; one thread per pod."""

    def __init__(self, hostlet: Hostlet, pod: Obj) -> None:
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.hostlet = hostlet
        self.pod = pod
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.pod_name: str = meta["name"]
        self.ip = hostlet.allocate_ip(self.uid, pod.get("status", {}).get("podIP"))
        self.dir = hostlet.pods_dir / f"{self.namespace}_{self.pod_name}_{self.uid[:8]}"
        self.log_path = hostlet.logs_dir / f"{self.namespace}_{self.pod_name}_{self.uid[:8]}.log"
        self.pidfile_path = hostlet.pid_dir / f"{self.uid}.pid"
        self.run_state = ContainerRun()
        #: This pod's own port for its declared `metrics` port (see _own_metrics_port).
        self.metrics_port: int | None = None
        self.readiness = ProbeState(None)
        self.liveness = ProbeState(None)
        self.startup = ProbeState(None)
        self.stop_requested = threading.Event()
        self.grace = 30.0
        self.finished = threading.Event()
        self.start_time = pod.get("status", {}).get("startTime") or now()
        self.last_status: Obj | None = None
        self.client = hostlet.client
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.cwd: Path = self.dir
        self.mounts: list[tuple[str, str]] = []
        self.prepared_for = ""
        #: Init containers run to completion, in order, before the first container.
        self.init_statuses: list[Obj] = []
        self.init_done = not pod["spec"].get("initContainers")
        self.init_failed = False
        self.volumes_synced_at = time.monotonic()

    # The container spec the worker runs: the pod's first container.
    @property
    def container(self) -> Obj:
        return self.pod["spec"]["containers"][0]

    def request_stop(self, grace: float) -> None:
        self.grace = max(0.0, grace)
        self.stop_requested.set()

    def run(self) -> None:
        try:
            self._run()
        except Exception:
            log.exception("pod %s/%s: worker failed", self.namespace, self.pod_name)
        finally:
            self._cleanup()
            self.finished.set()
            self.hostlet.wake.set()

    def _run(self) -> None:
        container = self.container
        self.readiness = ProbeState(container.get("readinessProbe"))
        self.liveness = ProbeState(container.get("livenessProbe"))
        self.startup = ProbeState(container.get("startupProbe"))
        self._adopt()
        retry_at = 0.0
        while not self.stop_requested.is_set():
            if self.argv and self._spec_key() != self.prepared_for:
                # Like a kubelet after an in-place image change: restart the container.
                log.info("pod %s/%s: container spec changed", self.namespace, self.pod_name)
                self._kill_for_restart(
                    float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
                )
                self.argv = []
            if not self.init_done and not self.init_failed and time.monotonic() >= retry_at:
                try:
                    self._run_init_containers()
                except _NotYet as reason:
                    self.run_state.waiting = ("PodInitializing", str(reason))
                    retry_at = time.monotonic() + 0.5
                if not self.init_done and not self.init_failed:
                    retry_at = max(retry_at, time.monotonic() + 2)
            if self.init_done and not self.argv and time.monotonic() >= retry_at:
                try:
                    self._prepare()
                except _NotYet as reason:
                    self.run_state.waiting = ("ContainerCreating", str(reason))
                    retry_at = time.monotonic() + 0.5
                except Exception as error:
                    self.run_state.waiting = ("CreateContainerConfigError", str(error))
                    log.warning("pod %s/%s: %s", self.namespace, self.pod_name, error)
                    retry_at = time.monotonic() + 2
            if self.argv:
                self._supervise()
                self._refresh_volumes()
            self._publish()
            self.stop_requested.wait(0.1)
        self._kill(self.grace)

    def _run_init_containers(self) -> None:
        """Each init container to completion, as a kubelet does; one that fails fails the
        pod under restartPolicy Never, and is retried otherwise."""
        policy = self.pod["spec"].get("restartPolicy", "Always")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.init_statuses = []
        for container in self.pod["spec"].get("initContainers", []) or []:
            argv, env, _ = self._command(container)
            started = now()
            base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}
            result = subprocess.run(
                argv, cwd=self.dir, env={**base, **env}, capture_output=True, timeout=120
            )
            output = (result.stdout + result.stderr).decode(errors="replace")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a") as out:
                out.write(f"--- hostlet {started}: init {container['name']}: {' '.join(argv)}\n")
                out.write(output)
            code = result.returncode if result.returncode >= 0 else 128 - result.returncode
            terminated = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now(),
                # terminationMessagePolicy FallbackToLogsOnError: the output's tail
                **({"message": output.strip()[-1024:]} if code and output.strip() else {}),
            }
            self.init_statuses.append(
                {
                    "name": container["name"],
                    "image": container.get("image", ""),
                    "imageID": f"hostlet://{argv[0]}",
                    "ready": code == 0,
                    "restartCount": 0,
                    "state": {"terminated": terminated},
                }
            )
            log.info(
                "pod %s/%s: init container %s exited %s",
                self.namespace,
                self.pod_name,
                container["name"],
                code,
            )
            if code != 0:
                self.init_failed = policy == "Never"
                return
        self.init_done = True

    def _command(self, container: Obj) -> tuple[list[str], dict[str, str], list[tuple[str, str]]]:
        """(argv, env, mounts) for `container`: `$(VAR)` expanded, mount paths rewritten to
        host directories, `0.0.0.0` replaced by the pod's IP."""
        mounts = self._mounts(container)
        env = self._env(container)
        env = {k: rewrite_paths(v.replace("0.0.0.0", self.ip), mounts) for k, v in env.items()}
        command = [expand(c, env) for c in container.get("command", []) or []]
        args = [expand(a, env) for a in container.get("args", []) or []]
        argv = resolve_argv(container.get("image", ""), command, args, self.hostlet.images)
        argv = [argv[0]] + [rewrite_paths(a.replace("0.0.0.0", self.ip), mounts) for a in argv[1:]]
        argv = [argv[0]] + [self._own_metrics_port(a, container) for a in argv[1:]]
        return argv, env, mounts

    def _own_metrics_port(self, arg: str, container: Obj) -> str:
        """Pods share the host's network here, and an engine that binds its metrics on
        every address (Xline: 0.0.0.0:<port>) would collide with its neighbours: the
        declared `metrics` port becomes a free port of this pod's own, kept for its life."""
        for declared in container.get("ports", []) or []:
            if declared.get("name") == "metrics" and arg.endswith(f"={declared['containerPort']}"):
                if self.metrics_port is None:
                    self.metrics_port = free_tcp_port()
                return arg[: arg.rindex("=") + 1] + str(self.metrics_port)
        return arg

    def _spec_key(self) -> str:
        container = self.container
        fields = ("image", "command", "args", "env", "readinessProbe", "livenessProbe")
        return json.dumps([container.get(f) for f in fields], sort_keys=True)

    # -- preparation -----------------------------------------------------------------------

    def _prepare(self) -> None:
        pod, container = self.pod, self.container
        self.prepared_for = self._spec_key()
        self.readiness = ProbeState(container.get("readinessProbe"), passed=self.readiness.passed)
        self.liveness = ProbeState(container.get("livenessProbe"))
        self.startup = ProbeState(container.get("startupProbe"), passed=self.startup.passed)
        self.dir.mkdir(parents=True, exist_ok=True)
        argv, env, mounts = self._command(container)
        working_dir = container.get("workingDir")
        self.cwd = Path(rewrite_paths(working_dir, mounts)) if working_dir else self.dir
        self.cwd.mkdir(parents=True, exist_ok=True)
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.dir)}
        base["HOSTNAME"] = pod["spec"].get("hostname") or self.pod_name
        self.env = {**base, **env}
        self.mounts = mounts
        self.hostlet.set_dns(self.uid, self.ip, self._dns_names())
        self.argv = argv

    def _dns_names(self) -> list[str]:
        meta, spec = self.pod["metadata"], self.pod["spec"]
        names = [
            n.strip()
            for n in (meta.get("annotations", {}) or {}).get(DNS_ANNOTATION, "").split(",")
            if n.strip()
        ]
        if spec.get("hostname") and spec.get("subdomain"):
            names.append(
                f"{spec['hostname']}.{spec['subdomain']}.{self.namespace}.svc.cluster.local"
            )
        return names

    def _mounts(self, container: Obj | None = None) -> list[tuple[str, str]]:
        volumes = {v["name"]: v for v in self.pod["spec"].get("volumes", []) or []}
        mounts = []
        for mount in (container or self.container).get("volumeMounts", []) or []:
            volume = volumes.get(mount["name"])
            if volume is None:
                raise ValueError(f"volumeMount {mount['name']!r} names no volume")
            host = self._volume_dir(volume)
            if mount.get("subPath"):
                host = host / mount["subPath"]
                host.mkdir(parents=True, exist_ok=True)
            mounts.append((mount["mountPath"], str(host)))
        return mounts

    def _volume_dir(self, volume: Obj) -> Path:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]["claimName"]
            pvc = self.client.get_or_none("v1", "PersistentVolumeClaim", claim, self.namespace)
            if not pvc:
                raise _NotYet(f"persistentvolumeclaim {claim!r} not found")
            if pvc.get("status", {}).get("phase") != "Bound" or not pvc["spec"].get("volumeName"):
                raise _NotYet(f"persistentvolumeclaim {claim!r} not bound yet")
            pv = self.client.get("v1", "PersistentVolume", pvc["spec"]["volumeName"])
            path = (pv["spec"].get("hostPath") or pv["spec"].get("local") or {}).get("path")
            if not path:
                raise ValueError(f"volume {pv['metadata']['name']} has no host path")
            Path(path).mkdir(parents=True, exist_ok=True)
            return Path(path)
        if "hostPath" in volume:
            return Path(volume["hostPath"]["path"])
        target = self.dir / "volumes" / name
        target.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume or "secret" in volume:
            self._write_keys(volume, target)
        return target

    def _refresh_volumes(self) -> None:
        """Secret and configMap volumes follow their objects while the pod runs, as the
        kubelet's periodic sync does (every VOLUME_RESYNC seconds here; about a minute
        there), so a rotated certificate reaches a running member without a restart."""
        if time.monotonic() < self.volumes_synced_at + VOLUME_RESYNC:
            return
        self.volumes_synced_at = time.monotonic()
        for volume in self.pod["spec"].get("volumes", []) or []:
            if "secret" not in volume and "configMap" not in volume:
                continue
            try:
                self._write_keys(volume, self.dir / "volumes" / volume["name"])
            except (_NotYet, ApiError, OSError) as error:
                log.warning(
                    "pod %s/%s: volume %s: %s", self.namespace, self.pod_name, volume["name"], error
                )

    def _write_keys(self, volume: Obj, target: Path) -> None:
        if "configMap" in volume:
            source = volume["configMap"]
            obj = self.client.get_or_none("v1", "ConfigMap", source["name"], self.namespace)
            data = dict(obj.get("data", {}) or {}) if obj else {}
            binary = {k: base64.b64decode(v) for k, v in (obj or {}).get("binaryData", {}).items()}
        else:
            source = volume["secret"]
            obj = self.client.get_or_none("v1", "Secret", source["secretName"], self.namespace)
            data = {}
            binary = {k: base64.b64decode(v) for k, v in (obj or {}).get("data", {}).items()}
        if obj is None and not source.get("optional"):
            raise _NotYet(f"volume {volume['name']!r}: source object not found")
        contents = {k: v.encode() for k, v in data.items()} | binary
        items = source.get("items")
        files = {
            path: value
            for key, value in contents.items()
            for path in ([i["path"] for i in items if i["key"] == key] if items else [key])
        }
        write_atomically(target, files)

    def _env(self, container: Obj | None = None) -> dict[str, str]:
        container = container or self.container
        env: dict[str, str] = {}
        for source in container.get("envFrom", []) or []:
            prefix = source.get("prefix", "")
            if "configMapRef" in source:
                obj = self.client.get_or_none(
                    "v1", "ConfigMap", source["configMapRef"]["name"], self.namespace
                )
                for k, v in ((obj or {}).get("data") or {}).items():
                    env[prefix + k] = v
            elif "secretRef" in source:
                obj = self.client.get_or_none(
                    "v1", "Secret", source["secretRef"]["name"], self.namespace
                )
                for k, v in ((obj or {}).get("data") or {}).items():
                    env[prefix + k] = base64.b64decode(v).decode()
        for item in container.get("env", []) or []:
            if "valueFrom" in item:
                value = self._value_from(item["valueFrom"])
                if value is None:
                    continue
            else:
                value = expand(item.get("value", ""), env)
            env[item["name"]] = value
        return env

    def _value_from(self, source: Obj) -> str | None:
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            meta, spec = self.pod["metadata"], self.pod["spec"]
            simple = {
                "metadata.name": self.pod_name,
                "metadata.namespace": self.namespace,
                "metadata.uid": self.uid,
                "spec.nodeName": self.hostlet.node_name,
                "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
                "status.podIP": self.ip,
                "status.podIPs": self.ip,
                "status.hostIP": self.hostlet.node_ip,
                "status.hostIPs": self.hostlet.node_ip,
            }
            if path in simple:
                return simple[path]
            match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
            if match:
                return (meta.get(match.group(1)) or {}).get(match.group(2), "")
            raise ValueError(f"fieldRef {path!r} not supported by hostlet")
        if "configMapKeyRef" in source or "secretKeyRef" in source:
            kind = "ConfigMap" if "configMapKeyRef" in source else "Secret"
            ref = source.get("configMapKeyRef") or source["secretKeyRef"]
            obj = self.client.get_or_none("v1", kind, ref["name"], self.namespace)
            data = (obj or {}).get("data") or {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise _NotYet(f"{kind} {ref['name']!r} key {ref['key']!r} not found")
            value = data[ref["key"]]
            return base64.b64decode(value).decode() if kind == "Secret" else value
        if "resourceFieldRef" in source:
            return "0"
        raise ValueError(f"env valueFrom {sorted(source)} not supported by hostlet")

    # -- running ---------------------------------------------------------------------------

    def _adopt(self) -> None:
        """Take over a process a previous hostlet started for this pod (hostlet restart)."""
        record = PidFile.read(self.pidfile_path)
        if record and record.alive():
            self.init_done = True
            status = next(iter(self.pod.get("status", {}).get("containerStatuses", []) or []), {})
            running = (status.get("state") or {}).get("running") or {}
            self.run_state = ContainerRun(
                pid=record.pid,
                pidfile=record,
                started_at=running.get("startedAt") or now(),
                started_mono=time.monotonic(),
                restarts=int(status.get("restartCount", 0)),
                waiting=None,
            )
            self.readiness.passed = bool(status.get("ready"))
            self.startup.passed = True

    def _alive(self) -> bool:
        state = self.run_state
        if state.process is not None:
            return state.process.poll() is None
        return state.pidfile is not None and state.pidfile.alive()

    def _exit_code(self) -> int:
        state = self.run_state
        if state.process is not None and state.process.returncode is not None:
            return state.process.returncode
        return 255  # an adopted process's exit status is not ours to collect

    def _supervise(self) -> None:
        state = self.run_state
        if state.pid is not None and not self._alive():
            code = self._exit_code()
            reason = "Completed" if code == 0 else "Error"
            if code < 0:
                code, reason = 128 - code, "Error"
            state.terminated = {
                "exitCode": code,
                "reason": reason,
                "startedAt": state.started_at,
                "finishedAt": now(),
                "containerID": f"hostlet://{state.pid}",
            }
            log.info(
                "pod %s/%s: process %s exited %s", self.namespace, self.pod_name, state.pid, code
            )
            state.pid = state.process = state.pidfile = None
            self.pidfile_path.unlink(missing_ok=True)
            self.readiness = ProbeState(self.readiness.spec)
            self.liveness = ProbeState(self.liveness.spec)
            self.startup = ProbeState(self.startup.spec)
            policy = self.pod["spec"].get("restartPolicy", "Always")
            if policy == "Always" or (policy == "OnFailure" and code != 0):
                delay = min(10.0, 0.5 * 2 ** min(state.restarts, 5))
                state.next_start = time.monotonic() + delay
                state.waiting = ("CrashLoopBackOff", f"back-off {delay:.1f}s restarting")
            else:
                state.next_start = float("inf")
        if state.pid is None and time.monotonic() >= state.next_start:
            if state.terminated is not None:
                state.last_terminated = state.terminated
                state.terminated = None
                state.restarts += 1
            self._spawn()
        if state.pid is not None:
            self._probe_all()

    def _spawn(self) -> None:
        state = self.run_state
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"--- hostlet {now()}: {' '.join(self.argv)}\n".encode())
            out.flush()
            try:
                process = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as error:
                state.waiting = ("RunContainerError", str(error))
                state.next_start = time.monotonic() + 2
                return
        state.process = process
        state.pid = process.pid
        try:
            state.pidfile = write_pidfile(self.pidfile_path, process.pid)
        except RuntimeError:
            state.pidfile = None  # exited at once; noticed on the next pass
        state.started_at = now()
        state.started_mono = time.monotonic()
        state.waiting = None
        log.info(
            "pod %s/%s: started pid %s: %s", self.namespace, self.pod_name, process.pid, self.argv
        )

    def _kill(self, grace: float) -> None:
        state = self.run_state
        if state.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.pid, signal.SIGKILL)
            end = time.monotonic() + 5
            while self._alive() and time.monotonic() < end:
                time.sleep(0.05)
        # Processes of the group that outlived the leader (rare): kill the group again.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(state.pid, signal.SIGKILL)
        state.pid = state.process = state.pidfile = None
        self.pidfile_path.unlink(missing_ok=True)

    def _cleanup(self) -> None:
        self._kill(0)
        self.hostlet.clear_dns(self.uid)

    # -- probes ----------------------------------------------------------------------------

    def _probe_all(self) -> None:
        started = self.run_state.started_mono
        if self.startup.spec and not self.startup.passed:
            self._probe(self.startup, started)
            return
        self.startup.passed = True
        if self.liveness.spec:
            self._probe(self.liveness, started, default_passed=True)
            threshold = int(self.liveness.spec.get("failureThreshold", 3))
            if self.liveness.failures >= threshold:
                log.info("pod %s/%s: liveness failed, killing", self.namespace, self.pod_name)
                grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
                self._kill_for_restart(float(grace))
                return
        if self.readiness.spec:
            self._probe(self.readiness, started)
        else:
            self.readiness.passed = True

    def _kill_for_restart(self, grace: float) -> None:
        pid = self.run_state.pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid:
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pid and self._alive():
                os.killpg(pid, signal.SIGKILL)

    def _probe(self, state: ProbeState, started: float, default_passed: bool = False) -> None:
        spec = state.spec or {}
        current = time.monotonic()
        if current < started + float(spec.get("initialDelaySeconds", 0)):
            if default_passed:
                state.passed = True
            return
        if current < state.next_at:
            return
        state.next_at = current + float(spec.get("periodSeconds", 10))
        ok = self._check(spec, float(spec.get("timeoutSeconds", 1)))
        if ok:
            state.successes += 1
            state.failures = 0
            if state.successes >= int(spec.get("successThreshold", 1)):
                state.passed = True
        else:
            state.failures += 1
            state.successes = 0
            if state.failures >= int(spec.get("failureThreshold", 3)):
                state.passed = False

    def _port(self, port: Any) -> int:
        if isinstance(port, int) or str(port).isdigit():
            return int(port)
        for declared in self.container.get("ports", []) or []:
            if declared.get("name") == port:
                return int(declared["containerPort"])
        raise ValueError(f"named port {port!r} not declared")

    def _check(self, spec: Obj, timeout: float) -> bool:
        try:
            if "httpGet" in spec:
                get = spec["httpGet"]
                host = get.get("host") or self.ip
                port = self._port(get["port"])
                if get.get("scheme", "HTTP").upper() == "HTTPS":
                    context = ssl._create_unverified_context()
                    connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                        host, port, timeout=timeout, context=context
                    )
                else:
                    connection = http.client.HTTPConnection(host, port, timeout=timeout)
                try:
                    headers = {h["name"]: h["value"] for h in get.get("httpHeaders", []) or []}
                    connection.request("GET", get.get("path", "/"), headers=headers)
                    return 200 <= connection.getresponse().status < 400
                finally:
                    connection.close()
            if "grpc" in spec:
                return _grpc_serving(self.ip, self._port(spec["grpc"]["port"]), timeout)
            if "tcpSocket" in spec:
                tcp = spec["tcpSocket"]
                address = (tcp.get("host") or self.ip, self._port(tcp["port"]))
                with socket.create_connection(address, timeout=timeout):
                    return True
            if "exec" in spec:
                command = [
                    rewrite_paths(expand(c, self.env), self.mounts)
                    for c in spec["exec"].get("command", [])
                ]
                binary = map_command_head(command[0]) if command else None
                if not binary:
                    return False
                result = subprocess.run(
                    [binary, *command[1:]],
                    cwd=self.cwd,
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                )
                return result.returncode == 0
            if "grpc" in spec:
                address = (self.ip, int(spec["grpc"]["port"]))
                with socket.create_connection(address, timeout=timeout):
                    return True
        except (OSError, ValueError, subprocess.TimeoutExpired, http.client.HTTPException):
            return False
        return False

    # -- status ----------------------------------------------------------------------------

    def status(self) -> Obj:
        state = self.run_state
        container = self.container
        running = state.pid is not None
        ready = running and self.readiness.passed and self.startup.passed
        policy = self.pod["spec"].get("restartPolicy", "Always")
        final = state.pid is None and state.next_start == float("inf") and state.terminated
        if self.init_failed:
            phase = "Failed"
        elif running:
            phase = "Running"
        elif final:
            phase = (
                "Succeeded" if state.terminated and state.terminated["exitCode"] == 0 else "Failed"
            )
        elif state.restarts or state.last_terminated or state.terminated:
            phase = "Running" if policy != "Never" else "Failed"
        else:
            phase = "Pending"
        if running:
            current: Obj = {"running": {"startedAt": state.started_at}}
        elif state.terminated and (final or not state.waiting):
            current = {"terminated": state.terminated}
        else:
            reason, message = state.waiting or ("ContainerCreating", "")
            current = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        first: Obj = {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": f"hostlet://{self.argv[0]}" if self.argv else "",
            "ready": ready,
            "started": running and self.startup.passed,
            "restartCount": state.restarts,
            "state": current,
            "lastState": {"terminated": state.last_terminated} if state.last_terminated else {},
        }
        if running:
            first["containerID"] = f"hostlet://{state.pid}"
        statuses = [first] + [
            {
                "name": other["name"],
                "image": other.get("image", ""),
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {
                    "waiting": {
                        "reason": "NotRunByHostlet",
                        "message": "the hostlet runs only the first container",
                    }
                },
            }
            for other in self.pod["spec"]["containers"][1:]
        ]
        scheduled = self.pod["metadata"].get("creationTimestamp") or now()

        def condition(kind: str, value: bool) -> Obj:
            return {"type": kind, "status": "True" if value else "False"}

        return {
            "phase": phase,
            "hostIP": self.hostlet.node_ip,
            "hostIPs": [{"ip": self.hostlet.node_ip}],
            "podIP": self.ip,
            "podIPs": [{"ip": self.ip}],
            "startTime": self.start_time,
            "conditions": [
                {**condition("PodScheduled", True), "lastTransitionTime": scheduled},
                condition("PodReadyToStartContainers", bool(self.argv)),
                condition("Initialized", self.init_done),
                condition("ContainersReady", ready),
                condition("Ready", ready),
            ],
            "containerStatuses": statuses,
            **({"initContainerStatuses": self.init_statuses} if self.init_statuses else {}),
        }

    def _publish(self) -> None:
        status = self.status()
        if status == self.last_status:
            return
        # lastTransitionTime changes only when a condition's status changes.
        previous = {c["type"]: c for c in (self.last_status or {}).get("conditions", [])}
        for c in status["conditions"]:
            old = previous.get(c["type"])
            if "lastTransitionTime" in c:
                continue
            if old and old["status"] == c["status"]:
                c["lastTransitionTime"] = old["lastTransitionTime"]
            else:
                c["lastTransitionTime"] = now()
        try:
            self.client.patch(
                "v1", "Pod", self.pod_name, {"status": status}, self.namespace, subresource="status"
            )
            self.last_status = status
        except ApiError as error:
            if error.not_found:
                self.stop_requested.set()
                self.grace = 0
            else:
                log.warning(
                    "pod %s/%s: status update failed: %s", self.namespace, self.pod_name, error
                )
        except OSError as error:
            log.warning("pod %s/%s: status update failed: %s", self.namespace, self.pod_name, error)


class _NotYet(Exception):
    """A pod's prerequisite (claim bound, config object) is not there yet."""


# -- the agent -----------------------------------------------------------------------------


@dataclass
class Hostlet:
    """The agent: node registration, scheduling, pod workers, volume provisioning."""

    cluster: str
    client: KubeClient
    node_name: str
    ip_prefix: str
    stack_id: str
    pid_dir: Path
    volumes_dir: Path
    pods_dir: Path
    logs_dir: Path
    images: list[tuple[str, str | None]] = field(default_factory=default_images)
    workers: dict[str, PodWorker] = field(default_factory=dict)
    ips: dict[str, str] = field(default_factory=dict)
    _ips_lock: threading.Lock = field(default_factory=threading.Lock)
    wake: threading.Event = field(default_factory=threading.Event)
    _last_heartbeat: float = 0.0

    @property
    def node_ip(self) -> str:
        return f"{self.ip_prefix}.0.1"

    # -- addresses and names ---------------------------------------------------------------

    def allocate_ip(self, uid: str, previous: str | None = None) -> str:
        """A free address of this hostlet's block for pod `uid` (its old one if possible)."""
        with self._ips_lock:
            if uid in self.ips:
                return self.ips[uid]
            used = set(self.ips.values())
            if previous and previous.startswith(self.ip_prefix + ".") and previous not in used:
                self.ips[uid] = previous
                return previous
            for index in range(1, 256 * 254):
                candidate = f"{self.ip_prefix}.{index // 254}.{index % 254 + 1}"
                if candidate not in used and candidate != self.node_ip:
                    self.ips[uid] = candidate
                    return candidate
        raise RuntimeError("pod IP block exhausted")

    def set_dns(self, uid: str, ip: str, names: list[str]) -> None:
        if names:
            _hosts.set_entries(self.stack_id, self.cluster, uid, ip, names)

    def clear_dns(self, uid: str) -> None:
        _hosts.remove_entries(self.stack_id, self.cluster, uid)
        with self._ips_lock:
            self.ips.pop(uid, None)

    # -- node ------------------------------------------------------------------------------

    def node_labels(self) -> dict[str, str]:
        return {
            "kubernetes.io/hostname": self.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "hostlet",
            "xlinefed.io/stack-cluster": self.cluster,
        }

    def register_node(self) -> None:
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "250", "ephemeral-storage": "100Gi"}
        self.client.ensure(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": self.node_name, "labels": self.node_labels()},
                "spec": {},
            }
        )
        self.client.patch(
            "v1",
            "Node",
            self.node_name,
            {
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "addresses": [
                        {"type": "InternalIP", "address": self.node_ip},
                        {"type": "Hostname", "address": self.node_name},
                    ],
                    "nodeInfo": {
                        "machineID": self.stack_id,
                        "systemUUID": self.stack_id,
                        "bootID": self.stack_id,
                        "kernelVersion": os.uname().release,
                        "osImage": "hostlet",
                        "containerRuntimeVersion": "hostlet://0.1",
                        "kubeletVersion": KUBELET_VERSION,
                        "kubeProxyVersion": "",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                    },
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
                }
            },
            subresource="status",
            patch_type="strategic",
        )
        self.heartbeat(force=True)

    def heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_heartbeat < HEARTBEAT_INTERVAL:
            return
        stamp = now()

        def condition(kind: str, status: str, reason: str, message: str) -> Obj:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }

        node = self.client.get("v1", "Node", self.node_name)
        old = {c["type"]: c for c in node.get("status", {}).get("conditions", []) or []}
        conditions = [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "hostlet"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "hostlet"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID", "hostlet"),
            condition("Ready", "True", "KubeletReady", "hostlet is posting ready status"),
        ]
        for c in conditions:
            if c["type"] in old and old[c["type"]].get("status") == c["status"]:
                c["lastTransitionTime"] = old[c["type"]].get("lastTransitionTime", stamp)
        self.client.patch(
            "v1",
            "Node",
            self.node_name,
            {"status": {"conditions": conditions}},
            subresource="status",
            patch_type="strategic",
        )
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.node_name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.node_name,
                "leaseDurationSeconds": 40,
                "renewTime": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            },
        }
        try:
            self.client.apply(lease, manager="hostlet")
        except ApiError as error:
            log.warning("lease renewal failed: %s", error)
        self._last_heartbeat = time.monotonic()

    # -- pods ------------------------------------------------------------------------------

    def _selects(self, pod: Obj) -> bool:
        selector = pod["spec"].get("nodeSelector") or {}
        labels = self.node_labels()
        return all(labels.get(k) == v for k, v in selector.items())

    def bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node_name},
        }
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding"
        try:
            self.client.request("POST", path, binding)
            log.info("bound pod %s/%s to %s", meta["namespace"], meta["name"], self.node_name)
        except ApiError as error:
            if error.status not in (404, 409):
                raise

    def sync(self) -> None:
        self.heartbeat()
        pods = self.client.list("v1", "Pod")
        seen = set()
        for pod in pods:
            meta, spec = pod["metadata"], pod["spec"]
            node = spec.get("nodeName")
            if not node:
                scheduler = spec.get("schedulerName", "default-scheduler")
                if (
                    scheduler == "default-scheduler"
                    and not meta.get("deletionTimestamp")
                    and self._selects(pod)
                ):
                    self.bind(pod)
                continue
            if node != self.node_name:
                continue
            uid = meta["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            if meta.get("deletionTimestamp"):
                grace = float(meta.get("deletionGracePeriodSeconds", 30) or 0)
                if worker is None:
                    self._remove_pod(pod)
                elif worker.finished.is_set():
                    self._remove_pod(pod)
                    del self.workers[uid]
                else:
                    worker.request_stop(grace)
                continue
            if worker is None:
                if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                    continue
                worker = PodWorker(self, pod)
                self.workers[uid] = worker
                worker.start()
            else:
                worker.pod = pod
        for uid in list(self.workers):
            if uid not in seen:
                worker = self.workers[uid]
                worker.request_stop(0)
                if worker.finished.is_set():
                    del self.workers[uid]
        self.provision_volumes()

    def _remove_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        self.clear_dns(meta["uid"])
        pod_dir = self.pods_dir / f"{meta['namespace']}_{meta['name']}_{meta['uid'][:8]}"
        shutil.rmtree(pod_dir, ignore_errors=True)
        self.client.delete(
            "v1", "Pod", meta["name"], meta["namespace"], grace_period=0, uid=meta["uid"]
        )
        log.info("removed pod %s/%s", meta["namespace"], meta["name"])

    # -- volumes ---------------------------------------------------------------------------

    def provision_volumes(self) -> None:
        """Give every pending claim a pre-bound hostPath PersistentVolume (Retain)."""
        for pvc in self.client.list("v1", "PersistentVolumeClaim"):
            meta, spec = pvc["metadata"], pvc["spec"]
            if spec.get("volumeName") or pvc.get("status", {}).get("phase") == "Bound":
                continue
            if meta.get("deletionTimestamp"):
                continue
            name = f"pvc-{meta['uid']}"
            path = self.volumes_dir / meta["namespace"] / f"{meta['name']}-{meta['uid'][:8]}"
            path.mkdir(parents=True, exist_ok=True)
            storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
            volume = {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {
                    "name": name,
                    "labels": {"xlinefed.io/hostlet": self.node_name},
                    "annotations": {"pv.kubernetes.io/provisioned-by": "hostlet"},
                },
                "spec": {
                    "capacity": {"storage": storage},
                    "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": spec.get("storageClassName") or "",
                    "volumeMode": spec.get("volumeMode", "Filesystem"),
                    "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                    "claimRef": {
                        "apiVersion": "v1",
                        "kind": "PersistentVolumeClaim",
                        "namespace": meta["namespace"],
                        "name": meta["name"],
                        "uid": meta["uid"],
                    },
                },
            }
            try:
                self.client.create(volume)
                log.info(
                    "provisioned %s for claim %s/%s at %s",
                    name,
                    meta["namespace"],
                    meta["name"],
                    path,
                )
            except ApiError as error:
                if not error.conflict:
                    raise

    # -- lifecycle -------------------------------------------------------------------------

    def _watch(self, api_path: str, wake: threading.Event, stop: threading.Event) -> None:
        """Set `wake` on every change of a collection (list, then watch; re-list on errors)."""
        while not stop.is_set():
            try:
                listing = self.client.request("GET", api_path, params={"limit": 1})
                version = listing["metadata"]["resourceVersion"]
                wake.set()
                for event in self.client.watch(api_path, version, timeout_seconds=30):
                    if event.get("type") == "ERROR":
                        break
                    if event.get("type") == "BOOKMARK":
                        continue
                    wake.set()
                    if stop.is_set():
                        return
            except (ApiError, OSError, http.client.HTTPException, ValueError) as error:
                log.warning("watch %s: %s", api_path, error)
                stop.wait(1)

    def run(self, stop: threading.Event) -> None:
        self.register_node()
        log.info(
            "hostlet %s: node %s registered, pod IPs %s.0.0/16",
            self.cluster,
            self.node_name,
            self.ip_prefix,
        )
        # Level-triggered: a full sync whenever a pod or claim changed (watches), and at
        # least every RESYNC_INTERVAL for heartbeats and retries.
        wake = self.wake
        for path in ("/api/v1/pods", "/api/v1/persistentvolumeclaims"):
            threading.Thread(
                target=self._watch, args=(path, wake, stop), name=f"watch{path}", daemon=True
            ).start()
        while not stop.is_set():
            wake.wait(RESYNC_INTERVAL)
            if stop.is_set():
                break
            wake.clear()
            try:
                self.sync()
            except (ApiError, OSError) as error:
                log.warning("sync failed: %s", error)
            stop.wait(SYNC_SPACING)
        self.shutdown()

    def shutdown(self) -> None:
        for worker in self.workers.values():
            worker.request_stop(float(worker.pod["spec"].get("terminationGracePeriodSeconds", 30)))
        for worker in self.workers.values():
            worker.finished.wait(60)
        _hosts.remove_entries(self.stack_id, self.cluster)
        log.info("hostlet %s stopped", self.cluster)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.support.stack.hostlet <config.json>", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(message)s"
    )
    config = json.loads(Path(argv[1]).read_text())
    state_logs = Path(config["pods_dir"]).parent.parent / "logs" / "pods" / config["cluster"]
    hostlet = Hostlet(
        cluster=config["cluster"],
        client=KubeClient.from_kubeconfig(config["kubeconfig"]),
        node_name=config["node_name"],
        ip_prefix=config["ip_prefix"],
        stack_id=config["stack_id"],
        pid_dir=Path(config["pid_dir"]),
        volumes_dir=Path(config["volumes_dir"]),
        pods_dir=Path(config["pods_dir"]),
        logs_dir=state_logs,
        images=[(p, b) for p, b in config.get("images", [])] + default_images(),
    )
    for directory in (hostlet.pid_dir, hostlet.volumes_dir, hostlet.pods_dir, hostlet.logs_dir):
        directory.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    hostlet.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
