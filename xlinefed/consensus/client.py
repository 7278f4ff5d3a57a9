"""An asyncio client for the etcd v3 gRPC API (etcd >= 3.4 and Xline speak it).

One `ConsensusClient` holds one gRPC channel per endpoint. A request goes to the endpoint
that answered last; when an endpoint does not answer (UNAVAILABLE, a client-side timeout,
or a learner that cannot serve the request) the next endpoint is tried. Requests aimed at
one member (`status`, `health`, `move_leader`) never fail over.

Transient refusals are retried with exponential backoff by `retrying(deadline, ...)`; every
public method that changes or reads the cluster takes `deadline` (seconds from now, default
`ClientSettings.retry_deadline`; 0 means a single attempt). Permanent refusals raise the
`errors` tree. gRPC errors are translated here and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

import grpc
import grpc.aio

from xlinefed.consensus import errors
from xlinefed.consensus._proto import kv_pb2, rpc_pb2, rpc_pb2_grpc
from xlinefed.logs import get_logger

log = get_logger(__name__)

T = TypeVar("T")

Bytes = str | bytes


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff between retries of transient errors."""

    initial: float = 0.05
    """First delay, seconds."""
    maximum: float = 1.0
    """Largest delay, seconds."""
    multiplier: float = 2.0
    """Growth per attempt."""
    jitter: float = 0.2
    """Fraction of the delay added at random, so that competing clients spread out."""

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        return base * (1.0 + random.uniform(0.0, self.jitter))


@dataclass(frozen=True)
class ClientSettings:
    """How patient the client is."""

    rpc_timeout: float = 5.0
    """Per-attempt timeout of one RPC on one endpoint, seconds."""
    retry_deadline: float = 30.0
    """Default time budget for retrying transient refusals, seconds."""
    status_timeout: float = 2.0
    """Per-endpoint timeout of `status`/`health`; slower endpoints count as down, seconds."""
    backoff: Backoff = field(default_factory=Backoff)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class MemberInfo:
    id: int
    name: str
    """Empty until the member has started and published its name."""
    peer_urls: tuple[str, ...]
    client_urls: tuple[str, ...]
    """Empty until the member has started."""
    is_learner: bool

    @property
    def started(self) -> bool:
        return bool(self.name)


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    member_id: int
    leader_id: int
    """0 when the member knows no leader."""
    raft_index: int
    raft_applied_index: int
    raft_term: int
    version: str
    db_size: int
    is_learner: bool
    errors: tuple[str, ...]
    """Alarms and health problems reported by the member (empty when fine)."""
    revision: int = 0
    """The store revision this member had applied when it answered (its response header)."""

    @property
    def is_leader(self) -> bool:
        return self.member_id != 0 and self.member_id == self.leader_id


@dataclass(frozen=True)
class SnapshotChunk:
    data: bytes
    remaining: int
    """Bytes the member says are still to come after this chunk."""


@dataclass(frozen=True)
class EndpointDown:
    """An endpoint that did not answer a status request in time."""

    endpoint: str
    error: str


@dataclass(frozen=True)
class EndpointHealth:
    endpoint: str
    healthy: bool
    took: float
    """Seconds the health probe took."""
    error: str = ""


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int

    @property
    def text(self) -> str:
        return self.value.decode()


@dataclass(frozen=True)
class Lease:
    id: int
    ttl: int
    """Seconds granted by the server."""


# ---- transactions


CompareTarget = Literal["version", "create", "mod", "value", "lease"]
CompareOp = Literal["==", "!=", ">", "<"]


@dataclass(frozen=True)
class Compare:
    """One guard of a transaction: `target(key) op value`."""

    key: bytes
    target: CompareTarget
    op: CompareOp
    value: int | bytes


def compare_create_revision(key: Bytes, op: CompareOp, value: int) -> Compare:
    """`create_revision(key) op value`; `== 0` means "key does not exist"."""
    return Compare(_b(key), "create", op, value)


def compare_mod_revision(key: Bytes, op: CompareOp, value: int) -> Compare:
    return Compare(_b(key), "mod", op, value)


def compare_version(key: Bytes, op: CompareOp, value: int) -> Compare:
    return Compare(_b(key), "version", op, value)


def compare_value(key: Bytes, op: CompareOp, value: Bytes) -> Compare:
    return Compare(_b(key), "value", op, _b(value))


def compare_lease(key: Bytes, op: CompareOp, value: int) -> Compare:
    return Compare(_b(key), "lease", op, value)


