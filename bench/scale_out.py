"""Scale-out of one member (3 -> 4, real etcd or Xline): xlinefed vs the raw sequence by
hand, in one process.

    .venv/bin/python bench/scale_out.py [--rounds N] [--engine etcd|xline]

`--engine xline` runs the binary local mode finds (`XLINEFED_XLINE_BIN`, …); without one
it stops at once with an error that says where to get it.

(a) xlinefed: the spec changes (cluster a: 1 -> 2 replicas) and the Executor runs
    in-process, `reconcile_once` until Done (AddLearner under the global membership
    lock, StartMember, wait until caught up, PromoteLearner under the lock, settle).
(b) by hand, with the same ConsensusClient and LocalPlatform: member_add(learner),
    LocalPlatform.start(mode existing), poll until the learner's applied index is within
    the spec's maxPromoteLag of the leader's (the planner's own "caught up"), member_promote,
    wait until the new member answers a health read.

Each round brings up a fresh 1+1+1 federation per arm (alternating which arm goes first)
and waits until every member has answered health for SETTLE_SECONDS (5 s), since etcd
refuses a member add before that. A writer and a status watcher run throughout (as in
`rolling_update.py`). Reported: time of each arm, the writer's longest gap and failures,
the medians and the ratio a/b. Afterwards the member list must hold 4 voters, no learner.

`--tls-overhead` compares xlinefed with itself instead: (a) plain text, (b) the same
scale-out with `spec.tls.enabled` (mutual TLS on every link, a fresh CA per run; the
writer and watcher dial with the federation's client certificate).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    SETTLE_SECONDS,
    InProcessFederation,
    Probe,
    ProbeReport,
    add_engine_argument,
    answers_health,
    drive,
    engine_or_exit,
    federation_spec,
    in_thread,
    median,
    print_header,
    print_table,
    ratio,
    set_put_timeout,
)
from tests.support.wait import wait_until_async
from xlinefed.api.engines import Engine
from xlinefed.api.models import XlineFederation
from xlinefed.consensus.client import ConsensusClient
from xlinefed.planner.desired import desired_from, template_revision
from xlinefed.planner.steps import StartMode

NAME = "so"
BEFORE = {"a": 1, "b": 1, "c": 1}
AFTER = {"a": 2, "b": 1, "c": 1}
SCALE_TIMEOUT = 300.0
PHASE_ORDER = ["observe", "lock", "apply", "plan and other", "paced"]


@dataclass
class Row:
    round: int
    arm: str
    seconds: float
    probe: ProbeReport
    steps: str
    #: arm a only: where the time went (observe, lock, apply, plan and other, paced).
    phases: dict[str, float] = field(default_factory=dict)
    passes: int = 0


async def by_hand(fed: InProcessFederation, new: XlineFederation) -> str:
    """add learner, start, wait until caught up, promote — with the project's client."""
    endpoints = fed.endpoints()
    fed.set_spec(new)
    member = next(m for m in fed.members() if fed.platform.client_url(m) not in endpoints)
    endpoint = fed.platform.client_url(member)
    # The planner's own bound: the spec's, else the engine's default (500 for Xline).
    lag = desired_from(new).max_promote_lag
    async with ConsensusClient(endpoints, timeout=3.0) as client:
        added, members = await client.member_add([fed.platform.peer_url(member)], learner=True)
        cluster = [(m.name or member, m.peer_urls[0]) for m in members]
        await fed.platform.start(member, StartMode.EXISTING, cluster, template_revision(new.spec))

        async def caught_up() -> bool:
            leader = await client.leader(deadline=0)
            mine = await client.status(endpoint, timeout=0.5)
            return leader.raft_applied_index - mine.raft_applied_index <= lag

        await wait_until_async(caught_up, timeout=60, what=f"{member} to catch up")
        await client.member_promote(added.id)
    await wait_until_async(lambda: answers_health(endpoint), timeout=60, what=f"{member} healthy")
    return "add,start,promote"


async def check_members(fed: InProcessFederation) -> None:
    async with ConsensusClient(fed.endpoints(), timeout=3.0, tls=fed.client_tls) as client:
        members = await client.member_list()
    voters = sorted(m.name for m in members if not m.is_learner)
    if voters != sorted(fed.members()) or any(m.is_learner for m in members):
        raise AssertionError(f"member list after scale-out: {members}")


