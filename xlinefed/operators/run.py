"""Running an operator process: kopf in standalone mode, with its settings in `memo`."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os

import kopf
from kubernetes_asyncio import client, config

from xlinefed.logs import configure
from xlinefed.operators.settings import OperatorSettings


def run_operator(module: str, settings: OperatorSettings) -> None:
    # gRPC's default c-ares resolver ignores /etc/hosts on some systems; the native one
    # uses the same resolution as everything else on the node. gRPC reads only its
    # environment for this, so it is set for the process before any channel exists.
    os.environ.setdefault("GRPC_DNS_RESOLVER", "native")
    configure()
    # kopf logs every handler run at INFO; our steps and waits are logged by xlinefed.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    importlib.import_module(module)  # registers the handlers
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=settings.namespace is None,
            namespaces=[settings.namespace] if settings.namespace else [],
            liveness_endpoint=settings.liveness_endpoint,
            memo=kopf.Memo(settings=settings),
        )
    )


async def api_client(settings: OperatorSettings) -> client.ApiClient:
    """The Kubernetes API client of one operator process (kept in `memo.api`)."""
    configuration = client.Configuration()
    if settings.kubeconfig is not None:
        await config.load_kube_config(
            config_file=str(settings.kubeconfig), client_configuration=configuration
        )
    else:
        config.load_incluster_config(client_configuration=configuration)
    return client.ApiClient(configuration)
