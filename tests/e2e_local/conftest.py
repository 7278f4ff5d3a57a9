"""A local federation driven through the real CLI, with real etcd processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.wait import wait_until
from xlinefed.consensus.client import ClientTLS, ConsensusClient, MemberInfo
from xlinefed.platforms.local.pki import CLIENT, LocalPKI, tls_spec
from xlinefed.platforms.local.state import FederationDir

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / ".state" / "e2e-local-report.json"


class CliFederation:
    """A local federation driven through the `xlinefed` CLI in a subprocess, as a user
    would; each command and its result is recorded for the run report."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = name
        self.dir = FederationDir(root, name)
        self.records: list[dict[str, Any]] = []

    def cli(
        self, *args: str, check: bool = True, timeout: float = 400
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XLINEFED_STATE_DIR": str(self.root), "COLUMNS": "160"}
        result = subprocess.run(
            [sys.executable, "-m", "xlinefed.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"xlinefed {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\n"
                f"controller log tail:\n{self.controller_log_tail()}"
            )
        return result

    def controller_log_tail(self, lines: int = 40) -> str:
        path = self.dir.controller_log
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    def up(self, spec: dict[str, Any], tmp: Path) -> None:
        path = tmp / f"{self.name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        self.cli("local", "up", "-f", str(path))

    def status(self) -> dict[str, Any]:
        return self.dir.read_status() or {}

    @property
    def _scheme(self) -> str:
        return "https" if self.client_tls() is not None else "http"

    def client_tls(self) -> ClientTLS | None:
        """The application client certificate when the federation runs with TLS."""
        tls = tls_spec(self.dir, self.dir.read_spec())
        return LocalPKI(self.dir, tls).client_tls(CLIENT) if tls is not None else None

    def endpoints(self) -> list[str]:
        facts = self.dir.read_facts()
        names = [m["name"] for m in self.status().get("members", []) if m.get("role")]
        return [
            f"{self._scheme}://127.0.0.1:{facts.ports[n].client}" for n in names if n in facts.ports
        ]

    def all_endpoints(self) -> list[str]:
        facts = self.dir.read_facts()
        return [f"{self._scheme}://127.0.0.1:{p.client}" for p in facts.ports.values()]

    def desired_names(self) -> set[str]:
        spec = self.dir.read_spec()
        return {f"{self.name}-{c.id}-{i}" for c in spec.spec.clusters for i in range(c.replicas)}

    def consensus_view(self) -> tuple[set[str], set[str], set[int]]:
        """(voter names, learner names, leader ids seen by every member). An entry is named
        by its peer URL when it carries no name, as the executor does: an Xline learner
        restarted soon after it joined can publish an empty name (docs/engines.md)."""
        facts = self.dir.read_facts()
        by_peer = {f"{self._scheme}://127.0.0.1:{p.peer}": n for n, p in facts.ports.items()}

        def named(info: MemberInfo) -> str:
            return info.name or next((by_peer[u] for u in info.peer_urls if u in by_peer), "")

        async def read() -> tuple[set[str], set[str], set[int]]:
            endpoints = self.endpoints()
            async with ConsensusClient(endpoints, timeout=3.0, tls=self.client_tls()) as client:
                members = await client.member_list()
                leaders = set()
                for endpoint in endpoints:
                    status = await client.status(endpoint)
                    leaders.add(status.leader_id)
            voters = {named(m) for m in members if not m.is_learner}
            learners = {named(m) for m in members if m.is_learner}
            return voters, learners, leaders

        return asyncio.run(read())

    def wait_restarted(self, member: str, old_pid: int, timeout: float = 60) -> None:
        """Until the controller has started `member` again (a new process record)."""
        wait_until(
            lambda: (p := self.dir.read_process(member)) is not None and p.record.pid != old_pid,
            timeout=timeout,
            what=f"{member} restarted by the controller",
        )

    def record(self, operation: str, report: Any) -> None:
        self.records.append(
            {
                "operation": operation,
                "acknowledged": report.acknowledged,
                "failed": report.failed,
                "longest_gap_s": round(report.longest_gap, 3),
                "lost": len(report.lost),
            }
        )


@pytest.fixture(scope="module")
def local_federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliFederation]:
    root = tmp_path_factory.mktemp("state")
    federation = CliFederation(root, "e2e")
    yield federation
    federation.cli("local", "down", federation.name, "--purge", check=False)
    if federation.records:
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(json.dumps(federation.records, indent=2))
        print("\nper-operation writer report:")
        for row in federation.records:
            print("  " + json.dumps(row))