@dataclass(frozen=True)
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@dataclass(frozen=True)
class Get:
    key: bytes
    prefix: bool = False


@dataclass(frozen=True)
class Delete:
    key: bytes
    prefix: bool = False


Op = Put | Get | Delete


def put_op(key: Bytes, value: Bytes, *, lease: int = 0) -> Put:
    return Put(_b(key), _b(value), lease)


def get_op(key: Bytes, *, prefix: bool = False) -> Get:
    return Get(_b(key), prefix)


def delete_op(key: Bytes, *, prefix: bool = False) -> Delete:
    return Delete(_b(key), prefix)


@dataclass(frozen=True)
class TxnResult:
    succeeded: bool
    """True when all compares held and the success branch ran."""
    revision: int
    """Store revision after the transaction."""
    results: tuple[tuple[KeyValue, ...] | int | None, ...]
    """Per op of the branch that ran: Get -> key-values, Delete -> count deleted, Put -> None."""


# --------------------------------------------------------------------------- retrying


async def retrying(
    deadline: float,
    operation: Callable[[int], Awaitable[T]],
    *,
    what: str,
    backoff: Backoff | None = None,
) -> T:
    """Run `operation(attempt)` until it does not raise `TransientError`, for `deadline` s.

    `attempt` counts from 0, so an operation can tell a retry from the first try (a
    retried, non-idempotent change may already have applied). After the deadline the last
    transient error is raised unchanged; its message says what to do.
    """
    backoff = backoff or Backoff()
    end = time.monotonic() + max(0.0, deadline)
    attempt = 0
    while True:
        try:
            return await operation(attempt)
        except errors.TransientError as error:
            remaining = end - time.monotonic()
            if remaining <= 0:
                raise
            pause = min(backoff.delay(attempt), remaining)
            log.debug(
                "retrying", what=what, attempt=attempt, error=type(error).__name__, pause=pause
            )
            await asyncio.sleep(pause)
            if time.monotonic() > end:
                # A pause (a frozen process, a starved loop) outlived the budget: another
                # attempt now would act later than the caller allowed.
                raise
            attempt += 1


# --------------------------------------------------------------------------- the client


def _b(value: Bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with `prefix`."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"


def _check_endpoints(endpoints: Sequence[str], tls: ClientTLS | None) -> None:
    if not endpoints:
        raise ValueError("ConsensusClient needs at least one endpoint")
    secure = [e for e in endpoints if e.startswith("https://")]
    plain = [e for e in endpoints if e.startswith("http://")]
    if secure and tls is None:
        raise ValueError(
            f"{secure[0]} is a TLS endpoint but the client has no certificates; give the "
            "client (or its ChannelPool) tls=ClientTLS(ca, cert, key)"
        )
    if plain and tls is not None:
        raise ValueError(
            f"{plain[0]} is a plain-text endpoint but the client speaks TLS; use the "
            "member's https:// URL"
        )


def _target(endpoint: str) -> str:
    """A gRPC target from an etcd-style endpoint (`http(s)://host:port` or `host:port`)."""
    if endpoint.startswith("unix:"):
        return endpoint
    for scheme in ("http://", "https://"):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme) :].rstrip("/")
    return endpoint.rstrip("/")


def _member(m: rpc_pb2.Member) -> MemberInfo:
    return MemberInfo(
        id=m.ID,
        name=m.name,
        peer_urls=tuple(m.peerURLs),
        client_urls=tuple(m.clientURLs),
        is_learner=m.isLearner,
    )


def _kv(kv: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)


_COMPARE_TARGET = {
    "version": rpc_pb2.Compare.VERSION,
    "create": rpc_pb2.Compare.CREATE,
    "mod": rpc_pb2.Compare.MOD,
    "value": rpc_pb2.Compare.VALUE,
    "lease": rpc_pb2.Compare.LEASE,
}
_COMPARE_FIELD = {
    "version": "version",
    "create": "create_revision",
    "mod": "mod_revision",
    "value": "value",
    "lease": "lease",
}
_COMPARE_OP = {
    "==": rpc_pb2.Compare.EQUAL,
    "!=": rpc_pb2.Compare.NOT_EQUAL,
    ">": rpc_pb2.Compare.GREATER,
    "<": rpc_pb2.Compare.LESS,
}


def _compare_pb(c: Compare) -> rpc_pb2.Compare:
    pb = rpc_pb2.Compare(key=c.key, target=_COMPARE_TARGET[c.target], result=_COMPARE_OP[c.op])
    setattr(pb, _COMPARE_FIELD[c.target], c.value)
    return pb


