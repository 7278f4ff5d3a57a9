"""The one boundary to kubernetes_asyncio for objects the operators own.

Writes are server-side apply under a named field manager: the body says the whole of
what we want, so a key we stop sending is removed (a merge patch cannot remove a key it
does not name, which is how `engineArgs: {}` once never reached the members). A write is
skipped when the stored object already carries the fingerprint of what we would write
and still holds every value of it; that keeps steady state free of writes.

Kubernetes errors are translated here, once, into `ObjectNotFound`/`ObjectConflict`/
`KubernetesError`, so the operators never look at HTTP status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from kubernetes_asyncio import client, watch
from kubernetes_asyncio.client.exceptions import ApiException

from xlinefed.api.models import GROUP, VERSION, ConsensusStatus

MERGE_PATCH = "application/merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
#: Field managers, one per operator, as `kubectl get -o yaml --show-managed-fields` shows.
FEDERATION_MANAGER = "xlinefed-federation-operator"
MEMBER_MANAGER = "xlinefed-member-operator"
#: What we last applied, so an unchanged object is not written again.
ANNOTATION_APPLIED = "xlinefed.io/applied-sha256"

#: kind -> plural, for the custom and core kinds the operators apply.
_PLURALS = {
    "XlineCluster": "xlineclusters",
    "PropagationPolicy": "propagationpolicies",
    "ResourceInterpreterCustomization": "resourceinterpretercustomizations",
    "ServiceExport": "serviceexports",
    "Service": "services",
    "PodDisruptionBudget": "poddisruptionbudgets",
}
_CLUSTER_SCOPED = {"ResourceInterpreterCustomization"}


class KubernetesError(Exception):
    """An API server refused or failed a request; `status` is its HTTP code."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ObjectNotFound(KubernetesError):
    """The object (or its kind, where its CRD is not installed) does not exist."""


