"""What each consensus engine allows, as data the planner and validation read.

The rules never branch on the engine's name; they read these fields. Sources:
etcd 3.4+ allows one learner at a time (its refusal of adds for a few seconds after a
member starts, "unhealthy cluster", is retried by the consensus client); Xline cannot
grow from one member or shrink below three (Xline issue #447), has no joint consensus
(#970), refuses to promote a learner more than 500 entries behind (curp's
`MAX_PROMOTE_GAP`), needs one initial member started with `--is-leader`, serves metrics
on 0.0.0.0:9100 unless moved, answers defragment with "unimplemented", and may
panic in a task without exiting; see docs/engines.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Engine(StrEnum):
    XLINE = "xline"
    ETCD = "etcd"


def minor_of(version: str) -> tuple[int, int]:
    """`v3.5.17` → (3, 5)."""
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


@dataclass(frozen=True)
class VersionedArgs:
    """Flags a member gets only on the releases that know them, by (major, minor),
    both ends inclusive; None leaves that end open."""

    args: tuple[str, ...]
    since: tuple[int, int] | None = None
    until: tuple[int, int] | None = None

    def applies(self, version: str) -> bool:
        minor = minor_of(version)
        return (self.since is None or minor >= self.since) and (
            self.until is None or minor <= self.until
        )


@dataclass(frozen=True)
class EngineProfile:
    engine: Engine
    #: Members join as learners first (invariant 3); without it, adds would be voters.
    supports_learners: bool
    #: Learners allowed in the cluster at once (etcd: `--experimental-max-learners`, 1).
    max_learners: int
    #: The engine can hand leadership to a named member (etcd MoveLeader).
    supports_move_leader: bool
    #: The fewest voters the engine can run with; a spec below it is rejected.
    min_voters: int
    #: Default image repository and the binary inside it.
    default_image: str
    binary: str
    #: The most entries a learner may be behind and still be promoted, where the engine
    #: enforces one (Xline/curp: `MAX_PROMOTE_GAP`, 500); None when it does not.
    max_promote_gap: int | None = None
    #: `maxPromoteLag` when the spec does not set it.
    default_promote_lag: int = 1000
    #: Static bootstrap needs exactly one initial member started with this flag (Xline:
    #: without it pre-votes time out and no leader is ever elected).
    initial_leader_flag: str | None = None
    #: Flag that moves the member's metrics listener (Xline binds 0.0.0.0:9100 by
    #: default, so several members on one host collide); None when there is none.
    metrics_port_flag: str | None = None
    #: Arguments that keep a member's metrics off every non-loopback address, with
    #: `{port}` for a loopback port of its own (local mode). Xline can neither turn its
    #: metrics off nor bind them to loopback; in push mode it opens no listener and
    #: pushes to the given loopback port instead.
    loopback_metrics_args: tuple[str, ...] = ()
    #: The port a member in a pod serves its metrics on (declared as the container port
    #: `metrics` and passed with `metrics_port_flag`), for engines that always serve them;
    #: None when the engine serves none unless asked.
    pod_metrics_port: int | None = None
    #: How a pod's readiness is probed on the client port: "http" (GET /health, etcd)
    #: or "grpc" (grpc.health.v1; Xline's client port speaks gRPC only and serves the
    #: standard health service).
    readiness_probe: str = "http"
    supports_defragment: bool = True
    #: A stopped member comes back from its own write-ahead log. Xline v0.7.0 did not in
    #: our runs: a member stopped (SIGTERM) during a rolling update logged "WAL corrupted:
    #: The recovered logs are not continue" on restart and never rejoined; so rolling
    #: restarts are not offered for it (docs/engines.md).
    restarts_from_wal: bool = True
    #: Release tag in the spec → the version string its members report (Xline v0.7.0
    #: reports its crate version at that tag, 0.6.1).
    reported_versions: tuple[tuple[str, str], ...] = ()
    #: A path under the member's data directory that exists once it holds consensus
    #: state (etcd's write-ahead log; Xline's curp write-ahead log, `curp/wal`).
    data_marker: str = "member/wal"
    #: A regular expression (multiline) for a line in the member's output that means it
    #: is broken although its process runs; such a member is treated as crashed (killed,
    #: so the crash restart brings it back). Xline v0.7.0: a panic in one of its tokio
    #: tasks does not end the process. Seen: the leader's propose task panicked ("Should
    #: not insert resp_tx twice") after a membership change, leaving a leader that keeps
    #: its term by heartbeats and never commits again, so nobody elects another. Not
    #: every panic: a new learner's conf-change task panics ("server id … not found")
    #: when it replays the add and the removal of one member, and goes on serving; killed
    #: and restarted so soon, it republished an empty name and no client URLs and stopped
    #: applying, which is worse. None: no such line is known.
    fatal_output: str | None = None
    #: A regular expression (multiline) for a line a member writes when it came up
    #: without part of the log it had acknowledged. Xline v0.7.0 recovers its write-ahead
    #: log only up to the first index that is not the previous one plus one ("WAL
    #: corrupted: The recovered logs are not continue, truncated at position N") and
    #: drops the rest; seen after SIGKILL and SIGTERM, and such a member did not catch
    #: up again. While it runs so, it counts as a member whose data is lost.
    lost_log_output: str | None = None
    #: Flags that exist only on some releases (etcd's `--enable-v2` is gone in 3.6, which
    #: refuses to start with it).
    versioned_args: tuple[VersionedArgs, ...] = ()
    #: `engineArgs` every member gets unless the spec's engineArgs sets the same key
    #: (compaction and the backend quota for etcd). The quota the status warns about is
    #: `quota_arg`'s value, from engineArgs when set there.
    default_args: Mapping[str, str] = field(default_factory=dict)
    quota_arg: str | None = None
    #: The engine upgrades in place only one minor at a time (etcd: 3.6 joins only a
    #: cluster at 3.5, and data written by 3.4 must pass through 3.5); a skip is refused.
    one_minor_at_a_time: bool = False

    def args_for(self, version: str) -> list[str]:
        """The version-dependent flags a member running `version` starts with."""
        return [a for v in self.versioned_args if v.applies(version) for a in v.args]

    def quota_bytes(self, engine_args: Mapping[str, str]) -> int | None:
        """The backend quota members run with (engineArgs over the default), if known."""
        if self.quota_arg is None:
            return None
        value = engine_args.get(self.quota_arg, self.default_args.get(self.quota_arg))
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    #: The flag that restarts one member on its own data as a new one-member cluster,
    #: committing the removal of every other member (etcd `--force-new-cluster`); None
    #: when the engine has none (Xline v0.7.0), so quorum-loss recovery needs a restore
    #: from a backup instead (docs/recovery.md).
    force_new_cluster_flag: str | None = None
    #: Where a member is told its certificate files: (flag, link, file) with link "peer"
    #: or "client" (whose certificate: a member may serve clients with another one than
    #: it shows its peers) and file one of "ca", "cert", "key".
    tls_file_flags: tuple[tuple[str, str, str], ...] = ()
    #: Flags that make a member with TLS demand a certificate of every peer and client.
    tls_args: tuple[str, ...] = ()
    #: More flags a member with TLS gets, on the releases that know them.
    tls_versioned_args: tuple[VersionedArgs, ...] = ()
    #: The command that restores a snapshot into a data directory, by release (etcd:
    #: `etcdctl snapshot restore` until 3.4, `etcdutl snapshot restore` from 3.5, where
    #: etcdctl's is deprecated and 3.6 drops it); empty where a pod cannot restore yet.
    restore_tools: tuple[VersionedArgs, ...] = ()
    #: A federation whose spec.tls is omitted runs with TLS (local mode). Off while an
    #: engine's TLS has not passed every suite here (Xline: no binary in CI, issue 10;
    #: etcd: see its entry); `spec.tls.enabled: true` asks for it regardless.
    tls_by_default: bool = False
    #: In a pod with TLS on, the kubelet's probes cannot present a client certificate, so
    #: the member also serves its health on a plain-text port of its own: the flags (with
    #: `{port}`), the port and the path. None: the engine has no such listener and the
    #: probe only checks that the client port accepts connections.
    plain_health_args: tuple[str, ...] = ()
    plain_health_port: int | None = None
    plain_health_path: str = "/health"

    def reported_version(self, spec_version: str) -> str:
        """What a member running `spec_version` says it runs."""
        bare = spec_version.removeprefix("v")
        return dict(self.reported_versions).get(bare, bare)


#: etcd's default backend quota (2 GiB), made explicit.
ETCD_DEFAULT_QUOTA = 2 * 1024**3

ENGINES: dict[Engine, EngineProfile] = {
    Engine.ETCD: EngineProfile(
        engine=Engine.ETCD,
        supports_learners=True,
        max_learners=1,
        supports_move_leader=True,
        min_voters=1,
        default_image="quay.io/coreos/etcd",
        binary="etcd",
        # etcd 3.4 and 3.5 serve the v2 API unless told not to; 3.6 removed it and the flag.
        versioned_args=(VersionedArgs(("--enable-v2=false",), until=(3, 5)),),
        # Without compaction the keyspace history grows until the quota stops writes:
        # keep one hour of revisions (periodic) and an explicit 2 GiB quota (etcd's own
        # default, stated so the status can warn before it is reached).
        default_args={
            "auto-compaction-mode": "periodic",
            "auto-compaction-retention": "1h",
            "quota-backend-bytes": str(ETCD_DEFAULT_QUOTA),
        },
        quota_arg="quota-backend-bytes",
        one_minor_at_a_time=True,
        force_new_cluster_flag="--force-new-cluster",
        tls_file_flags=(
            ("--trusted-ca-file", "client", "ca"),
            ("--cert-file", "client", "cert"),
            ("--key-file", "client", "key"),
            ("--peer-trusted-ca-file", "peer", "ca"),
            ("--peer-cert-file", "peer", "cert"),
            ("--peer-key-file", "peer", "key"),
        ),
        # Without these etcd serves TLS but lets any client or peer in without a certificate.
        tls_args=("--client-cert-auth=true", "--peer-client-cert-auth=true"),
        # etcd also matches a dialling peer's certificate names against the address the
        # connection comes from (reverse DNS, else its IP). Across clusters that address is
        # a gateway's or NAT's, and its reverse name a local one, never the clusterset name
        # the certificate carries: seen refusing every peer with a cluster's wildcard
        # certificate ("tls: \"127.0.0.1\" does not match any of DNSNames"). The chain to
        # the federation's own CA is the check; the flag is renamed in 3.6.
        tls_versioned_args=(
            VersionedArgs(("--experimental-peer-skip-client-san-verification=true",), until=(3, 5)),
            VersionedArgs(("--peer-skip-client-san-verification=true",), since=(3, 6)),
        ),
        # Not yet: with TLS on, the 3.4 -> 3.5 -> 3.6 upgrade, the quota warning and three
        # partition tests of the chaos suite failed in our runs (docs/security.md); the
        # default flips once they pass.
        tls_by_default=False,
        restore_tools=(
            VersionedArgs(("etcdctl",), until=(3, 4)),
            VersionedArgs(("etcdutl",), since=(3, 5)),
        ),
        # etcd serves /health and /metrics on extra URLs without TLS (kubeadm probes its
        # etcd so, on 2381).
        plain_health_args=("--listen-metrics-urls=http://0.0.0.0:{port}",),
        plain_health_port=2381,
    ),
    Engine.XLINE: EngineProfile(
        engine=Engine.XLINE,
        supports_learners=True,
        max_learners=1,
        supports_move_leader=True,
        min_voters=3,
        default_image="ghcr.io/xline-kv/xline",
        binary="xline",
        max_promote_gap=500,
        default_promote_lag=500,
        initial_leader_flag="--is-leader",
        metrics_port_flag="--metrics-port",
        loopback_metrics_args=("--metrics-push", "--metrics-push-endpoint=http://127.0.0.1:{port}"),
        # Its default: in a pod the port is the pod's own; declared so it can be scraped.
        pod_metrics_port=9100,
        readiness_probe="grpc",
        supports_defragment=False,
        restarts_from_wal=False,
        reported_versions=(("0.7.0", "0.6.1"),),
        data_marker="curp/wal",
        # The message of curp's `push_logs` assertion (raw_curp/mod.rs:561), the line after
        # Rust's "thread '<name>' (<tid>) panicked at <file>:<line>:<col>:".
        fatal_output=r"^Should not insert resp_tx twice",
        lost_log_output=r"WAL corrupted: The recovered logs are not continue, truncated",
        # Xline v0.7.0 (utils/src/config/tls_config.rs): `peer-*` is the server side of
        # every listener (its CA verifies the certificates clients and peers present),
        # `client-*` what a member presents and trusts when it dials its peers. Untested
        # here: no Xline binary in CI (issue 10). One server certificate serves both of
        # its listeners, so every flag takes the peer certificate.
        tls_file_flags=(
            ("--peer-ca-cert-path", "peer", "ca"),
            ("--peer-cert-path", "peer", "cert"),
            ("--peer-key-path", "peer", "key"),
            ("--client-ca-cert-path", "peer", "ca"),
            ("--client-cert-path", "peer", "cert"),
            ("--client-key-path", "peer", "key"),
        ),
    ),
}


def restore_tool(engine: Engine, version: str) -> str | None:
    """The command that restores a snapshot for this release, or None."""
    tools = [v.args[0] for v in profile(engine).restore_tools if v.applies(version)]
    return tools[0] if tools else None


def profile(engine: Engine) -> EngineProfile:
    return ENGINES[engine]
