"""What each operator process is configured with: one frozen object, built by the CLI
from its options (and, for the few knobs tests and deployments set without a flag, the
environment, read here and nowhere else), handed to kopf as `memo.settings`.

Times are in seconds.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from xlinefed.operators.leases import LeaseTiming
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


def _flag(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (environ.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; give true or false")


@dataclass(frozen=True)
class LeaderElection:
    """Which Lease the replicas of one tier elect their leader with (docs/operators.md,
    "High availability"). From the environment: `XLINEFED_LEADER_ELECTION` (default
    true), `XLINEFED_LEASE_NAME`, `XLINEFED_LEASE_NAMESPACE` (the Deployment gives the
    pod's namespace through the downward API), `XLINEFED_LEASE_IDENTITY` (the pod's name,
    likewise; else host name and process id), and the timing
    `XLINEFED_LEASE_DURATION`, `XLINEFED_LEASE_RENEW_DEADLINE`,
    `XLINEFED_LEASE_RETRY_PERIOD` (seconds)."""

    enabled: bool = True
    name: str = "xlinefed-operator"
    #: None: the watched namespace, else "default".
    namespace: str | None = None
    identity: str = ""
    timing: LeaseTiming = field(default_factory=LeaseTiming)

    @classmethod
    def build(cls, environ: Mapping[str, str], *, default_name: str) -> LeaderElection:
        defaults = LeaseTiming()
        return cls(
            enabled=_flag(environ, "XLINEFED_LEADER_ELECTION", True),
            name=environ.get("XLINEFED_LEASE_NAME") or default_name,
            namespace=environ.get("XLINEFED_LEASE_NAMESPACE") or None,
            identity=environ.get("XLINEFED_LEASE_IDENTITY")
            or f"{socket.gethostname()}-{os.getpid()}",
            timing=LeaseTiming(
                duration=_seconds(environ, "XLINEFED_LEASE_DURATION", defaults.duration),
                renew_deadline=_seconds(
                    environ, "XLINEFED_LEASE_RENEW_DEADLINE", defaults.renew_deadline
                ),
                retry_period=_seconds(
                    environ, "XLINEFED_LEASE_RETRY_PERIOD", defaults.retry_period
                ),
            ),
        )

    def lease_namespace(self, watched: str | None) -> str:
        return self.namespace or watched or "default"


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
    #: Off: this process reconciles at once, alone (a single replica, local tests).
    leader: LeaderElection = field(default_factory=lambda: LeaderElection(enabled=False))
    #: Serve Prometheus metrics on METRICS_ADDRESS:PORT; None: not served.
    metrics_port: int | None = None
    #: Where metrics listen: loopback unless told (the Deployments say 0.0.0.0, so that
    #: their Services can scrape the pods).
    metrics_address: str = "127.0.0.1"


@dataclass(frozen=True)
class MemberOperatorSettings(OperatorSettings):
    #: This member cluster's id, as in the spec and in Karmada.
    cluster_id: str = ""
    #: Seconds before the next pass after a step was applied (observe its effect soon).
    after_step: float = 0.2
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
        `XLINEFED_LIVENESS_ENDPOINT`, `XLINEFED_METRICS_ADDRESS` and `XLINEFED_OPERATOR_IMAGE`
        (the start guard's image, for a registry mirror) from the environment."""
        return cls(
            cluster_id=cluster_id,
            kubeconfig=kubeconfig,
            namespace=namespace,
            metrics_port=metrics_port,
            idle_interval=_seconds(environ, "XLINEFED_RECONCILE_INTERVAL", 2.0),
            liveness_endpoint=environ.get("XLINEFED_LIVENESS_ENDPOINT") or None,
            guard_image=environ.get("XLINEFED_OPERATOR_IMAGE") or GUARD_IMAGE,
            metrics_address=environ.get("XLINEFED_METRICS_ADDRESS") or "127.0.0.1",
            leader=LeaderElection.build(environ, default_name="xlinefed-member-operator"),
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
        metrics_port: int | None = None,
        environ: Mapping[str, str] = os.environ,
    ) -> FederationOperatorSettings:
        """From the CLI's options; `XLINEFED_FEDERATION_RESYNC` (seconds),
        `XLINEFED_LIVENESS_ENDPOINT` and `XLINEFED_METRICS_ADDRESS` from the environment."""
        return cls(
            kubeconfig=kubeconfig,
            namespace=namespace,
            metrics_port=metrics_port,
            metrics_address=environ.get("XLINEFED_METRICS_ADDRESS") or "127.0.0.1",
            idle_interval=_seconds(environ, "XLINEFED_FEDERATION_RESYNC", 30.0),
            liveness_endpoint=environ.get("XLINEFED_LIVENESS_ENDPOINT") or None,
            leader=LeaderElection.build(environ, default_name="xlinefed-federation-operator"),
        )
