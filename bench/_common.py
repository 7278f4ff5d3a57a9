"""Shared helpers of the local-runtime benchmarks (`rolling_update.py`, `scale_out.py`).

- `InProcessFederation`: a fresh federation of real etcd processes under a temporary state
  dir, brought up by the Executor; every process it started is stopped on exit, also
  when the benchmark fails.
- `drive`: the Executor in-process, `reconcile_once` until `Done`, paced like the local
  controller (`xlinefed/platforms/local/controller.py`).
- `Probe`: a background thread with its own event loop (so the Executor's work in the
  main loop cannot delay it) that runs a writer — linearizable puts of sequenced keys
  against all endpoints with failover, each acknowledged within `put_timeout` or counted
  as failed — and a watcher that polls every member's status every 50 ms and counts term
  and leader changes.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import platform as host
import shlex
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from tests.support.wait import wait_until_async
from tests.support.xline import XLINE_VERSION
from xlinefed.api.engines import Engine
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineFederation
from xlinefed.consensus.client import (
    ChannelPool,
    ClientSettings,
    ClientTLS,
    ConsensusClient,
    EndpointStatus,
)
from xlinefed.executor import Executor
from xlinefed.logs import configure
from xlinefed.planner import Done, Wait
from xlinefed.planner.desired import desired_from
from xlinefed.planner.steps import WaitCode
from xlinefed.platforms.local.controller import IDLE_INTERVAL
from xlinefed.platforms.local.platform import EngineNotFound, LocalPlatform, find_binary
from xlinefed.platforms.local.state import FederationDir

T = TypeVar("T")

ETCD_VERSION = "3.4.23"
#: Seconds a probe's put may take and still count as acknowledged (`--put-timeout`).
PUT_TIMEOUT = 1.0

#: The version each engine's benchmark federation runs.
VERSIONS = {Engine.ETCD: ETCD_VERSION, Engine.XLINE: XLINE_VERSION}

#: etcd's strict reconfig check refuses a member add until every member has been connected
#: for its health interval (5 s); each run starts after the members answered that long.
SETTLE_SECONDS = 5.0


# --------------------------------------------------------------------------- the machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return host.processor() or "unknown"


def memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def print_header() -> None:
    """The exact command and the machine, first thing in every benchmark's output."""
    print(f"command: {shlex.join(['.venv/bin/python', *sys.argv])}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(
        f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r} mem={memory_gib():.1f} GiB "
        f"python={host.python_version()} load(1m) at start={load:.2f}"
    )
    configure(level=os.environ.get("XLINEFED_LOG_LEVEL", "ERROR"))


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    line = "  ".join(f"{h:>{w}}" for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank percentile (p in 0..100) of `values`; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return float(ordered[int(rank) - 1])


def ratio(a: float, b: float) -> str:
    if b == 0:
        return "n/a (b=0)" if a else "1.00 (both 0)"
    return f"{a / b:.2f}"


async def answers_health(endpoint: str, timeout: float = 0.5, tls: ClientTLS | None = None) -> bool:
    """A linearizable read through this member succeeds (what a readiness probe checks)."""
    async with ConsensusClient([endpoint], tls=tls) as client:
        return (await client.health(endpoint, timeout=timeout)).healthy


# --------------------------------------------------------------------------- a federation


def add_engine_argument(parser: Any) -> None:
    parser.add_argument(
        "--engine",
        choices=[e.value for e in Engine],
        default=Engine.ETCD.value,
        help="etcd (Debian's, default) or xline (the binary local mode finds: "
        "$XLINEFED_XLINE_BIN, $XLINEFED_BIN_DIR/xline-<version>, or xline on PATH)",
    )
    parser.add_argument(
        "--put-timeout",
        type=float,
        default=PUT_TIMEOUT,
        help="seconds a writer's put may take and count as acknowledged (default 1). After "
        "a membership change Xline v0.7.0 answers many puts only after its internal "
        "client's 1.5 s retry, so with 1 s the writer can stall there (docs/bench.md)",
    )


def set_put_timeout(seconds: float) -> None:
    global PUT_TIMEOUT
    PUT_TIMEOUT = seconds


def engine_or_exit(name: str) -> Engine:
    """The engine to benchmark, once its binary is known to be there; else a clear error
    (exit status 1) that says where it is looked for, before anything starts."""
    engine = Engine(name)
    try:
        binary, _ = find_binary(engine, VERSIONS[engine])
    except EngineNotFound as error:
        # Its message says where the binary is looked for and where Xline comes from.
        raise SystemExit(f"error: no {engine.value} binary: {error}") from None
    print(f"engine: {engine.value} {VERSIONS[engine]} ({binary})")
    return engine


class EngineRefused(Exception):
    """The planner refuses the benchmarked operation for this engine (`EngineLimit`)."""


def federation_spec(
    name: str,
    clusters: dict[str, int],
    engine_args: dict[str, str] | None = None,
    engine: Engine = Engine.ETCD,
    tls: bool = False,
) -> XlineFederation:
    return parse(
        XlineFederation,
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineFederation",
            "metadata": {"name": name},
            "spec": {
                "engine": engine.value,
                "version": VERSIONS[engine],
                "clusters": [{"id": c, "replicas": n} for c, n in clusters.items()],
                "engineArgs": dict(engine_args or {}),
                "tls": {"enabled": tls},
            },
        },
    )


