"""A linearizability checker for histories of a single-value register per key.

Wing & Gong's search, with Lowe's memoisation (as in Knossos and Porcupine): pick an
operation that may take effect next (no other pending operation completed before it was
invoked), apply it to the model, and backtrack when a read disagrees. A configuration
(set of operations already linearized, register value) is visited at most once, so the
search is polynomial for the low concurrency of a writer and a few readers.

Histories are checked per key (linearizability is compositional: a history is
linearizable iff each per-object sub-history is).

Indeterminate operations (a write whose client timed out) may or may not have taken
effect: they have no completion (they stay concurrent with everything after their
invocation) and need not be linearized at all. Failed and indeterminate reads are dropped:
they observed nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

OpKind = Literal["put", "get"]
OpStatus = Literal["ok", "fail", "unknown"]


@dataclass(frozen=True)
class Operation:
    """One client operation on one key, as the client saw it."""

    process: str
    kind: OpKind
    key: str
    #: put: the value written; get: the value read (None = key absent).
    value: str | None
    #: Monotonic seconds at invocation and at completion (None while pending/unknown).
    invoke: float
    complete: float | None
    status: OpStatus


@dataclass(frozen=True)
class CheckResult:
    key: str
    linearizable: bool
    operations: int
    #: Configurations explored (a measure of the search's cost).
    explored: int
    #: When not linearizable: the operations that could not be placed after the longest
    #: linearizable prefix found, for the report.
    witness: tuple[Operation, ...] = ()
    #: True when the search gave up at its budget (counts as an anomaly: undecided).
    undecided: bool = False

    def describe(self) -> str:
        if self.linearizable:
            return f"{self.key}: linearizable ({self.operations} ops, {self.explored} explored)"
        why = "search budget exhausted" if self.undecided else "not linearizable"
        ops = "; ".join(
            f"{o.process} {o.kind}({o.value!r}) [{o.invoke:.3f}, "
            f"{'∞' if o.complete is None else f'{o.complete:.3f}'}] {o.status}"
            for o in self.witness
        )
        return f"{self.key}: {why} ({self.operations} ops); cannot place next: {ops}"


def _relevant(ops: Iterable[Operation]) -> list[Operation]:
    kept = []
    for op in ops:
        if op.kind == "get" and op.status != "ok":
            continue  # a read that failed or timed out observed nothing
        if op.kind == "put" and op.status == "fail":
            continue  # definitely not applied
        kept.append(op)
    return sorted(kept, key=lambda o: (o.invoke, o.complete if o.complete is not None else 0.0))


def check_register(
    ops: Sequence[Operation],
    *,
    initial: str | None = None,
    budget: int = 2_000_000,
) -> CheckResult:
    """Is the history of one key linearizable for a register starting at `initial`?"""
    key = ops[0].key if ops else ""
    history = _relevant(ops)
    n = len(history)
    invoke = [o.invoke for o in history]
    complete = [
        o.complete if (o.status == "ok" and o.complete is not None) else math.inf for o in history
    ]
    required = 0  # bitmask of the operations that must be linearized (ok ones)
    for i, o in enumerate(history):
        if o.status == "ok":
            required |= 1 << i

    def candidates(done: int) -> list[int]:
        """Operations that may take effect next: pending ones invoked before the earliest
        completion of any pending operation."""
        found: list[int] = []
        horizon = math.inf
        for i in range(n):
            if done >> i & 1:
                continue
            if invoke[i] > horizon:
                break  # sorted by invocation: every later one is invoked later still
            found.append(i)
            horizon = min(horizon, complete[i])
        return [i for i in found if invoke[i] <= horizon]

    seen: set[tuple[int, str | None]] = set()
    stack: list[tuple[int, str | None]] = [(0, initial)]
    explored = 0
    best_done, best_count = 0, -1
    while stack:
        done, value = stack.pop()
        if (done, value) in seen:
            continue
        seen.add((done, value))
        explored += 1
        if done & required == required:
            return CheckResult(key, True, n, explored)
        count = (done & required).bit_count()
        if count > best_count:
            best_done, best_count = done, count
        if explored >= budget:
            return CheckResult(key, False, n, explored, undecided=True)
        for i in candidates(done):
            op = history[i]
            if op.kind == "put":
                stack.append((done | 1 << i, op.value))
            elif op.value == value:
                stack.append((done | 1 << i, value))
    witness = tuple(history[i] for i in candidates(best_done))
    return CheckResult(key, False, n, explored, witness=witness)


def check_history(
    ops: Iterable[Operation], *, initial: dict[str, str | None] | None = None
) -> list[CheckResult]:
    """Check every key's sub-history; one result per key, in key order."""
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for op in ops:
        by_key[op.key].append(op)
    start = initial or {}
    return [check_register(by_key[k], initial=start.get(k)) for k in sorted(by_key)]
