"""How gRPC errors become our exception tree, for answers a real etcd gives only in a
window too narrow to hit on demand (so the error object is built here; everything else in
tests/consensus runs against real members)."""

from __future__ import annotations

import grpc

from xlinefed.consensus.errors import NotLeader, RequestRejected, translate


class _Answer(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def test_a_proposal_dropped_during_a_leadership_transfer_is_retried_not_rejected() -> None:
    """Seen in bench/rolling_update.py: a put that reached the leader while it handed
    leadership over came back UNKNOWN "raft proposal dropped" and the writer counted a
    failed write. The proposal never entered the log, so asking again is safe."""
    error = translate(
        _Answer(grpc.StatusCode.UNKNOWN, "etcdserver: raft proposal dropped"),
        endpoint="http://127.0.0.1:21000",
        what="put",
    )
    assert isinstance(error, NotLeader), error
    other = translate(
        _Answer(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: key is not provided"),
        endpoint="e",
        what="put",
    )
    assert isinstance(other, RequestRejected)


def test_a_call_cut_by_a_member_shutting_down_over_tls_is_retried_elsewhere() -> None:
    """Seen in `bench/rolling_update.py --tls-overhead`: over TLS etcd serves gRPC through
    its HTTP server, and a member stopping under load cuts calls in flight, which arrive
    as UNKNOWN "Stream removed" or "No status received" (in plain text: UNAVAILABLE). The
    writer counted them as rejected requests. The member is going away, not refusing."""
    from xlinefed.consensus.errors import Unavailable

    for detail in (
        "Stream removed",
        "No status received",
        "Stream removed (Data frame with END_STREAM flag received)",
    ):
        error = translate(
            _Answer(grpc.StatusCode.UNKNOWN, detail), endpoint="https://127.0.0.1:21002", what="put"
        )
        assert isinstance(error, Unavailable), (detail, error)
        assert "may have applied" in str(error)
    # An UNKNOWN with any other detail still is a refusal.
    assert isinstance(
        translate(
            _Answer(grpc.StatusCode.UNKNOWN, "etcdserver: bad thing"), endpoint="e", what="p"
        ),
        RequestRejected,
    )
