"""The consensus client's exceptions: one documented tree, gRPC errors translated once.

```
ConsensusError                      anything the consensus store refused or failed to do
├── TransientError                  worth retrying: `retrying()` retries these until its deadline
│   ├── Unavailable                 no endpoint answered (down, partitioned, or a learner)
│   ├── ClusterUnhealthy            "unhealthy cluster": members not connected long enough yet
│   ├── TooManyLearners             the engine allows only so many learners at once
│   ├── LearnerNotReady             a learner is not caught up with the leader yet
│   ├── NotLeader                   the request needs the leader and leadership moved
│   ├── NotEnoughStartedMembers     a change would leave too few started voters right now
│   └── RequestTimedOut             the server gave up; the request may or may not have applied
├── MemberNotFound                  no member with that id
├── PeerURLExists                   a member with that peer URL is already in the cluster
├── MemberNotLearner                promote was asked for a member that is already a voter
├── BadLeaderTransferee             move-leader target is not a healthy voter
├── LeaseNotFound                   the lease expired or was revoked
├── LockNotHeld                     a fenced write found the membership lock held by someone else
├── LockTimeout                     the membership lock was not acquired before the deadline
└── RequestRejected                 any other refusal (bad argument, permission, ...)
```

Every message says what happened and what to do about it. Only `client.py` creates these
from gRPC errors (`translate`); nothing above the consensus package sees `grpc.RpcError`.
"""

from __future__ import annotations

import grpc


class ConsensusError(Exception):
    """The consensus store refused a request or could not be reached."""

    def __init__(self, message: str, *, detail: str = "", endpoint: str = "") -> None:
        super().__init__(message)
        self.detail = detail
        self.endpoint = endpoint


class TransientError(ConsensusError):
    """A refusal that is expected to clear by itself; retry with backoff within a deadline."""


class Unavailable(TransientError):
    """No endpoint answered the request."""


class NoAnswer(Unavailable):
    """The endpoint gave no answer before the deadline: it may be down, or only slow (a
    loaded machine, a congested link). Unlike a refused connection, not a fact."""


class ClusterUnhealthy(TransientError):
    """etcd refuses membership changes until every voter has been connected for ~5 s."""


class TooManyLearners(TransientError):
    """etcd 3.4/3.5 allow one learner at a time; promote or remove the current one first."""


class LearnerNotReady(TransientError):
    """The learner has not caught up with the leader's log yet."""


class NotLeader(TransientError):
    """The request must be served by the leader and leadership changed or is unknown."""


class NotEnoughStartedMembers(TransientError):
    """The change would leave fewer started voters than a quorum; wait for members to start."""


class RequestTimedOut(TransientError):
    """The server timed out; the request may or may not have been applied."""


class MemberNotFound(ConsensusError):
    """No member with the given id."""


class PeerURLExists(ConsensusError):
    """A member with that peer URL already exists."""


class MemberNotLearner(ConsensusError):
    """Promote was asked for a member that is not a learner."""


class BadLeaderTransferee(ConsensusError):
    """The move-leader target cannot become leader."""


class LeaseNotFound(ConsensusError):
    """The lease does not exist any more (expired or revoked)."""


class LockNotHeld(ConsensusError):
    """A write fenced by a lock token found that the token no longer holds the lock."""


class LockTimeout(ConsensusError):
    """The lock could not be acquired before the deadline."""


class AlreadyExists(ConsensusError):
    """The user or role to add exists already."""


class PermissionDenied(ConsensusError):
    """The authenticated user may not do this (auth is on and its roles do not allow it)."""


class RequestRejected(ConsensusError):
    """Any other refusal by the server."""


