"""A small script language for planner scenarios, with golden output (as etcd-io/raft's
`testdata/*.txt`). A script is a list of blocks:

    # a comment
    <command> <args...>
    ----
    <output, no blank lines>
    <blank line>

Commands (member names are `f-<cluster>-<ordinal>`):
    spec a=3 b=2 [revision=r2] [engine=xline] [bootstrap=dynamic] [order=Listed]
         [partition=a:1,b:2] [lag=100] [delete-data] [paused]
                                 set the desired federation (a fresh cluster on first use)
    converged a=3 b=2 [leader=f-a-0]    start from a formed cluster matching that spec
    crash|lose <member>          the process stops | stops and its data is gone
    lag <member> <entries>       the member falls behind the leader
    lock <holder> | unlock       someone else holds the membership lock | releases it
    plan [scope=a,b]             print the step the planner picks, apply nothing
    step [n] [scope=a]           plan, apply, tick: n times
    stabilize [scope=a|each]     plan, apply, tick until Done (`each`: one operator per
                                 cluster takes turns in order, until all say Done)
    tick [n]                     let time pass
    state                        print the members
Every planned step is checked against the invariants; a violation prints `VIOLATION`.
Run with XLINEFED_REWRITE=1 to rewrite the outputs, then review the diff.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.support.simulation import stats
from tests.support.simulation.invariants import all_invariants
from tests.support.simulation.simulator import Sim, StepRejected, make_desired, parse_spec
from xlinefed.api.engines import Engine
from xlinefed.api.models import BootstrapMode, ClusterOrder
from xlinefed.planner import Desired, Done, Step, plan

SEPARATOR = "----"
MAX_STABILIZE = 300
OPTIONS = frozenset({"revision", "engine", "bootstrap", "order", "partition", "lag", "leader"})


def parse_blocks(text: str) -> list[tuple[list[str], str, list[str]]]:
    """[(comment lines, command, output lines)]."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        comments = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith("#")):
            if lines[i].startswith("#"):
                comments.append(lines[i])
            i += 1
        if i >= len(lines):
            break
        command = lines[i]
        i += 1
        if i >= len(lines) or lines[i] != SEPARATOR:
            raise ValueError(f"line {i + 1}: expected {SEPARATOR!r} after {command!r}")
        i += 1
        output = []
        while i < len(lines) and lines[i].strip():
            output.append(lines[i])
            i += 1
        blocks.append((comments, command, output))
    return blocks


def format_blocks(blocks: list[tuple[list[str], str, list[str]]]) -> str:
    parts = []
    for comments, command, output in blocks:
        parts.append("\n".join([*comments, command, SEPARATOR, *output]))
    return "\n\n".join(parts) + "\n"


