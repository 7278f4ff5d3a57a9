"""Time per `plan()` call and peak memory, for federations of 3, 30 and 300 members.

    .venv/bin/python bench/planner.py [--calls N]

States: steady (Done), mid scale-out (a learner catching up), mid rolling update (half
the members restarted). Each row: median and p95 of single calls over N calls, and the
peak traced memory (tracemalloc) of one call. The baseline row in every size (an
empty-ish `Wait`: paused) shows what the fixed overhead is in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.simulation.simulator import Sim, make_desired
from xlinefed.planner import Desired, Observed, plan

SIZES = {
    3: {"a": 1, "b": 1, "c": 1},
    30: {c: 6 for c in "abcde"},
    300: {**{c: 43 for c in "abcdef"}, "g": 42},
}


def _total(spec: dict[str, int]) -> int:
    return sum(spec.values())


def steady(spec: dict[str, int]) -> tuple[Desired, Observed]:
    sim = Sim.converged(make_desired(spec))
    return sim.desired, sim.observe()


def paused(spec: dict[str, int]) -> tuple[Desired, Observed]:
    desired, observed = steady(spec)
    return replace(desired, paused=True), observed


def scale_out(spec: dict[str, int]) -> tuple[Desired, Observed]:
    sim = Sim.converged(make_desired(spec, max_promote_lag=10))
    bigger = dict(spec)
    first = next(iter(bigger))
    bigger[first] += 2
    sim.desired = make_desired(bigger, max_promote_lag=10)
    for _ in range(2):  # add, start
        sim.apply(sim.plan())
        sim.tick()
    learner = f"f-{first}-{spec[first]}"
    sim.lag(learner, 100)  # catching up: the planner answers Wait
    return sim.desired, sim.observe()


def rolling(spec: dict[str, int]) -> tuple[Desired, Observed]:
    sim = Sim.converged(make_desired(spec))
    sim.desired = make_desired(spec, revision="r2")
    for _ in range(_total(spec) // 2):
        sim.apply(sim.plan())
        sim.tick()
    return sim.desired, sim.observe()


STATES: dict[str, Callable[[dict[str, int]], tuple[Desired, Observed]]] = {
    "paused (baseline)": paused,
    "steady (Done)": steady,
    "mid scale-out": scale_out,
    "mid rolling update": rolling,
}


def measure(desired: Desired, observed: Observed, calls: int) -> tuple[float, float, int, str]:
    step = plan(desired, observed)
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        plan(desired, observed)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    tracemalloc.start()
    plan(desired, observed)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    median = statistics.median(samples) / 1000
    p95 = samples[int(len(samples) * 0.95) - 1] / 1000
    return median, p95, peak, step.kind


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="timed calls per row")
    args = parser.parse_args()
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(
        f"machine: nproc={os.cpu_count()} cpu={cpu_model()!r} "
        f"python={platform.python_version()} calls/row={args.calls}"
    )
    header = (
        f"{'members':>7}  {'state':<20} {'step':<18} "
        f"{'median µs':>10} {'p95 µs':>10} {'peak KiB':>9}"
    )
    print(header)
    print("-" * len(header))
    for size, spec in SIZES.items():
        assert _total(spec) == size, spec
        for name, build in STATES.items():
            desired, observed = build(spec)
            calls = args.calls if size < 300 else max(30, args.calls // 5)
            median, p95, peak, kind = measure(desired, observed, calls)
            print(
                f"{_total(spec):>7}  {name:<20} {kind:<18} {median:>10.1f} {p95:>10.1f} "
                f"{peak / 1024:>9.1f}"
            )


if __name__ == "__main__":
    main()
