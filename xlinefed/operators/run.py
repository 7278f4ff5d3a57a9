"""Running an operator process: kopf in standalone mode, watching the whole cluster."""

from __future__ import annotations

import asyncio
import importlib
import os

from xlinefed.logs import configure


def run_operator(module: str, namespace: str | None) -> None:
    # gRPC's default c-ares resolver ignores /etc/hosts on some systems; the native one
    # uses the same resolution as everything else on the node.
    os.environ.setdefault("GRPC_DNS_RESOLVER", "native")
    configure()
    import logging

    import kopf

    # kopf logs every handler run at INFO; our steps and waits are logged by xlinefed.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)

    importlib.import_module(module)  # registers the handlers
    asyncio.run(
        kopf.operator(
            standalone=True,
            clusterwide=namespace is None,
            namespaces=[namespace] if namespace else [],
            # e.g. http://0.0.0.0:8081/healthz in a pod, for the liveness probe.
            liveness_endpoint=os.environ.get("XLINEFED_LIVENESS_ENDPOINT") or None,
        )
    )