def _op_pb(op: Op) -> rpc_pb2.RequestOp:
    if isinstance(op, Put):
        return rpc_pb2.RequestOp(
            request_put=rpc_pb2.PutRequest(key=op.key, value=op.value, lease=op.lease)
        )
    if isinstance(op, Get):
        end = _prefix_end(op.key) if op.prefix else b""
        return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=op.key, range_end=end))
    end = _prefix_end(op.key) if op.prefix else b""
    return rpc_pb2.RequestOp(
        request_delete_range=rpc_pb2.DeleteRangeRequest(key=op.key, range_end=end)
    )


def _op_result(resp: rpc_pb2.ResponseOp) -> tuple[KeyValue, ...] | int | None:
    kind = resp.WhichOneof("response")
    if kind == "response_range":
        return tuple(_kv(kv) for kv in resp.response_range.kvs)
    if kind == "response_delete_range":
        return resp.response_delete_range.deleted
    return None


class _Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel
        self.kv = rpc_pb2_grpc.KVStub(channel)
        self.lease = rpc_pb2_grpc.LeaseStub(channel)
        self.cluster = rpc_pb2_grpc.ClusterStub(channel)
        self.maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
        self.auth = rpc_pb2_grpc.AuthStub(channel)


@dataclass(frozen=True)
class ClientTLS:
    """What a client trusts and presents: the CA bundle, its certificate and key (PEM).
    Members demand a client certificate (etcd `--client-cert-auth`), so all three."""

    ca: bytes
    cert: bytes
    key: bytes = field(repr=False)


_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # gRPC shares connections between channels to one address by default, so a fresh
    # channel to a member that just came back would inherit the old connection's
    # reconnect backoff and fail at once.
    ("grpc.use_local_subchannel_pool", 1),
]


def _open_channel(endpoint: str, tls: ClientTLS | None) -> _Stubs:
    if tls is None:
        return _Stubs(grpc.aio.insecure_channel(_target(endpoint), options=_CHANNEL_OPTIONS))
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )
    return _Stubs(grpc.aio.secure_channel(_target(endpoint), credentials, options=_CHANNEL_OPTIONS))


class ChannelPool:
    """Channels kept open across clients (one event loop): an operator's passes observe the
    same members every time, and opening and closing a channel per member per observation
    was a tenth of an observation's time (bench/scale_out.py).

    A channel whose endpoint failed to answer is closed and forgotten (`discard`), so a
    member that restarts is reached with a fresh connection, not after a reconnect backoff.
    """

    def __init__(self, tls: ClientTLS | None = None) -> None:
        self._stubs: dict[str, _Stubs] = {}
        self._tls = tls

    @property
    def tls(self) -> ClientTLS | None:
        return self._tls

    async def use_tls(self, tls: ClientTLS | None) -> None:
        """Speak with these certificates from now on (they were renewed): channels opened
        with the old ones are closed, so the next call dials with the new ones."""
        if tls != self._tls:
            self._tls = tls
            await self.close()

    def stubs(self, endpoint: str) -> _Stubs:
        found = self._stubs.get(endpoint)
        if found is None:
            found = self._stubs[endpoint] = _open_channel(endpoint, self._tls)
        return found

    async def discard(self, endpoint: str) -> None:
        if (stubs := self._stubs.pop(endpoint, None)) is not None:
            await stubs.channel.close()

    async def close(self) -> None:
        stubs, self._stubs = self._stubs, {}
        for s in stubs.values():
            await s.channel.close()