async def run_arm(
    round_no: int, arm: str, settle: float, engine: Engine, tls_overhead: bool = False
) -> Row:
    # With --tls-overhead both arms run xlinefed; b with TLS on.
    tls = tls_overhead and arm == "b"
    old = federation_spec(NAME, BEFORE, engine=engine, tls=tls)
    new = federation_spec(NAME, AFTER, engine=engine, tls=tls)
    async with InProcessFederation(old, holder=f"bench-{arm}") as fed:
        await fed.wait_settled(settle)
        with Probe(fed.endpoints(), tls=fed.client_tls) as probe:
            await in_thread(probe.wait_acks, 5)
            started = asyncio.get_running_loop().time()
            phases: dict[str, float] = {}
            passes = 0
            if arm == "a" or tls_overhead:
                fed.set_spec(new)
                result = await drive(fed.executor(), new, SCALE_TIMEOUT)
                steps = ",".join(result.steps)
                phases, passes = result.phases, result.passes
            else:
                steps = await by_hand(fed, new)
            seconds = asyncio.get_running_loop().time() - started
            await in_thread(probe.wait_acks, 5)
        report = await probe.report()
        await check_members(fed)
    if report.lost:
        raise AssertionError(f"round {round_no} arm {arm}: {report.lost} acknowledged writes lost")
    return Row(round_no, arm, seconds, report, steps, phases, passes)


async def main_async(rounds: int, engine: Engine, tls_overhead: bool = False) -> None:
    settle = SETTLE_SECONDS
    print(
        f"federation: {NAME} engine={engine.value}; scale-out {BEFORE} -> {AFTER}; "
        f"rounds={rounds}; settle={settle:.0f}s before each run"
        + ("; arms: a plain text, b TLS (both xlinefed)" if tls_overhead else "")
    )
    rows: list[Row] = []
    for round_no in range(1, rounds + 1):
        arms = ("a", "b") if round_no % 2 else ("b", "a")
        for arm in arms:
            row = await run_arm(round_no, arm, settle, engine, tls_overhead)
            rows.append(row)
            print(f"  round {round_no} {arm}: {row.seconds:.2f}s ({row.steps})", flush=True)
    print()
    print(
        "per run (a = xlinefed plain text, b = xlinefed with mutual TLS)"
        if tls_overhead
        else "per run (a = xlinefed Executor, b = the raw sequence by hand)"
    )
    print_table(
        ("round", "arm", "total s", "longest gap s", "failed", "acked", "term chg", "lost"),
        [
            (
                str(r.round),
                r.arm,
                f"{r.seconds:.2f}",
                f"{r.probe.longest_gap:.2f}",
                str(r.probe.failed),
                str(r.probe.acknowledged),
                str(r.probe.term_changes),
                str(r.probe.lost),
            )
            for r in rows
        ],
    )
    print()
    print(f"median over {rounds} rounds")
    summary = []
    for metric, value in (
        ("total s", lambda r: r.seconds),
        ("longest gap s", lambda r: r.probe.longest_gap),
        ("failed writes", lambda r: float(r.probe.failed)),
    ):
        a = median([value(r) for r in rows if r.arm == "a"])
        b = median([value(r) for r in rows if r.arm == "b"])
        # With --tls-overhead the ratio is TLS over plain text: the cost of TLS.
        summary.append(
            (metric, f"{a:.2f}", f"{b:.2f}", ratio(b, a) if tls_overhead else ratio(a, b))
        )
    if tls_overhead:
        print_table(("metric", "a plain", "b TLS", "b/a"), summary)
    else:
        print_table(("metric", "a xlinefed", "b by hand", "a/b"), summary)
    print()
    xlinefed = [r for r in rows if r.arm == "a"]
    names = sorted({p for r in xlinefed for p in r.phases}, key=PHASE_ORDER.index)
    print(
        f"where arm a's time went, median s over {rounds} rounds "
        f"({median([float(r.passes) for r in xlinefed]):.0f} passes)"
    )
    print_table(
        ("phase", "seconds", "share"),
        [
            (
                phase,
                f"{median([r.phases.get(phase, 0.0) for r in xlinefed]):.3f}",
                f"{median([r.phases.get(phase, 0.0) / r.seconds for r in xlinefed]):.0%}",
            )
            for phase in names
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a, b); default 3")
    parser.add_argument(
        "--tls-overhead",
        action="store_true",
        help="compare xlinefed in plain text (a) with xlinefed under mutual TLS (b)",
    )
    add_engine_argument(parser)
    args = parser.parse_args()
    print_header()
    engine = engine_or_exit(args.engine)
    set_put_timeout(args.put_timeout)
    print(f"writer: a put counts as acknowledged within {args.put_timeout:g}s")
    asyncio.run(main_async(args.rounds, engine, args.tls_overhead))


if __name__ == "__main__":
    main()
