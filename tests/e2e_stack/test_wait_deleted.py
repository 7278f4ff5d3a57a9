"""`objects.wait_deleted` on a real API server: woken by the watch when the object goes,
by the condition when it holds, and a TimeoutError when neither happens in time."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from kubernetes_asyncio import client

from tests.support.stack import Stack
from xlinefed.operators.run import api_client
from xlinefed.operators.settings import OperatorSettings
from xlinefed.platforms.kubernetes.objects import ObjectNotFound, translated, wait_deleted

NAMESPACE = "default"


async def _scenario(stack: Stack, name: str) -> None:
    api = await api_client(OperatorSettings(kubeconfig=stack.member_kubeconfig(stack.members[0])))
    core = client.CoreV1Api(api)

    async def read() -> Any | None:
        try:
            with translated(f"reading {name}"):
                return await core.read_namespaced_config_map(name, NAMESPACE)
        except ObjectNotFound:
            return None

    async def wait(**kwargs: Any) -> None:
        await wait_deleted(read, core.list_namespaced_config_map, NAMESPACE, name, **kwargs)

    try:
        # Absent already: returns at once.
        await wait(timeout=5)
        body = {"metadata": {"name": name, "labels": {"phase": "one"}}, "data": {"k": "v"}}
        await core.create_namespaced_config_map(NAMESPACE, body)
        # Present and never deleted: the deadline holds.
        with pytest.raises(TimeoutError):
            await wait(timeout=1.5)
        # The condition is met by a change the watch delivers.
        waiter = asyncio.create_task(
            wait(timeout=30, until=lambda cm: (cm.metadata.labels or {}).get("phase") == "two")
        )
        # Whether the change lands before the waiter's read or during its watch, it is seen.
        await core.patch_namespaced_config_map(
            name, NAMESPACE, {"metadata": {"labels": {"phase": "two"}}}
        )
        await asyncio.wait_for(waiter, 30)
        # The deletion wakes it.
        waiter = asyncio.create_task(wait(timeout=30))
        await core.delete_namespaced_config_map(name, NAMESPACE)
        await asyncio.wait_for(waiter, 30)
        assert await read() is None
    finally:
        with contextlib.suppress(client.exceptions.ApiException):
            await core.delete_namespaced_config_map(name, NAMESPACE)
        await api.close()


def test_wait_deleted_is_woken_by_the_watch(stack: Stack) -> None:
    asyncio.run(_scenario(stack, "xlinefed-wait-deleted"))
