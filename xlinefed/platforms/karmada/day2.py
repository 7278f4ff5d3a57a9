"""What `kubectl xlinefed` reads and writes on the Karmada API server: one federation and
its XlineClusters (their status is what Karmada collected from the member clusters), and
`spec.paused`. Every failure comes out as a `Day2Error` that says what to do.

kubernetes_asyncio (already the operators' client) with its ordinary kubeconfig loading:
`KUBECONFIG` (colon-separated lists merged), `--kubeconfig`, `--context`, as kubectl does.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.config.config_exception import ConfigException

from xlinefed.api.models import GROUP, VERSION
from xlinefed.placement import LABEL_FEDERATION
from xlinefed.platforms.kubernetes import objects

#: The field manager of the plugin's own writes (spec.paused), so that
#: `kubectl get --show-managed-fields` tells them from the user's applies.
MANAGER = "kubectl-xlinefed"
PLURAL = "xlinefederations"
#: A Karmada API server serves this group; a member (or any other) cluster does not.
KARMADA_GROUP = "policy.karmada.io"
#: Seconds to wait for any one answer of the API server.
TIMEOUT = 15.0


class Day2Error(Exception):
    """A failure with its remedy in the message; the command exits 1."""


class KubeconfigError(Day2Error):
    pass


class Unreachable(Day2Error):
    pass


class NotKarmada(Day2Error):
    pass


class FederationNotFound(Day2Error):
    pass


@dataclass(frozen=True)
class Target:
    """Where the plugin talks to: the kubeconfig context, its server and namespace."""

    api: client.ApiClient
    context: str
    server: str
    namespace: str

    def where(self) -> str:
        return f"context {self.context}, server {self.server}"


@dataclass(frozen=True)
class FederationView:
    """The federation as stored and its XlineClusters on Karmada, by member cluster id."""

    body: dict[str, Any]
    clusters: dict[str, dict[str, Any]]


@contextlib.asynccontextmanager
async def connect(
    kubeconfig: Path | None, context: str | None, namespace: str | None
) -> AsyncIterator[Target]:
    """A client for the chosen context, once it is known to be a Karmada API server with
    the XlineFederation CRD; `namespace` defaults to the context's, then `default`."""
    files = str(kubeconfig) if kubeconfig is not None else None
    if kubeconfig is not None and not kubeconfig.is_file():
        raise KubeconfigError(f"--kubeconfig {kubeconfig}: no such file")
    try:
        contexts, active = config.list_kube_config_contexts(config_file=files)
        context = context or _current_context(files) or (active or {}).get("name")
        chosen = next((c for c in contexts if c["name"] == context), None)
        if chosen is None:
            names = ", ".join(sorted(c["name"] for c in contexts)) or "none"
            if context is None:
                raise KubeconfigError("the kubeconfig names no current context; pass --context")
            raise KubeconfigError(
                f"context {context!r} is not in the kubeconfig (it has: {names}); "
                "pick one with --context"
            )
        configuration = client.Configuration()
        await config.load_kube_config(
            config_file=files,
            context=chosen["name"],
            client_configuration=configuration,
            # Token refreshes are not written back into the user's kubeconfig.
            persist_config=False,
        )
    except (ConfigException, OSError) as error:
        raise KubeconfigError(
            f"cannot load the kubeconfig ({files or 'KUBECONFIG or ~/.kube/config'}): {error}; "
            "pass the Karmada API server's with --kubeconfig (and --context)"
        ) from None
    api = client.ApiClient(configuration)
    try:
        target = Target(
            api=api,
            context=chosen["name"],
            server=configuration.host,
            namespace=namespace or chosen.get("context", {}).get("namespace") or "default",
        )
        await _check_karmada(target)
        yield target
    finally:
        await api.close()


def _current_context(files: str | None) -> str | None:
    """The current context as kubectl picks it: from the first file of the list that
    sets one (kubernetes_asyncio's merge lets the last file win instead)."""
    paths = files if files is not None else os.environ.get("KUBECONFIG", "~/.kube/config")
    for path in paths.split(os.pathsep):
        try:
            document = yaml.safe_load(Path(path).expanduser().read_text()) or {}
        except (OSError, yaml.YAMLError):
            continue  # kubectl skips missing files too; the loader reports bad ones
        if isinstance(document, dict) and document.get("current-context"):
            return str(document["current-context"])
    return None


async def _check_karmada(target: Target) -> None:
    try:
        groups = await client.ApisApi(target.api).get_api_versions(_request_timeout=TIMEOUT)
    except (TimeoutError, aiohttp.ClientError, OSError) as error:
        raise Unreachable(
            f"cannot reach the API server ({target.where()}): {error or type(error).__name__}; "
            "check that it runs and that --kubeconfig/--context name the Karmada API server"
        ) from None
    except client.ApiException as error:
        raise Unreachable(
            f"the API server ({target.where()}) refused to list its APIs: "
            f"{error.status} {error.reason}; check the kubeconfig's credentials"
        ) from None
    served = {g.name for g in groups.groups or []}
    if KARMADA_GROUP not in served:
        raise NotKarmada(
            f"{target.where()} is not a Karmada API server (it serves no {KARMADA_GROUP} API); "
            "XlineFederations live on Karmada: use its kubeconfig (--kubeconfig/--context)"
        )
    if GROUP not in served:
        raise NotKarmada(
            f"the Karmada API server ({target.where()}) has no XlineFederation CRD; install the "
            "federation tier first: "
            "xlinefed render federation --target karmada | kubectl apply -f -"
        )


async def read_federation(target: Target, name: str) -> FederationView:
    """The federation and its XlineClusters, or `FederationNotFound` naming where it looked."""
    body = await _read(target, name)
    try:
        placed = await objects.list_labelled(
            target.api,
            f"{GROUP}/{VERSION}",
            "XlineCluster",
            target.namespace,
            f"{LABEL_FEDERATION}={name}",
        )
    except objects.KubernetesError:
        placed = {}  # the federation's own status still answers; the table says so
    clusters = {
        item["spec"]["clusterId"]: item
        for item in placed.values()
        if item.get("spec", {}).get("clusterId")
    }
    return FederationView(body, clusters)


async def _read(target: Target, name: str) -> dict[str, Any]:
    try:
        body = await objects.read(target.api, PLURAL, target.namespace, name)
    except objects.KubernetesError as error:
        raise Day2Error(f"{error} ({target.where()})") from None
    if body is None:
        raise FederationNotFound(
            f"XlineFederation {name!r} not found in namespace {target.namespace!r} "
            f"({target.where()}); list them with `kubectl get xlinefederations -A` "
            "or pass -n/--namespace"
        )
    return body


async def set_paused(target: Target, name: str, paused: bool) -> tuple[bool, dict[str, Any]]:
    """Set spec.paused with a JSON merge patch under our own field manager (a merge patch
    takes no ownership of the rest of the spec, so the user's own applies keep it);
    returns the value before and the object after. Nothing is written when it already
    has the value."""
    body = await _read(target, name)
    before = bool(body.get("spec", {}).get("paused", False))
    if before == paused:
        return before, body
    try:
        with objects.translated(f"setting spec.paused of XlineFederation {name}"):
            after = await client.CustomObjectsApi(target.api).patch_namespaced_custom_object(
                GROUP,
                VERSION,
                target.namespace,
                PLURAL,
                name,
                {"spec": {"paused": paused}},
                field_manager=MANAGER,
                _content_type=objects.MERGE_PATCH,
                _request_timeout=TIMEOUT,
            )
    except objects.KubernetesError as error:
        raise Day2Error(f"{error} ({target.where()})") from None
    return before, dict(after)
