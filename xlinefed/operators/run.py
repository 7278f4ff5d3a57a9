"""Running an operator process: kopf in standalone mode, with its settings in `memo`,
behind a Lease (docs/operators.md, "High availability").

With leader election on, the process first stands by: it answers its liveness endpoint
(and serves metrics) but runs no kopf at all, so a standby never patches, posts or steps.
Once it holds the Lease it starts kopf and renews the Lease beside it. If it loses the
Lease (its renew deadline passed: the API server was unreachable, or the process was
paused), it stops kopf (each daemon's pass ends or is cancelled) and stands by again, a
candidate like any other; if kopf does not stop within STOP_TIMEOUT the process exits 1
and its pod restarts. Every reconcile
pass also asks `memo.leadership.check()` before it acts, which covers the moment between
a paused process resuming and its renew loop noticing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import importlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import kopf
from aiohttp import web
from kubernetes_asyncio import client, config

from xlinefed.logs import configure, get_logger
from xlinefed.operators import metrics
from xlinefed.operators.leadership import LeaseElector
from xlinefed.operators.settings import OperatorSettings

log = get_logger(__name__)

#: How long kopf may take to stop after the Lease is lost (its daemons have 10 s to end
#: their pass), before the process exits anyway.
STOP_TIMEOUT = 20.0


def run_operator(module: str, settings: OperatorSettings) -> None:
    # gRPC's default c-ares resolver ignores /etc/hosts on some systems; the native one
    # uses the same resolution as everything else on the node. gRPC reads only its
    # environment for this, so it is set for the process before any channel exists.
    os.environ.setdefault("GRPC_DNS_RESOLVER", "native")
    configure()
    # kopf logs every handler run at INFO; our steps and waits are logged by xlinefed.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    importlib.import_module(module)  # registers the handlers
    if settings.metrics_port is not None:
        # Before the election: a standby is scraped (and ready) too.
        metrics.serve(settings.metrics_port, settings.metrics_address)
    code = asyncio.run(_run(settings))
    if code:
        sys.exit(code)


async def _kopf(settings: OperatorSettings, memo: kopf.Memo, stop: asyncio.Event) -> None:
    await kopf.operator(
        standalone=True,
        clusterwide=settings.namespace is None,
        namespaces=[settings.namespace] if settings.namespace else [],
        liveness_endpoint=settings.liveness_endpoint,
        memo=memo,
        stop_flag=stop,
    )


async def _run(settings: OperatorSettings) -> int:
    if not settings.leader.enabled:
        await _kopf(settings, kopf.Memo(settings=settings, leadership=None), asyncio.Event())
        return 0
    leader = settings.leader
    api = await api_client(settings)
    elector = LeaseElector(
        api,
        name=leader.name,
        namespace=leader.lease_namespace(settings.namespace),
        identity=leader.identity,
        timing=leader.timing,
    )
    try:
        while True:
            metrics.LEADER.set(0)
            async with standby_health(settings.liveness_endpoint):
                await elector.acquire()
            metrics.LEADER.set(1)
            outcome = await _lead(settings, elector)
            if outcome is not _Led.LOST:
                await elector.release()
                return 0 if outcome is _Led.STOPPED else 1
            # Lost: kopf stopped; stand by again like any other candidate.
    finally:
        await api.close()


class _Led(enum.Enum):
    STOPPED = "stopped"  # kopf ended by itself (SIGTERM, SIGINT)
    LOST = "lost"  # the Lease was lost and kopf stopped
    HUNG = "hung"  # the Lease was lost and kopf did not stop in time


async def _lead(settings: OperatorSettings, elector: LeaseElector) -> _Led:
    """Run kopf while the Lease is held."""
    stop = asyncio.Event()
    memo = kopf.Memo(settings=settings, leadership=elector)
    operator = asyncio.create_task(_kopf(settings, memo, stop), name="kopf")
    keeper = asyncio.create_task(elector.keep(), name="lease-renewal")
    try:
        done, _ = await asyncio.wait({operator, keeper}, return_when=asyncio.FIRST_COMPLETED)
        if keeper not in done:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            operator.result()  # kopf's own failure, if any
            return _Led.STOPPED
        metrics.LEADER.set(0)
        # The stop flag, not a cancellation: kopf treats a stop without its flag as a
        # crash and SIGKILLs the process after a timeout.
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(operator), timeout=STOP_TIMEOUT)
        except TimeoutError:
            log.error("kopf did not stop in time after the lease was lost; exiting")
            return _Led.HUNG
        except Exception as error:
            log.warning("kopf stopped with an error", error=str(error) or repr(error))
        log.error("stopped reconciling: the lease was lost; standing by again")
        return _Led.LOST
    finally:
        # kopf leaves its SIGINT/SIGTERM handlers pointing at its finished run; a standby
        # must stop at once on SIGTERM (it holds nothing), so restore the defaults.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@contextlib.asynccontextmanager
async def standby_health(endpoint: str | None) -> AsyncIterator[None]:
    """While standing by, answer the liveness endpoint kopf answers once leading, so
    the standby's pod is live and ready without running kopf."""
    if endpoint is None:
        yield
        return
    url = urlsplit(endpoint)

    async def healthy(_: web.Request) -> web.Response:
        return web.json_response({"standby": True})

    app = web.Application()
    app.router.add_get(url.path or "/", healthy)
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, url.hostname, url.port or 80)
    await site.start()
    try:
        yield
    finally:
        await runner.cleanup()


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