class ObjectConflict(KubernetesError):
    """It exists already, or it changed since it was read."""


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Turn an `ApiException` raised inside into one of ours, naming `what` was tried."""
    try:
        yield
    except ApiException as error:
        reason = _reason(error)
        message = f"{what}: {reason}"
        if error.status == 404:
            raise ObjectNotFound(message, 404) from error
        if error.status == 409:
            raise ObjectConflict(message, 409) from error
        raise KubernetesError(message, error.status) from error


def _reason(error: ApiException) -> str:
    with contextlib.suppress(ValueError, TypeError):
        return str(json.loads(error.body).get("message") or error.reason)
    return f"{error.status} {error.reason}"


def fingerprint(body: dict[str, Any]) -> str:
    """A digest of everything we write of an object (never status)."""
    meta = body.get("metadata", {})
    subject = {
        "labels": meta.get("labels") or {},
        "annotations": {
            k: v for k, v in (meta.get("annotations") or {}).items() if k != ANNOTATION_APPLIED
        },
        **{k: v for k, v in body.items() if k not in ("metadata", "status", "apiVersion", "kind")},
    }
    return hashlib.sha256(json.dumps(subject, sort_keys=True).encode()).hexdigest()


def stamped(body: dict[str, Any]) -> dict[str, Any]:
    """`body` with its fingerprint annotation, as it is applied."""
    meta = dict(body["metadata"])
    meta["annotations"] = {**(meta.get("annotations") or {}), ANNOTATION_APPLIED: fingerprint(body)}
    return {**body, "metadata": meta}


def _holds(current: Any, wanted: Any) -> bool:
    """Every value of `wanted` is in `current` (which may hold more: defaults, others')."""
    if isinstance(wanted, dict):
        return isinstance(current, dict) and all(
            _holds(current.get(key), value) for key, value in wanted.items()
        )
    if isinstance(wanted, list):
        # The server fills in list items too (a port's protocol and targetPort).
        return (
            isinstance(current, list)
            and len(current) == len(wanted)
            and all(_holds(c, w) for c, w in zip(current, wanted, strict=True))
        )
    return bool(current == wanted)


def unchanged(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """True when applying `wanted` would change nothing: the stored object was last
    applied from the same body and nobody changed a value of it since."""
    if current is None:
        return False
    wanted = without_empty_maps(wanted)
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION_APPLIED) != fingerprint(wanted):
        return False
    content = {k: v for k, v in wanted.items() if k not in ("apiVersion", "kind", "status")}
    content["metadata"] = {
        k: wanted["metadata"][k] for k in ("labels", "annotations") if k in wanted["metadata"]
    }
    return _holds(current, content)


def _group_version(body: dict[str, Any]) -> tuple[str, str]:
    group, _, version = body["apiVersion"].rpartition("/")
    return group, version


def without_empty_maps(value: Any) -> Any:
    """`value` with every empty map left out. An applied `{}` is not "no keys": once the
    last key we owned is removed the server stores null, which the schema refuses
    ("Invalid value: null"); leaving the field out removes it, and defaulting puts `{}`
    back."""
    if isinstance(value, dict):
        return {
            k: without_empty_maps(v)
            for k, v in value.items()
            if not (isinstance(v, dict) and not v)
        }
    if isinstance(value, list):
        return [without_empty_maps(v) for v in value]
    return value


async def apply(api: client.ApiClient, body: dict[str, Any], *, manager: str) -> None:
    """Server-side apply of `body` (created if absent) under field manager `manager`.
    (The generated client returns nothing for a 201, so nothing is returned.)"""
    kind, name = body["kind"], body["metadata"]["name"]
    namespace = body["metadata"].get("namespace")
    document = stamped(without_empty_maps(body))
    options: dict[str, Any] = {
        "field_manager": manager,
        "force": True,
        "_content_type": APPLY_PATCH,
    }
    with translated(f"applying {kind} {namespace + '/' if namespace else ''}{name}"):
        if kind == "Service":
            await client.CoreV1Api(api).patch_namespaced_service(
                name, namespace, document, **options
            )
            return
        if kind == "PodDisruptionBudget":
            await client.PolicyV1Api(api).patch_namespaced_pod_disruption_budget(
                name, namespace, document, **options
            )
            return
        if kind == "Secret":
            await client.CoreV1Api(api).patch_namespaced_secret(
                name, namespace, document, **options
            )
            return
        group, version = _group_version(body)
        custom = client.CustomObjectsApi(api)
        if kind in _CLUSTER_SCOPED:
            await custom.patch_cluster_custom_object(
                group, version, _PLURALS[kind], name, document, **options
            )
        else:
            await custom.patch_namespaced_custom_object(
                group, version, namespace, _PLURALS[kind], name, document, **options
            )


async def apply_if_changed(
    api: client.ApiClient,
    body: dict[str, Any],
    current: dict[str, Any] | None,
    *,
    manager: str,
) -> bool:
    """Apply `body` unless `current` (as read) already says it; True when written."""
    if unchanged(current, body):
        return False
    await apply(api, body, manager=manager)
    return True


async def read_object(
    api: client.ApiClient, api_version: str, kind: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """Any object the operators apply, as stored, or None when absent (or its kind is)."""
    body = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}
    try:
        with translated(f"reading {kind} {namespace}/{name}"):
            if kind == "Service":
                result = await client.CoreV1Api(api).read_namespaced_service(name, namespace)
                return dict(api.sanitize_for_serialization(result))
            if kind == "PodDisruptionBudget":
                result = await client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
                    name, namespace
                )
                return dict(api.sanitize_for_serialization(result))
            if kind == "Secret":
                result = await client.CoreV1Api(api).read_namespaced_secret(name, namespace)
                return dict(api.sanitize_for_serialization(result))
            group, version = _group_version(body)
            return dict(
                await client.CustomObjectsApi(api).get_namespaced_custom_object(
                    group, version, namespace, _PLURALS[kind], name
                )
            )
    except ObjectNotFound:
        return None


