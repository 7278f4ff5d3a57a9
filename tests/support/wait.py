"""Waiting on conditions with a deadline: the only synchronisation tests may use."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class ConditionTimeout(AssertionError):
    """A condition a test waited for did not become true before its deadline."""


def wait_until(
    predicate: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """Poll `predicate` until it returns a truthy value; return that value.

    Exceptions raised by the predicate count as "not yet"; the last one is reported
    if the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"timed out after {timeout}s waiting for {what}") from last_error
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], Awaitable[T]], *, timeout: float, what: str, interval: float = 0.05
) -> T:
    """The asyncio twin of `wait_until`."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = await predicate()
            if value:
                return value
        except Exception as error:
            last_error = error
        if time.monotonic() >= deadline:
            raise ConditionTimeout(f"timed out after {timeout}s waiting for {what}") from last_error
        await asyncio.sleep(interval)
