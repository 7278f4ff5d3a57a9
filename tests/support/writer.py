"""A writer that puts sequenced keys throughout an operation and records what happened.

Every acknowledged write is remembered; afterwards `verify` reads each one back. Failures
and the longest gap between two acknowledged writes measure unavailability.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from xlinefed.consensus.client import ClientTLS, ConsensusClient


@dataclass
class WriterReport:
    acknowledged: int
    failed: int
    longest_gap: float
    lost: list[str] = field(default_factory=list)


class SequencedWriter:
    def __init__(
        self,
        endpoints: Callable[[], list[str]],
        prefix: str = "/writer/",
        interval: float = 0.02,
        *,
        tls: ClientTLS | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._tls = tls
        self._prefix = prefix
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.acknowledged: dict[str, str] = {}
        #: The store revision of each acknowledged write (what the put returned).
        self.revisions: dict[str, int] = {}
        self.failed = 0
        self._ack_times: list[float] = []
        self._started = 0.0
        self._stopped = 0.0

    def __enter__(self) -> SequencedWriter:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._stopped = time.monotonic()

    def _run(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        seq = 0
        client: ConsensusClient | None = None
        endpoints: list[str] = []
        while not self._stop.is_set():
            current = self._endpoints()
            if current != endpoints or client is None:
                if client is not None:
                    await client.close()
                endpoints = current
                client = ConsensusClient(endpoints, timeout=1.0, tls=self._tls)
            key = f"{self._prefix}{seq:08d}"
            value = f"v{seq}"
            try:
                # One second per write, retries included: "failed" then means a second of
                # unavailability, not the client's 30-second default retry budget.
                revision = await client.put(key, value, deadline=1.0)
                self.revisions[key] = revision
                self.acknowledged[key] = value
                self._ack_times.append(time.monotonic())
            except Exception:
                self.failed += 1
            seq += 1
            await asyncio.sleep(self._interval)
        if client is not None:
            await client.close()

    def longest_gap(self) -> float:
        times = [self._started, *self._ack_times, self._stopped or time.monotonic()]
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def verify(self, endpoints: list[str]) -> WriterReport:
        async def read_back() -> list[str]:
            lost = []
            async with ConsensusClient(endpoints, timeout=5.0, tls=self._tls) as client:
                for key, value in self.acknowledged.items():
                    got = await client.get(key)
                    if got is None or got.text != value:
                        lost.append(key)
            return lost

        lost = asyncio.run(read_back())
        return WriterReport(len(self.acknowledged), self.failed, self.longest_gap(), lost)