async def delete_if_present(
    api: client.ApiClient, api_version: str, kind: str, namespace: str, name: str
) -> bool:
    """Delete a namespaced custom object; False when it was already gone."""
    group, version = _group_version({"apiVersion": api_version})
    try:
        with translated(f"deleting {kind} {namespace}/{name}"):
            await client.CustomObjectsApi(api).delete_namespaced_custom_object(
                group, version, namespace, _PLURALS[kind], name
            )
    except ObjectNotFound:
        return False
    return True


async def list_labelled(
    api: client.ApiClient, api_version: str, kind: str, namespace: str, selector: str
) -> dict[str, dict[str, Any]]:
    """Custom objects of `kind` in `namespace` matching a label selector, by name."""
    group, version = _group_version({"apiVersion": api_version})
    with translated(f"listing {kind} in {namespace}"):
        answer = await client.CustomObjectsApi(api).list_namespaced_custom_object(
            group, version, namespace, _PLURALS[kind], label_selector=selector
        )
    return {item["metadata"]["name"]: item for item in answer.get("items", [])}


async def read(
    api: client.ApiClient, plural: str, namespace: str, name: str
) -> dict[str, Any] | None:
    """One of our own resources (XlineFederation, XlineCluster) as stored, or None."""
    try:
        with translated(f"reading {plural} {namespace}/{name}"):
            obj = await client.CustomObjectsApi(api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
    except ObjectNotFound:
        return None
    return dict(obj)


async def wait_deleted(
    read_one: Callable[[], Awaitable[Any]],
    list_all: Callable[..., Awaitable[Any]],
    namespace: str,
    name: str,
    *,
    timeout: float,
    until: Callable[[Any], bool] = lambda obj: False,
) -> None:
    """Return once the object is gone (or `until(object)` holds), woken by a watch on that
    one object rather than by polling; TimeoutError at `timeout` seconds.

    `read_one()` reads it (None when absent, after translation); `list_all` is the
    namespaced list call the watch streams (e.g. `CoreV1Api.list_namespaced_pod`). The
    watch starts at the read's resourceVersion, so a deletion between the two is seen.
    """
    async with asyncio.timeout(timeout):
        while True:
            current = await read_one()
            if current is None or until(current):
                return
            stream = watch.Watch()
            try:
                with translated(f"watching {name}"):
                    async for event in stream.stream(
                        list_all,
                        namespace,
                        field_selector=f"metadata.name={name}",
                        resource_version=current.metadata.resource_version,
                        timeout_seconds=max(1, int(timeout)),
                    ):
                        if event["type"] == "DELETED" or until(event["object"]):
                            return
            except KubernetesError as error:
                # 410 Gone: the version is too old to watch from; read and watch again.
                if error.status != 410:
                    raise
            finally:
                stream.stop()
                await stream.close()


#: Status fields another writer owns: `backup` is the backup schedule's (its daemon runs
#: beside the reconcile loop), so a reconcile pass neither clears nor rewinds it.
OWNED_ELSEWHERE = frozenset({"backup"})


def status_patch(status: ConsensusStatus) -> dict[str, Any]:
    """The whole status as a merge patch: every field the model has and this status
    leaves unset is sent as null, so a leader, step or warning that ended is removed
    rather than left standing beside the new truth (fields in OWNED_ELSEWHERE excepted)."""
    document: dict[str, Any] = {
        field.alias or name: None for name, field in ConsensusStatus.model_fields.items()
    }
    document.update(status.to_wire())
    for name in OWNED_ELSEWHERE:
        document.pop(name, None)
    return document


async def patch_status(
    api: client.ApiClient, plural: str, namespace: str, name: str, status: dict[str, Any]
) -> None:
    """A merge patch of the status subresource: only the fields given change (status is
    written by one operator only, and a field it stops reporting is sent as null)."""
    with translated(f"writing the status of {plural} {namespace}/{name}"):
        await client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, plural, name, {"status": status}, _content_type=MERGE_PATCH
        )
