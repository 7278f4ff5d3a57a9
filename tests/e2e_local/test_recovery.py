"""Quorum-loss recovery end to end on real etcd (issue 14 item 3, docs/recovery.md).

Three clusters of one member each, a writer running; clusters b and c are destroyed
(processes killed, data directories deleted), so a is a minority with no leader. First
`xlinefed local recover` is refused while b and c were seen within the grace period,
and nothing is touched. Once the grace has passed, the recovery rebuilds from a's member
(--force-new-cluster), and the federation regrows to its spec one member at a time.
Every write acknowledged before the loss that the survivor had applied (store revision
at or below the survivor's) must read back; the others are counted and reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_local.conftest import CliFederation
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.consensus.client import ConsensusClient
from xlinefed.platforms.local import processes

pytestmark = pytest.mark.slow

#: Short enough for a test, long enough that the refusal is seen first.
GRACE = 20

SPEC = {
    "apiVersion": "xlinefed.io/v1alpha1",
    "kind": "XlineFederation",
    "metadata": {"name": "rec"},
    "spec": {
        "engine": "etcd",
        "version": "3.4.23",
        "lostClusterGracePeriodSeconds": GRACE,
        "clusters": [
            {"id": "a", "replicas": 1},
            {"id": "b", "replicas": 1},
            {"id": "c", "replicas": 1},
        ],
    },
}
SURVIVOR = "rec-a-0"
LOST = ("rec-b-0", "rec-c-0")


class Loss:
    writer: SequencedWriter
    survivor_revision: int
    acknowledged_before: dict[str, int]
    lost_at: float


LOSS = Loss()


@pytest.fixture(scope="module")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliFederation]:
    root = tmp_path_factory.mktemp("state")
    fed = CliFederation(root, "rec")
    fed.up(SPEC, tmp_path_factory.mktemp("spec"))
    yield fed
    writer = getattr(LOSS, "writer", None)
    if writer is not None:
        writer.stop()
    fed.cli("local", "down", fed.name, "--purge", check=False)


def _survivor_status(federation: CliFederation) -> tuple[int, list[str]]:
    """The survivor's own store revision and the errors its status reports."""
    port = federation.dir.read_facts().ports[SURVIVOR].client
    url = next(e for e in federation.all_endpoints() if e.endswith(f":{port}"))

    async def ask() -> tuple[int, list[str]]:
        async with ConsensusClient([url], timeout=2.0, tls=federation.client_tls()) as client:
            status = await client.status(url)
            return status.revision, list(status.errors)

    return asyncio.run(ask())


class LiveEndpoints:
    """Client URLs of this federation's members whose process runs: a dead member's port
    may be taken by another program on the machine (another federation's member), and
    the writer must not count writes to it. For the instant none runs (the survivor
    restarting), the last non-empty answer."""

    def __init__(self, federation: CliFederation) -> None:
        self.federation = federation
        self.last: list[str] = []

    def __call__(self) -> list[str]:
        facts = self.federation.dir.read_facts()
        urls = []
        for name, ports in sorted(facts.ports.items()):
            process = self.federation.dir.read_process(name)
            if process is not None and processes.is_alive(process.record):
                scheme = "https" if self.federation.client_tls() is not None else "http"
                urls.append(f"{scheme}://127.0.0.1:{ports.client}")
        self.last = urls or self.last
        return self.last


def _destroy(federation: CliFederation, *members: str) -> None:
    """The members' clusters are gone at once: their processes are frozen together (so
    the controller cannot replace one while the others still form a quorum, and nothing
    they do after their data is deleted counts), their data directories deleted, then
    the processes killed."""
    records = []
    for member in members:
        process = federation.dir.read_process(member)
        assert process is not None and processes.is_alive(process.record)
        records.append(process.record)
    for record in records:
        os.kill(record.pid, signal.SIGSTOP)
    for member in members:
        shutil.rmtree(federation.dir.data_dir(member))
    for record in records:
        os.kill(record.pid, signal.SIGKILL)
    wait_until(
        lambda: not any(processes.is_alive(r) for r in records),
        timeout=10,
        what=f"{', '.join(members)} dead",
    )


