"""Process faults on the local runtime: kill -9 of a member at a random point of a scale-out,
a scale-in and a rolling update; kill -9 of the controller at step boundaries and in the
middle of a step, the CLI rerun to restart it. Every run converges to the spec with no
acknowledged write lost and a linearizable history."""

from __future__ import annotations

import random
import subprocess
import time

import pytest

from tests.chaos._federation import ChaosFederation, observed_run
from tests.chaos.conftest import BASE
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def ensure_shape(federation: ChaosFederation, clusters: dict[str, int]) -> None:
    """Bring the shared federation to `clusters` (no faults) if it is elsewhere."""
    current = federation.desired()
    if current == clusters:
        return
    args = [f"{c}={clusters.get(c, 0)}" for c in sorted(set(current) | set(clusters))]
    since = time.time()
    federation.cli("local", "scale", federation.name, *args)
    federation.wait_converged(since)


def steps_applied(federation: ChaosFederation) -> int:
    return int(federation.status().get("stepsApplied", 0))


def kill_member_during(
    federation: ChaosFederation, rng: random.Random, kind: str, command: list[str], steps: int
) -> None:
    """Start `command` in the background, wait for a random number of applied steps (0 to
    `steps`-1), kill -9 a random running member, then require convergence."""
    with observed_run(federation, kind, rng.randrange(2**31)) as run:
        base = steps_applied(federation)
        at = rng.randrange(steps)
        since = time.time()
        cli = federation.cli_background(*command)
        wait_until(
            lambda: steps_applied(federation) >= base + at or cli.poll() is not None,
            timeout=120,
            what=f"{at} applied step(s)",
        )
        victim = rng.choice(federation.running_members())
        pid = federation.kill_member(victim)
        run.fault("member-kill")
        print(f"killed {victim} (pid {pid}) after {steps_applied(federation) - base} step(s)")
        if cli.poll() is not None:
            # The command had already returned: the controller must heal the kill alone.
            federation.finish(cli)
            since = time.time()
        else:
            federation.finish(cli)
        federation.wait_converged(since)
        if victim in federation.desired_names():
            process = federation.dir.read_process(victim)
            assert process is not None and process.record.pid != pid, f"{victim} not restarted"


def test_member_killed_during_scale_out(
    federation: ChaosFederation, rng: random.Random, soak_round: int
) -> None:
    ensure_shape(federation, BASE)
    grow = sorted(rng.sample(sorted(BASE), 2))  # two clusters at once
    target = {c: n + (1 if c in grow else 0) for c, n in BASE.items()}
    command = ["local", "scale", federation.name, *(f"{c}={target[c]}" for c in grow)]
    kill_member_during(federation, rng, "member kill during scale-out", command, steps=6)
    assert federation.desired() == target


def test_member_killed_during_scale_in(
    federation: ChaosFederation, rng: random.Random, soak_round: int
) -> None:
    grown = {"a": 2, "b": 2, "c": 1}
    ensure_shape(federation, grown)
    command = ["local", "scale", federation.name, "a=1", "b=1"]
    kill_member_during(federation, rng, "member kill during scale-in", command, steps=4)
    assert federation.desired() == BASE


def test_member_killed_during_rolling_update(
    federation: ChaosFederation, rng: random.Random, soak_round: int
) -> None:
    ensure_shape(federation, BASE)
    count = rng.randrange(10_000, 90_000)
    command = ["local", "upgrade", federation.name, "--set", f"snapshot-count={count}"]
    kill_member_during(federation, rng, "member kill during rolling update", command, steps=4)
    revisions = {
        federation.dir.read_process(m).revision  # type: ignore[union-attr]
        for m in federation.desired_names()
    }
    assert len(revisions) == 1, f"members run different templates: {revisions}"
    assert federation.dir.read_spec().spec.engine_args["snapshot-count"] == str(count)


