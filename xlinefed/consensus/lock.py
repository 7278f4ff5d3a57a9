"""The global membership lock, kept in the managed consensus store itself.

Karmada gives no cross-cluster ordering, so the store orders its own membership changes:

- `/xlinefed/lock/membership` is created in a transaction (`create_revision == 0` -> put)
  on a lease with a TTL, refreshed in the background while held. If the holder dies the
  lease expires and the key disappears.
- The fencing token is the key's create revision (holder id and lease are kept for the
  record). Every write made under the lock is a transaction that compares the lock key's
  create revision with the token, so a holder whose lease expired (and whose key went
  with it) cannot write any more.
- The step the holder is carrying out is recorded beside it, at
  `/xlinefed/lock/membership/step`, as JSON `{"holder", "lock_revision", "phase", "step"}`
  with phase "intent" before the change and "done" after. The step key has no lease: it
  outlives its writer, so the next holder can read a half-done step (`pending_step`) and
  finish or undo it before doing anything new.

Membership RPCs (member add/promote/remove) cannot join a KV transaction, so they are
guarded by `ensure_held(token, margin)` (the lock is ours and the lease has at least
`margin` seconds left) plus the recorded intent, which covers the case where the holder
dies between the RPC and recording "done".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from xlinefed.consensus import errors
from xlinefed.consensus.client import (
    Backoff,
    ConsensusClient,
    KeyValue,
    Op,
    TxnResult,
    compare_create_revision,
    get_op,
    put_op,
)
from xlinefed.logs import get_logger

log = get_logger(__name__)

LOCK_KEY = "/xlinefed/lock/membership"
STEP_SUFFIX = "/step"

Phase = Literal["intent", "done"]


@dataclass(frozen=True)
class LockToken:
    """Proof of holding the lock; pass it to every fenced write."""

    holder: str
    lease_id: int
    revision: int
    """Create revision of the lock key: unique to this acquisition."""
    ttl: int
    """Lease TTL in seconds."""
    waited: float
    """Seconds spent waiting for the lock."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds the lock, as observed (for status and the planner's `Observed`)."""

    holder: str
    lease_id: int
    revision: int


@dataclass(frozen=True)
class StepRecord:
    """The step recorded beside the lock."""

    holder: str
    lock_revision: int
    """Create revision of the lock key of the holder that recorded it."""
    phase: Phase
    step: dict[str, Any]
    revision: int
    """Mod revision of the step key."""


