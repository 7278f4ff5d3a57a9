"""From a resource spec to the planner's `Desired`."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from xlinefed.api.engines import profile
from xlinefed.api.models import ConsensusTemplate, ScaleInPolicy, XlineCluster, XlineFederation
from xlinefed.planner.model import Desired, DesiredMember, Formation, RecoveryRequest
from xlinefed.topology import desired_members


def template_revision(template: ConsensusTemplate) -> str:
    """A short, stable hash of what a member runs; a change means a rolling restart."""
    subject: dict[str, object] = {
        "engine": template.engine.value,
        "image": template.image,
        "version": template.version,
        "args": dict(sorted(template.engine_args.items())),
    }
    # The pod template's fields a running pod cannot take (resources, scheduling); its
    # labels and annotations are patched onto running pods instead, so they are not
    # here. Left out while unset, so a spec without a podTemplate keeps its revision.
    if pod := template.pod_template.restart_part():
        subject["pod"] = pod
    payload = json.dumps(subject, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:10]


def desired_from(
    resource: XlineFederation | XlineCluster, scope: frozenset[str] | None = None
) -> Desired:
    spec = resource.spec
    return Desired(
        members=tuple(
            DesiredMember(cluster=m.cluster, ordinal=m.ordinal, name=m.name)
            for m in desired_members(resource)
        ),
        clusters=tuple(c.id for c in spec.clusters),
        revision=template_revision(spec),
        engine=profile(spec.engine),
        version=spec.version,
        quota_bytes=profile(spec.engine).quota_bytes(spec.engine_args),
        bootstrap=spec.bootstrap,
        cluster_order=spec.update_strategy.cluster_order,
        partitions=dict(spec.update_strategy.partitions),
        max_promote_lag=promote_lag(spec),
        delete_data_on_scale_in=spec.storage.on_scale_in is ScaleInPolicy.DELETE,
        paused=spec.paused,
        scope=scope,
        departed={d.id: epoch_seconds(d.since) for d in getattr(spec, "departed", [])},
        lost_cluster_grace=float(spec.lost_cluster_grace_period_seconds),
        recovery=None
        if spec.recovery is None
        else RecoveryRequest(
            from_member=spec.recovery.from_member,
            automatic=spec.recovery.automatic,
            requested_at=spec.recovery.requested_at,
        ),
    )


def promote_lag(spec: ConsensusTemplate) -> int:
    """The spec's maxPromoteLag, or the engine's default."""
    lag = spec.update_strategy.max_promote_lag
    return profile(spec.engine).default_promote_lag if lag is None else lag


def epoch_seconds(rfc3339: str) -> float:
    """`2026-12-01T20:00:00Z` → seconds since the epoch."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def formation_of(cluster: XlineCluster, desired: Desired) -> Formation:
    """The bootstrap authority an XlineCluster carries. Without one (written by hand, or
    by an older federation operator) only a single-cluster topology may bootstrap, on its
    own authority; a cluster of a wider topology waits for the federation tier."""
    recorded = cluster.spec.formation
    if recorded is not None:
        return Formation(
            initial_members=tuple(recorded.initial_members),
            formed=recorded.formed,
            formed_at=recorded.formed_at,
        )
    others = [c for c in cluster.spec.clusters if c.id != cluster.spec.cluster_id and c.replicas]
    return Formation(initial_members=() if others else desired.proposed_initial_members())
