"""`kubectl xlinefed status` on status documents (pure: no API server): where each
member cluster's step goes, clusters without members, lag, and what "paused" says.
The same command against the real Karmada API server: tests/e2e_karmada/test_kubectl.py."""

from __future__ import annotations

from typing import Any

from xlinefed.kubectl import header, paused_text, rows


def _member(name: str, cluster: str, index: int | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "cluster": cluster, "role": "voter", "raftIndex": index, **extra}


def _federation(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "fed", "namespace": "ns", "generation": 2},
        "spec": {
            "version": "3.5.17",
            "clusters": [{"id": "a", "replicas": 2}, {"id": "b", "replicas": 1}],
        },
        "status": {"observedGeneration": 2, **status},
    }


def _placed(step: dict[str, Any] | None) -> dict[str, Any]:
    return {"status": {"phase": "Updating", "currentStep": step}}


def test_each_clusters_step_is_on_the_row_of_the_member_it_concerns() -> None:
    body = _federation(members=[_member("a-0", "a"), _member("a-1", "a"), _member("b-0", "b")])
    restart = {"kind": "RestartMember", "member": "a-1", "reason": "restart a-1 on 3.5.17"}
    wait = {"kind": "Wait", "reason": "waiting for a to finish"}
    shown = rows(body, {"a": _placed(restart), "b": _placed(wait)})
    assert [(r.cluster, r.member and r.member["name"], r.step) for r in shown] == [
        ("a", "a-0", ""),
        ("a", "a-1", "RestartMember: restart a-1 on 3.5.17"),
        ("b", "b-0", "Wait: waiting for a to finish"),
    ]


def test_a_cluster_without_members_or_status_still_has_its_row() -> None:
    body = _federation(members=[_member("a-0", "a")])
    shown = rows(body, {"a": _placed(None), "b": {"status": {}}})
    assert [(r.cluster, r.member is None, r.step) for r in shown] == [
        ("a", False, ""),
        ("b", True, "no status from this cluster yet"),
    ]


def test_without_xlineclusters_the_federations_step_goes_to_the_cluster_it_names() -> None:
    step = {"kind": "AddLearner", "member": "b-0", "reason": "b: add b-0 as a learner"}
    body = _federation(members=[_member("a-0", "a"), _member("b-0", "b")], currentStep=step)
    assert [r.step for r in rows(body, {})] == ["", "AddLearner: add b-0 as a learner"]


def test_a_leaving_cluster_still_reported_is_shown_after_the_spec_ones() -> None:
    body = _federation(members=[_member("c-0", "c"), _member("a-0", "a")])
    assert [r.cluster for r in rows(body, {})] == ["a", "b", "c"]


def test_the_header_counts_spec_and_listed_members_and_notes_a_stale_status() -> None:
    body = _federation(
        members=[_member("a-0", "a"), {**_member("a-1", "a"), "role": None}],
        observedGeneration=1,
        ready="1/3",
    )
    lines = header(body)
    assert "members: spec 3, in the member list 1, ready 1/3" in lines[1]
    assert "(spec 3.5.17)" in lines[1]
    assert "status describes generation 1; the spec is at 2" in lines[2]


def _progressing(reason: str) -> list[dict[str, Any]]:
    return [{"type": "Progressing", "status": "False", "reason": reason, "message": ""}]


def test_paused_says_what_the_spec_asks_and_whether_the_operator_reported_it() -> None:
    asked = _federation(conditions=_progressing("SpecReached"))
    asked["spec"]["paused"] = True
    assert paused_text(asked) == "yes in the spec; the operator has not reported it yet"
    reported = _federation(conditions=_progressing("Paused"))
    reported["spec"]["paused"] = True
    assert paused_text(reported) == "yes"
    resumed = _federation(conditions=_progressing("Paused"))
    assert paused_text(resumed) == "no; the operator has not reported the resume yet"
    assert paused_text(_federation(conditions=_progressing("SpecReached"))) == "no"
