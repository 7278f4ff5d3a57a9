"""What each operator process is configured with: one frozen object, built by the CLI
from its options (and, for the few knobs tests and deployments set without a flag, the
environment, read here and nowhere else), handed to kopf as `memo.settings`.

Times are in seconds.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from xlinefed.platforms.kubernetes.manifests import GUARD_IMAGE


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not a number of seconds; unset it or give e.g. 2"
        ) from None
    if value <= 0:
        raise ValueError(f"{name}={raw!r} must be more than 0 seconds")
    return value


@dataclass(frozen=True)
class OperatorSettings:
    """Shared by both operators."""

    #: Kubeconfig of the API server to watch; None: the pod's in-cluster config.
    kubeconfig: Path | None = None
    #: Watch one namespace only; None: every namespace.
    namespace: str | None = None
    #: Seconds between passes over an object while nothing wakes it earlier.
    idle_interval: float = 2.0
    #: Longest one reconcile pass may take, a step and its retries included, seconds.
    pass_timeout: float = 120.0
    #: kopf's liveness endpoint, e.g. http://0.0.0.0:8081/healthz in a pod; None: off.
    liveness_endpoint: str | None = None


@dataclass(frozen=True)
class MemberOperatorSettings(OperatorSettings):
    #: This member cluster's id, as in the spec and in Karmada.
    cluster_id: str = ""
    #: Seconds before the next pass after a step was applied (observe its effect soon).
    after_step: float = 0.2
    #: Serve Prometheus metrics on 127.0.0.1:PORT; None: not served.
    metrics_port: int | None = None
    #: The image of the member pods' start-guard init container: the operator's own.
    guard_image: str = GUARD_IMAGE

    @classmethod
    def build(
        cls,
        *,
        cluster_id: str,
        kubeconfig: Path | None = None,
        namespace: str | None = None,
        metrics_port: int | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> MemberOperatorSettings:
        """From the CLI's options; `XLINEFED_RECONCILE_INTERVAL` (seconds),
        `XLINEFED_LIVENESS_ENDPOINT` and `XLINEFED_OPERATOR_IMAGE` (the start guard's image,
        for a registry mirror) from the environment."""
        return cls(
            cluster_id=cluster_id,
            kubeconfig=kubeconfig,
            namespace=namespace,
            metrics_port=metrics_port,
            idle_interval=_seconds(environ, "XLINEFED_RECONCILE_INTERVAL", 2.0),
            liveness_endpoint=environ.get("XLINEFED_LIVENESS_ENDPOINT") or None,
            guard_image=environ.get("XLINEFED_OPERATOR_IMAGE") or GUARD_IMAGE,
        )


@dataclass(frozen=True)
class FederationOperatorSettings(OperatorSettings):
    #: A safety net only: spec changes and every member's status change wake the
    #: federation at once.
    idle_interval: float = 30.0

    @classmethod
    def build(
        cls,
        *,
        kubeconfig: Path | None = None,
        namespace: str | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> FederationOperatorSettings:
        """From the CLI's options; `XLINEFED_FEDERATION_RESYNC` (seconds) and
        `XLINEFED_LIVENESS_ENDPOINT` from the environment."""
        return cls(
            kubeconfig=kubeconfig,
            namespace=namespace,
            idle_interval=_seconds(environ, "XLINEFED_FEDERATION_RESYNC", 30.0),
            liveness_endpoint=environ.get("XLINEFED_LIVENESS_ENDPOINT") or None,
        )
