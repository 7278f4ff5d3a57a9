"""A cluster added to a formed federation while it is cut off from everyone else.

The federation (a=1, b=1, c=1) formed long ago; then cluster n (3 members) is added while
n's sockets cannot reach the others' ports (see _partition.py, `isolate_new`). First the
controller is cut off together with n (moved into n's cgroup), as n's own operator would
be: it must wait, saying the federation formed and it will not bootstrap, and start
nothing. Then the controller sees everyone again but n's members still cannot: the first
learner is added and started as `existing`, and cannot join. After healing, n's members
join one by one. Throughout, no member of n may ever start with
`--initial-cluster-state new`, and at the end every member reports the same cluster id.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chaos._federation import ChaosFederation, observed_run, spec_of
from tests.chaos._partition import Partitioner
from tests.chaos._stats import STATS
from tests.chaos._watch import (
    ControllerLog,
    Sampler,
    cluster_ids,
    elapsed,
    partitioned_federation,
)
from tests.support.wait import wait_until
from xlinefed.planner.model import NO_ANSWER_GRACE

pytestmark = pytest.mark.slow

NAME = "grow"
SHAPE = {"a": 1, "b": 1, "c": 1}
NEW = "n"
KIND = "cluster added while partitioned"


@pytest.fixture
def grown(tmp_path: Path) -> Iterator[tuple[ChaosFederation, Partitioner]]:
    with partitioned_federation(tmp_path, NAME, spec_of(NAME, SHAPE)) as running:
        yield running


def current_wait(federation: ChaosFederation, *codes: str) -> str | None:
    """The controller's Wait reason when it waits with one of `codes`."""
    step = federation.status().get("currentStep") or {}
    if step.get("kind") == "Wait" and step.get("code") in codes:
        return str(step.get("reason"))
    return None


def new_cluster_starts(partitioner: Partitioner, skip: int) -> list[str]:
    """The wrapper's record of every start of a member of n (after the first `skip`)."""
    return [
        line for line in partitioner.starts()[skip:] if f"--name={NAME}-{NEW}-" in line.split()[1]
    ]


