"""Wake a resource's reconcile loop early when its spec changes, without polling.

Each daemon waits on its own event with a timeout (the idle interval); a watch-event
handler sets the event when the object's generation moves.
"""

from __future__ import annotations

import asyncio
import contextlib

_events: dict[tuple[str, str], asyncio.Event] = {}
_generations: dict[tuple[str, str], int | None] = {}


def _event(namespace: str, name: str) -> asyncio.Event:
    return _events.setdefault((namespace, name), asyncio.Event())


def notice(namespace: str, name: str, generation: int | None) -> None:
    """Called for every watch event of the object."""
    key = (namespace, name)
    if _generations.get(key) != generation:
        _generations[key] = generation
        _event(namespace, name).set()


async def sleep(namespace: str, name: str, seconds: float) -> None:
    """Sleep up to `seconds`, less if the object's spec changes meanwhile."""
    event = _event(namespace, name)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)
    event.clear()


def forget(namespace: str, name: str) -> None:
    _events.pop((namespace, name), None)
    _generations.pop((namespace, name), None)
