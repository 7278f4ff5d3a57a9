"""Recording every client operation of a workload, for the linearizability checker.

A `Workload` runs one register writer and a few readers, each in its own thread with its
own asyncio loop and `ConsensusClient`, against the endpoints a callable returns (so they
follow scale-out and scale-in). Every operation is recorded with its invocation and
completion times (monotonic seconds), kind, key, value and outcome:

- put acknowledged → `ok`; put that raised → `unknown` (a timeout or a lost connection
  may still have applied it), its completion left open;
- get answered → `ok` with the value read; get that raised → `fail` (it observed nothing).

The writer is the only writer of its keys and writes unique values, so a retried put
(the client retries transient errors) can only re-apply the same value in the same place
of the order. After `stop()`, one final linearizable read per key is recorded, so a lost
acknowledged write shows up as an anomaly even if no reader happened to look.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tests.support.linearizability import Operation, OpKind, OpStatus
from xlinefed.consensus.client import ClientSettings, ClientTLS, ConsensusClient


class History:
    """A thread-safe, append-only list of completed (or abandoned) operations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ops: list[Operation] = []

    def record(
        self,
        process: str,
        kind: OpKind,
        key: str,
        value: str | None,
        invoke: float,
        complete: float | None,
        status: OpStatus,
    ) -> Operation:
        op = Operation(process, kind, key, value, invoke, complete, status)
        with self._lock:
            self._ops.append(op)
        return op

    @property
    def operations(self) -> list[Operation]:
        with self._lock:
            return list(self._ops)

    def count(self, kind: OpKind, status: OpStatus) -> int:
        return sum(1 for o in self.operations if o.kind == kind and o.status == status)


@dataclass(frozen=True)
class WorkloadSettings:
    #: Registers the writer cycles through (small per-key histories check fast).
    keys: int = 3
    readers: int = 2
    #: Pause between two operations of one client, seconds.
    interval: float = 0.02
    #: Per-attempt RPC timeout and total retry budget of one operation, seconds.
    rpc_timeout: float = 1.0
    op_deadline: float = 2.0


class Workload:
    """A register writer and readers recording into one `History`."""

    def __init__(
        self,
        endpoints: Callable[[], list[str]],
        prefix: str,
        settings: WorkloadSettings | None = None,
        seed: int = 0,
        tls: ClientTLS | None = None,
    ) -> None:
        self._tls = tls
        self._endpoints = endpoints
        self.prefix = prefix
        self.settings = settings or WorkloadSettings()
        self.history = History()
        self.keys = [f"{prefix}{i}" for i in range(self.settings.keys)]
        self._stop = threading.Event()
        self._rng = random.Random(seed)
        self._threads = [
            threading.Thread(target=self._run, args=(self._writer, "writer"), daemon=True)
        ] + [
            threading.Thread(
                target=self._run, args=(self._reader, f"reader{i}", self._rng.random()), daemon=True
            )
            for i in range(self.settings.readers)
        ]
        self.ack_times: list[float] = []
        self.started = 0.0
        self.stopped = 0.0

    def __enter__(self) -> Workload:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self.stopped = time.monotonic()

    # --- clients
    def _client(self) -> ConsensusClient:
        settings = ClientSettings(
            rpc_timeout=self.settings.rpc_timeout, retry_deadline=self.settings.op_deadline
        )
        return ConsensusClient(self._endpoints(), settings=settings, tls=self._tls)

    def _run(self, body: Callable[..., object], *args: object) -> None:
        asyncio.run(body(*args))  # type: ignore[arg-type]

    async def _with_client(self, step: Callable[[ConsensusClient], object]) -> None:
        client: ConsensusClient | None = None
        endpoints: list[str] = []
        try:
            while not self._stop.is_set():
                current = self._endpoints()
                if client is None or current != endpoints:
                    if client is not None:
                        await client.close()
                    endpoints = current
                    client = self._client()
                await step(client)  # type: ignore[misc]
                await asyncio.sleep(self.settings.interval)
        finally:
            if client is not None:
                await client.close()

    async def _writer(self, process: str) -> None:
        counter = itertools.count()

        async def step(client: ConsensusClient) -> None:
            seq = next(counter)
            key = self.keys[seq % len(self.keys)]
            value = f"{process}-{seq}"
            invoke = time.monotonic()
            try:
                await client.put(key, value)
            except Exception:
                self.history.record(process, "put", key, value, invoke, None, "unknown")
                return
            done = time.monotonic()
            self.ack_times.append(done)
            self.history.record(process, "put", key, value, invoke, done, "ok")

        await self._with_client(step)

    async def _reader(self, process: str, seed: float) -> None:
        rng = random.Random(seed)

        async def step(client: ConsensusClient) -> None:
            key = rng.choice(self.keys)
            invoke = time.monotonic()
            try:
                kv = await client.get(key)
            except Exception:
                self.history.record(process, "get", key, None, invoke, time.monotonic(), "fail")
                return
            value = kv.text if kv is not None else None
            self.history.record(process, "get", key, value, invoke, time.monotonic(), "ok")

        await self._with_client(step)

    # --- after the run
    def final_reads(self, endpoints: list[str], deadline: float = 30.0) -> None:
        """One linearizable read per key once the system has settled (after `stop`)."""

        async def read() -> None:
            settings = ClientSettings(rpc_timeout=3.0, retry_deadline=deadline)
            async with ConsensusClient(endpoints, settings=settings, tls=self._tls) as client:
                for key in self.keys:
                    invoke = time.monotonic()
                    kv = await client.get(key)
                    value = kv.text if kv is not None else None
                    self.history.record("final", "get", key, value, invoke, time.monotonic(), "ok")

        asyncio.run(read())

    def longest_gap(self) -> float:
        """Longest stretch without an acknowledged write (unavailability), seconds."""
        times = [self.started, *sorted(self.ack_times), self.stopped or time.monotonic()]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def acknowledged_since(self, moment: float) -> int:
        return sum(1 for t in list(self.ack_times) if t > moment)


def drain(workload: Workload) -> None:
    """Stop a workload, ignoring errors (for finalizers)."""
    with contextlib.suppress(Exception):
        workload.stop()