class MembershipLock:
    """The global membership lock for one holder.

    ```
    async with MembershipLock(client, "cluster-a/operator", ttl=10) as token:
        if (left := await lock.pending_step()) is not None: ...finish or undo left.step...
        await lock.record_step(token, {"op": "add-learner", "peer_url": url})
        await lock.ensure_held(token)
        await client.member_add([url])
        await lock.finish_step(token)
    ```
    """

    def __init__(
        self,
        client: ConsensusClient,
        holder_id: str,
        *,
        ttl: int = 10,
        acquire_timeout: float = 120.0,
        key: str = LOCK_KEY,
        poll: Backoff | None = None,
    ) -> None:
        if ttl < 2:
            raise ValueError("lock ttl must be at least 2 seconds")
        self.client = client
        self.holder_id = holder_id
        self.ttl = ttl
        self.acquire_timeout = acquire_timeout
        self.key = key
        self.step_key = key + STEP_SUFFIX
        self._poll = poll or Backoff(initial=0.05, maximum=0.5, multiplier=1.5, jitter=0.5)
        self._token: LockToken | None = None
        self._lease_id = 0
        self._keepalive: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self.last_wait: float = 0.0
        """Seconds the last `acquire` waited."""

    # ---- state

    @property
    def token(self) -> LockToken | None:
        """The current token, or None when not held (or known lost)."""
        return None if self._lost.is_set() else self._token

    @property
    def lost(self) -> bool:
        """True when the background keep-alive found the lease gone while held."""
        return self._lost.is_set()

    # ---- acquire / release

    async def acquire(self, timeout: float | None = None) -> LockToken:
        """Wait up to `timeout` seconds for the lock; raises `LockTimeout`."""
        if self._token is not None and not self._lost.is_set():
            raise RuntimeError(f"{self.holder_id} already holds the membership lock")
        limit = self.acquire_timeout if timeout is None else timeout
        started = time.monotonic()
        end = started + limit
        await self._new_lease()
        attempt = 0
        other: LockHolder | None = None
        try:
            while True:
                if self._lost.is_set():
                    await self._new_lease()
                value = json.dumps({"holder": self.holder_id, "lease": self._lease_id})
                result = await self.client.txn(
                    [compare_create_revision(self.key, "==", 0)],
                    # Read back in the same transaction: the key's own create revision is
                    # the token (Xline's txn header revision is not the put's revision).
                    [put_op(self.key, value, lease=self._lease_id), get_op(self.key)],
                    [get_op(self.key)],
                    deadline=max(0.0, end - time.monotonic()),
                )
                revision = self._taken_revision(result)
                if revision:
                    waited = time.monotonic() - started
                    token = LockToken(self.holder_id, self._lease_id, revision, self.ttl, waited)
                    self._token = token
                    self.last_wait = waited
                    log.info(
                        "membership lock acquired",
                        holder=self.holder_id,
                        lease=f"{self._lease_id:x}",
                        revision=revision,
                        waited=f"{waited:.3f}",
                    )
                    return token
                other = _holder(result)
                remaining = end - time.monotonic()
                if remaining <= 0:
                    raise errors.LockTimeout(
                        f"membership lock not acquired by {self.holder_id} within {limit:.1f}s: "
                        f"held by {other.holder if other else 'unknown'} (lease "
                        f"{other.lease_id if other else 0:x}); it is released when that holder "
                        f"finishes or its lease expires (TTL); wait longer or check that holder"
                    )
                if attempt == 0:
                    log.info(
                        "waiting for membership lock",
                        holder=self.holder_id,
                        held_by=other.holder if other else "?",
                    )
                await asyncio.sleep(min(self._poll.delay(attempt), remaining))
                attempt += 1
        except BaseException:
            await self._drop_lease()
            raise

    def _taken_revision(self, result: TxnResult) -> int:
        if result.succeeded:
            kvs = result.results[1] if len(result.results) > 1 else ()
            if isinstance(kvs, tuple) and kvs:
                return kvs[0].create_revision
            return result.revision
        # a retried acquire may find the key written by its own earlier attempt
        kvs = result.results[0] if result.results else ()
        if isinstance(kvs, tuple) and kvs and kvs[0].lease == self._lease_id:
            return kvs[0].create_revision
        return 0

    async def release(self, token: LockToken) -> None:
        """Give the lock up: revoke the lease (which deletes the lock key)."""
        if self._token is None or token.revision != self._token.revision:
            raise errors.LockNotHeld(
                f"{self.holder_id} tried to release a lock token it does not hold "
                f"(revision {token.revision}); release the token returned by acquire"
            )
        await self._drop_lease()
        self._token = None
        log.info("membership lock released", holder=self.holder_id, revision=token.revision)

    async def __aenter__(self) -> LockToken:
        return await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._token is not None:
            await self.release(self._token)

    # ---- lease

    async def _new_lease(self) -> None:
        await self._drop_lease()
        lease = await self.client.lease_grant(self.ttl)
        self._lease_id = lease.id
        self._lost = asyncio.Event()
        self._keepalive = asyncio.create_task(
            self._keep_alive(lease.id, self._lost), name=f"lock-keepalive-{self.holder_id}"
        )

    async def _drop_lease(self) -> None:
        task, self._keepalive = self._keepalive, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        lease, self._lease_id = self._lease_id, 0
        if lease:
            try:
                await self.client.lease_revoke(lease, deadline=self.ttl)
            except errors.LeaseNotFound:
                pass
            except errors.ConsensusError as error:
                log.warning(
                    "lease revoke failed; it expires by itself",
                    lease=f"{lease:x}",
                    ttl=self.ttl,
                    error=str(error),
                )

    async def _keep_alive(self, lease_id: int, lost: asyncio.Event) -> None:
        interval = self.ttl / 3
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                await self.client.lease_keepalive_once(lease_id, deadline=interval)
                last_ok = time.monotonic()
            except errors.LeaseNotFound:
                break
            except errors.ConsensusError as error:
                if time.monotonic() - last_ok < self.ttl:
                    log.warning("lock keep-alive failed", lease=f"{lease_id:x}", error=str(error))
                    continue
                break
        lost.set()
        log.warning("membership lock lease lost", holder=self.holder_id, lease=f"{lease_id:x}")

    # ---- fenced writes

    def _fence(self, token: LockToken) -> list[Any]:
        # The create revision alone identifies this acquisition: the key goes with its
        # lease, and a new acquisition creates it anew. (A lease compare would add
        # nothing, and Xline v0.7.0 answers every Compare on LEASE with false.)
        return [compare_create_revision(self.key, "==", token.revision)]

    async def fenced_txn(self, token: LockToken, ops: list[Op]) -> TxnResult:
        """Apply `ops` only if `token` still holds the lock; raises `LockNotHeld` otherwise."""
        result = await self.client.txn(self._fence(token), ops, [get_op(self.key)])
        if not result.succeeded:
            now = _holder(result)
            raise errors.LockNotHeld(
                f"{token.holder}'s lock token (revision {token.revision}, lease "
                f"{token.lease_id:x}) no longer holds the membership lock (now held by "
                f"{now.holder if now else 'nobody'}); its lease expired or it was released. "
                "Stop, observe the cluster again and re-acquire the lock"
            )
        return result

    async def record_step(
        self, token: LockToken, step: dict[str, Any], phase: Phase = "intent"
    ) -> int:
        """Record the step being carried out (fenced); returns the write's revision."""
        value = json.dumps(
            {"holder": token.holder, "lock_revision": token.revision, "phase": phase, "step": step},
            sort_keys=True,
        )
        result = await self.fenced_txn(token, [put_op(self.step_key, value)])
        return result.revision

    async def finish_step(self, token: LockToken, step: dict[str, Any] | None = None) -> int:
        """Mark the recorded step done (optionally replacing its content, e.g. "undone")."""
        if step is None:
            current = await self.last_step()
            step = current.step if current is not None else {}
        return await self.record_step(token, step, phase="done")

    async def last_step(self) -> StepRecord | None:
        """The step record beside the lock, whatever its phase."""
        kv = await self.client.get(self.step_key)
        if kv is None:
            return None
        data = json.loads(kv.value)
        return StepRecord(
            holder=str(data["holder"]),
            lock_revision=int(data["lock_revision"]),
            phase=data["phase"],
            step=dict(data["step"]),
            revision=kv.mod_revision,
        )

    async def pending_step(self) -> StepRecord | None:
        """A step recorded as "intent" and never marked done: finish or undo it first."""
        record = await self.last_step()
        return record if record is not None and record.phase == "intent" else None

    async def holder(self) -> LockHolder | None:
        """Who holds the lock now (None when free)."""
        return parse_holder(await self.client.get(self.key))

    async def ensure_held(self, token: LockToken, margin: float | None = None) -> None:
        """Raise `LockNotHeld` unless `token` holds the lock with >= `margin` s of lease left.

        Call right before an unfenceable change (a membership RPC). `margin` defaults to
        half the TTL, which the background keep-alive keeps well above when healthy.
        """
        need = self.ttl / 2 if margin is None else margin
        current = await self.holder()
        if self._lost.is_set() or current is None or current.revision != token.revision:
            raise errors.LockNotHeld(
                f"{token.holder} no longer holds the membership lock (now "
                f"{current.holder if current else 'free'}); observe again and re-acquire"
            )
        left = await self.client.lease_time_to_live(token.lease_id)
        if left < need:
            raise errors.LockNotHeld(
                f"{token.holder}'s lock lease has {left}s left, less than the {need:.1f}s a "
                "membership change may take; the keep-alive is failing, check the cluster"
            )


