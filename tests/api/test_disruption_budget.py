"""The federation-wide disruption budget's arithmetic (pure). The Eviction API's view of
it is tests/e2e_kube/test_member_pods.py."""

from __future__ import annotations

import itertools

from xlinefed.api.models import MemberRole, MemberStatus
from xlinefed.platforms.kubernetes.manifests import voter_allowance


def _voters(layout: dict[str, int], down: set[str] = frozenset()) -> list[MemberStatus]:
    return [
        MemberStatus(
            name=f"f-{c}-{i}",
            cluster=c,
            role=MemberRole.VOTER,
            healthy=f"f-{c}-{i}" not in down,
        )
        for c, n in layout.items()
        for i in range(n)
    ]


def test_one_cluster_of_three_voters_may_lose_one() -> None:
    assert voter_allowance(_voters({"a": 3}), "a") == 1
    assert voter_allowance(_voters({"a": 3}, down={"f-a-0"}), "a") == 0


def test_a_voter_down_in_another_cluster_leaves_nothing_to_evict_here() -> None:
    members = _voters({"a": 1, "b": 1, "c": 1}, down={"f-b-0"})
    assert [voter_allowance(members, c) for c in "abc"] == [0, 0, 0]


def test_the_spare_is_split_so_concurrent_drains_never_exceed_it() -> None:
    """Every layout and every set of down voters: the allowances of all clusters add up
    to the spare at most, and none exceeds its own healthy voters."""
    for layout in (
        {"a": 3},
        {"a": 1, "b": 1, "c": 1},
        {"a": 2, "b": 2, "c": 1},
        {"a": 3, "b": 2, "c": 2},
    ):
        names = [f"f-{c}-{i}" for c, n in layout.items() for i in range(n)]
        for k in range(len(names) + 1):
            for down in itertools.combinations(names, k):
                members = _voters(layout, set(down))
                healthy = len(names) - k
                spare = max(0, healthy - (len(names) // 2 + 1))
                allowances = {c: voter_allowance(members, c) for c in layout}
                assert sum(allowances.values()) <= spare, (layout, down, allowances)
                for c, allowed in allowances.items():
                    local = sum(1 for m in members if m.cluster == c and m.healthy)
                    assert allowed <= local
                # Nothing of the spare is withheld while a cluster could still use it.
                if spare and all(allowances[c] == 0 for c in layout):
                    raise AssertionError((layout, down, "spare left unused"))


def test_a_voter_that_did_not_answer_yet_counts_as_down() -> None:
    assert voter_allowance(_voters({"a": 3}), "a", silent={"f-a-2"}) == 0


def test_learners_and_an_unknown_member_list_give_nothing() -> None:
    learner = MemberStatus(name="f-a-3", cluster="a", role=MemberRole.LEARNER, healthy=True)
    assert voter_allowance([*_voters({"a": 3}), learner], "a") == 1
    assert voter_allowance([], "a") == 0
    unlisted = [MemberStatus(name="f-a-0", cluster="a", healthy=True)]
    assert voter_allowance(unlisted, "a") == 0


def test_with_two_spares_over_three_clusters_the_first_two_clusters_hold_them() -> None:
    members = _voters({"a": 2, "b": 2, "c": 1})  # 5 voters, 5 healthy: spare 2
    assert [voter_allowance(members, c) for c in "abc"] == [1, 1, 0]