@dataclass
class DriveResult:
    seconds: float
    steps: list[str] = field(default_factory=list)
    #: (monotonic start, end, what) of every pass: the step applied or the wait's reason.
    timeline: list[tuple[float, float, str]] = field(default_factory=list)
    #: Seconds by phase over all passes: the executor's own (observe, lock, apply), "plan
    #: and other" (the rest of a pass) and "paced" (sleeping between passes).
    phases: dict[str, float] = field(default_factory=dict)
    passes: int = 0

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def count(self, kind: str) -> int:
        return sum(1 for s in self.steps if s == kind)


async def drive(executor: Executor, federation: XlineFederation, timeout: float) -> DriveResult:
    """`reconcile_once` until Done, paced like the local controller; the steps applied."""
    desired = desired_from(federation)
    started = time.monotonic()
    deadline = started + timeout
    result = DriveResult(0.0)
    last = ""
    while True:
        began = time.monotonic()
        outcome = await executor.reconcile_once(desired)
        ended = time.monotonic()
        if outcome.applied:
            what = outcome.step.describe()
        elif outcome.error:
            what = f"failed: {outcome.step.describe()}: {outcome.error}"
        else:
            what = f"wait: {outcome.step.describe()}"
        result.timeline.append((began, ended, what))
        result.passes += 1
        for phase, seconds in outcome.phases.items():
            result.add(phase, seconds)
        result.add("plan and other", ended - began - sum(outcome.phases.values()))
        if isinstance(outcome.step, Done):
            result.seconds = time.monotonic() - started
            return result
        if outcome.applied:
            result.steps.append(outcome.step.kind)
        elif isinstance(outcome.step, Wait):
            if outcome.step.code is WaitCode.ENGINE_LIMIT:
                # A refusal that waiting does not lift: report it, do not time out on it.
                raise EngineRefused(outcome.step.reason)
            last = outcome.step.reason
        else:
            last = outcome.error or outcome.step.describe()
        # The local controller's own pacing rule, so the benchmark measures what users get.
        delay = outcome.requeue_after(IDLE_INTERVAL, after_step=0.0)
        if time.monotonic() > deadline:
            raise TimeoutError(f"not Done after {timeout:.0f}s; last: {last}")
        if delay:
            await asyncio.sleep(delay)
            result.add("paced", time.monotonic() - ended)


