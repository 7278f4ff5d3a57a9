"""False alarms under CPU load: an idle federation's status on a starved machine.

    .venv/bin/python bench/false_alarms.py [--minutes 10] [--hogs 10]
        [--baseline-python OTHER_CHECKOUT/.venv/bin/python]

One idle 1+1+1 federation (real etcd, `xlinefed local up`) per arm: this checkout's, and
with `--baseline-python` one run by another checkout's interpreter (e.g. a worktree of an
older commit), side by side under the same load. `--hogs` busy processes (nice 0) push
the load average up for `--minutes`. Every status the controllers write is sampled.

A *false alarm* is a status that leaves `Available`, or names no leader, or shows a wait
code NoLeader/NoQuorum, while the store itself had no election: each member's raft term
is read directly (with a generous 10 s deadline) at the start and the end, and an arm
whose term moved is reported as having had real elections, not counted as false.
Reported per arm: statuses sampled, false transitions out of Available, no-leader
samples, the load average seen (min/mean of the 1-minute value), elections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from xlinefed.consensus.client import ConsensusClient  # noqa: E402

SPEC = """apiVersion: xlinefed.io/v1alpha1
kind: XlineFederation
metadata: {{name: {name}}}
spec:
  engine: etcd
  version: 3.4.23
  clusters: [{{id: c1, replicas: 1}}, {{id: c2, replicas: 1}}, {{id: c3, replicas: 1}}]
  # Plain text, as before TLS was the default: this bench counts alarms, not TLS costs.
  tls: {{enabled: false}}
"""
ALARM_CODES = {"NoLeader", "NoQuorum", "FederationUnreachable"}


@dataclass
class Arm:
    name: str
    python: str
    root: Path
    samples: int = 0
    false_transitions: int = 0
    no_leader_samples: int = 0
    phases: dict[str, int] = field(default_factory=dict)
    terms_before: dict[str, int] = field(default_factory=dict)
    terms_after: dict[str, int] = field(default_factory=dict)
    _last_update: float = 0.0
    _last_phase: str = "Available"

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "XLINEFED_STATE_DIR": str(self.root)}
        return subprocess.run(
            [self.python, "-m", "xlinefed.cli", *args],
            env=env,
            # `-m` imports from the working directory first: the interpreter's checkout.
            cwd=Path(self.python).parent.parent.parent,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    @property
    def status_path(self) -> Path:
        return self.root / self.name / "status.json"

    def sample(self) -> None:
        try:
            status = json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return
        if status.get("updatedAt") == self._last_update:
            return
        self._last_update = status.get("updatedAt")
        self.samples += 1
        phase = status.get("phase", "?")
        self.phases[phase] = self.phases.get(phase, 0) + 1
        if phase != "Available" and self._last_phase == "Available":
            self.false_transitions += 1
        self._last_phase = phase
        code = (status.get("currentStep") or {}).get("code")
        if not status.get("leader") or code in ALARM_CODES:
            self.no_leader_samples += 1

    def client_urls(self) -> list[str]:
        facts = json.loads((self.root / self.name / "facts.json").read_text())
        return [f"http://127.0.0.1:{p['client']}" for p in facts["ports"].values()]

    @property
    def elections(self) -> int:
        return sum(
            1
            for member, term in self.terms_after.items()
            if term != self.terms_before.get(member, term)
        )


async def terms(urls: list[str]) -> dict[str, int]:
    async with ConsensusClient(urls, timeout=10.0) as client:
        result = {}
        for url in urls:
            with contextlib.suppress(Exception):
                result[url] = (await client.status(url, timeout=10.0)).raft_term
        return result


def hog() -> None:
    while True:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--hogs", type=int, default=10, help="busy processes (load)")
    parser.add_argument("--baseline-python", help="interpreter of another checkout")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="xlinefed-alarms-"))
    arms = [Arm("alarms", sys.executable, work / "this")]
    if args.baseline_python:
        arms.append(Arm("alarms", args.baseline_python, work / "baseline"))
    spec = work / "spec.yaml"
    spec.write_text(SPEC.format(name="alarms"))
    hogs: list[multiprocessing.Process] = []
    try:
        for arm in arms:
            print(f"==> up ({arm.root.name}, {arm.python})", flush=True)
            arm.cli("local", "up", "-f", str(spec))
            arm.terms_before = asyncio.run(terms(arm.client_urls()))
        hogs = [multiprocessing.Process(target=hog, daemon=True) for _ in range(args.hogs)]
        for process in hogs:
            process.start()
        loads: list[float] = []
        deadline = time.monotonic() + args.minutes * 60
        next_report = time.monotonic() + 60
        while time.monotonic() < deadline:
            for arm in arms:
                arm.sample()
            loads.append(os.getloadavg()[0])
            if time.monotonic() >= next_report:
                next_report += 60
                summary = ", ".join(
                    f"{a.root.name}: {a.samples} samples, {a.false_transitions} false" for a in arms
                )
                print(f"  load {loads[-1]:.1f}; {summary}", flush=True)
            time.sleep(0.2)  # sampling period, not synchronisation
        for process in hogs:
            process.terminate()
        for arm in arms:
            arm.terms_after = asyncio.run(terms(arm.client_urls()))
    finally:
        for process in hogs:
            if process.is_alive():
                process.kill()
        for arm in arms:
            with contextlib.suppress(Exception):
                arm.cli("local", "down", "alarms", "--purge")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(f"\nfalse alarms under load ({args.minutes:g} min, {args.hogs} hogs, {machine})")
    print(f"load average (1 min): min {min(loads):.1f}, mean {sum(loads) / len(loads):.1f}")
    print("| arm | statuses | false transitions | no-leader samples | phases | elections |")
    print("|---|---|---|---|---|---|")
    for arm in arms:
        phases = ", ".join(f"{k} {v}" for k, v in sorted(arm.phases.items()))
        print(
            f"| {arm.root.name} | {arm.samples} | {arm.false_transitions} | "
            f"{arm.no_leader_samples} | {phases} | {arm.elections} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