def test_a_recovery_is_refused_while_the_lost_members_were_seen_recently(
    federation: CliFederation,
) -> None:
    writer = SequencedWriter(LiveEndpoints(federation), tls=federation.client_tls())
    writer.__enter__()
    LOSS.writer = writer
    wait_until(lambda: len(writer.acknowledged) >= 50, timeout=30, what="first writes")
    _destroy(federation, *LOST)
    LOSS.lost_at = time.time()
    LOSS.acknowledged_before = dict(writer.revisions)
    # The survivor answers, knows no leader, and applies nothing more.
    revision, errors = wait_until(
        lambda: (s := _survivor_status(federation))[1] and s,
        timeout=30,
        what=f"{SURVIVOR} to report no leader",
    )
    assert any("no leader" in e for e in errors), errors
    LOSS.survivor_revision = revision
    survivor = federation.dir.read_process(SURVIVOR)
    assert survivor is not None

    result = federation.cli("local", "recover", "rec", "--from", SURVIVOR, check=False)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "refused" in out and "last seen" in out and "lostClusterGracePeriodSeconds" in out, out
    assert "withdrawn" in out, out
    # Nothing harmed: the survivor still runs the same process on its data, unforced;
    # the request is withdrawn; no recovery is on record.
    after = federation.dir.read_process(SURVIVOR)
    assert after is not None and after.record.pid == survivor.record.pid and not after.forced
    assert federation.dir.read_facts().recovery is None
    assert federation.dir.read_spec().spec.recovery is None
    status = federation.status()
    assert (status.get("recovery") or {}).get("fromMember") is None
    print(f"\nrefused as expected:\n{out.strip()}")


def test_two_of_three_clusters_lost_are_recovered_and_regrown(
    federation: CliFederation,
) -> None:
    writer = LOSS.writer
    # The lost members must have been silent for the whole grace period.
    wait_until(
        lambda: time.time() > LOSS.lost_at + GRACE + 1,
        timeout=GRACE + 10,
        what="the grace period to pass",
        interval=0.5,
    )
    federation.cli("local", "recover", "rec", "--from", SURVIVOR, "--timeout", "300")
    count = len(writer.acknowledged)
    wait_until(
        lambda: len(writer.acknowledged) >= count + 20, timeout=60, what="writes after recovery"
    )
    writer.stop()

    status = federation.status()
    recovery = status["recovery"]
    assert recovery["fromMember"] == SURVIVOR
    assert recovery["phase"] == "Recovered"
    assert set(recovery["lost"]) == set(LOST)
    assert recovery["revision"] >= LOSS.survivor_revision
    assert recovery["request"].startswith(f"{SURVIVOR}@")
    spec = federation.dir.read_spec().spec
    assert spec.recovery is not None and spec.recovery.requested_by

    before = LOSS.acknowledged_before
    applied = {k for k, rev in before.items() if rev <= LOSS.survivor_revision}
    beyond = {k for k, rev in before.items() if rev > LOSS.survivor_revision}
    report = writer.verify(federation.endpoints())
    lost = set(report.lost)
    summary = {
        "acknowledged_before_loss": len(before),
        "applied_by_survivor": len(applied),
        "applied_by_survivor_present": len(applied - lost),
        "acknowledged_beyond_survivor": len(beyond),
        "acknowledged_beyond_survivor_present": len(beyond - lost),
        "acknowledged_after_loss": len(writer.acknowledged) - len(before),
        "lost_after_loss": len(lost - set(before)),
        "survivor_revision": LOSS.survivor_revision,
        "recovered_revision": recovery["revision"],
    }
    print("\nrecovery write report: " + json.dumps(summary))
    assert applied and not (applied & lost), sorted(applied & lost)[:10]
    assert not (lost - set(before)), (
        "writes acknowledged after the loss were lost; controller log:\n"
        + federation.controller_log_tail(200)
    )

    # Regrown to the spec: every member a voter, one leader, the status tells the truth.
    voters, learners, leaders = federation.consensus_view()
    assert voters == federation.desired_names()
    assert learners == set()
    assert len(leaders) == 1 and 0 not in leaders
    assert status["converged"] is True
    shown = federation.cli("local", "status", "rec").stdout
    assert f"Recovered from {SURVIVOR}" in shown, shown


