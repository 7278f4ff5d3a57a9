"""Rolling update of a 5-member, 3-cluster federation (2+2+1, real etcd or Xline) under a
writer: xlinefed's order vs the naive StatefulSet order, in one process.

    .venv/bin/python bench/rolling_update.py [--rounds N] [--engine etcd|xline]

`--engine xline` runs the binary local mode finds (`XLINEFED_XLINE_BIN`, …; a clear error
without one). xlinefed does not roll Xline v0.7.0 members (they may not come back from
their own log, docs/engines.md): arm (a) then reports the planner's refusal
(`EngineLimit`) instead of a time, and (b) measures what the naive order does anyway.

(a) xlinefed: the template changes (engineArgs snapshot-count) and the Executor runs
    in-process, `reconcile_once` until Done: clusters without the leader first, highest
    ordinal first, each restarted member healthy and caught up before the next, and
    leadership moved to an updated member before the leader is restarted.
(b) naive baseline: what a StatefulSet does — per cluster in spec order, highest ordinal
    first, stop, start with the new arguments, wait until the member answers a health
    read, next; leadership is never moved. Same LocalPlatform stop/start as (a).

`--tls-overhead` compares xlinefed with itself instead: (a) plain text, (b) the same
update with `spec.tls.enabled` (mutual TLS on every link, a fresh CA per run; the writer
and the watcher dial with the federation's client certificate); the ratio is b/a, the
cost of TLS.

Each round brings up a fresh federation per arm (alternating which arm goes first), waits
until every member has answered health for SETTLE_SECONDS (5 s), starts a writer
(linearizable puts to all endpoints with failover, 1 s per put) and a watcher polling
every member's status every 50 ms, and runs the update. Reported per arm: longest gap
between acknowledged writes, failed writes, term changes and leader changes seen by the
watcher, total time; then the medians and the ratio a/b. Every acknowledged write is read
back afterwards (`lost` must be 0) and every member must run the new template.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    SETTLE_SECONDS,
    EngineRefused,
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
    percentile,
    print_header,
    print_table,
    ratio,
    set_put_timeout,
)
from tests.support.wait import wait_until_async
from xlinefed.api.engines import Engine
from xlinefed.api.models import XlineFederation
from xlinefed.planner.desired import template_revision
from xlinefed.planner.steps import StartMode
from xlinefed.platforms.local import processes
from xlinefed.platforms.local.platform import port_free

NAME = "ru"
CLUSTERS = {"a": 2, "b": 2, "c": 1}
#: The template change per engine: a flag each engine has and that changes nothing else.
ARGS = {
    Engine.ETCD: ({"snapshot-count": "10000"}, {"snapshot-count": "20000"}),
    Engine.XLINE: ({"log-level": "info"}, {"log-level": "warn"}),
}
UPDATE_TIMEOUT = 300.0


@dataclass
class Row:
    round: int
    arm: str
    seconds: float
    probe: ProbeReport
    restarts: int
    transfers: int
    port_wait: float
    #: The planner's refusal, when it would not roll this engine at all.
    refused: str = ""
    #: (monotonic start, end, what) of each step (a) or each stop/start (b).
    timeline: list[tuple[float, float, str]] = field(default_factory=list)


async def stop_member(fed: InProcessFederation, member: str, how: str) -> float:
    """`term`: LocalPlatform.stop (SIGTERM, what a kubelet sends); `kill`: SIGKILL (a crash,
    or a pod killed after its grace period), then wait until the process is gone; either
    way wait until its ports can be bound again. Returns the seconds spent on the ports."""
    if how == "term":
        await fed.platform.stop(member)
    else:
        process = fed.dir.read_process(member)
        if process is None:
            return 0.0
        processes.kill(process.record)

        async def gone() -> bool:
            return not processes.is_alive(process.record)

        await wait_until_async(gone, timeout=10, what=f"{member} to exit")
    # A killed member's sockets can linger (FIN_WAIT2), and so did those of an Xline
    # member stopped with SIGTERM; LocalPlatform.start refuses a busy port, so wait
    # (tcp_fin_timeout is 60 s by default). etcd's are free at once after SIGTERM.
    ports = fed.dir.read_facts().ports[member]
    waited = asyncio.get_running_loop().time()

    async def free() -> bool:
        return port_free(ports.client) and port_free(ports.peer)

    await wait_until_async(free, timeout=90, what=f"{member}'s ports to be free")
    return asyncio.get_running_loop().time() - waited


async def naive_roll(
    fed: InProcessFederation,
    new: XlineFederation,
    how: str,
    timeline: list[tuple[float, float, str]],
) -> tuple[int, float]:
    """StatefulSet order: per cluster, highest ordinal first; no leadership moves."""
    fed.set_spec(new)  # the platform now launches members with the new arguments
    revision = template_revision(new.spec)
    cluster = [(m, fed.platform.peer_url(m)) for m in fed.members()]
    restarts = 0
    port_wait = 0.0
    for spec in new.spec.clusters:
        for ordinal in reversed(range(spec.replicas)):
            member = f"{fed.name}-{spec.id}-{ordinal}"
            endpoint = fed.platform.client_url(member)
            began = time.monotonic()
            port_wait += await stop_member(fed, member, how)
            await fed.platform.start(member, StartMode.EXISTING, cluster, revision)
            await wait_until_async(
                lambda e=endpoint: answers_health(e),  # type: ignore[misc]
                timeout=60,
                what=f"{member} to answer health",
            )
            timeline.append((began, time.monotonic(), f"restart {member} ({how})"))
            restarts += 1
    return restarts, port_wait


def check_updated(fed: InProcessFederation, new: XlineFederation) -> None:
    wanted = template_revision(new.spec)
    for member in fed.members():
        process = fed.dir.read_process(member)
        if process is None or process.revision != wanted:
            raise AssertionError(f"{member} does not run the new template after the update")


async def run_arm(
    round_no: int, arm: str, settle: float, how: str, engine: Engine, tls_overhead: bool = False
) -> Row:
    old_args, new_args = ARGS[engine]
    # With --tls-overhead both arms run xlinefed; b with TLS on.
    tls = tls_overhead and arm == "b"
    old = federation_spec(NAME, CLUSTERS, old_args, engine, tls=tls)
    new = federation_spec(NAME, CLUSTERS, new_args, engine, tls=tls)
    refused = ""
    async with InProcessFederation(old, holder=f"bench-{arm}") as fed:
        await fed.wait_settled(settle)
        transfers = restarts = 0
        port_wait = 0.0
        timeline: list[tuple[float, float, str]] = []
        with Probe(fed.endpoints(), tls=fed.client_tls) as probe:
            await in_thread(probe.wait_acks, 5)
            started = asyncio.get_running_loop().time()
            if arm == "a" or tls_overhead:
                fed.set_spec(new)
                try:
                    result = await drive(fed.executor(), new, UPDATE_TIMEOUT)
                    restarts = result.count("RestartMember")
                    transfers = result.count("TransferLeadership")
                    timeline = result.timeline
                except EngineRefused as error:
                    refused = str(error)
            else:
                restarts, port_wait = await naive_roll(fed, new, how, timeline)
            seconds = asyncio.get_running_loop().time() - started
            await in_thread(probe.wait_acks, 5)
        report = await probe.report()
        if not refused:
            check_updated(fed, new)
    if report.lost:
        raise AssertionError(f"round {round_no} arm {arm}: {report.lost} acknowledged writes lost")
    return Row(round_no, arm, seconds, report, restarts, transfers, port_wait, refused, timeline)


def trace(row: Row) -> list[str]:
    """Where the run's longest gap and its failed writes fell: the steps that overlap
    them, what the writer's client saw and what the watcher saw, times relative to the
    gap's start."""
    start, end = row.probe.gap_window
    lines = [f"round {row.round} arm {row.arm}: longest gap {end - start:.2f}s"]
    window = (start - 0.5, end + 0.5)
    events: list[tuple[float, str]] = []
    for began, ended, what in row.timeline:
        if began <= window[1] and ended >= window[0]:
            events.append((began, f"step  {what} (until {ended - start:+.2f}s)"))
    events += [(t, f"write {error}") for t, error in row.probe.failures]
    events += [
        (t, f"watch {change}") for t, change in row.probe.changes if window[0] <= t <= window[1]
    ]
    for t, what in sorted(events):
        lines.append(f"    {t - start:+7.2f}s  {what}")
    return lines


