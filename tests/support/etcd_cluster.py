"""Real etcd clusters for tests: processes on 127.0.0.1, free ports, stopped by PID.

```
cluster = EtcdCluster(tmp_path, size=3)
cluster.start()                       # returns when every member answers /health
cluster.endpoints                     # client URLs of the running members
cluster.kill_member("m1")             # SIGKILL, data dir kept
cluster.restart_member("m1")          # same name, ports and data dir
new = cluster.reserve_member("m4")    # ports for a member about to be added
cluster.start_member(new, initial_cluster=..., state="existing")
cluster.stop()                        # SIGTERM then SIGKILL every process we started
```

Ports are picked by binding port 0 and are remembered, so one test run never hands out
the same port twice. Each member logs to `<base>/<name>.log`; a member that exits while
we wait for it raises with the tail of its log.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.wait import wait_until

ETCD = shutil.which("etcd") or "/usr/bin/etcd"

_used_ports: set[int] = set()
_ports_lock = threading.Lock()


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now and this process never handed out."""
    with _ports_lock:
        while True:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in _used_ports:
                _used_ports.add(port)
                return port


@dataclass
class EtcdMember:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    extra_args: list[str] = field(default_factory=list)
    initial_cluster: str = ""
    state: str = "new"

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class EtcdCluster:
    """A real etcd cluster of `size` members, started on demand, torn down by PID."""

    def __init__(
        self,
        base_dir: Path,
        size: int = 3,
        *,
        name_prefix: str = "m",
        token: str | None = None,
        heartbeat_ms: int = 50,
        election_ms: int = 500,
        extra_args: list[str] | None = None,
    ) -> None:
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.token = token or f"xlinefed-test-{os.getpid()}-{id(self):x}"
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.extra_args = list(extra_args or [])
        self.members: dict[str, EtcdMember] = {}
        for i in range(1, size + 1):
            self.reserve_member(f"{name_prefix}{i}")
        self._initial = list(self.members)

    # ---- layout

    def reserve_member(self, name: str) -> EtcdMember:
        """Allocate ports and a data dir for a member (not started, not added)."""
        if name in self.members:
            raise ValueError(f"member {name} already exists in this test cluster")
        member = EtcdMember(
            name=name,
            client_port=free_port(),
            peer_port=free_port(),
            data_dir=self.base_dir / f"{name}.etcd",
            log_path=self.base_dir / f"{name}.log",
        )
        self.members[name] = member
        return member

    def forget_member(self, name: str) -> None:
        """Stop a member and drop it from this object (after it was removed from the cluster)."""
        self.stop_member(name)
        self.members.pop(name, None)

    @property
    def endpoints(self) -> list[str]:
        """Client URLs of the running members."""
        return [m.client_url for m in self.members.values() if m.running]

    @property
    def all_endpoints(self) -> list[str]:
        return [m.client_url for m in self.members.values()]

    def member(self, name: str) -> EtcdMember:
        return self.members[name]

    def initial_cluster(self, names: list[str] | None = None) -> str:
        chosen = names if names is not None else list(self.members)
        return ",".join(f"{n}={self.members[n].peer_url}" for n in chosen)

    # ---- processes

    def start(self, timeout: float = 30.0) -> None:
        """Bootstrap the initial members and wait until each one answers /health."""
        initial = self.initial_cluster(self._initial)
        for name in self._initial:
            member = self.members[name]
            member.initial_cluster = initial
            member.state = "new"
            self._spawn(member)
        for name in self._initial:
            self.wait_healthy(name, timeout=timeout)

    def start_member(
        self,
        member: EtcdMember | str,
        *,
        initial_cluster: str,
        state: str = "existing",
        wait: bool = True,
        timeout: float = 30.0,
    ) -> EtcdMember:
        """Start a member that was added with member add (state "existing")."""
        m = self.members[member] if isinstance(member, str) else member
        m.initial_cluster = initial_cluster
        m.state = state
        self._spawn(m)
        if wait:
            self.wait_serving(m.name, timeout=timeout)
        return m

    def _spawn(self, m: EtcdMember) -> None:
        if m.running:
            raise RuntimeError(f"etcd member {m.name} is already running (pid {m.process.pid})")  # type: ignore[union-attr]
        args = [
            ETCD,
            "--name", m.name,
            "--data-dir", str(m.data_dir),
            "--listen-client-urls", m.client_url,
            "--advertise-client-urls", m.client_url,
            "--listen-peer-urls", m.peer_url,
            "--initial-advertise-peer-urls", m.peer_url,
            "--initial-cluster", m.initial_cluster,
            "--initial-cluster-state", m.state,
            "--initial-cluster-token", self.token,
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--enable-v2=false",
            "--logger=zap",
            "--log-outputs=stderr",
            *self.extra_args,
            *m.extra_args,
        ]  # fmt: skip
        log = open(m.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            m.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()

    def wait_healthy(self, name: str, timeout: float = 30.0) -> None:
        """Wait until the member's /health says true (a voter that sees a leader)."""
        m = self.members[name]

        def healthy() -> bool:
            self._check_alive(m)
            with urllib.request.urlopen(f"{m.client_url}/health", timeout=1) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")

        wait_until(healthy, timeout=timeout, what=f"etcd {name} healthy\n{m.log_tail()}")

    def wait_serving(self, name: str, timeout: float = 30.0) -> None:
        """Wait until the member answers HTTP at all (a learner's /health may say false)."""
        m = self.members[name]

        def serving() -> bool:
            self._check_alive(m)
            with urllib.request.urlopen(f"{m.client_url}/version", timeout=1) as resp:
                return bool(resp.read())

        wait_until(serving, timeout=timeout, what=f"etcd {name} serving")

    @staticmethod
    def _check_alive(m: EtcdMember) -> None:
        if m.process is not None and m.process.poll() is not None:
            raise AssertionError(
                f"etcd {m.name} exited with {m.process.returncode}; log tail:\n{m.log_tail()}"
            )

    def kill_member(self, name: str, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to the member's process and reap it (data dir kept)."""
        m = self.members[name]
        if m.process is not None and m.process.poll() is None:
            m.process.send_signal(sig)
            m.process.wait(timeout=30)

    def stop_member(self, name: str, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`."""
        m = self.members[name]
        if m.process is None or m.process.poll() is not None:
            return
        m.process.terminate()
        try:
            m.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            m.process.kill()
            m.process.wait(timeout=30)

    def restart_member(self, name: str, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Start a stopped member again with the same name, ports and data dir."""
        m = self.members[name]
        self.stop_member(name)
        self._spawn(m)
        if wait:
            self.wait_serving(name, timeout=timeout)

    def stop(self) -> None:
        """Stop every process this object started."""
        for name in list(self.members):
            self.stop_member(name)

    def __enter__(self) -> EtcdCluster:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