def test_status_json_carries_the_recovery(federation: CliFederation, tmp_path: Path) -> None:
    document = json.loads(federation.cli("local", "status", "rec", "-o", "json").stdout)
    assert document["recovery"]["fromMember"] == SURVIVOR
    assert document["recovery"]["at"]


AUTO_SPEC = {
    "apiVersion": "xlinefed.io/v1alpha1",
    "kind": "XlineFederation",
    "metadata": {"name": "auto"},
    "spec": {
        "engine": "etcd",
        "version": "3.4.23",
        "lostClusterGracePeriodSeconds": 8,
        "clusters": [
            {"id": "a", "replicas": 2},
            {"id": "b", "replicas": 2},
            {"id": "c", "replicas": 1},
        ],
    },
}


def test_automatic_recovery_from_two_survivors_of_five(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Opt-in automatic mode: b and c (three of five voters) are destroyed; a's two
    members survive. Once the lost ones have been silent for the grace period the
    controller recovers on its own from the most advanced survivor, drops the other
    survivor too (its data is the old cluster's: it comes back wiped, as a learner), and
    regrows to all five."""
    root = tmp_path_factory.mktemp("state-auto")
    fed = CliFederation(root, "auto")
    fed.up(AUTO_SPEC, tmp_path_factory.mktemp("spec-auto"))
    try:
        fed.cli("local", "recover", "auto", "--automatic")
        assert fed.dir.read_spec().spec.recovery.automatic
        with SequencedWriter(LiveEndpoints(fed), tls=fed.client_tls()) as writer:
            wait_until(lambda: len(writer.acknowledged) >= 30, timeout=30, what="first writes")
            _destroy(fed, "auto-b-0", "auto-b-1", "auto-c-0")
            before = dict(writer.revisions)

            def recovered() -> dict | None:
                status = fed.status()
                recovery = status.get("recovery") or {}
                return status if recovery.get("phase") == "Recovered" else None

            status = wait_until(recovered, timeout=120, what="the automatic recovery")
            source = status["recovery"]["fromMember"]
            other = ({"auto-a-0", "auto-a-1"} - {source}).pop()
            assert set(status["recovery"]["lost"]) == {"auto-b-0", "auto-b-1", "auto-c-0", other}
            assert status["recovery"]["request"] == "automatic"

            def regrown() -> bool:
                status = fed.status()
                return bool(status.get("converged")) and status.get("ready") == "5/5"

            wait_until(regrown, timeout=240, what="regrowth to five voters")
        voters, learners, leaders = fed.consensus_view()
        assert voters == fed.desired_names() and not learners
        assert len(leaders) == 1 and 0 not in leaders
        report = writer.verify(fed.endpoints())
        survivor_revision = status["recovery"]["revision"]
        applied = {k for k, rev in before.items() if rev <= survivor_revision}
        print(
            "\nautomatic recovery: "
            + json.dumps(
                {
                    "from": source,
                    "acknowledged_before_loss": len(before),
                    "lost_of_them": len(set(report.lost) & set(before)),
                    "acknowledged_total": report.acknowledged,
                    "lost_total": len(report.lost),
                }
            )
        )
        assert not (set(report.lost) & applied)
    finally:
        fed.cli("local", "down", "auto", "--purge", check=False)