# (substring of the server's message, exception type, what to do)
_KNOWN: tuple[tuple[str, type[ConsensusError], str], ...] = (
    (
        "unhealthy cluster",
        ClusterUnhealthy,
        "the cluster refuses membership changes until all voters have been connected for a "
        "few seconds (etcd's strict reconfig check); retry shortly",
    ),
    (
        "too many learner members",
        TooManyLearners,
        "only one learner may exist at a time; promote or remove the existing learner first",
    ),
    (
        "in sync with leader",
        LearnerNotReady,
        "the learner is still catching up with the leader; wait until its raft index is close "
        "to the leader's, then retry the promote",
    ),
    (
        "can only promote a learner member",
        MemberNotLearner,
        "the member is already a voter; there is nothing to promote",
    ),
    (
        "not enough started members",
        NotEnoughStartedMembers,
        "the change would leave too few started voters for a quorum; start the stopped "
        "members (or wait for them to reconnect) and retry",
    ),
    ("not leader", NotLeader, "leadership moved; find the leader again and retry"),
    ("leader changed", NotLeader, "leadership moved while the request ran; retry"),
    (
        # etcd drops proposals while its leader hands leadership over; a dropped one never
        # entered the log, so retrying it cannot apply it twice.
        "raft proposal dropped",
        NotLeader,
        "the leader was handing leadership over and dropped the request unapplied; retry",
    ),
    ("no leader", NotLeader, "the cluster has no leader right now (election); retry"),
    (
        "request timed out",
        RequestTimedOut,
        "the server gave up waiting for consensus; the request may have applied, so observe "
        "the cluster before retrying a non-idempotent change",
    ),
    (
        "member not found",
        MemberNotFound,
        "no member has that id; list the members and use one of their ids",
    ),
    (
        "peer urls already exists",
        PeerURLExists,
        "a member already uses that peer URL; remove it first or reuse the existing member",
    ),
    (
        "member id already exist",
        PeerURLExists,
        "a member with these peer URLs already exists (etcd derives the member id from "
        "them); remove it first or reuse the existing member",
    ),
    (
        "bad leader transferee",
        BadLeaderTransferee,
        "the target must be a started, caught-up voter; pick another member",
    ),
    (
        "requested lease not found",
        LeaseNotFound,
        "the lease expired or was revoked; grant a new one",
    ),
    (
        "rpc not supported for learner",
        Unavailable,
        "this endpoint is a learner and cannot serve the request; use a voter's endpoint",
    ),
    ("user name already exists", AlreadyExists, "the user exists; nothing to add"),
    ("role name already exists", AlreadyExists, "the role exists; nothing to add"),
    (
        "permission denied",
        PermissionDenied,
        "the client's user (its certificate's CN) has no role allowing this; keys under "
        "/xlinefed/ belong to the operator",
    ),
    ("server stopped", Unavailable, "the member is shutting down; use another endpoint"),
    ("not capable", Unavailable, "the cluster version does not support this yet; retry"),
)


#: How gRPC reports a call whose HTTP/2 stream the server dropped. etcd with TLS serves
#: gRPC through its HTTP server, whose shutdown cuts the calls in flight so (seen in
#: bench/rolling_update.py --tls-overhead); in plain text the same stop shows UNAVAILABLE.
_CUT_STREAM = ("stream removed", "no status received")


def translate(error: grpc.RpcError, *, endpoint: str, what: str) -> ConsensusError:
    """Turn a gRPC error from `endpoint` during `what` into our exception tree."""
    # grpc.aio errors are not grpc.Call instances but carry the same accessors
    code_of = getattr(error, "code", None)
    details_of = getattr(error, "details", None)
    code: grpc.StatusCode | None = code_of() if callable(code_of) else None
    detail = str((details_of() if callable(details_of) else None) or error)
    lowered = detail.lower()
    for needle, kind, advice in _KNOWN:
        if needle in lowered:
            return kind(
                f"{what} at {endpoint}: {detail}: {advice}", detail=detail, endpoint=endpoint
            )
    # A peer that accepts the connection and then says nothing (stopped, starved) shows
    # as a deadline, as UNAVAILABLE "connection attempt timed out before receiving
    # SETTINGS frame", or with TLS as UNAVAILABLE "Handshake read failed" (its
    # ServerHello never came); a refused connection is a fact, silence is not.
    if code == grpc.StatusCode.DEADLINE_EXCEEDED or (
        code == grpc.StatusCode.UNAVAILABLE
        and ("timed out" in lowered or "handshake read failed" in lowered)
    ):
        return NoAnswer(
            f"{what}: endpoint {endpoint} gave no answer before the deadline ({detail}); "
            "it may be down or only slow",
            detail=detail,
            endpoint=endpoint,
        )
    if code == grpc.StatusCode.UNKNOWN and any(cut in lowered for cut in _CUT_STREAM):
        return Unavailable(
            f"{what}: the call to {endpoint} was cut ({detail}), as a member that stops "
            "does; the request may have applied, so a retry must allow for that",
            detail=detail,
            endpoint=endpoint,
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(
            f"{what}: endpoint {endpoint} did not answer ({code.name}: {detail}); "
            "check that the member is running and reachable",
            detail=detail,
            endpoint=endpoint,
        )
    if code == grpc.StatusCode.CANCELLED:
        return Unavailable(
            f"{what}: call to {endpoint} was cancelled ({detail})", detail=detail, endpoint=endpoint
        )
    name = code.name if code is not None else "UNKNOWN"
    return RequestRejected(
        f"{what} rejected by {endpoint} ({name}: {detail}); this is not retried, fix the request",
        detail=detail,
        endpoint=endpoint,
    )
