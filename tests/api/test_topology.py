"""Identity and topology: member names, DNS names, URLs, initial-cluster, and placement's
split of a federation into per-cluster resources."""

from __future__ import annotations

import pytest

from tests.api._examples import EXAMPLES, federation
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineCluster, XlineFederation
from xlinefed.placement import split
from xlinefed.topology import (
    cluster_members,
    desired_members,
    initial_cluster,
    member_name,
    parse_member_name,
)


def _fed(**spec: object) -> XlineFederation:
    return parse(XlineFederation, federation(**spec))


def test_member_names_follow_federation_cluster_ordinal() -> None:
    fed = _fed(clusters=[{"id": "member1", "replicas": 2}, {"id": "member2", "replicas": 1}])
    names = [m.name for m in desired_members(fed)]
    assert names == ["demo-member1-0", "demo-member1-1", "demo-member2-0"]
    assert member_name("demo", "member1", 7) == "demo-member1-7"


def test_default_dns_names_follow_the_mcs_headless_service_form() -> None:
    members = desired_members(_fed())
    assert members[0].host == "demo-member1-0.member1.demo.db.svc.clusterset.local"
    assert [m.cluster for m in members] == ["member1", "member2", "member3"]
    assert all(m.ordinal == 0 for m in members)


def test_default_urls_are_plain_http_on_the_default_ports() -> None:
    m = desired_members(_fed())[1]
    assert m.peer_url == "http://demo-member2-0.member2.demo.db.svc.clusterset.local:2380"
    assert m.client_url == "http://demo-member2-0.member2.demo.db.svc.clusterset.local:2379"


def test_tls_switches_the_scheme_of_both_links() -> None:
    both = desired_members(_fed(tls={"peerSecretRef": "p", "clientSecretRef": "c"}))[0]
    assert both.peer_url.startswith("https://") and both.client_url.startswith("https://")
    # Without a client Secret of its own, a member serves its clients with the peer one.
    peer_only = desired_members(_fed(tls={"peerSecretRef": "p"}))[0]
    assert peer_only.peer_url.startswith("https://")
    assert peer_only.client_url.startswith("https://")
    off = desired_members(_fed(tls={"enabled": False}))[0]
    assert off.peer_url.startswith("http://") and off.client_url.startswith("http://")


def test_custom_template_and_ports() -> None:
    fed = parse(XlineFederation, EXAMPLES["xline-full"])
    m = desired_members(fed)[0]
    assert m.name == "demo-aws-eu-0"
    assert m.host == "demo-aws-eu-0.aws-eu.db.mesh.example"
    assert m.peer_url == "https://demo-aws-eu-0.aws-eu.db.mesh.example:12380"
    assert m.client_url == "https://demo-aws-eu-0.aws-eu.db.mesh.example:12379"
    ordinal_template = _fed(network={"dnsTemplate": "{member}.o{ordinal}.{cluster}.example"})
    assert desired_members(ordinal_template)[0].host == "demo-member1-0.o0.member1.example"


def test_default_namespace_is_default() -> None:
    obj = federation()
    del obj["metadata"]["namespace"]
    fed = parse(XlineFederation, obj)
    assert desired_members(fed)[0].host.endswith(".demo.default.svc.clusterset.local")


def test_initial_cluster_string_lists_every_member_in_order() -> None:
    fed = _fed(clusters=[{"id": "a", "replicas": 2}, {"id": "b", "replicas": 1}])
    assert initial_cluster(desired_members(fed)) == (
        "demo-a-0=http://demo-a-0.a.demo.db.svc.clusterset.local:2380,"
        "demo-a-1=http://demo-a-1.a.demo.db.svc.clusterset.local:2380,"
        "demo-b-0=http://demo-b-0.b.demo.db.svc.clusterset.local:2380"
    )


def test_clusters_with_zero_replicas_have_no_members() -> None:
    fed = parse(XlineFederation, EXAMPLES["etcd-with-empty-cluster"])
    assert {m.cluster for m in desired_members(fed)} == {"member1"}
    assert len(desired_members(fed)) == 3


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_split_gives_one_cluster_per_member_cluster_with_the_whole_topology(name: str) -> None:
    fed = parse(XlineFederation, EXAMPLES[name])
    parts = split(fed)
    assert list(parts) == [c.id for c in fed.spec.clusters]
    for cluster in fed.spec.clusters:
        part = parts[cluster.id]
        assert isinstance(part, XlineCluster)
        assert part.spec.cluster_id == cluster.id
        assert part.spec.replicas == cluster.replicas
        assert part.spec.federation == fed.name
        assert part.spec.clusters == fed.spec.clusters
        assert part.metadata.name == f"{fed.name}-{cluster.id}"
        assert part.metadata.namespace == fed.namespace
        assert part.metadata.labels == {
            "xlinefed.io/federation": fed.name,
            "xlinefed.io/cluster": cluster.id,
        }
        # The shared template travels unchanged.
        for field in ("engine", "version", "image", "bootstrap", "storage", "network", "tls"):
            assert getattr(part.spec, field) == getattr(fed.spec, field), field
        assert part.spec.engine_args == fed.spec.engine_args
        assert part.spec.update_strategy == fed.spec.update_strategy
        assert part.spec.paused == fed.spec.paused
        # Every member operator computes the same peers as the federation does.
        assert desired_members(part) == desired_members(fed)


def test_split_cluster_round_trips_through_the_wire() -> None:
    part = split(parse(XlineFederation, EXAMPLES["xline-full"]))["gcp-us"]
    again = parse(XlineCluster, part.to_wire())
    assert again == part


def test_cluster_members_is_spec_order_then_ordinal() -> None:
    fed = _fed(clusters=[{"id": "zeta", "replicas": 2}, {"id": "alpha", "replicas": 2}])
    members = cluster_members(fed.name, fed.namespace, fed.spec, fed.spec.clusters)
    assert [(m.cluster, m.ordinal) for m in members] == [
        ("zeta", 0),
        ("zeta", 1),
        ("alpha", 0),
        ("alpha", 1),
    ]


@pytest.mark.parametrize(
    ("federation_name", "cluster", "ordinal"),
    [("demo", "member1", 0), ("demo", "aws-eu-west", 12), ("a-b", "c-d-e", 3), ("x", "0", 98)],
)
def test_parse_member_name_round_trips(federation_name: str, cluster: str, ordinal: int) -> None:
    name = member_name(federation_name, cluster, ordinal)
    assert parse_member_name(federation_name, name) == (cluster, ordinal)


@pytest.mark.parametrize(
    "name", ["other-member1-0", "demo-member1", "demo-member1-x", "demo--0", "demo-", "demo"]
)
def test_parse_member_name_rejects_foreign_names(name: str) -> None:
    assert parse_member_name("demo", name) is None