class Runner:
    def __init__(self) -> None:
        self.sim: Sim | None = None

    def run(self, command: str) -> list[str]:
        words = command.split()
        name, args = words[0], words[1:]
        handler = getattr(self, f"cmd_{name.replace('-', '_')}", None)
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        return handler(args) or ["ok"]

    @property
    def world(self) -> Sim:
        if self.sim is None:
            raise ValueError("no federation yet: start with `spec` or `converged`")
        return self.sim

    # --- setup ------------------------------------------------------------------------

    @staticmethod
    def _desired(args: list[str]) -> Desired:
        sizes = " ".join(a for a in args if "=" in a and a.split("=")[0] not in OPTIONS)
        options = dict(a.split("=", 1) if "=" in a else (a, "") for a in args)
        partitions = {}
        for item in filter(None, options.get("partition", "").split(",")):
            cluster, _, value = item.partition(":")
            partitions[cluster] = int(value)
        return make_desired(
            parse_spec(sizes),
            revision=options.get("revision", "r1"),
            engine=Engine(options.get("engine", "etcd")),
            bootstrap=BootstrapMode(options.get("bootstrap", "static")),
            cluster_order=ClusterOrder(options.get("order", "LeaderLast")),
            partitions=partitions,
            max_promote_lag=int(options.get("lag", "1000")),
            delete_data="delete-data" in options,
            paused="paused" in options,
        )

    def cmd_spec(self, args: list[str]) -> list[str]:
        desired = self._desired(args)
        if self.sim is None:
            self.sim = Sim(desired=desired)
        else:
            self.sim.desired = desired
        return []

    def cmd_converged(self, args: list[str]) -> list[str]:
        leader = next((a.split("=", 1)[1] for a in args if a.startswith("leader=")), None)
        self.sim = Sim.converged(self._desired(args), leader=leader)
        return []

    # --- faults -------------------------------------------------------------------------

    def cmd_crash(self, args: list[str]) -> list[str]:
        self.world.crash(args[0])
        return []

    def cmd_lose(self, args: list[str]) -> list[str]:
        self.world.lose_data(args[0])
        return []

    def cmd_lag(self, args: list[str]) -> list[str]:
        self.world.lag(args[0], int(args[1]))
        return []

    def cmd_lock(self, args: list[str]) -> list[str]:
        self.world.lock_holder = args[0]
        self.world.lock_ticks = 0
        return []

    def cmd_unlock(self, args: list[str]) -> list[str]:
        self.world.lock_holder = None
        return []

    def cmd_tick(self, args: list[str]) -> list[str]:
        for _ in range(int(args[0]) if args else 1):
            self.world.tick()
        return []

    # --- the planner --------------------------------------------------------------------

    @staticmethod
    def _scope(args: list[str]) -> frozenset[str] | None:
        for a in args:
            if a.startswith("scope="):
                return frozenset(a.split("=", 1)[1].split(","))
        return None

    def _plan(self, scope: frozenset[str] | None) -> tuple[Step, list[str]]:
        sim = self.world
        desired = sim.desired if scope is None else replace(sim.desired, scope=scope)
        observed = sim.observe(scope)
        step = plan(desired, observed)
        stats.count_step()
        return step, [f"VIOLATION: {p}" for p in all_invariants(desired, observed, step)]

    def _take(self, scope: frozenset[str] | None) -> tuple[Step, list[str]]:
        step, out = self._plan(scope)
        prefix = f"[{','.join(sorted(scope))}] " if scope else ""
        out.insert(0, prefix + step.describe())
        try:
            self.world.apply(step)
        except StepRejected as error:
            out.append(f"VIOLATION: rejected: {error}")
        self.world.tick()
        return step, out

    def cmd_plan(self, args: list[str]) -> list[str]:
        step, out = self._plan(self._scope(args))
        return [step.describe(), *out]

    def cmd_step(self, args: list[str]) -> list[str]:
        count = int(args[0]) if args and args[0].isdigit() else 1
        out: list[str] = []
        for _ in range(count):
            out.extend(self._take(self._scope(args))[1])
        return out

    def cmd_stabilize(self, args: list[str]) -> list[str]:
        sim = self.world
        each = "scope=each" in args
        scopes: list[frozenset[str] | None]
        if each:
            clusters = sorted({m.cluster for m in sim.members.values() if m.cluster})
            clusters = sorted(set(clusters) | set(sim.desired.clusters))
            scopes = [frozenset({c}) for c in clusters]
        else:
            scopes = [self._scope(args)]
        out: list[str] = []
        done_in_a_row = 0
        for i in range(MAX_STABILIZE):
            step, lines = self._take(scopes[i % len(scopes)])
            done_in_a_row = done_in_a_row + 1 if isinstance(step, Done) else 0
            if not isinstance(step, Done):
                out.extend(lines)
            else:
                out.extend(line for line in lines if line.startswith("VIOLATION"))
            if done_in_a_row >= len(scopes):
                out.append(lines[0])
                problems = sim.mismatches()
                out.extend(f"VIOLATION: done but {p}" for p in problems)
                return out
        out.append(f"VIOLATION: no Done after {MAX_STABILIZE} steps")
        return out

    def cmd_state(self, args: list[str]) -> list[str]:
        sim = self.world
        out = []
        for m in sorted(sim.members.values(), key=lambda m: m.name):
            role = "learner" if m.is_learner else "voter" if m.is_voter else "-"
            flags = [
                role,
                "leader" if m.name == sim.leader else "",
                "running" if m.running else "stopped",
                "" if m.has_data else "no-data",
                "" if m.healthy or not m.running else "unhealthy",
                f"rev={m.revision}" if m.revision else "",
                f"behind={sim.commit - m.applied_index}" if m.has_data and m.in_list else "",
            ]
            out.append(f"{m.name}: {' '.join(f for f in flags if f)}")
        if sim.lock_holder:
            out.append(f"lock: {sim.lock_holder}")
        return out or ["no members"]


def run_script(path: Path, rewrite: bool) -> tuple[str, str]:
    """Run a script; return (expected text, actual text)."""
    text = path.read_text()
    runner = Runner()
    actual = []
    for comments, command, _ in parse_blocks(text):
        actual.append((comments, command, runner.run(command)))
    result = format_blocks(actual)
    if rewrite and result != text:
        path.write_text(result)
    return text, result