class Fence:
    """Re-proves, right before each change the store cannot fence (a membership RPC, a
    stop or start of a voter), that the lock is still ours, and bounds how long that
    change may take: the proof is good for half the lease TTL from when it was made. A
    holder frozen (SIGSTOP, a starved loop) after the proof finds the budget spent when
    it resumes and gives up instead of landing its change late."""

    def __init__(
        self, lock: MembershipLock, token: LockToken, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lock = lock
        self.token = token
        #: CLOCK_MONOTONIC keeps counting while the process is stopped, which is the point.
        self.clock = clock
        self._proved_at: float | None = None

    @property
    def budget(self) -> float:
        """Seconds a proof is good for."""
        return self.token.ttl / 2

    async def prove(self, what: str) -> float:
        """Prove the lock is held; returns the seconds `what` may take."""
        await self.lock.ensure_held(self.token)
        self._proved_at = self.clock()
        log.debug("lock proved", holder=self.token.holder, before=what)
        return self.remaining(what)

    @property
    def not_after(self) -> float:
        """When the last proof runs out, on the fence's clock: fixed when the proof was
        made, so a pause anywhere after it counts against it."""
        if self._proved_at is None:
            raise errors.LockNotHeld("the membership lock was never proved held")
        return self._proved_at + self.budget

    def remaining(self, what: str) -> float:
        """Seconds left of the last proof; raises `LockNotHeld` once it is spent."""
        if self._proved_at is None:
            raise errors.LockNotHeld(f"{what}: the membership lock was never proved held")
        left = self.not_after - self.clock()
        if left <= 0:
            raise errors.LockNotHeld(
                f"{what}: {self.token.holder}'s proof of the membership lock is "
                f"{self.budget - left:.1f}s old, past the {self.budget:.1f}s it is good for "
                "(the process was paused or starved); observe again and re-acquire"
            )
        return left


def parse_holder(kv: KeyValue | None) -> LockHolder | None:
    """The lock key's value as a holder (None when the key is absent: the lock is free)."""
    if kv is None:
        return None
    data = json.loads(kv.value)
    return LockHolder(str(data.get("holder", "?")), kv.lease, kv.create_revision)


def _holder(result: TxnResult) -> LockHolder | None:
    kvs = result.results[0] if result.results else ()
    return parse_holder(kvs[0]) if isinstance(kvs, tuple) and kvs else None
