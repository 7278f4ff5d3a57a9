"""A local federation under chaos: the real CLI in a temporary state dir, fault injection
by PID, and `observed_run`, which runs a writer and a register workload around a fault and
checks afterwards that nothing acknowledged was lost and that the history is linearizable."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.chaos._stats import STATS
from tests.support.history import Workload, drain
from tests.support.linearizability import check_history
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.consensus.client import ClientTLS, ConsensusClient
from xlinefed.consensus.lock import LOCK_KEY
from xlinefed.platforms.local import processes
from xlinefed.platforms.local.pki import CLIENT, OPERATOR, LocalPKI, tls_spec
from xlinefed.platforms.local.state import FederationDir

STEP_KEY = f"{LOCK_KEY}/step"


def spec_of(name: str, clusters: dict[str, int], **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineFederation",
        "metadata": {"name": name},
        "spec": {
            "engine": "etcd",
            "version": "3.4.23",
            "clusters": [{"id": c, "replicas": n} for c, n in clusters.items()],
            **extra,
        },
    }


class ChaosFederation:
    def __init__(self, root: Path, name: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.name = name
        self.dir = FederationDir(root, name)
        self.env = {
            **os.environ,
            "XLINEFED_STATE_DIR": str(root),
            "COLUMNS": "160",
            **(env or {}),
        }
        self.background: list[subprocess.Popen[str]] = []

    # --- the CLI
    def _argv(self, args: tuple[str, ...]) -> list[str]:
        return [sys.executable, "-m", "xlinefed.cli", *args]

    def cli(
        self, *args: str, check: bool = True, timeout: float = 400
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            self._argv(args), env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"xlinefed {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"controller log tail:\n{self.controller_log_tail()}"
            )
        return result

    def cli_background(self, *args: str) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            self._argv(args),
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.background.append(process)
        return process

    def finish(self, process: subprocess.Popen[str], timeout: float = 300) -> str:
        """Wait for a background CLI call; assert it succeeded; return its output."""
        out, _ = process.communicate(timeout=timeout)
        assert process.returncode == 0, (
            f"xlinefed exited {process.returncode}:\n{out}\n"
            f"controller log tail:\n{self.controller_log_tail()}"
        )
        return out

    def stop_background(self) -> None:
        for process in self.background:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        self.background.clear()

    def up(self, spec: dict[str, Any], tmp: Path) -> None:
        path = tmp / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        self.cli("local", "up", "-f", str(path))

    def down(self) -> None:
        self.stop_background()
        self.cli("local", "down", self.name, "--purge", check=False, timeout=120)

    def controller_log_tail(self, lines: int = 40) -> str:
        path = self.dir.controller_log
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    # --- what is there
    def status(self) -> dict[str, Any]:
        return self.dir.read_status() or {}

    def desired(self) -> dict[str, int]:
        return {c.id: c.replicas for c in self.dir.read_spec().spec.clusters}

    def desired_names(self) -> set[str]:
        return {f"{self.name}-{c}-{i}" for c, n in self.desired().items() for i in range(n)}

    @property
    def _scheme(self) -> str:
        return "https" if self.admin_tls() is not None else "http"

    def admin_tls(self) -> ClientTLS | None:
        """The operator's certificate (root): the harness reads the operator's own keys."""
        tls = tls_spec(self.dir, self.dir.read_spec())
        return LocalPKI(self.dir, tls).client_tls(OPERATOR) if tls is not None else None

    def app_tls(self) -> ClientTLS | None:
        """The application certificate the workloads dial with."""
        tls = tls_spec(self.dir, self.dir.read_spec())
        return LocalPKI(self.dir, tls).client_tls(CLIENT) if tls is not None else None

    def client_endpoints(self) -> list[str]:
        """Every member's client URL the platform ever allocated (workloads fail over)."""
        facts = self.dir.read_facts()
        return [f"{self._scheme}://127.0.0.1:{p.client}" for _, p in sorted(facts.ports.items())]

    def endpoint(self, member: str) -> str:
        return f"{self._scheme}://127.0.0.1:{self.dir.read_facts().ports[member].client}"

    def voter_endpoints(self) -> list[str]:
        """Client URLs of the desired members that have ports already."""
        ports = self.dir.read_facts().ports
        return [
            f"{self._scheme}://127.0.0.1:{ports[n].client}"
            for n in sorted(self.desired_names())
            if n in ports
        ]

    def running_members(self) -> list[str]:
        names = []
        for member in self.dir.members_on_disk():
            process = self.dir.read_process(member)
            if process is not None and processes.is_alive(process.record):
                names.append(member)
        return names

    def consensus_view(self) -> tuple[set[str], set[str], set[int]]:
        """(voter names, learner names, leader ids reported by every desired member)."""

        async def read() -> tuple[set[str], set[str], set[int]]:
            endpoints = self.voter_endpoints()
            async with ConsensusClient(endpoints, timeout=2.0, tls=self.admin_tls()) as client:
                members = await client.member_list(deadline=2.0)
                leaders = {(await client.status(e)).leader_id for e in endpoints}
            voters = {m.name for m in members if not m.is_learner}
            learners = {m.name for m in members if m.is_learner}
            return voters, learners, leaders

        return asyncio.run(read())

    def membership(self) -> tuple[set[str], set[str]]:
        """(voter names, learner names) from the member list alone."""

        async def read() -> tuple[set[str], set[str]]:
            async with ConsensusClient(
                self.client_endpoints(), timeout=2.0, tls=self.admin_tls()
            ) as client:
                members = await client.member_list(deadline=5.0)
            return {m.name for m in members if not m.is_learner}, {
                m.name or f"id-{m.id:x}" for m in members if m.is_learner
            }

        return asyncio.run(read())

    def leader(self) -> str:
        async def read() -> str:
            async with ConsensusClient(
                self.voter_endpoints(), timeout=2.0, tls=self.admin_tls()
            ) as client:
                status = await client.leader(deadline=5.0)
                members = await client.member_list(deadline=2.0)
            return next(m.name for m in members if m.id == status.leader_id)

        return asyncio.run(read())

    def member_id(self, name: str) -> int:
        async def read() -> int:
            async with ConsensusClient(
                self.voter_endpoints(), timeout=2.0, tls=self.admin_tls()
            ) as client:
                members = await client.member_list(deadline=2.0)
            return next(m.id for m in members if m.name == name)

        return asyncio.run(read())

    def move_leader(self, target: str) -> None:
        async def move() -> None:
            async with ConsensusClient(
                self.voter_endpoints(), timeout=3.0, tls=self.admin_tls()
            ) as client:
                members = await client.member_list(deadline=2.0)
                wanted = next(m.id for m in members if m.name == target)
                await client.move_leader(wanted, deadline=10.0)

        asyncio.run(move())

    def step_record(self) -> dict[str, Any] | None:
        async def read() -> dict[str, Any] | None:
            async with ConsensusClient(
                self.voter_endpoints(), timeout=2.0, tls=self.admin_tls()
            ) as client:
                kv = await client.get(STEP_KEY, deadline=5.0)
            return json.loads(kv.value) if kv is not None else None

        return asyncio.run(read())

    def converged(self, since: float) -> bool:
        """The controller reports the spec reached in a pass after `since` (wall clock),
        and the store agrees: voters = the spec, no learners, one leader seen by all."""
        status = self.status()
        generation = self.dir.read_spec().metadata.generation or 0
        if not (
            status.get("converged")
            and status.get("updatedAt", 0) > since
            and (status.get("observedGeneration") or 0) >= generation
        ):
            return False
        voters, learners, leaders = self.consensus_view()
        return (
            voters == self.desired_names()
            and not learners
            and len(leaders) == 1
            and (0 not in leaders)
        )

    def wait_converged(self, since: float, timeout: float = 120) -> None:
        try:
            wait_until(lambda: self.converged(since), timeout=timeout, what="convergence")
        except AssertionError as error:
            raise AssertionError(
                f"{error}\nstatus: {json.dumps(self.status().get('currentStep'))}\n"
                f"controller log tail:\n{self.controller_log_tail()}"
            ) from None

    def assert_available(self) -> None:
        status = self.status()
        assert status.get("phase") == "Available", status.get("phase")
        voters, learners, leaders = self.consensus_view()
        assert voters == self.desired_names() and not learners and len(leaders) == 1

    # --- faults (only processes this test's CLI started, by PID and start time)
    def kill_member(self, member: str) -> int:
        process = self.dir.read_process(member)
        assert process is not None and processes.is_alive(process.record), member
        os.kill(process.record.pid, signal.SIGKILL)
        return process.record.pid

    def controller_record(self) -> processes.ProcessRecord | None:
        record = self.dir.read_controller()
        return record if record is not None and processes.is_alive(record) else None

    def kill_controller(self) -> int:
        record = self.controller_record()
        assert record is not None, "no controller runs"
        os.kill(record.pid, signal.SIGKILL)
        wait_until(lambda: not processes.is_alive(record), timeout=10, what="controller gone")
        return record.pid


