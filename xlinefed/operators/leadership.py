"""The Lease elector of one operator process (the I/O around `xlinefed.operators.leases`).

Why our own and not `kubernetes_asyncio.leaderelection` or kopf's peering: kopf's peering
is priority-based presence in a KopfPeering object, not a Lease, and freezes operators
rather than electing one. The client library's elector measures its renew deadline from
the start of each renewal attempt rather than from the last success, by the wall clock,
and offers no way to ask "am I still the leader *now*" — the question a reconcile pass
must ask before it acts, after a pause the process could not see. This one is small:
reads and optimistic writes (`replace` with the read resourceVersion, so two candidates
can never both win one record) of one Lease, with every decision in `leases`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from xlinefed.logs import get_logger
from xlinefed.operators.leases import (
    Action,
    LeaseTiming,
    Observation,
    Record,
    decide,
    holds,
    next_transitions,
    observe,
)

log = get_logger(__name__)


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(lease: client.V1Lease) -> Record:
    spec = lease.spec
    return Record(
        holder=spec.holder_identity or None,
        duration=float(spec.lease_duration_seconds or 0),
        transitions=int(spec.lease_transitions or 0),
        resource_version=lease.metadata.resource_version,
    )


class NotLeader(Exception):
    """Raised by `LeaseElector.check` in a process that no longer holds its Lease."""


class LeaseElector:
    def __init__(
        self,
        api: client.ApiClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        timing: LeaseTiming,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.leases = client.CoordinationV1Api(api)
        self.name, self.namespace, self.identity = name, namespace, identity
        self.timing, self.clock = timing, clock
        self._seen: Observation | None = None
        self._renewed_at: float | None = None
        self._acquired_at: str | None = None

    # --- questions ------------------------------------------------------------------
    def held(self) -> bool:
        return holds(self._renewed_at, self.clock(), self.timing)

    def check(self) -> None:
        """Called before a pass acts: refuse once the renew deadline has passed."""
        if not self.held():
            raise NotLeader(
                f"{self.identity} no longer holds Lease {self.namespace}/{self.name}; "
                "not acting (a standby may hold it now)"
            )

    @property
    def holder(self) -> str | None:
        return self._seen.record.holder if self._seen else None

    # --- one attempt --------------------------------------------------------------
    def _body(self, record: Record | None, *, release: bool = False) -> dict[str, Any]:
        now = _micro_time()
        taking = record is None or record.holder != self.identity
        if taking or self._acquired_at is None:
            self._acquired_at = now
        spec: dict[str, Any] = {
            "holderIdentity": None if release else self.identity,
            "leaseDurationSeconds": 1 if release else int(self.timing.duration),
            "acquireTime": self._acquired_at,
            "renewTime": now,
            "leaseTransitions": next_transitions(record, self.identity),
        }
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if record is not None:
            metadata["resourceVersion"] = record.resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": metadata,
            "spec": spec,
        }

    async def _read(self) -> Record | None:
        try:
            lease = await self.leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return _record(lease)

    async def attempt(self) -> bool:
        """Read the Lease, decide, write if the decision says so; True if we hold it now.
        A lost race (409 Conflict, or the Lease created meanwhile) is a plain False."""
        sent = self.clock()
        was_held = self.held()
        record = await self._read()
        self._seen = observe(self._seen, record, self.clock())
        decision = decide(self.identity, self._seen, self.clock())
        if decision.action is Action.WAIT:
            return False
        # RENEW without holding: ours on the server, but our deadline passed (we were
        # paused, or the API server was slow) and nobody took it: the replace below only
        # succeeds if nobody wrote it since we read it, so taking it back is safe.
        body = self._body(record)
        try:
            if record is None:
                written = await self.leases.create_namespaced_lease(self.namespace, body)
            else:
                written = await self.leases.replace_namespaced_lease(
                    self.name, self.namespace, body
                )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        self._seen = observe(self._seen, _record(written), self.clock())
        if not was_held:
            log.info(
                "acquired the lease",
                lease=f"{self.namespace}/{self.name}",
                identity=self.identity,
                previous=record.holder if record else None,
                transitions=next_transitions(record, self.identity),
            )
        self._renewed_at = sent
        return True

    # --- loops ----------------------------------------------------------------------
    async def acquire(self) -> None:
        """Stand by until this process holds the Lease."""
        announced: str | None = ""
        while True:
            try:
                if await self.attempt():
                    return
            except (ApiException, OSError, TimeoutError) as error:
                log.warning("could not read or write the lease", error=str(error))
            if self.holder != announced:
                announced = self.holder
                log.info(
                    "standing by",
                    lease=f"{self.namespace}/{self.name}",
                    identity=self.identity,
                    holder=self.holder,
                )
            await asyncio.sleep(self.timing.retry_period)

    async def keep(self) -> None:
        """Renew every retry period; return once the renew deadline passes without a
        successful renewal, or someone else holds the Lease."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            if not self.held():
                break
            left = self._renewed_at + self.timing.renew_deadline - self.clock()  # type: ignore[operator]
            try:
                renewed = await asyncio.wait_for(self.attempt(), timeout=max(left, 0.001))
            except (ApiException, OSError, TimeoutError) as error:
                log.warning("could not renew the lease", error=str(error) or repr(error))
                continue
            if not renewed and self.holder not in (None, self.identity):
                self._renewed_at = None
                break
        log.error(
            "lost the lease",
            lease=f"{self.namespace}/{self.name}",
            identity=self.identity,
            last_seen_holder=self.holder,
        )

    async def release(self) -> None:
        """On a clean stop: hand the Lease over at once instead of after its duration."""
        if not self.held():
            return
        self._renewed_at = None
        try:
            record = await self._read()
            if record is not None and record.holder == self.identity:
                await self.leases.replace_namespaced_lease(
                    self.name, self.namespace, self._body(record, release=True)
                )
                log.info("released the lease", lease=f"{self.namespace}/{self.name}")
        except (ApiException, OSError, TimeoutError) as error:
            log.warning("could not release the lease", error=str(error))
