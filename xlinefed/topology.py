"""Identity: member names, DNS names and URLs.

Pure functions of the spec. A member's name is `<federation>-<cluster>-<ordinal>`: the
pod name, the consensus member name and the data directory name, unique in the federation.

This is the lowest layer: the API's validation checks names with these very functions, so
the models are imported for their types only. The split of a federation into per-cluster
resources is placement's (`xlinefed.placement.split`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xlinefed.api.models import (
        ConsensusTemplate,
        MemberClusterSpec,
        XlineCluster,
        XlineFederation,
    )

__all__ = [
    "Member",
    "cluster_members",
    "desired_members",
    "initial_cluster",
    "member_name",
    "parse_member_name",
    "render_host",
]


@dataclass(frozen=True, order=True)
class Member:
    """One consensus member of the federation, and where it is reached."""

    cluster: str
    ordinal: int
    name: str
    host: str
    peer_url: str
    client_url: str


def member_name(federation: str, cluster: str, ordinal: int) -> str:
    return f"{federation}-{cluster}-{ordinal}"


def render_host(
    template: str, *, member: str, cluster: str, federation: str, namespace: str, ordinal: int
) -> str:
    """A member's DNS name from `spec.network.dnsTemplate`."""
    return template.format(
        member=member, cluster=cluster, federation=federation, namespace=namespace, ordinal=ordinal
    )


def scheme(template: ConsensusTemplate, peer: bool) -> str:
    tls = template.tls
    if tls is None or not tls.enabled:
        return "http"
    secret = tls.peer_secret_ref if peer else (tls.client_secret_ref or tls.peer_secret_ref)
    return "https" if secret else "http"


def make_member(
    federation: str, namespace: str, template: ConsensusTemplate, cluster: str, ordinal: int
) -> Member:
    name = member_name(federation, cluster, ordinal)
    host = render_host(
        template.network.dns_template,
        member=name,
        cluster=cluster,
        federation=federation,
        namespace=namespace,
        ordinal=ordinal,
    )
    ports = template.network.ports
    return Member(
        cluster=cluster,
        ordinal=ordinal,
        name=name,
        host=host,
        peer_url=f"{scheme(template, peer=True)}://{host}:{ports.peer}",
        client_url=f"{scheme(template, peer=False)}://{host}:{ports.client}",
    )


def cluster_members(
    federation: str,
    namespace: str,
    template: ConsensusTemplate,
    clusters: Sequence[MemberClusterSpec],
) -> list[Member]:
    """Every desired member, clusters in spec order, ordinals ascending."""
    return [
        make_member(federation, namespace, template, cluster.id, ordinal)
        for cluster in clusters
        for ordinal in range(cluster.replicas)
    ]


def desired_members(resource: XlineFederation | XlineCluster) -> list[Member]:
    spec = resource.spec
    federation = spec.federation if resource.kind == "XlineCluster" else resource.name
    return cluster_members(federation, resource.namespace, spec, spec.clusters)


def parse_member_name(federation: str, name: str) -> tuple[str, int] | None:
    """`demo-member1-2` → ("member1", 2) for federation `demo`; None if not ours."""
    prefix = f"{federation}-"
    if not name.startswith(prefix):
        return None
    cluster, _, ordinal = name[len(prefix) :].rpartition("-")
    if not cluster or not ordinal.isdigit():
        return None
    return cluster, int(ordinal)


def initial_cluster(members: Sequence[Member]) -> str:
    """The `--initial-cluster` value for static bootstrap: `name=peerURL,...`."""
    return ",".join(f"{m.name}={m.peer_url}" for m in members)
