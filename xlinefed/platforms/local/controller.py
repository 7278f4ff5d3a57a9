"""The local controller: the local twin of an operator, one detached process per federation.

It re-reads the spec each pass, reconciles one step, writes status.json, and repeats, so a
member that dies is restarted (or replaced when its data is gone) without anyone running
a command. An exclusive `flock` on controller.lock makes a second controller exit at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlinefed.api.conditions import observation_failed
from xlinefed.api.models import ConsensusStatus, XlineFederation
from xlinefed.api.validation import SpecError
from xlinefed.consensus.auth import enable_auth
from xlinefed.consensus.client import ChannelPool, ConsensusClient
from xlinefed.executor import Executor, Outcome
from xlinefed.logs import configure, get_logger
from xlinefed.planner import Done
from xlinefed.planner.desired import desired_from
from xlinefed.platforms.local import processes
from xlinefed.platforms.local.backups import schedule_loop
from xlinefed.platforms.local.platform import EngineNotFound, LocalPlatform
from xlinefed.platforms.local.state import FederationDir
from xlinefed.reporting import build_status, now_rfc3339, plain_text_warning

log = get_logger(__name__)

#: Longest pause between passes when nothing happens (seconds).
IDLE_INTERVAL = 1.0


def controller_argv(root: Path, name: str) -> list[str]:
    # -u: its log file shows each line as it is written.
    return [
        sys.executable,
        "-u",
        "-m",
        "xlinefed.cli",
        "local",
        "controller",
        name,
        "--state-dir",
        str(root),
    ]


def controller_alive(directory: FederationDir) -> bool:
    record = directory.read_controller()
    return record is not None and processes.is_alive(record)


def ensure_controller(root: Path, name: str) -> bool:
    """Start the controller unless it runs; True if one was started."""
    directory = FederationDir(root, name)
    if controller_alive(directory):
        return False
    record = processes.spawn(controller_argv(root, name), directory.controller_log)
    # Written at once so that concurrent commands see it; the controller that wins the
    # flock rewrites it, one that loses exits and leaves the winner's record standing.
    if not controller_alive(directory):
        directory.write_controller(record)
    return True


def stop_controller(directory: FederationDir) -> None:
    record = directory.read_controller()
    if record is not None:
        processes.stop(record, grace=15.0)


PLAIN_TEXT_WARNING = plain_text_warning(
    "spec.tls.enabled is false (or the federation formed before TLS was the default); "
    "restore a backup into a new federation with TLS on"
)


def _status_document(
    directory: FederationDir,
    federation: XlineFederation,
    platform: LocalPlatform,
    outcome: Outcome,
    error: str | None,
    started: float,
) -> dict[str, Any]:
    # The spec this pass reconciled, not a fresh read: the CLI may have written a newer
    # one meanwhile, and reporting its generation as reached would end its wait early.
    desired = desired_from(federation)
    previous = directory.read_status()
    status = build_status(
        desired,
        federation.spec.clusters,
        federation.metadata.generation,
        outcome,
        # Conditions keep their lastTransitionTime across passes.
        ConsensusStatus.model_validate(previous) if previous else None,
        client_url=platform.client_url,
    )
    document = status.to_wire()
    tls = platform.pki is not None
    document["security"] = {"tls": tls, "auth": tls and directory.read_facts().auth_enabled}
    if not tls:
        document["warnings"] = [*document.get("warnings", []), PLAIN_TEXT_WARNING]
    document["converged"] = isinstance(outcome.step, Done) and error is None
    document["error"] = error
    document["controllerPid"] = os.getpid()
    document["updatedAt"] = time.time()
    document["stepsApplied"] = (previous or {}).get("stepsApplied", 0) + int(outcome.applied)
    document["uptime"] = round(time.monotonic() - started, 1)
    return document


async def run(root: Path, name: str) -> int:
    directory = FederationDir(root, name)
    directory.path.mkdir(parents=True, exist_ok=True)
    lock_file = directory.controller_lock.open("w")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.info("another controller runs; exiting", federation=name)
        return 0
    record = processes.ProcessRecord(
        os.getpid(),
        processes._stat(os.getpid())[1],
        tuple(sys.argv),  # type: ignore[index]
    )
    directory.write_controller(record)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    holder = f"local-controller-{name}-{os.getpid()}"
    started = time.monotonic()
    log.info("controller started", federation=name, pid=os.getpid())
    # Scheduled backups beside the reconcile loop: a long upload never delays a step.
    backups = asyncio.create_task(schedule_loop(directory, stopping), name="backups")
    channels = ChannelPool()
    while not stopping.is_set():
        delay = IDLE_INTERVAL
        if directory.read_controller() != record:
            directory.write_controller(record)  # a losing starter may have overwritten it
        try:
            federation = directory.read_spec()
            platform = LocalPlatform(directory, federation)
            # Certificates renewed before the pass (none is due while it runs), and the
            # pool dials with the controller's current one.
            await channels.use_tls(
                platform.pki.ensure_all(directory.read_facts().ports, now=datetime.now(UTC))
                if platform.pki is not None
                else None
            )
            executor = Executor(platform, federation.name, holder, channels=channels)
            outcome = await executor.reconcile_once(desired_from(federation))
            if platform.pki is not None and isinstance(outcome.step, Done):
                await _secure_store(directory, platform, channels)
            directory.write_status(
                _status_document(directory, federation, platform, outcome, outcome.error, started)
            )
            delay = outcome.requeue_after(IDLE_INTERVAL, after_step=0.0)
        except (SpecError, EngineNotFound) as error:
            log.error("cannot reconcile", federation=name, error=str(error))
            previous = directory.read_status() or {}
            directory.write_status(
                {**previous, "error": str(error), "converged": False, "updatedAt": time.time()}
            )
            delay = 5.0
        except Exception as error:
            log.exception("pass failed", federation=name, error=str(error))
            # Say so in status rather than leave the last pass's Available standing.
            previous = directory.read_status() or {}
            failed = observation_failed(
                ConsensusStatus.model_validate(previous),
                str(error) or type(error).__name__,
                now_rfc3339(),
                previous.get("observedGeneration"),
            )
            directory.write_status(
                {
                    **previous,
                    **failed.to_wire(),
                    "error": str(error),
                    "converged": False,
                    "updatedAt": time.time(),
                }
            )
            delay = IDLE_INTERVAL
        if delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), timeout=delay)
    await channels.close()
    with contextlib.suppress(Exception):
        await backups
    log.info("controller stopped", federation=name)
    return 0


async def _secure_store(
    directory: FederationDir, platform: LocalPlatform, channels: ChannelPool
) -> None:
    """Users, roles and auth on, once, when the federation first converged with TLS (the
    store's users are the certificates' CNs)."""
    facts = directory.read_facts()
    if facts.auth_enabled or not facts.formed or platform.pki is None:
        return
    endpoints = [platform.client_url(m) for m in facts.ports]
    async with ConsensusClient(endpoints, pool=channels) as client:
        await enable_auth(client, platform.pki.root_password())
    facts = directory.read_facts()
    facts.auth_enabled = True
    directory.write_facts(facts)
    log.info("auth enabled", federation=directory.name)


def main(root: Path, name: str) -> int:
    configure()
    return asyncio.run(run(root, name))
