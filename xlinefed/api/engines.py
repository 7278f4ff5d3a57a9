"""What each consensus engine allows, as data the planner and validation read.

The rules never branch on the engine's name; they read these fields. Sources:
etcd 3.4+ allows one learner at a time (its refusal of adds for a few seconds after a
member starts, "unhealthy cluster", is retried by the consensus client); Xline cannot
grow from one member or shrink below three (Xline issue #447), has no joint consensus
(#970), refuses to promote a learner more than 500 entries behind (curp's
`MAX_PROMOTE_GAP`), needs one initial member started with `--is-leader`, serves metrics
on 0.0.0.0:9100 unless moved, and answers defragment with "unimplemented"; see
docs/engines.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Engine(StrEnum):
    XLINE = "xline"
    ETCD = "etcd"


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

    def reported_version(self, spec_version: str) -> str:
        """What a member running `spec_version` says it runs."""
        bare = spec_version.removeprefix("v")
        return dict(self.reported_versions).get(bare, bare)


ENGINES: dict[Engine, EngineProfile] = {
    Engine.ETCD: EngineProfile(
        engine=Engine.ETCD,
        supports_learners=True,
        max_learners=1,
        supports_move_leader=True,
        min_voters=1,
        default_image="quay.io/coreos/etcd",
        binary="etcd",
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
        supports_defragment=False,
        restarts_from_wal=False,
        reported_versions=(("0.7.0", "0.6.1"),),
        data_marker="curp/wal",
    ),
}


def profile(engine: Engine) -> EngineProfile:
    return ENGINES[engine]
