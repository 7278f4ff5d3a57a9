"""Watching a chaos run from outside: the controller's structured log, the history of the
step record beside the membership lock, every member's cluster id, and a background
sampler of what each member runs (argv, WAL directory inode, member id).

Everything here only reads: files under the state dir, and the store through etcdctl
(Debian's etcd-client) or our client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.chaos._federation import STEP_KEY, ChaosFederation
from tests.chaos._partition import Partitioner
from xlinefed.consensus.client import ConsensusClient, EndpointStatus
from xlinefed.planner.quorum import majority

_PAIR = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


@dataclass(frozen=True)
class LogEvent:
    line: int
    level: str
    logger: str
    event: str
    fields: dict[str, str]


def parse_log(text: str) -> list[LogEvent]:
    """The key=value lines of xlinefed.logs (`<ts> <level> <logger> <event> k=v ...`)."""
    events = []
    for number, line in enumerate(text.splitlines()):
        parts = line.split(None, 3)
        if len(parts) < 4 or not parts[2].startswith("xlinefed."):
            continue
        _, level, logger, rest = parts
        first = _PAIR.search(rest)
        event = (rest[: first.start()] if first else rest).strip()
        fields = {}
        for key, value in _PAIR.findall(rest[first.start() :] if first else ""):
            fields[key] = json.loads(value) if value.startswith('"') else value
        events.append(LogEvent(number, level, logger, event, fields))
    return events


class ControllerLog:
    """The controller log from a given point on (the file is appended to, never rewritten)."""

    def __init__(self, federation: ChaosFederation) -> None:
        self.path = federation.dir.controller_log
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        with self.path.open("rb") as handle:
            handle.seek(self.offset)
            return handle.read().decode(errors="replace")

    def events(self) -> list[LogEvent]:
        return parse_log(self.text())

    def applied(self, kind: str | None = None) -> list[LogEvent]:
        return [
            e
            for e in self.events()
            if e.event == "step applied" and (kind is None or e.fields.get("step") == kind)
        ]

    def starts(self) -> list[LogEvent]:
        return [e for e in self.events() if e.event == "member started"]


# --- the store through etcdctl ---------------------------------------------------------


def etcdctl(*args: str, endpoints: Iterable[str], timeout: float = 10.0) -> Any:
    binary = shutil.which("etcdctl")
    assert binary, "etcdctl is not on PATH (apt-get install etcd-client)"
    result = subprocess.run(
        [binary, f"--endpoints={','.join(endpoints)}", "--dial-timeout=2s", *args, "-w", "json"],
        env={**os.environ, "ETCDCTL_API": "3"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise AssertionError(f"etcdctl {' '.join(args)}: {result.stderr.strip()}")
    return json.loads(result.stdout)


def cluster_ids(endpoints: Iterable[str]) -> dict[str, int]:
    """The cluster id in each member's own Status response header, by endpoint. Asked one
    endpoint at a time: a member that does not answer is left out."""
    found = {}
    for endpoint in endpoints:
        try:
            answer = etcdctl("endpoint", "status", endpoints=[endpoint], timeout=8)
        except (AssertionError, subprocess.TimeoutExpired):
            continue
        for entry in answer:
            found[entry["Endpoint"]] = int(entry["Status"]["header"]["cluster_id"])
    return found


@dataclass(frozen=True)
class StepRecordVersion:
    mod_revision: int
    holder: str
    lock_revision: int
    phase: str
    step: dict[str, Any]


def step_history(
    endpoints: list[str], key: str = STEP_KEY, *, serializable: bool = False
) -> list[StepRecordVersion]:
    """Every version of the step record beside the lock, oldest first, read back through
    the store's MVCC history (nothing compacts it in these tests). `serializable` reads
    a member's local copy (works without a quorum)."""
    versions: list[StepRecordVersion] = []
    revision: int | None = None
    consistency = ["--consistency=s"] if serializable else []
    while True:
        args = ["get", key, *consistency] + ([f"--rev={revision}"] if revision else [])
        kvs = etcdctl(*args, endpoints=endpoints).get("kvs") or []
        if not kvs:
            break
        kv = kvs[0]
        data = json.loads(base64.b64decode(kv["value"]))
        versions.append(
            StepRecordVersion(
                int(kv["mod_revision"]),
                data["holder"],
                int(data["lock_revision"]),
                data["phase"],
                data["step"],
            )
        )
        if int(kv["version"]) <= 1:
            break
        revision = int(kv["mod_revision"]) - 1
    return versions[::-1]


def leader_list(federation: ChaosFederation) -> dict[str, tuple[int, bool]]:
    """{name: (member id, is learner)} from the leader's own member list: the member whose
    status says it leads, in the highest term any does (a cut-off member answers from its
    own stale view, and a deposed leader may still think it leads, in an older term)."""

    async def read() -> dict[str, tuple[int, bool]]:
        async with ConsensusClient(
            federation.client_endpoints(), timeout=1.0, tls=federation.admin_tls()
        ) as client:
            found = await client.statuses(timeout=1.0)
            leaders = [s for s in found.values() if isinstance(s, EndpointStatus) and s.is_leader]
            assert leaders, "no member says it leads"
            lead = max(leaders, key=lambda s: s.raft_term)
            listed = await client.member_list_at(lead.endpoint, timeout=1.0)
        return {m.name or f"id-{m.id:x}": (m.id, m.is_learner) for m in listed}

    return asyncio.run(read())