class InProcessFederation:
    """A fresh local federation driven in this process (executor and platform called
    directly, no CLI) in a temporary state dir; stopped and removed on exit."""

    def __init__(self, federation: XlineFederation, holder: str = "bench") -> None:
        self.federation = federation
        self.holder = holder
        self._tmp = tempfile.TemporaryDirectory(prefix="xlinefed-bench-")
        self.dir = FederationDir(Path(self._tmp.name), federation.name)
        self.platform = LocalPlatform(self.dir, federation)
        #: The controller's client certificate with TLS on (the CA is made here).
        self.client_tls = (
            self.platform.pki.ensure_all([], now=datetime.now(UTC))
            if self.platform.pki is not None
            else None
        )
        # Kept across passes, as the local controller keeps them.
        self.channels = ChannelPool(self.client_tls)

    @property
    def name(self) -> str:
        return self.federation.name

    def members(self) -> list[str]:
        return [
            f"{self.name}-{c.id}-{i}"
            for c in self.federation.spec.clusters
            for i in range(c.replicas)
        ]

    def endpoints(self) -> list[str]:
        return [self.platform.client_url(m) for m in self.members()]

    def executor(self) -> Executor:
        return Executor(self.platform, self.name, self.holder, channels=self.channels)

    def set_spec(self, federation: XlineFederation) -> None:
        """A new desired spec: what `xlinefed local upgrade/scale` writes."""
        self.federation = federation
        self.dir.write_spec(federation)
        self.platform = LocalPlatform(self.dir, federation)

    async def __aenter__(self) -> InProcessFederation:
        try:
            self.dir.path.mkdir(parents=True, exist_ok=True)
            self.dir.write_spec(self.federation)
            await drive(self.executor(), self.federation, timeout=120)
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Stop every member process we started (each one, even if another fails)."""
        await self.channels.close()
        failures: list[str] = []
        for member in self.dir.members_on_disk():
            try:
                await self.platform.stop(member)
            except Exception as error:
                failures.append(f"{member}: {error}")
        if failures:
            print(f"warning: could not stop {failures}; state kept in {self.dir.path}")
            return
        self._tmp.cleanup()

    async def wait_settled(self, seconds: float, timeout: float = 60) -> None:
        """Every member answers health continuously for `seconds`.

        etcd's strict reconfig check refuses a member add until all members have been
        connected for a while (`SETTLE_SECONDS`); a measurement that started earlier would
        measure that refusal, not the benchmarked sequence."""
        since: list[float | None] = [None]

        async def settled() -> bool:
            healthy = await asyncio.gather(
                *(answers_health(e, tls=self.client_tls) for e in self.endpoints())
            )
            if not all(healthy):
                since[0] = None
                return False
            if since[0] is None:
                since[0] = time.monotonic()
            return time.monotonic() - since[0] >= seconds

        await wait_until_async(
            settled, timeout=timeout + seconds, what="all members healthy", interval=0.2
        )


# --------------------------------------------------------------------------- the probe


@dataclass
class ProbeReport:
    acknowledged: int
    failed: int
    longest_gap: float
    term_changes: int
    leader_changes: int
    lost: int
    #: (monotonic start, end) of the longest gap between acknowledgements.
    gap_window: tuple[float, float] = (0.0, 0.0)
    #: (monotonic time, error) of every failed write: what the client saw.
    failures: list[tuple[float, str]] = field(default_factory=list)
    #: (monotonic time, what) of every term or leader change the watcher saw.
    changes: list[tuple[float, str]] = field(default_factory=list)


class Probe:
    """A writer and a leader watcher on their own thread and event loop."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        prefix: str = "/bench/writer/",
        put_timeout: float | None = None,
        interval: float = 0.02,
        poll: float = 0.05,
        tls: ClientTLS | None = None,
    ) -> None:
        self.endpoints = list(endpoints)
        self.tls = tls
        self.prefix = prefix
        self.put_timeout = PUT_TIMEOUT if put_timeout is None else put_timeout
        self.interval = interval
        self.poll = poll
        self.acknowledged: dict[str, str] = {}
        self.failed = 0
        self.failures: list[tuple[float, str]] = []
        self._leader_endpoint: str | None = None
        self.changes: list[tuple[float, str]] = []
        self.term_changes = 0
        self.leader_changes = 0
        self._acks: list[float] = []
        self._started = 0.0
        self._stopped = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-probe", daemon=True)
        self._error: BaseException | None = None

    # ---- lifecycle
    def __enter__(self) -> Probe:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join(timeout=30)
            self._stopped = time.monotonic()
        if self._error is not None:
            raise RuntimeError("the probe thread failed") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # reported by stop()
            self._error = error

    async def _main(self) -> None:
        await asyncio.gather(self._write(), self._watch())

    # ---- the writer
    async def _write(self) -> None:
        settings = ClientSettings(rpc_timeout=self.put_timeout, retry_deadline=self.put_timeout)
        async with ConsensusClient(self.endpoints, settings=settings, tls=self.tls) as client:
            for seq in itertools.count():
                if self._stop.is_set():
                    return
                key, value = f"{self.prefix}{seq:08d}", f"v{seq}"
                # Where the put went and that member's role when it left: a put a follower
                # forwards is lost silently if the leader is handing over (etcd #8975).
                endpoint = client.preferred_endpoint
                role = "leader" if endpoint == self._leader_endpoint else "follower"
                began = time.monotonic()
                try:
                    await asyncio.wait_for(client.put(key, value), self.put_timeout)
                except Exception as error:
                    self.failed += 1
                    detail = str(error).splitlines()[0][:160] if str(error) else ""
                    self.failures.append(
                        (
                            time.monotonic(),
                            f"{type(error).__name__}: {detail} (sent at "
                            f"{began - time.monotonic():+.2f}s to {endpoint}, then the {role}; "
                            f"the client now prefers {client.preferred_endpoint})",
                        )
                    )
                else:
                    self.acknowledged[key] = value
                    self._acks.append(time.monotonic())
                await asyncio.sleep(self.interval)

    # ---- the leader watcher
    async def _watch(self) -> None:
        term: int | None = None
        leader: int | None = None
        async with ConsensusClient(self.endpoints, tls=self.tls) as client:
            while not self._stop.is_set():
                tick = time.monotonic()
                results = await asyncio.gather(
                    *(client.status(e, timeout=self.poll * 4) for e in self.endpoints),
                    return_exceptions=True,
                )
                seen = [r for r in results if isinstance(r, EndpointStatus)]
                if seen:
                    newest = max(s.raft_term for s in seen)
                    if term is not None and newest > term:
                        self.term_changes += newest - term
                        self.changes.append((time.monotonic(), f"term {term} -> {newest}"))
                    term = max(term or 0, newest)
                    leaders = {s.leader_id for s in seen if s.raft_term == newest and s.leader_id}
                    if len(leaders) == 1:
                        current = next(iter(leaders))
                        self._leader_endpoint = next(
                            (s.endpoint for s in seen if s.member_id == current), None
                        )
                        if leader is not None and current != leader:
                            self.leader_changes += 1
                            self.changes.append(
                                (time.monotonic(), f"leader {leader:x} -> {current:x}")
                            )
                        leader = current
                await asyncio.sleep(max(0.0, self.poll - (time.monotonic() - tick)))

    # ---- results
    def acked(self) -> int:
        return len(self._acks)

    def wait_acks(self, more: int, timeout: float = 30) -> None:
        """Block until `more` further writes are acknowledged (a condition, not a sleep)."""
        target = len(self._acks) + more
        deadline = time.monotonic() + timeout
        while len(self._acks) < target:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError("the probe thread stopped") from self._error
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {more} writes acknowledged in {timeout:.0f}s")
            time.sleep(0.02)

    def longest_gap(self) -> float:
        start, end = self.gap_window()
        return end - start

    def gap_window(self) -> tuple[float, float]:
        times = [self._started, *self._acks, self._stopped or time.monotonic()]
        return max(itertools.pairwise(times), key=lambda pair: pair[1] - pair[0])

    async def report(self) -> ProbeReport:
        """After `stop()`: the numbers, with every acknowledged write read back."""
        async with ConsensusClient(self.endpoints, timeout=5.0, tls=self.tls) as client:
            stored = {kv.key.decode(): kv.text for kv in await client.get_prefix(self.prefix)}
        lost = sum(1 for k, v in self.acknowledged.items() if stored.get(k) != v)
        return ProbeReport(
            acknowledged=len(self.acknowledged),
            failed=self.failed,
            longest_gap=self.longest_gap(),
            term_changes=self.term_changes,
            leader_changes=self.leader_changes,
            lost=lost,
            gap_window=self.gap_window(),
            failures=list(self.failures),
            changes=list(self.changes),
        )


async def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking probe call without blocking the Executor's event loop."""
    return await asyncio.to_thread(function, *args)
