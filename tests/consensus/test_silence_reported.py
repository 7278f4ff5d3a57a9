"""The silence the observation reports is the time it really waited (real etcd).

A member that has opened its port but is not serving yet (restarted, catching up, or
without a quorum) makes gRPC fail fast with "connection attempt timed out before receiving
SETTINGS frame": no answer, but after a tenth of a second, not after the deadline. The
planner's NoAnswer wait quotes the reported seconds to the user ("no answer within …"),
so they must be what was waited, not the deadline that was set. Before this, every such
pass read "no answer within 2.0s" while the whole pass took about 0.03 s.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from tests.consensus.helpers import run
from tests.support.etcd_cluster import EtcdCluster
from tests.support.wait import wait_until
from xlinefed.consensus.client import ConsensusClient, EndpointStatus
from xlinefed.executor import Executor


def _accepts(url: str) -> bool:
    host, port = urlsplit(url).hostname or "", urlsplit(url).port or 0
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class _Addresses:
    """The one platform call `_statuses` makes: a member's client URL (no I/O)."""

    cluster: EtcdCluster

    def client_url(self, name: str) -> str:
        return self.cluster.member(name).client_url


def test_reported_silence_is_the_time_waited(etcd_cluster: EtcdCluster) -> None:
    for name in list(etcd_cluster.members):
        etcd_cluster.kill_member(name)
    # Alone, it cannot reach a quorum: its port accepts, its gRPC server never serves.
    etcd_cluster.restart_member("m1", wait=False)
    wait_until(
        lambda: _accepts(etcd_cluster.member("m1").client_url),
        timeout=30,
        what="m1's client port to accept connections",
    )
    executor = Executor(_Addresses(etcd_cluster), "silence", "test")  # type: ignore[arg-type]
    deadline = 2.0

    async def observe() -> tuple[dict[str, float], float]:
        statuses: dict[str, EndpointStatus] = {}
        async with ConsensusClient([etcd_cluster.member("m1").client_url]) as client:
            began = time.monotonic()
            unanswered = await executor._statuses(client, ["m1"], statuses, deadline)
            return unanswered, time.monotonic() - began

    unanswered, took = run(observe())
    assert "m1" in unanswered, "a member that is not serving yet must count as unanswered"
    assert unanswered["m1"] <= took, (
        f"reported {unanswered['m1']:.2f}s of silence, but asking took only {took:.2f}s"
    )
