"""Wake a resource's reconcile loop early when its spec changes, without polling.

Each daemon waits on its own event with a timeout (the idle interval); a watch-event
handler sets the event when the object's generation moves.
"""

from __future__ import annotations

import asyncio
import contextlib

_events: dict[tuple[str, str], asyncio.Event] = {}
_tokens: dict[tuple[str, str, str], object] = {}


def _event(namespace: str, name: str) -> asyncio.Event:
    return _events.setdefault((namespace, name), asyncio.Event())


def notice(namespace: str, name: str, token: object, source: str = "spec") -> None:
    """Called for every watch event; wakes the loop of `namespace/name` when `token` (a
    generation, a resourceVersion) moved since the last event from the same `source`."""
    key = (namespace, name, source)
    if _tokens.get(key) != token:
        _tokens[key] = token
        _event(namespace, name).set()


async def sleep(namespace: str, name: str, seconds: float) -> None:
    """Sleep up to `seconds`, less if the object's spec changes meanwhile."""
    event = _event(namespace, name)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)
    event.clear()


def forget(namespace: str, name: str) -> None:
    _events.pop((namespace, name), None)
    for key in [k for k in _tokens if k[:2] == (namespace, name)]:
        del _tokens[key]