def test_cluster_added_while_partitioned(
    grown: tuple[ChaosFederation, Partitioner], rng: random.Random
) -> None:
    federation, partitioner = grown
    began = time.monotonic()
    facts = federation.dir.read_facts()
    assert facts.formed and set(facts.initial_members or ()) == federation.desired_names()
    initial = list(facts.initial_members)
    ids_before = set(cluster_ids(federation.voter_endpoints()).values())
    assert len(ids_before) == 1, ids_before
    log = ControllerLog(federation)
    starts_before = len(partitioner.starts())
    new_members = [f"{NAME}-{NEW}-{i}" for i in range(3)]
    unsafe: list[str] = []

    with (
        observed_run(federation, KIND, rng.randrange(2**31)) as run,
        Sampler(federation, lambda: federation.desired_names() | set(new_members)) as samples,
    ):
        with partitioner.isolate_new(federation, NEW):
            run.fault("partition-new-cluster")
            controller = federation.controller_record()
            assert controller is not None
            previous = partitioner.move_into(controller.pid, NEW)
            try:
                # 1. n's operator (here: the controller, cut off with n) cannot reach the
                # federation it is told to join.
                result = federation.cli(
                    "local", "scale", NAME, f"{NEW}=3", "--timeout", "1", check=False
                )
                assert federation.desired() == {**SHAPE, NEW: 3}, result.stderr
                reason = wait_until(
                    lambda: current_wait(federation, "FederationUnreachable"),
                    # For NO_ANSWER_GRACE its silence is reported as NoAnswer first.
                    timeout=30 + NO_ANSWER_GRACE,
                    what="the cut-off controller waiting on the federation",
                )
                print(f"[{elapsed(began)}] cut off with n: {reason}")
                assert "not bootstrapping" in reason and "formed" in reason, reason
                # It keeps waiting (a few more passes), and starts nothing.
                passes = federation.status().get("updatedAt", 0)
                wait_until(
                    lambda: federation.status().get("updatedAt", 0) > passes + 3,
                    timeout=30,
                    what="more passes of the cut-off controller",
                )
                # Either wait is truthful while cut off (a probe that times out anew
                # is reported as the silence it is).
                assert current_wait(federation, "FederationUnreachable", "NoAnswer"), (
                    federation.status()
                )
                assert not new_cluster_starts(partitioner, starts_before), "n started cut off"
                assert federation.dir.read_facts().initial_members == initial
            finally:
                partitioner.move_back(controller.pid, previous)

            # 2. The controller sees everyone again; n's members still cannot.
            run.fault("controller-rejoined")
            reason = wait_until(
                lambda: (
                    current_wait(federation, "LearnerStarting")
                    and new_cluster_starts(partitioner, starts_before)
                    and current_wait(federation, "LearnerStarting")
                ),
                timeout=60,
                what="the first learner of n started, and the controller waiting on it",
            )
            print(f"[{elapsed(began)}] n still cut off: {reason}")
            voters, learners = federation.membership()
            assert voters == set(initial), voters
            assert len(learners) == 1, f"more than one learner added at a time: {learners}"
            assert len(log.applied("AddLearner")) == 1, log.applied("AddLearner")
            print(f"[{elapsed(began)}] healing")
        healed = time.time()
        federation.wait_converged(healed, timeout=120)
        print(f"[{elapsed(began)}] converged")

    # --- no member of n ever bootstrapped a cluster of its own
    starts = new_cluster_starts(partitioner, starts_before)
    assert starts, "n's members never started"
    for line in starts:
        if "--initial-cluster-state=existing" not in line.split():
            unsafe.append(f"a member of n started as: {line}")
    for event in log.starts():
        if event.fields.get("mode") != "existing":
            unsafe.append(f"controller started {event.fields.get('member')} {event.fields}")
    for member in new_members:
        for argv in samples.argvs.get(member, []):
            if "--initial-cluster-state=existing" not in argv:
                unsafe.append(f"{member} ran {' '.join(argv)}")
    bootstraps = log.applied("Bootstrap")
    unsafe += [f"Bootstrap applied: {e.fields}" for e in bootstraps]
    unsafe += [
        f"status said {s}"
        for s in samples.statuses
        if s[1] == "Bootstrap" or s[2] == "Bootstrapping" or s[0] == "Bootstrapping"
    ]
    assert federation.dir.read_facts().initial_members == initial, "bootstrap authority changed"

    # --- one cluster: every member's own Status header names the same cluster id
    endpoints = federation.voter_endpoints()
    ids = cluster_ids(endpoints)
    seen = set(ids.values())
    STATS.cluster_ids(KIND, len(seen))
    STATS.unsafe(KIND, unsafe)
    print(
        f"[{KIND}] cluster ids seen: {sorted(f'{i:x}' for i in seen)} "
        f"(before: {sorted(f'{i:x}' for i in ids_before)}); starts of n: {len(starts)}; "
        f"AddLearner applied: {len(log.applied('AddLearner'))}; unsafe steps: {len(unsafe)}; "
        f"statuses seen: {len(samples.statuses)}; took {elapsed(began)}"
    )
    assert not unsafe, "\n".join(unsafe)
    assert len(ids) == len(endpoints), f"members that did not answer: {ids}"
    assert seen == ids_before, f"members report different clusters: {ids}"
    voters, learners, leaders = federation.consensus_view()
    assert voters == set(initial) | set(new_members) and not learners
    assert len(leaders) == 1 and 0 not in leaders
    assert {e.fields["member"] for e in log.applied("AddLearner")} == set(new_members)
    assert len(log.applied("AddLearner")) == len(new_members), "a member was added twice"