def metrics(row: Row) -> dict[str, float]:
    return {
        "longest gap s": row.probe.longest_gap,
        "failed writes": row.probe.failed,
        "term changes": row.probe.term_changes,
        "leader changes": row.probe.leader_changes,
        "total s": row.seconds,
    }


async def main_async(rounds: int, how: str, engine: Engine, tls_overhead: bool = False) -> None:
    settle = SETTLE_SECONDS
    stop = "SIGTERM (LocalPlatform.stop)" if how == "term" else "SIGKILL"
    old_args, new_args = ARGS[engine]
    print(
        f"federation: {NAME} clusters={CLUSTERS} engine={engine.value}; update: engineArgs "
        f"{old_args} -> {new_args}; rounds={rounds}; settle={settle:.0f}s before each run; "
        + (
            "arms: a plain text, b TLS (both xlinefed)"
            if tls_overhead
            else f"baseline stops members with {stop}"
        )
    )
    rows: list[Row] = []
    for round_no in range(1, rounds + 1):
        arms = ("a", "b") if round_no % 2 else ("b", "a")
        for arm in arms:
            row = await run_arm(round_no, arm, settle, how, engine, tls_overhead)
            rows.append(row)
            if row.refused:
                print(f"  round {round_no} {arm}: refused by the planner: {row.refused}")
                continue
            print(
                f"  round {round_no} {arm}: {row.seconds:.1f}s gap={row.probe.longest_gap:.2f}s "
                f"failed={row.probe.failed} terms+={row.probe.term_changes} "
                f"leaders+={row.probe.leader_changes}",
                flush=True,
            )
    print()
    print(
        "per run (a = xlinefed plain text, b = xlinefed with mutual TLS)"
        if tls_overhead
        else "per run (a = xlinefed order, b = naive StatefulSet order)"
    )
    print_table(
        (
            "round",
            "arm",
            "total s",
            "longest gap s",
            "failed",
            "acked",
            "term chg",
            "leader chg",
            "restarts",
            "transfers",
            "port wait s",
            "lost",
        ),
        [
            (
                str(r.round),
                r.arm,
                f"{r.seconds:.2f}",
                f"{r.probe.longest_gap:.2f}",
                str(r.probe.failed),
                str(r.probe.acknowledged),
                str(r.probe.term_changes),
                str(r.probe.leader_changes),
                str(r.restarts),
                str(r.transfers),
                f"{r.port_wait:.2f}",
                str(r.probe.lost),
            )
            for r in rows
            if not r.refused
        ],
    )
    print()
    print(f"median over {rounds} rounds (runs the planner refused are left out)")
    summary = []
    for metric in metrics(rows[0]):
        a = median([metrics(r)[metric] for r in rows if r.arm == "a" and not r.refused])
        b = median([metrics(r)[metric] for r in rows if r.arm == "b" and not r.refused])
        # With --tls-overhead the ratio is TLS over plain text: the cost of TLS.
        summary.append(
            (metric, f"{a:.2f}", f"{b:.2f}", ratio(b, a) if tls_overhead else ratio(a, b))
        )
    if tls_overhead:
        print_table(("metric", "a plain", "b TLS", "b/a"), summary)
    else:
        print_table(("metric", "a xlinefed", "b naive", "a/b"), summary)
    print()
    print("distribution over rounds: p50 / p95 / max")
    spread = []
    for metric in metrics(rows[0]):
        cells = []
        for arm in ("a", "b"):
            values = sorted(metrics(r)[metric] for r in rows if r.arm == arm and not r.refused)
            cells.append(
                " / ".join(f"{v:.2f}" for v in (median(values), percentile(values, 95), values[-1]))
                if values
                else "-"
            )
        spread.append((metric, *cells))
    print_table(
        ("metric", "a plain", "b TLS") if tls_overhead else ("metric", "a xlinefed", "b naive"),
        spread,
    )
    worst = [r for r in rows if not r.refused and (r.probe.failed or r.probe.longest_gap > 0.5)]
    if worst:
        print()
        print("trace of every run with a failed write or a gap over 0.5 s")
        for row in worst:
            print("\n".join(trace(row)))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a, b); default 3")
    parser.add_argument(
        "--baseline-stop",
        choices=("term", "kill"),
        default="term",
        help="how (b) stops a member: term = LocalPlatform.stop, SIGTERM, as a kubelet does "
        "(default); kill = SIGKILL, as a crash or an expired grace period does",
    )
    parser.add_argument(
        "--tls-overhead",
        action="store_true",
        help="both arms xlinefed: a plain text, b mutual TLS (the ratio is b/a)",
    )
    add_engine_argument(parser)
    args = parser.parse_args()
    print_header()
    engine = engine_or_exit(args.engine)
    set_put_timeout(args.put_timeout)
    print(f"writer: a put counts as acknowledged within {args.put_timeout:g}s")
    asyncio.run(main_async(args.rounds, args.baseline_stop, engine, args.tls_overhead))


if __name__ == "__main__":
    main()
