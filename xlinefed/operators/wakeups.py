"""Each object's reconcile loop, woken early by watch events instead of polling.

Each daemon waits on its own event with a timeout (the idle interval); a watch-event
handler sets the event when the object's generation moves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from xlinefed.platforms.kubernetes import objects

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


Body = dict[str, Any]


async def reconcile_forever(
    namespace: str,
    name: str,
    *,
    stopped: Any,
    read: Callable[[str, str], Awaitable[Body | None]],
    reconcile: Callable[[Body], Awaitable[float]],
    idle: float,
    pass_timeout: float,
    logger: Any,
) -> None:
    """The level-triggered loop of one object: read it afresh, reconcile once, sleep until
    the returned delay passes or the object changes; until it is deleted or kopf stops us."""
    try:
        while not stopped:
            delay = idle
            try:
                body = await read(namespace, name)
                if body is None or body["metadata"].get("deletionTimestamp"):
                    return
                # A pass that hangs (an API server or member that never answers) is cut
                # off and retried, rather than silently stalling this object forever.
                delay = await asyncio.wait_for(reconcile(body), timeout=pass_timeout)
            except TimeoutError:
                logger.error(f"reconcile pass took over {pass_timeout:.0f}s; retrying")
            except Exception as error:
                logger.exception(f"reconcile failed: {error}")
            await sleep(namespace, name, delay)
    finally:
        forget(namespace, name)


async def reconcile_daemon(
    plural: str,
    namespace: str,
    name: str,
    *,
    stopped: Any,
    memo: Any,
    reconcile: Callable[[Body, Any], Awaitable[float]],
    logger: Any,
) -> None:
    """`reconcile_forever` for one of our resources, read afresh through `memo.api`
    each pass, with the operator's `memo.settings` for its intervals."""

    async def read(ns: str, n: str) -> Body | None:
        return await objects.read(memo.api, plural, ns, n)

    async def pass_over(body: Body) -> float:
        return await reconcile(body, memo)

    await reconcile_forever(
        namespace,
        name,
        stopped=stopped,
        read=read,
        reconcile=pass_over,
        idle=memo.settings.idle_interval,
        pass_timeout=memo.settings.pass_timeout,
        logger=logger,
    )
