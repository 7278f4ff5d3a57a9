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
