"""Reading and status-patching the custom resources both operators reconcile."""

from __future__ import annotations

from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from xlinefed.api.models import GROUP, VERSION

MERGE_PATCH = "application/merge-patch+json"


async def read(
    api: client.ApiClient, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """The object as stored now, or None once it is gone."""
    try:
        obj = await client.CustomObjectsApi(api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return dict(obj)


async def patch_status(
    api: client.ApiClient, plural: str, namespace: str, name: str, status: dict[str, Any]
) -> None:
    """A merge patch of the status subresource: only the fields given change."""
    await client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, {"status": status}, _content_type=MERGE_PATCH
    )