def test_controller_killed_at_step_boundaries(
    federation: ChaosFederation, rng: random.Random, soak_round: int
) -> None:
    """Kill -9 the controller just after it reports a step applied (the boundary), and the
    CLI waiting on it too; rerun the CLI, which restarts the controller; repeat."""
    ensure_shape(federation, BASE)
    cluster = rng.choice(sorted(BASE))
    command = ["local", "scale", federation.name, f"{cluster}=3"]
    kills = 0
    pids: set[int] = set()
    with observed_run(
        federation, "controller kill at step boundaries", rng.randrange(2**31)
    ) as run:
        for _ in range(3):
            base = steps_applied(federation)
            cli = federation.cli_background(*command)
            wait_until(
                lambda base=base, cli=cli: (
                    steps_applied(federation) > base or cli.poll() is not None
                ),
                timeout=120,
                what="the next step boundary",
            )
            if cli.poll() is not None:
                break  # reached already
            # The CLI first: its wait loop would start a new controller at once.
            cli.kill()
            cli.wait(timeout=10)
            pids.add(federation.kill_controller())
            run.fault("controller-kill-boundary")
            kills += 1
            assert federation.controller_record() is None, "the controller outlived kill -9"
        since = time.time()
        out = federation.finish(federation.cli_background(*command))
        assert "reached generation" in out
        federation.wait_converged(since)
    assert kills >= 1, "the change finished before a single controller kill"
    record = federation.controller_record()
    assert record is not None and record.pid not in pids, "the rerun did not restart it"
    assert federation.desired()[cluster] == 3


def test_controller_killed_in_the_middle_of_a_step(
    federation: ChaosFederation, rng: random.Random, soak_round: int
) -> None:
    """Kill -9 the controller while a locked step is recorded as "intent" beside the
    membership lock (between the intent and "done": the step is half done), then rerun the
    CLI. The next controller waits out the dead holder's lease, re-plans from what it
    observes and finishes.

    To widen the window, a follower is killed first: the controller restarts it, and etcd
    then refuses member adds for ~5 s ("unhealthy cluster"), which the add step retries
    while its intent stays recorded."""
    ensure_shape(federation, BASE)
    grow = rng.choice(sorted(BASE))
    command = ["local", "scale", federation.name, f"{grow}=3"]
    mid_step_kills = 0
    with observed_run(federation, "controller kill mid-step", rng.randrange(2**31)) as run:
        for _ in range(3):
            if mid_step_kills:
                break
            leader = federation.leader()
            followers = [m for m in federation.running_members() if m != leader]
            federation.kill_member(rng.choice(followers))
            run.fault("member-kill")
            cli = federation.cli_background(*command)

            def intent_recorded(cli: subprocess.Popen[str] = cli) -> bool:
                if cli.poll() is not None:
                    return True
                live = federation.controller_record()
                record = federation.step_record()
                # An intent of the live controller (a dead one's stays behind until the
                # next holder finishes or supersedes it).
                return bool(
                    live
                    and record
                    and record["phase"] == "intent"
                    and record["holder"] == f"local-controller-{federation.name}-{live.pid}"
                )

            wait_until(intent_recorded, timeout=120, what="a step recorded as intent")
            if cli.poll() is not None:
                break
            federation.kill_controller()  # first: the step window is short
            cli.kill()
            cli.wait(timeout=10)
            record = federation.step_record()
            # Nothing can mark it done once its controller is dead: it really was mid-step.
            if record and record["phase"] == "intent":
                mid_step_kills += 1
                run.fault("controller-kill-mid-step")
                print(f"killed the controller mid-step: {record['step']}")
            else:
                run.fault("controller-kill-boundary")
        since = time.time()
        federation.finish(federation.cli_background(*command))
        federation.wait_converged(since)
    assert mid_step_kills >= 1, "no kill landed between a step's intent and its end"
    assert federation.desired()[grow] == 3
    record = federation.step_record()
    assert record is not None and record["phase"] == "done", record