# --- sampling in the background ----------------------------------------------------------


def wal_inode(federation: ChaosFederation, member: str) -> int | None:
    try:
        return (federation.dir.data_dir(member) / "member" / "wal").stat().st_ino
    except FileNotFoundError:
        return None


@dataclass
class Samples:
    #: Per member: every distinct argv its process record showed.
    argvs: dict[str, list[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(list))
    #: Per member: every distinct WAL directory inode (None: no WAL dir).
    wal_inodes: dict[str, list[int | None]] = field(default_factory=lambda: defaultdict(list))
    #: Per member: every distinct member id the leader's list gave it (None: not listed).
    member_ids: dict[str, list[int | None]] = field(default_factory=lambda: defaultdict(list))
    #: Every distinct (phase, step kind, wait code, reason) the controller reported.
    statuses: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: (voters, voters answering) of each member-list sample: quorum arithmetic.
    quorum: list[tuple[int, int]] = field(default_factory=list)
    errors: int = 0

    def note(self, seq: list[Any], value: Any) -> None:
        if not seq or seq[-1] != value:
            seq.append(value)


class Sampler:
    """Samples the federation every `interval` seconds in a thread until stopped."""

    def __init__(
        self,
        federation: ChaosFederation,
        members: Callable[[], Iterable[str]],
        interval: float = 0.1,
    ) -> None:
        self.federation = federation
        self.members = members
        self.interval = interval
        self.samples = Samples()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Samples:
        self._thread.start()
        return self.samples

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        s = self.samples
        fed = self.federation
        while not self._stop.is_set():
            names = sorted(set(self.members()))
            for name in names:
                process = fed.dir.read_process(name)
                if process is not None:
                    s.note(s.argvs[name], process.record.argv)
                s.note(s.wal_inodes[name], wal_inode(fed, name))
            status = fed.status()
            step = status.get("currentStep") or {}
            s.note(
                s.statuses,
                (
                    str(status.get("phase")),
                    str(step.get("kind")),
                    str(step.get("code")),
                    str(step.get("reason")),
                ),
            )
            try:
                await self._consensus(names)
            except Exception:
                s.errors += 1
            self._stop.wait(self.interval)

    async def _consensus(self, names: list[str]) -> None:
        """The leader's member list (its own status says it leads): ids and quorum."""
        s = self.samples
        endpoints = self.federation.client_endpoints()
        async with ConsensusClient(
            endpoints, timeout=0.5, tls=self.federation.admin_tls()
        ) as client:
            found = await client.statuses(timeout=0.5)
            up = {e: st for e, st in found.items() if isinstance(st, EndpointStatus)}
            leaders = [st for st in up.values() if st.is_leader]
            if not leaders:
                return
            leader = max(leaders, key=lambda st: st.raft_term)
            listed = await client.member_list_at(leader.endpoint, timeout=0.5)
        by_name = {m.name: m.id for m in listed if m.name}
        for name in names:
            s.note(s.member_ids[name], by_name.get(name))
        voter_ids = {m.id for m in listed if not m.is_learner}
        following = sum(
            1
            for st in up.values()
            if st.member_id in voter_ids
            and st.leader_id == leader.member_id
            and st.raft_term == leader.raft_term
        )
        s.quorum.append((len(voter_ids), following))


def quorum_lost(quorum: list[tuple[int, int]], consecutive: int = 2) -> list[tuple[int, int]]:
    """(voters, voters following the leader) samples with fewer than a majority following,
    in runs of at least `consecutive` samples: one sample taken while a follower had not
    yet heard from a just-elected leader is not a lost quorum."""
    lost: list[tuple[int, int]] = []
    run: list[tuple[int, int]] = []
    for n, up in [*quorum, (0, 0)]:
        if n and up < majority(n):
            run.append((n, up))
            continue
        if len(run) >= consecutive:
            lost += run
        run = []
    return lost


def elapsed(since: float) -> str:
    return f"{time.monotonic() - since:.1f}s"


def longest_gap_between(ack_times: Iterable[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] (monotonic seconds) without an acknowledged
    write: the unavailability of a window, without the workload's own start-up."""
    inside = sorted(t for t in ack_times if start <= t <= end)
    points = [start, *inside, end]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


def keep_logs(federation: ChaosFederation, dest: Path) -> None:
    """Copy the controller's and every member's log to `dest` (before `down --purge`)."""
    dest.mkdir(parents=True, exist_ok=True)
    if federation.dir.controller_log.exists():
        shutil.copy(federation.dir.controller_log, dest / "controller.log")
    for member in federation.dir.members_on_disk():
        log = federation.dir.member_log(member)
        if log.exists():
            shutil.copy(log, dest / f"{member}.log")


@contextlib.contextmanager
def partitioned_federation(
    root: Path, name: str, spec: dict[str, Any]
) -> Iterator[tuple[ChaosFederation, Partitioner]]:
    """A local federation whose members run in per-cluster cgroups (so a test can cut a
    cluster off), up at `spec`; healed, its logs kept under `root/logs`, and torn down
    afterwards, with nothing of the partitioner left behind."""
    partitioner = Partitioner(name, root / "bin")
    env = partitioner.install_wrapper("3.4.23")
    federation = ChaosFederation(root / "state", name, env)
    try:
        federation.up(spec, root)
        yield federation, partitioner
    finally:
        partitioner.heal()
        keep_logs(federation, root / "logs")
        federation.down()
        problems = partitioner.cleanup()
        assert not problems, problems