@dataclass
class Run:
    """One observed chaos run: its label, and what it injected."""

    kind: str
    workload: Workload
    writer: SequencedWriter
    faults: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def fault(self, kind: str) -> None:
        self.faults.append(kind)
        STATS.fault(kind)


@contextlib.contextmanager
def observed_run(federation: ChaosFederation, kind: str, seed: int) -> Iterator[Run]:
    """Run a sequenced writer and a register workload (writer + 2 readers) around the body;
    afterwards every acknowledged write must read back and every key's history must be
    linearizable."""
    tag = f"{abs(hash((kind, seed, time.time()))) % 10**8:08d}"
    writer = SequencedWriter(
        federation.client_endpoints, prefix=f"/chaos/{tag}/seq/", tls=federation.app_tls()
    )
    workload = Workload(
        federation.client_endpoints,
        prefix=f"/chaos/{tag}/reg/",
        seed=seed,
        tls=federation.app_tls(),
    )
    run = Run(kind, workload, writer)
    writer.__enter__()
    workload.start()
    try:
        wait_until(
            lambda: len(writer.acknowledged) >= 3 and len(workload.ack_times) >= 3,
            timeout=30,
            what="first acknowledged writes",
        )
        yield run
    finally:
        writer.stop()
        drain(workload)
        federation.stop_background()
    endpoints = federation.voter_endpoints()
    report = writer.verify(endpoints)
    workload.final_reads(endpoints)
    results = check_history(workload.history.operations)
    acknowledged = report.acknowledged + workload.history.count("put", "ok")
    anomalies = [r for r in results if not r.linearizable]
    STATS.runs += 1
    STATS.writes_acknowledged += acknowledged
    STATS.writes_lost += len(report.lost)
    STATS.unavailable(kind, max(report.longest_gap, workload.longest_gap()))
    STATS.histories_checked += len(results)
    STATS.operations_checked += sum(r.operations for r in results)
    STATS.indeterminate_writes += workload.history.count("put", "unknown")
    STATS.anomalies += len(anomalies)
    STATS.anomaly_details += [f"[{kind}] {r.describe()}" for r in anomalies]
    print(
        f"\n[{kind}] faults={run.faults} acknowledged={acknowledged} lost={len(report.lost)} "
        f"gap={max(report.longest_gap, workload.longest_gap()):.3f}s "
        f"histories={len(results)} anomalies={len(anomalies)}"
    )
    assert report.lost == [], f"{kind}: acknowledged writes lost: {report.lost[:10]}"
    assert not anomalies, "\n".join(r.describe() for r in anomalies)
    assert workload.history.count("get", "ok") > 0, "the readers never read anything"
