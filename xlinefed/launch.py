"""The engine command line for one member: the same for a local process and a pod.

Pure: it only formats flags. etcd's flags are documented in etcd's configuration guide;
Xline's in its usage guide (`--name`, `--members`, `--data-dir`, listen/advertise URLs,
`--initial-cluster-state`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from xlinefed.api.engines import Engine, profile
from xlinefed.planner.steps import StartMode


@dataclass(frozen=True)
class TLSFiles:
    """Paths of a member's CA bundle, certificate and key (PEM)."""

    ca: str
    cert: str
    key: str


@dataclass(frozen=True)
class LaunchSpec:
    engine: Engine
    binary: str
    name: str
    data_dir: str
    listen_client_url: str
    advertise_client_url: str
    listen_peer_url: str
    advertise_peer_url: str
    #: (name, peer URL) of every member the new member must know at start.
    initial_cluster: Sequence[tuple[str, str]]
    mode: StartMode
    cluster_token: str
    #: The release the member runs (spec.version): picks the version-dependent flags.
    version: str = ""
    extra_args: Mapping[str, str] = field(default_factory=dict)
    #: Start as the initial leader of a static bootstrap (Xline's `--is-leader`).
    initial_leader: bool = False
    #: A loopback port of the member's own for its metrics (local mode), for engines
    #: whose default listener would collide or bind beyond loopback.
    metrics_port: int | None = None
    #: The port the member serves its metrics on (in a pod), for engines that move it with
    #: a flag (`EngineProfile.metrics_port_flag`).
    metrics_listen_port: int | None = None
    #: Start once as a new one-member cluster on the existing data (quorum-loss
    #: recovery; `EngineProfile.force_new_cluster_flag`).
    force_new_cluster: bool = False
    #: The member's certificates; None serves plain text (its URLs must be http then).
    tls: TLSFiles | None = None
    #: The certificate it serves its clients with, when not `tls` (Kubernetes: a Secret of
    #: its own in spec.tls.clientSecretRef).
    client_tls: TLSFiles | None = None
    #: With TLS, a plain-text port for the kubelet's probes (`EngineProfile.plain_health_*`).
    plain_health_port: int | None = None


def command(spec: LaunchSpec) -> list[str]:
    members = ",".join(f"{name}={url}" for name, url in spec.initial_cluster)
    if spec.engine is Engine.ETCD:
        argv = [
            spec.binary,
            f"--name={spec.name}",
            f"--data-dir={spec.data_dir}",
            f"--listen-client-urls={spec.listen_client_url}",
            f"--advertise-client-urls={spec.advertise_client_url}",
            f"--listen-peer-urls={spec.listen_peer_url}",
            f"--initial-advertise-peer-urls={spec.advertise_peer_url}",
            f"--initial-cluster={members}",
            f"--initial-cluster-state={spec.mode.value}",
            f"--initial-cluster-token={spec.cluster_token}",
            # Without strict reconfig checks etcd would accept a member add that loses quorum.
            "--strict-reconfig-check=true",
        ]
    else:
        argv = [
            spec.binary,
            f"--name={spec.name}",
            f"--data-dir={spec.data_dir}",
            "--storage-engine=rocksdb",
            f"--members={members}",
            f"--client-listen-urls={spec.listen_client_url}",
            f"--client-advertise-urls={spec.advertise_client_url}",
            f"--peer-listen-urls={spec.listen_peer_url}",
            f"--peer-advertise-urls={spec.advertise_peer_url}",
            f"--initial-cluster-state={spec.mode.value}",
        ]
        engine = profile(spec.engine)
        if spec.initial_leader and spec.mode is StartMode.NEW and engine.initial_leader_flag:
            argv.append(engine.initial_leader_flag)
        if spec.metrics_port is not None:
            argv.extend(a.format(port=spec.metrics_port) for a in engine.loopback_metrics_args)
        elif spec.metrics_listen_port is not None and engine.metrics_port_flag:
            argv.append(f"{engine.metrics_port_flag}={spec.metrics_listen_port}")
    engine = profile(spec.engine)
    if spec.version:
        argv.extend(engine.args_for(spec.version))
    if spec.force_new_cluster:
        if engine.force_new_cluster_flag is None:
            raise ValueError(f"{spec.engine.value} has no force-new-cluster flag")
        argv.append(engine.force_new_cluster_flag)
    if spec.tls is not None:
        links = {"peer": spec.tls, "client": spec.client_tls or spec.tls}
        argv.extend(
            f"{flag}={getattr(links[link], which)}" for flag, link, which in engine.tls_file_flags
        )
        argv.extend(engine.tls_args)
        if spec.version:
            argv.extend(
                a for v in engine.tls_versioned_args if v.applies(spec.version) for a in v.args
            )
        if spec.plain_health_port is not None:
            argv.extend(a.format(port=spec.plain_health_port) for a in engine.plain_health_args)
    args = {**engine.default_args, **spec.extra_args}
    argv.extend(f"--{key}={value}" for key, value in sorted(args.items()))
    return argv