class ConsensusClient:
    """Talks to one consensus cluster through any of its client endpoints.

    Use as `async with ConsensusClient([...]) as client:` or call `close()`.
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        timeout: float | None = None,
        settings: ClientSettings | None = None,
        pool: ChannelPool | None = None,
        tls: ClientTLS | None = None,
    ) -> None:
        """`pool`: take channels from it and leave them open on close (its owner closes
        them); without one, the client opens its own and closes them. `tls`: the
        certificates of a client without a pool (a pool carries its own)."""
        if pool is not None and tls is not None:
            raise ValueError("give the certificates to the ChannelPool, not to the client")
        # Without a pool of the caller's, the client has its own and closes it.
        self._pool = pool or ChannelPool(tls)
        self._shared = pool is not None
        _check_endpoints(endpoints, self._pool.tls)
        settings = settings or ClientSettings()
        if timeout is not None:
            settings = replace(settings, rpc_timeout=timeout)
        self.settings = settings
        self._endpoints: list[str] = list(dict.fromkeys(endpoints))
        self._preferred = 0

    # ---- lifecycle

    async def __aenter__(self) -> ConsensusClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if not self._shared:
            await self._pool.close()

    #: CLOCK_MONOTONIC time after which no request is sent (None: no limit); set from a
    #: lock proof (`Fence.not_after`) around the change it fences.
    not_after: float | None = None

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    @property
    def preferred_endpoint(self) -> str:
        """Where the next call goes first: the endpoint that answered last."""
        return self._endpoints[self._preferred]

    def set_endpoints(self, endpoints: Sequence[str]) -> None:
        """Replace the endpoint list (after members were added or removed)."""
        _check_endpoints(endpoints, self._pool.tls)
        self._endpoints = list(dict.fromkeys(endpoints))
        self._preferred = 0

    # ---- plumbing

    def _stub(self, endpoint: str) -> _Stubs:
        return self._pool.stubs(endpoint)

    async def _on(
        self,
        endpoint: str,
        call: Callable[[_Stubs, float], Awaitable[T]],
        *,
        what: str,
        timeout: float | None = None,
    ) -> T:
        """One attempt against one endpoint, gRPC errors translated."""
        rpc_timeout = timeout if timeout is not None else self.settings.rpc_timeout
        if self.not_after is not None:
            # Checked last, right before the call leaves: a caller paused since its proof
            # (a frozen lock holder) must not send anything any more.
            left = self.not_after - time.monotonic()
            if left <= 0:
                raise errors.LockNotHeld(
                    f"{what}: not sent; the proof that the membership lock is held expired "
                    f"{-left:.1f}s ago (the process was paused or starved); observe again"
                )
            rpc_timeout = min(rpc_timeout, left)
        try:
            return await call(self._stub(endpoint), rpc_timeout)
        except grpc.RpcError as error:
            translated = errors.translate(error, endpoint=endpoint, what=what)
            if self._shared and isinstance(translated, errors.Unavailable):
                await self._pool.discard(endpoint)
            raise translated from None

    async def _any(self, call: Callable[[_Stubs, float], Awaitable[T]], *, what: str) -> T:
        """One attempt, failing over across endpoints while they do not answer."""
        order = self._endpoints[self._preferred :] + self._endpoints[: self._preferred]
        failures: list[str] = []
        for endpoint in order:
            try:
                result = await self._on(endpoint, call, what=what)
            except errors.Unavailable as error:
                failures.append(f"{endpoint}: {error.detail or error}")
                continue
            except errors.TransientError:
                # this member may be the one in trouble (e.g. cut off from the leader):
                # let the next attempt start elsewhere
                self._preferred = (self._endpoints.index(endpoint) + 1) % len(self._endpoints)
                raise
            self._preferred = self._endpoints.index(endpoint)
            return result
        raise errors.Unavailable(
            f"{what}: no endpoint answered ({'; '.join(failures)}); check that a quorum of "
            "members is running and that the endpoints are right",
            detail="; ".join(failures),
        )

    async def _retry(
        self,
        call: Callable[[_Stubs, float], Awaitable[T]],
        *,
        what: str,
        deadline: float | None,
    ) -> T:
        budget = self.settings.retry_deadline if deadline is None else deadline
        return await retrying(
            budget,
            lambda _attempt: self._any(call, what=what),
            what=what,
            backoff=self.settings.backoff,
        )

    # ---- cluster membership

    async def member_list(
        self, *, linearizable: bool = True, deadline: float | None = None
    ) -> list[MemberInfo]:
        """All members. `linearizable` asks etcd >= 3.5 to read through the leader
        (etcd 3.4 ignores it and answers from the member's local view)."""

        async def call(s: _Stubs, t: float) -> list[MemberInfo]:
            resp = await s.cluster.MemberList(
                rpc_pb2.MemberListRequest(linearizable=linearizable), timeout=t
            )
            return [_member(m) for m in resp.members]

        return await self._retry(call, what="member list", deadline=deadline)

    async def member_list_at(
        self, endpoint: str, *, timeout: float | None = None
    ) -> list[MemberInfo]:
        """The member list as the member behind `endpoint` serves it (one attempt, no
        failover): the leader's is the one destructive steps may act on."""

        async def call(s: _Stubs, t: float) -> list[MemberInfo]:
            resp = await s.cluster.MemberList(
                rpc_pb2.MemberListRequest(linearizable=True), timeout=t
            )
            return [_member(m) for m in resp.members]

        return await self._on(endpoint, call, what="member list", timeout=timeout)

    async def get_at(
        self, endpoint: str, key: Bytes, *, timeout: float | None = None
    ) -> KeyValue | None:
        """A linearizable read served by the member behind `endpoint` (no failover): it
        succeeds only while that member can reach a quorum."""
        raw = _b(key)

        async def call(s: _Stubs, t: float) -> KeyValue | None:
            resp = await s.kv.Range(rpc_pb2.RangeRequest(key=raw, serializable=False), timeout=t)
            return _kv(resp.kvs[0]) if resp.kvs else None

        return await self._on(endpoint, call, what=f"get {raw!r}", timeout=timeout)

    async def member_add(
        self, peer_urls: Sequence[str], *, learner: bool = True, deadline: float | None = None
    ) -> tuple[MemberInfo, list[MemberInfo]]:
        """Add a member (a learner by default); returns it and all members after the add.

        Safe to retry: when a retry finds the peer URL already present (an earlier
        attempt applied but its answer was lost), the existing member is returned.
        """
        urls = list(peer_urls)
        what = f"member add {urls}"

        async def attempt(n: int) -> tuple[MemberInfo, list[MemberInfo]]:
            async def call(s: _Stubs, t: float) -> tuple[MemberInfo, list[MemberInfo]]:
                resp = await s.cluster.MemberAdd(
                    rpc_pb2.MemberAddRequest(peerURLs=urls, isLearner=learner), timeout=t
                )
                return _member(resp.member), [_member(m) for m in resp.members]

            try:
                return await self._any(call, what=what)
            except errors.PeerURLExists:
                if n == 0:
                    raise
                members = await self._any(_list_call, what="member list")
                for m in members:
                    if set(m.peer_urls) == set(urls) and m.is_learner == learner:
                        return m, members
                raise

        return await self._retry_attempts(attempt, what=what, deadline=deadline)

    async def member_promote(
        self, member_id: int, *, deadline: float | None = None
    ) -> list[MemberInfo]:
        """Promote a learner to voter; retried while the learner is catching up.

        A retry that finds the member already a voter counts as success.
        """
        what = f"member promote {member_id:x}"

        async def attempt(n: int) -> list[MemberInfo]:
            async def call(s: _Stubs, t: float) -> list[MemberInfo]:
                resp = await s.cluster.MemberPromote(
                    rpc_pb2.MemberPromoteRequest(ID=member_id), timeout=t
                )
                return [_member(m) for m in resp.members]

            try:
                return await self._any(call, what=what)
            except errors.MemberNotLearner:
                if n == 0:
                    raise
                members = await self._any(_list_call, what="member list")
                if any(m.id == member_id and not m.is_learner for m in members):
                    return members
                raise

        return await self._retry_attempts(attempt, what=what, deadline=deadline)

    async def member_remove(
        self, member_id: int, *, deadline: float | None = None
    ) -> list[MemberInfo]:
        """Remove a member. A retry that finds it already gone counts as success."""
        what = f"member remove {member_id:x}"

        async def attempt(n: int) -> list[MemberInfo]:
            async def call(s: _Stubs, t: float) -> list[MemberInfo]:
                resp = await s.cluster.MemberRemove(
                    rpc_pb2.MemberRemoveRequest(ID=member_id), timeout=t
                )
                return [_member(m) for m in resp.members]

            try:
                return await self._any(call, what=what)
            except errors.MemberNotFound:
                if n == 0:
                    raise
                return await self._any(_list_call, what="member list")

        return await self._retry_attempts(attempt, what=what, deadline=deadline)

    async def member_update(
        self, member_id: int, peer_urls: Sequence[str], *, deadline: float | None = None
    ) -> list[MemberInfo]:
        """Change a member's peer URLs."""
        urls = list(peer_urls)

        async def call(s: _Stubs, t: float) -> list[MemberInfo]:
            resp = await s.cluster.MemberUpdate(
                rpc_pb2.MemberUpdateRequest(ID=member_id, peerURLs=urls), timeout=t
            )
            return [_member(m) for m in resp.members]

        return await self._retry(call, what=f"member update {member_id:x}", deadline=deadline)

    async def _retry_attempts(
        self, attempt: Callable[[int], Awaitable[T]], *, what: str, deadline: float | None
    ) -> T:
        budget = self.settings.retry_deadline if deadline is None else deadline
        return await retrying(budget, attempt, what=what, backoff=self.settings.backoff)

    # ---- maintenance

    # ---- auth (idempotent: what exists already counts as done)

    async def _auth(self, what: str, call: Callable[[_Stubs, float], Awaitable[object]]) -> None:
        with contextlib.suppress(errors.AlreadyExists):
            await self._retry(call, what=what, deadline=None)

    async def user_add(self, name: str, password: str | None) -> None:
        """A user; with no password it can only authenticate by a client certificate."""
        request = rpc_pb2.AuthUserAddRequest(
            name=name,
            password=password or "",
            options=rpc_pb2.UserAddOptions(no_password=password is None),
        )
        await self._auth(f"user add {name}", lambda s, t: s.auth.UserAdd(request, timeout=t))

    async def role_add(self, name: str) -> None:
        request = rpc_pb2.AuthRoleAddRequest(name=name)
        await self._auth(f"role add {name}", lambda s, t: s.auth.RoleAdd(request, timeout=t))

    async def role_grant_range(self, role: str, key: Bytes, range_end: Bytes) -> None:
        """Read and write on [key, range_end) (range_end b"\\0": every key from key on)."""
        request = rpc_pb2.AuthRoleGrantPermissionRequest(
            name=role,
            perm=rpc_pb2.Permission(
                permType=rpc_pb2.Permission.READWRITE, key=_b(key), range_end=_b(range_end)
            ),
        )
        await self._auth(
            f"grant {role}", lambda s, t: s.auth.RoleGrantPermission(request, timeout=t)
        )

    async def user_grant_role(self, user: str, role: str) -> None:
        request = rpc_pb2.AuthUserGrantRoleRequest(user=user, role=role)
        await self._auth(
            f"grant {role} to {user}", lambda s, t: s.auth.UserGrantRole(request, timeout=t)
        )

    async def auth_enable(self) -> None:
        request = rpc_pb2.AuthEnableRequest()
        await self._auth("auth enable", lambda s, t: s.auth.AuthEnable(request, timeout=t))

    async def status(self, endpoint: str, *, timeout: float | None = None) -> EndpointStatus:
        """The status of the member behind `endpoint` (one attempt, no failover)."""

        async def call(s: _Stubs, t: float) -> EndpointStatus:
            r = await s.maintenance.Status(rpc_pb2.StatusRequest(), timeout=t)
            return EndpointStatus(
                endpoint=endpoint,
                member_id=r.header.member_id,
                leader_id=r.leader,
                raft_index=r.raftIndex,
                raft_applied_index=r.raftAppliedIndex,
                raft_term=r.raftTerm,
                version=r.version,
                db_size=r.dbSize,
                is_learner=r.isLearner,
                errors=tuple(r.errors),
                revision=r.header.revision,
            )

        return await self._on(
            endpoint,
            call,
            what="status",
            timeout=timeout if timeout is not None else self.settings.status_timeout,
        )

    async def snapshot(
        self, endpoint: str, *, idle_timeout: float = 30.0
    ) -> AsyncIterator[SnapshotChunk]:
        """Stream a snapshot of the member behind `endpoint` (Maintenance.Snapshot; no
        failover: a snapshot is one member's database). Chunks come as the member sends
        them (etcd: 32 KiB); the stream ends with the database's own sha256 (etcd appends
        it, and `snapshot restore` checks it). A chunk that does not come within
        `idle_timeout` seconds ends the stream with `Unavailable`."""
        what = "snapshot"
        try:
            call = self._stub(endpoint).maintenance.Snapshot(rpc_pb2.SnapshotRequest())
        except grpc.RpcError as error:
            raise errors.translate(error, endpoint=endpoint, what=what) from None
        try:
            while True:
                try:
                    response = await asyncio.wait_for(call.read(), timeout=idle_timeout)
                except TimeoutError:
                    raise errors.Unavailable(
                        f"{what} from {endpoint}: no data for {idle_timeout:.0f}s; the member "
                        "is stalled or gone; take the backup from another member"
                    ) from None
                except grpc.RpcError as error:
                    raise errors.translate(error, endpoint=endpoint, what=what) from None
                if response is grpc.aio.EOF:
                    return
                yield SnapshotChunk(response.blob, response.remaining_bytes)
        finally:
            call.cancel()

    async def statuses(
        self, endpoints: Sequence[str] | None = None, *, timeout: float | None = None
    ) -> dict[str, EndpointStatus | EndpointDown]:
        """Status of every endpoint, concurrently; one that is slow or fails is `EndpointDown`."""
        targets = list(endpoints) if endpoints is not None else self.endpoints

        async def one(endpoint: str) -> EndpointStatus | EndpointDown:
            try:
                return await self.status(endpoint, timeout=timeout)
            except errors.ConsensusError as error:
                return EndpointDown(endpoint, str(error))

        results = await asyncio.gather(*(one(e) for e in targets))
        return dict(zip(targets, results, strict=True))

    async def health(self, endpoint: str, *, timeout: float | None = None) -> EndpointHealth:
        """Whether `endpoint` serves a quorum read (a linearizable Range) in time.

        A learner cannot serve linearizable reads; it counts as healthy when its status
        answers without errors (it is serving, if not necessarily caught up).
        """
        started = time.monotonic()
        limit = timeout if timeout is not None else self.settings.status_timeout

        async def call(s: _Stubs, t: float) -> None:
            await s.kv.Range(rpc_pb2.RangeRequest(key=b"health", serializable=False), timeout=t)

        try:
            await self._on(endpoint, call, what="health", timeout=limit)
        except errors.ConsensusError as error:
            if "not supported for learner" in error.detail:
                try:
                    st = await self.status(endpoint, timeout=limit)
                except errors.ConsensusError as status_error:
                    return EndpointHealth(
                        endpoint, False, time.monotonic() - started, str(status_error)
                    )
                healthy = not st.errors
                return EndpointHealth(
                    endpoint, healthy, time.monotonic() - started, "; ".join(st.errors)
                )
            return EndpointHealth(endpoint, False, time.monotonic() - started, str(error))
        return EndpointHealth(endpoint, True, time.monotonic() - started)

    async def leader(self, *, deadline: float | None = None) -> EndpointStatus:
        """The status of the current leader, as reached through one of our endpoints."""

        async def attempt(_n: int) -> EndpointStatus:
            found = await self.statuses()
            up = [s for s in found.values() if isinstance(s, EndpointStatus)]
            for s in up:
                if s.is_leader:
                    return s
            known = {s.leader_id for s in up if s.leader_id}
            raise errors.NotLeader(
                f"find leader: none of {self.endpoints} is the leader (leaders reported: "
                f"{sorted(f'{x:x}' for x in known) or 'none'}); wait for an election or add "
                "the leader's endpoint"
            )

        return await self._retry_attempts(attempt, what="find leader", deadline=deadline)

    async def move_leader(self, target_id: int, *, deadline: float | None = None) -> None:
        """Transfer leadership to `target_id` (sent to the current leader's endpoint).

        Returns when the target leads; a no-op when it already does.
        """
        what = f"move leader to {target_id:x}"

        async def attempt(_n: int) -> None:
            current = await self.leader(deadline=0)
            if current.leader_id == target_id:
                return

            async def call(s: _Stubs, t: float) -> None:
                await s.maintenance.MoveLeader(
                    rpc_pb2.MoveLeaderRequest(targetID=target_id), timeout=t
                )

            await self._on(current.endpoint, call, what=what)

        await self._retry_attempts(attempt, what=what, deadline=deadline)

    async def alarms(self, *, deadline: float | None = None) -> list[tuple[int, str]]:
        """Active alarms as (member id, alarm name)."""

        async def call(s: _Stubs, t: float) -> list[tuple[int, str]]:
            resp = await s.maintenance.Alarm(
                rpc_pb2.AlarmRequest(action=rpc_pb2.AlarmRequest.GET), timeout=t
            )
            return [(a.memberID, rpc_pb2.AlarmType.Name(a.alarm)) for a in resp.alarms]

        return await self._retry(call, what="alarm list", deadline=deadline)

    # ---- key-value

    async def get(
        self, key: Bytes, *, serializable: bool = False, deadline: float | None = None
    ) -> KeyValue | None:
        kvs = await self._range(_b(key), b"", serializable=serializable, deadline=deadline)
        return kvs[0] if kvs else None

    async def get_prefix(
        self, prefix: Bytes, *, serializable: bool = False, deadline: float | None = None
    ) -> list[KeyValue]:
        key = _b(prefix)
        return await self._range(
            key, _prefix_end(key), serializable=serializable, deadline=deadline
        )

    async def _range(
        self, key: bytes, end: bytes, *, serializable: bool, deadline: float | None
    ) -> list[KeyValue]:
        async def call(s: _Stubs, t: float) -> list[KeyValue]:
            resp = await s.kv.Range(
                rpc_pb2.RangeRequest(key=key, range_end=end, serializable=serializable), timeout=t
            )
            return [_kv(kv) for kv in resp.kvs]

        return await self._retry(call, what=f"get {key!r}", deadline=deadline)

    async def put(
        self, key: Bytes, value: Bytes, *, lease: int = 0, deadline: float | None = None
    ) -> int:
        """Put a key; returns the store revision of the write."""
        request = rpc_pb2.PutRequest(key=_b(key), value=_b(value), lease=lease)

        async def call(s: _Stubs, t: float) -> int:
            resp = await s.kv.Put(request, timeout=t)
            return int(resp.header.revision)

        return await self._retry(call, what=f"put {request.key!r}", deadline=deadline)

    async def delete(
        self, key: Bytes, *, prefix: bool = False, deadline: float | None = None
    ) -> int:
        """Delete a key (or every key under a prefix); returns how many were deleted."""
        k = _b(key)
        request = rpc_pb2.DeleteRangeRequest(key=k, range_end=_prefix_end(k) if prefix else b"")

        async def call(s: _Stubs, t: float) -> int:
            resp = await s.kv.DeleteRange(request, timeout=t)
            return int(resp.deleted)

        return await self._retry(call, what=f"delete {k!r}", deadline=deadline)

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Op] = (),
        failure: Sequence[Op] = (),
        *,
        deadline: float | None = None,
    ) -> TxnResult:
        """An atomic compare-and-swap: if every compare holds run `success`, else `failure`.

        Retried on transient errors like every call: a retried transaction whose first
        attempt applied sees its own effect in the compares, so write compares that stay
        meaningful (e.g. compare on the lease you own, not only on "key absent").
        """
        request = rpc_pb2.TxnRequest(
            compare=[_compare_pb(c) for c in compare],
            success=[_op_pb(o) for o in success],
            failure=[_op_pb(o) for o in failure],
        )

        async def call(s: _Stubs, t: float) -> TxnResult:
            resp = await s.kv.Txn(request, timeout=t)
            return TxnResult(
                succeeded=resp.succeeded,
                revision=resp.header.revision,
                results=tuple(_op_result(r) for r in resp.responses),
            )

        return await self._retry(call, what="txn", deadline=deadline)

    # ---- leases

    async def lease_grant(
        self, ttl: int, *, lease_id: int = 0, deadline: float | None = None
    ) -> Lease:
        """Grant a lease of `ttl` seconds (the server may round it up)."""

        async def call(s: _Stubs, t: float) -> Lease:
            resp = await s.lease.LeaseGrant(
                rpc_pb2.LeaseGrantRequest(TTL=ttl, ID=lease_id), timeout=t
            )
            if resp.error:
                raise errors.RequestRejected(
                    f"lease grant refused: {resp.error}", detail=resp.error
                )
            return Lease(resp.ID, resp.TTL)

        return await self._retry(call, what="lease grant", deadline=deadline)

    async def lease_revoke(self, lease_id: int, *, deadline: float | None = None) -> None:
        """Revoke a lease; its keys are deleted. Raises `LeaseNotFound` if already gone."""

        async def call(s: _Stubs, t: float) -> None:
            await s.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout=t)

        await self._retry(call, what=f"lease revoke {lease_id:x}", deadline=deadline)

    async def lease_keepalive_once(self, lease_id: int, *, deadline: float | None = None) -> int:
        """Refresh a lease once (one message on the keep-alive stream); returns the new TTL.

        Raises `LeaseNotFound` when the lease has expired or was revoked.
        """
        what = f"lease keepalive {lease_id:x}"

        async def call(s: _Stubs, t: float) -> int:
            stream = s.lease.LeaseKeepAlive(timeout=t)
            try:
                await stream.write(rpc_pb2.LeaseKeepAliveRequest(ID=lease_id))
                resp = await stream.read()
            finally:
                stream.cancel()
            if resp is grpc.aio.EOF:
                raise errors.Unavailable(f"{what}: stream closed without an answer")
            if resp.TTL <= 0:
                raise errors.LeaseNotFound(
                    f"{what}: the lease has expired or was revoked; grant a new one",
                    detail="lease not found",
                )
            return int(resp.TTL)

        return await self._retry(call, what=what, deadline=deadline)

    async def lease_time_to_live(self, lease_id: int, *, deadline: float | None = None) -> int:
        """Remaining seconds of a lease; -1 when it does not exist (expired or revoked)."""

        async def call(s: _Stubs, t: float) -> int:
            resp = await s.lease.LeaseTimeToLive(
                rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id), timeout=t
            )
            return int(resp.TTL)

        return await self._retry(call, what=f"lease ttl {lease_id:x}", deadline=deadline)


async def _list_call(s: _Stubs, t: float) -> list[MemberInfo]:
    resp = await s.cluster.MemberList(rpc_pb2.MemberListRequest(linearizable=True), timeout=t)
    return [_member(m) for m in resp.members]
