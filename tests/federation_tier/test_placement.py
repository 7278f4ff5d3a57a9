"""The federation tier's pure decisions (`xlinefed.placement`): placement, the bootstrap
authority it carries into every XlineCluster, departures and their grace period."""

from __future__ import annotations

from tests.api._examples import federation
from xlinefed.api.loading import parse
from xlinefed.api.models import ConsensusStatus, MemberRole, MemberStatus, XlineFederation
from xlinefed.placement import ClusterView, plan_federation
from xlinefed.planner.desired import desired_from, formation_of

T0 = "2026-12-01T10:00:00Z"
T1 = "2026-12-01T10:05:00Z"
T2 = "2026-12-01T10:20:00Z"


def fed(clusters: list[tuple[str, int]], **spec) -> XlineFederation:
    return parse(
        XlineFederation,
        federation(clusters=[{"id": c, "replicas": r} for c, r in clusters], **spec),
    )


def status(*, formed: bool = False, members: list[MemberStatus] | None = None) -> ConsensusStatus:
    return ConsensusStatus(formed=formed, members=members or [])


def test_the_first_placement_records_the_initial_members_once_and_every_cluster_carries_them():
    first = plan_federation(fed([("a", 1), ("b", 2)]), {}, T0)
    formation = first.status.formation
    assert formation is not None and not formation.formed
    assert formation.initial_members == ["demo-a-0", "demo-b-0", "demo-b-1"]
    for cluster in first.clusters.values():
        assert cluster.spec.formation == formation
    # A scale before formation does not change who bootstraps.
    grown = plan_federation(fed([("a", 3), ("b", 2)]), {}, T1, first.status)
    assert grown.status.formation == formation


def test_formed_is_recorded_once_any_cluster_saw_a_quorum_and_a_new_cluster_is_born_knowing_it():
    first = plan_federation(fed([("a", 1), ("b", 1)]), {}, T0)
    existing = {"a": ClusterView("a", status(formed=True)), "b": ClusterView("b", status())}
    formed = plan_federation(fed([("a", 1), ("b", 1)]), existing, T1, first.status)
    assert formed.status.formation is not None
    assert formed.status.formation.formed and formed.status.formation.formed_at == T1
    added = plan_federation(fed([("a", 1), ("b", 1), ("n", 3)]), existing, T2, formed.status)
    north = added.clusters["n"]
    recorded = formation_of(north, desired_from(north))
    assert recorded.formed and recorded.formed_at == T1
    assert not any(name.startswith("demo-n-") for name in recorded.initial_members)


def test_dynamic_bootstrap_records_one_seed():
    plan = plan_federation(fed([("a", 2), ("b", 1)], bootstrap="dynamic"), {}, T0)
    assert plan.status.formation is not None
    assert plan.status.formation.initial_members == ["demo-a-0"]


def test_a_departed_cluster_keeps_its_departure_time_and_is_deleted_once_the_others_drained_it():
    before = plan_federation(fed([("a", 1), ("b", 1), ("z", 1)]), {}, T0)
    lister = [MemberStatus(name="demo-z-0", cluster="z", role=MemberRole.VOTER)]
    existing = {
        "a": ClusterView("a", status(formed=True, members=lister)),
        "b": ClusterView("b", status(formed=True)),
        "z": ClusterView("z", None),  # gone for good: it never reports again
    }
    spec = fed([("a", 1), ("b", 1)], lostClusterGracePeriodSeconds=600)
    leaving = plan_federation(spec, existing, T1, before.status)
    assert leaving.draining == ("z",) and leaving.delete == ()
    assert [d.since for d in leaving.status.departed] == [T1]
    assert leaving.clusters["a"].spec.departed == leaving.status.departed
    # Past the grace period, still listed by a: not deleted yet.
    later = plan_federation(spec, existing, T2, leaving.status)
    assert later.delete == () and [d.since for d in later.status.departed] == [T1]
    # a reports z's member gone from the member list: z can go.
    existing["a"] = ClusterView("a", status(formed=True))
    drained = plan_federation(spec, existing, T2, later.status)
    assert drained.delete == ("z",) and drained.status.departed == []


def test_an_xlinecluster_without_a_recorded_formation_bootstraps_only_alone():
    lone = plan_federation(fed([("a", 3)]), {}, T0).clusters["a"]
    lone = lone.model_copy(update={"spec": lone.spec.model_copy(update={"formation": None})})
    assert formation_of(lone, desired_from(lone)).initial_members == (
        "demo-a-0",
        "demo-a-1",
        "demo-a-2",
    )
    wide = plan_federation(fed([("a", 1), ("b", 1)]), {}, T0).clusters["a"]
    wide = wide.model_copy(update={"spec": wide.spec.model_copy(update={"formation": None})})
    assert formation_of(wide, desired_from(wide)).initial_members == ()


def test_a_dead_clusters_last_report_does_not_make_its_member_healthy():
    """Found on the Karmada stack: a killed cluster never updates its status, so its own
    old report said its member was healthy and the federation claimed Available 3/3."""
    spec = fed([("a", 1), ("b", 1), ("c", 1)])
    first = plan_federation(spec, {}, T0)

    def member(cluster: str, healthy: bool) -> MemberStatus:
        return MemberStatus(
            name=f"demo-{cluster}-0", cluster=cluster, role=MemberRole.VOTER, healthy=healthy
        )

    live = [member("a", True), member("b", True), member("c", False)]
    stale = [member("a", True), member("b", True), member("c", True)]
    existing = {
        "a": ClusterView("a", status(formed=True, members=live)),
        "b": ClusterView("b", status(formed=True, members=live)),
        "c": ClusterView("c", status(formed=True, members=stale)),  # its last word
    }
    plan = plan_federation(spec, existing, T1, first.status)
    by_name = {m.name: m for m in plan.status.members}
    assert not by_name["demo-c-0"].healthy
    assert plan.status.ready == "2/3" and plan.status.phase.value != "Available"


def test_ready_counts_only_members_of_clusters_in_the_spec():
    before = plan_federation(fed([("a", 1), ("b", 1), ("z", 1)]), {}, T0)
    members = [
        MemberStatus(name=f"demo-{c}-0", cluster=c, role=MemberRole.VOTER, healthy=True)
        for c in ("a", "b", "z")
    ]
    existing = {c: ClusterView(c, status(formed=True, members=members)) for c in ("a", "b", "z")}
    leaving = plan_federation(fed([("a", 1), ("b", 1)]), existing, T1, before.status)
    assert leaving.status.ready == "2/2"
