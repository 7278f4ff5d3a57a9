"""The linearizability checker on known linearizable and non-linearizable histories, and
on random histories generated from a real sequential execution."""

from __future__ import annotations

import random

import pytest

from tests.support.linearizability import Operation, check_history, check_register


def put(p: str, value: str, start: float, end: float | None, status: str = "ok") -> Operation:
    return Operation(p, "put", "k", value, start, end, status)  # type: ignore[arg-type]


def get(p: str, value: str | None, start: float, end: float, status: str = "ok") -> Operation:
    return Operation(p, "get", "k", value, start, end, status)  # type: ignore[arg-type]


LINEARIZABLE = {
    "empty": [],
    "read of the initial value": [get("r", None, 0, 1)],
    "sequential write then read": [put("w", "1", 0, 1), get("r", "1", 2, 3)],
    "read concurrent with a write sees the old value": [
        put("w", "1", 0, 1),
        put("w", "2", 2, 5),
        get("r", "1", 3, 4),
    ],
    "read concurrent with a write sees the new value": [
        put("w", "1", 0, 1),
        put("w", "2", 2, 5),
        get("r", "2", 3, 4),
    ],
    "two readers disagree while the write is in flight, in a possible order": [
        put("w", "1", 0, 1),
        put("w", "2", 2, 10),
        get("r1", "1", 3, 4),
        get("r2", "2", 5, 6),
    ],
    "indeterminate write that took effect": [
        put("w", "1", 0, 1),
        put("w", "2", 2, None, "unknown"),
        get("r", "2", 50, 51),
    ],
    "indeterminate write that never took effect": [
        put("w", "1", 0, 1),
        put("w", "2", 2, None, "unknown"),
        get("r", "1", 50, 51),
        get("r", "1", 60, 61),
    ],
    "failed reads observe nothing": [
        put("w", "1", 0, 1),
        get("r", "nonsense", 2, 3, "fail"),
        get("r", "1", 4, 5),
    ],
    "a write that failed for sure is ignored": [
        put("w", "1", 0, 1),
        put("w", "2", 2, 3, "fail"),
        get("r", "1", 4, 5),
    ],
    "overlapping writes from two clients, reads settle on one order": [
        put("a", "x", 0, 10),
        put("b", "y", 1, 9),
        get("r", "y", 11, 12),
        get("r", "y", 13, 14),
    ],
}

NOT_LINEARIZABLE = {
    "stale read after an acknowledged write": [
        put("w", "1", 0, 1),
        put("w", "2", 2, 3),
        get("r", "1", 4, 5),
    ],
    "read of a value never written": [put("w", "1", 0, 1), get("r", "7", 2, 3)],
    "lost acknowledged write (read of the initial value later)": [
        put("w", "1", 0, 1),
        get("r", None, 2, 3),
    ],
    "new value then old value by later reads (flip-flop)": [
        put("w", "1", 0, 1),
        put("w", "2", 2, 10),
        get("r1", "2", 3, 4),
        get("r2", "1", 5, 6),
    ],
    "indeterminate write seen, then unseen": [
        put("w", "1", 0, 1),
        put("w", "2", 2, None, "unknown"),
        get("r", "2", 5, 6),
        get("r", "1", 7, 8),
    ],
    "two writes, reads see both orders": [
        put("a", "x", 0, 10),
        put("b", "y", 1, 9),
        get("r1", "x", 11, 12),
        get("r2", "y", 13, 14),
        get("r3", "x", 15, 16),
    ],
    "read from the future (before the write was invoked)": [
        get("r", "1", 0, 1),
        put("w", "1", 2, 3),
    ],
}


@pytest.mark.parametrize("name", sorted(LINEARIZABLE))
def test_linearizable_histories_pass(name: str) -> None:
    result = check_register(LINEARIZABLE[name])
    assert result.linearizable, result.describe()


@pytest.mark.parametrize("name", sorted(NOT_LINEARIZABLE))
def test_non_linearizable_histories_are_caught(name: str) -> None:
    result = check_register(NOT_LINEARIZABLE[name])
    assert not result.linearizable
    assert not result.undecided
    assert result.witness, "a failure names the operations it could not place"
    assert "not linearizable" in result.describe()


def test_initial_value_is_honoured() -> None:
    assert check_register([get("r", "0", 0, 1)], initial="0").linearizable
    assert not check_register([get("r", "0", 0, 1)]).linearizable


def test_keys_are_checked_separately() -> None:
    ops = [
        Operation("w", "put", "a", "1", 0, 1, "ok"),
        Operation("w", "put", "b", "2", 0, 1, "ok"),
        Operation("r", "get", "a", "1", 2, 3, "ok"),
        Operation("r", "get", "b", "1", 2, 3, "ok"),  # b never held 1
    ]
    results = check_history(ops)
    assert [(r.key, r.linearizable) for r in results] == [("a", True), ("b", False)]


def _random_history(rng: random.Random, n: int) -> list[Operation]:
    """Operations of 1 writer and 3 readers on a real register: each takes effect at one
    instant inside its [invoke, complete] interval; some writes lose their reply."""
    ops: list[Operation] = []
    value: str | None = None
    events: list[tuple[float, int, str, str | None]] = []  # (effect time, proc, kind, value)
    clocks = [0.0] * 4
    for i in range(n):
        proc = rng.randrange(4)
        start = clocks[proc] + rng.uniform(0, 1)
        effect = start + rng.uniform(0, 1)
        end = effect + rng.uniform(0, 1)
        clocks[proc] = end
        kind = "put" if proc == 0 else "get"
        events.append((effect, proc, kind, f"v{i}" if kind == "put" else None))
        ops.append(Operation(f"p{proc}", kind, "k", f"v{i}", start, end, "ok"))  # type: ignore[arg-type]
    # Replay in effect order to learn what each read returned.
    order = sorted(range(n), key=lambda i: events[i][0])
    reads: dict[int, str | None] = {}
    for i in order:
        _, _, kind, written = events[i]
        if kind == "put":
            value = written
        else:
            reads[i] = value
    result = []
    for i, op in enumerate(ops):
        if op.kind == "get":
            op = Operation(op.process, "get", "k", reads[i], op.invoke, op.complete, "ok")
        elif rng.random() < 0.1:
            op = Operation(op.process, "put", "k", op.value, op.invoke, None, "unknown")
        result.append(op)
    return result


@pytest.mark.parametrize("seed", range(30))
def test_random_real_executions_are_linearizable(seed: int) -> None:
    history = _random_history(random.Random(seed), 200)
    result = check_register(history)
    assert result.linearizable, result.describe()


@pytest.mark.parametrize("seed", range(30))
def test_random_histories_with_an_impossible_read_are_caught(seed: int) -> None:
    rng = random.Random(1000 + seed)
    history = _random_history(rng, 200)
    end = max(o.complete or o.invoke for o in history)
    # After everything, the register holds the last acknowledged write or a later
    # indeterminate one; a read of a value overwritten long before cannot be explained.
    puts = [o for o in history if o.kind == "put" and o.status == "ok"]
    last = max(puts, key=lambda o: o.complete or 0)
    stale = next(o for o in puts if (o.complete or 0) < last.invoke)
    history.append(Operation("late", "get", "k", stale.value, end + 1, end + 2, "ok"))
    result = check_register(history)
    assert not result.linearizable, f"stale read of {stale.value} not caught"
