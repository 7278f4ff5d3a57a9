"""Bad input: every malformed or dangerous spec is refused, naming the field and the fix.

The same table is run against the generated CRD (schema + CEL, see `_crd.py`) where the
rule is expressible there, so model and CRD cannot drift apart silently.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from tests.api._crd import crd_errors
from tests.api._examples import EXAMPLES, federation
from xlinefed.api.loading import load_cluster, load_federation_yaml, parse
from xlinefed.api.models import XlineFederation
from xlinefed.api.validation import Problem, SpecError, change_problems, warnings_for
from xlinefed.placement import split


def _with(obj: dict[str, Any], mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    mutate(obj)
    return obj


def _cluster_obj(**spec: Any) -> dict[str, Any]:
    """A valid XlineCluster (member1's share of the example federation) with overrides."""
    fed = parse(XlineFederation, federation())
    obj = split(fed)["member1"].to_wire()
    obj["spec"].update(spec)
    return obj


@dataclass(frozen=True)
class Case:
    name: str
    #: A wire dict, a YAML string, or any other document.
    document: Any
    field: str
    fix: str
    #: Substring of an error the CRD gives for it; None where no CRD can check it.
    crd: str | None = None
    kind: str = "XlineFederation"


LONG = "x" * 40
CASES = [
    Case(
        "duplicate cluster ids",
        federation(clusters=[{"id": "member1", "replicas": 1}, {"id": "member1", "replicas": 2}]),
        "spec.clusters[1].id",
        "list each member cluster once",
        crd="listed more than once",
    ),
    Case(
        "uppercase cluster id",
        federation(clusters=[{"id": "member1", "replicas": 1}, {"id": "Member2", "replicas": 1}]),
        "spec.clusters[1].id",
        "DNS-1123 label",
        crd="spec.clusters[1].id",
    ),
    Case(
        "underscore in cluster id",
        federation(clusters=[{"id": "member_1", "replicas": 1}]),
        "spec.clusters[0].id",
        "DNS-1123 label",
        crd="spec.clusters[0].id",
    ),
    Case(
        "cluster id starts with a dash",
        federation(clusters=[{"id": "-member1", "replicas": 1}]),
        "spec.clusters[0].id",
        "DNS-1123 label",
        crd="spec.clusters[0].id",
    ),
    Case(
        "empty cluster id",
        federation(clusters=[{"id": "", "replicas": 1}]),
        "spec.clusters[0].id",
        "set a value",
        crd="spec.clusters[0].id",
    ),
    Case(
        "cluster id longer than 63",
        federation(clusters=[{"id": "c" * 64, "replicas": 1}]),
        "spec.clusters[0].id",
        "shorten it",
        crd="spec.clusters[0].id",
    ),
    Case(
        "member name longer than 63",
        _with(
            federation(clusters=[{"id": "c" * 25, "replicas": 3}]),
            lambda o: o["metadata"].update(name="f" * 40),
        ),
        "spec.clusters[0].id",
        "shorten the federation name or the cluster id",
        crd="longer than 63 characters",
    ),
    Case(
        "DNS label longer than 63",
        _with(
            federation(network={"dnsTemplate": "{member}-{federation}-{namespace}.example"}),
            lambda o: o["metadata"].update(name="f" * 20, namespace="n" * 30),
        ),
        "spec.network.dnsTemplate",
        "shorten the names or change the template",
    ),
    Case(
        "DNS name longer than 253",
        _with(
            federation(network={"dnsTemplate": "{member}.{member}.{member}.{member}.{member}.x"}),
            lambda o: o["metadata"].update(name=LONG),
        ),
        "spec.network.dnsTemplate",
        "shorten the names or change the template",
    ),
    Case(
        "replicas below zero",
        federation(clusters=[{"id": "member1", "replicas": -1}]),
        "spec.clusters[0].replicas",
        "raise it",
        crd="spec.clusters[0].replicas",
    ),
    Case(
        "replicas above 99",
        federation(clusters=[{"id": "member1", "replicas": 100}]),
        "spec.clusters[0].replicas",
        "lower it",
        crd="spec.clusters[0].replicas",
    ),
    Case(
        "replicas not a number",
        federation(clusters=[{"id": "member1", "replicas": "three"}]),
        "spec.clusters[0].replicas",
        "whole number",
        crd="spec.clusters[0].replicas",
    ),
    Case(
        "zero voters (3-member federation scaled to 0)",
        federation(
            clusters=[
                {"id": "member1", "replicas": 0},
                {"id": "member2", "replicas": 0},
                {"id": "member3", "replicas": 0},
            ]
        ),
        "spec.clusters",
        "keep at least one member",
        crd="zero voters",
    ),
    Case(
        "no clusters at all",
        federation(clusters=[]),
        "spec.clusters",
        "add at least one entry",
        crd="spec.clusters",
    ),
    Case(
        "more than 64 clusters",
        federation(clusters=[{"id": f"c{i}", "replicas": 1} for i in range(65)]),
        "spec.clusters",
        "remove entries",
        crd="spec.clusters",
    ),
    Case(
        "partition above replicas",
        federation(updateStrategy={"partitions": {"member1": 2}}),
        "spec.updateStrategy.partitions.member1",
        "set it between 0 and 1",
        crd="larger than its cluster's replicas",
    ),
    Case(
        "partition for an unknown cluster",
        federation(updateStrategy={"partitions": {"member9": 0}}),
        "spec.updateStrategy.partitions.member9",
        "use one of ['member1', 'member2', 'member3']",
        crd="names a cluster that is not in spec.clusters",
    ),
    Case(
        "negative partition",
        federation(updateStrategy={"partitions": {"member1": -1}}),
        "spec.updateStrategy.partitions.member1",
        "raise it",
        crd="spec.updateStrategy.partitions.member1",
    ),
    Case(
        "maxPromoteLag beyond what Xline promotes",
        federation(
            engine="xline",
            version="v0.7.0",
            clusters=[{"id": "member1", "replicas": 3}],
            updateStrategy={"maxPromoteLag": 1000},
        ),
        "spec.updateStrategy.maxPromoteLag",
        "500 or less",
        crd="spec.updateStrategy.maxPromoteLag",
    ),
    Case(
        "negative maxPromoteLag",
        federation(updateStrategy={"maxPromoteLag": -5}),
        "spec.updateStrategy.maxPromoteLag",
        "raise it",
        crd="spec.updateStrategy.maxPromoteLag",
    ),
    Case(
        "unknown cluster order",
        federation(updateStrategy={"clusterOrder": "Random"}),
        "spec.updateStrategy.clusterOrder",
        "allowed values",
        crd="spec.updateStrategy.clusterOrder",
    ),
    Case(
        "unknown engine",
        federation(engine="zookeeper"),
        "spec.engine",
        "allowed values",
        crd="spec.engine",
    ),
    Case(
        "URL template missing {member}",
        federation(network={"dnsTemplate": "{cluster}.{federation}.{namespace}.svc"}),
        "spec.network.dnsTemplate",
        "add {member}",
        crd="lacks the required placeholder {member}",
    ),
    Case(
        "unknown placeholder",
        federation(network={"dnsTemplate": "{member}.{pod}.svc"}),
        "spec.network.dnsTemplate",
        "use only",
        crd="unknown placeholder",
    ),
    Case(
        "unbalanced braces in template",
        federation(network={"dnsTemplate": "{member.svc"}),
        "spec.network.dnsTemplate",
        "balance the braces",
        crd="unbalanced braces",
    ),
    Case(
        "reserved engine arg",
        federation(engineArgs={"initial-cluster": "a=http://x:2380"}),
        "spec.engineArgs.initial-cluster",
        "remove it",
        crd="derives from the member's identity",
    ),
    Case(
        "reserved engine arg data-dir",
        federation(engineArgs={"data-dir": "/tmp/x"}),
        "spec.engineArgs.data-dir",
        "use spec.network or spec.storage",
        crd="derives from the member's identity",
    ),
    Case(
        "engine arg with leading dashes",
        federation(engineArgs={"--quota-backend-bytes": "1"}),
        "spec.engineArgs.--quota-backend-bytes",
        "write it as 'quota-backend-bytes'",
        crd="starts with '-'",
    ),
    Case(
        "engine arg value not a string",
        federation(engineArgs={"quota-backend-bytes": 8}),
        "spec.engineArgs.quota-backend-bytes",
        "correct the value",
        crd="spec.engineArgs.quota-backend-bytes",
    ),
    Case("bad version", federation(version="latest"), "spec.version", "matching", "spec.version"),
    Case(
        "version without patch",
        federation(version="3.5"),
        "spec.version",
        "matching",
        crd="spec.version",
    ),
    Case(
        "missing version",
        _with(federation(), lambda o: o["spec"].pop("version")),
        "spec.version",
        "add it",
        crd="'version' is a required property",
    ),
    Case(
        "xline with two members",
        federation(
            engine="xline",
            clusters=[{"id": "member1", "replicas": 1}, {"id": "member2", "replicas": 1}],
        ),
        "spec.clusters",
        "add up to 3 or more",
        crd="xline needs at least 3 members",
    ),
    Case(
        "xline with one member",
        federation(engine="xline", clusters=[{"id": "member1", "replicas": 1}]),
        "spec.clusters",
        "add up to 3 or more",
        crd="xline needs at least 3 members",
    ),
    Case(
        "typo in a cluster field",
        federation(clusters=[{"id": "member1", "replica": 3}]),
        "spec.clusters[0].replica",
        "check the spelling",
        crd="'replica' was unexpected",
    ),
    Case(
        "typo in a spec field",
        federation(enigne="xline"),
        "spec.enigne",
        "check the spelling",
        crd="'enigne' was unexpected",
    ),
    Case(
        "typo in a nested field",
        federation(storage={"sise": "10Gi"}),
        "spec.storage.sise",
        "check the spelling",
        crd="'sise' was unexpected",
    ),
    Case(
        "bad storage size",
        federation(storage={"size": "10GB"}),
        "spec.storage.size",
        "matching",
        crd="spec.storage.size",
    ),
    Case(
        "unknown scale-in policy",
        federation(storage={"onScaleIn": "destroy"}),
        "spec.storage.onScaleIn",
        "allowed values",
        crd="spec.storage.onScaleIn",
    ),
    Case(
        "port zero",
        federation(network={"ports": {"peer": 0}}),
        "spec.network.ports.peer",
        "raise it",
        crd="spec.network.ports.peer",
    ),
    Case(
        "port above 65535",
        federation(network={"ports": {"client": 70000}}),
        "spec.network.ports.client",
        "lower it",
        crd="spec.network.ports.client",
    ),
    Case(
        "TLS off but a secret named",
        federation(tls={"enabled": False, "peerSecretRef": "peer-certs"}),
        "spec.tls.enabled",
        "set enabled: true to use the secrets",
        crd="is false but a secret is named",
    ),
    Case(
        "federation name not a DNS label",
        _with(federation(), lambda o: o["metadata"].update(name="demo.db")),
        "metadata.name",
        "DNS-1123 label",
        crd="must be a DNS-1123 label",
    ),
    Case(
        "missing spec",
        _with(federation(), lambda o: o.pop("spec")),
        "spec",
        "add it",
        crd="'spec' is a required property",
    ),
    Case(
        "clusters is a mapping",
        federation(clusters={"member1": 3}),
        "spec.clusters",
        "correct the value",
        crd="is not of type 'array'",
    ),
    Case(
        "wrong apiVersion",
        _with(federation(), lambda o: o.update(apiVersion="xlinefed.io/v1")),
        "apiVersion",
        "use the allowed value",
    ),
    Case(
        "wrong kind",
        _with(federation(), lambda o: o.update(kind="Deployment")),
        "kind",
        "set kind: XlineFederation",
    ),
    Case("not a mapping", ["spec", "clusters"], "(document)", "write a XlineFederation object"),
    Case("bad YAML", "spec: {clusters: [\n  - id: a", "(document)", "fix the syntax"),
    Case(
        "backup schedule not cron",
        federation(backup={"schedule": "61 * * * *", "destination": {"bucket": "bkt"}}),
        "spec.backup.schedule",
        "five cron fields",
    ),
    Case(
        "backup schedule of zero seconds",
        federation(backup={"schedule": "@every 0s", "destination": {"bucket": "bkt"}}),
        "spec.backup.schedule",
        "'@every 10m'",
    ),
    Case(
        "backup schedule of four fields",
        federation(backup={"schedule": "* * * *", "destination": {"bucket": "bkt"}}),
        "spec.backup.schedule",
        "use a value matching",
        crd="spec.backup.schedule",
    ),
    Case(
        "backup bucket in capitals",
        federation(backup={"destination": {"bucket": "Backups"}}),
        "spec.backup.destination.bucket",
        "use a value matching",
        crd="spec.backup.destination.bucket",
    ),
    Case(
        "backup prefix with a leading slash",
        federation(backup={"destination": {"bucket": "bkt", "prefix": "/x"}}),
        "spec.backup.destination.prefix",
        "without a leading '/'",
    ),
    Case(
        "backups kept forever",
        federation(backup={"destination": {"bucket": "bkt"}, "retention": {"count": None}}),
        "spec.backup.retention",
        "set count and/or maxAgeSeconds",
    ),
    Case(
        "restore from a bucket without a key",
        federation(fromBackup={"uri": "s3://bkt"}),
        "spec.fromBackup.uri",
        "s3://bucket/prefix/",
    ),
    Case(
        "restore from an https URL",
        federation(fromBackup={"uri": "https://bkt/key"}),
        "spec.fromBackup.uri",
        "use a value matching",
        crd="spec.fromBackup.uri",
    ),
    Case(
        "quorum-loss recovery on xline",
        federation(engine="xline", version="0.7.0", recovery={"automatic": True}),
        "spec.recovery",
        "restore a new federation from a backup",
    ),
    Case(
        "recovery both explicit and automatic",
        federation(recovery={"fromMember": "fed-member1-0", "automatic": True}),
        "spec.recovery",
        "set one: fromMember for an explicit recovery, or automatic: true",
    ),
    Case(
        "XlineCluster id not in its topology",
        _cluster_obj(clusterId="member9"),
        "spec.clusterId",
        "add this cluster to the topology",
        crd="spec.clusterId: is not in spec.clusters",
        kind="XlineCluster",
    ),
    Case(
        "XlineCluster replicas disagree with its topology",
        _cluster_obj(replicas=2),
        "spec.replicas",
        "make them agree",
        crd="spec.replicas: differs",
        kind="XlineCluster",
    ),
    Case(
        "XlineCluster member name too long",
        _cluster_obj(federation="f" * 60),
        "spec.clusters[0].id",
        "shorten the federation name",
        crd="longer than 63 characters",
        kind="XlineCluster",
    ),
    Case(
        "XlineCluster with TLS on and no Secret to serve",
        _cluster_obj(tls={"enabled": True}),
        "spec.tls.peerSecretRef",
        "name a kubernetes.io/tls Secret with ca.crt",
        crd="spec.tls.peerSecretRef: is required on Kubernetes",
        kind="XlineCluster",
    ),
    Case(
        "XlineCluster root password with TLS off",
        _cluster_obj(tls={"enabled": False, "rootPasswordSecretRef": "root"}),
        "spec.tls.enabled",
        "set enabled: true to use the secrets",
        crd="spec.tls.enabled: is false but a secret is named",
        kind="XlineCluster",
    ),
    Case(
        "XlineCluster auth on xline",
        _cluster_obj(
            engine="xline",
            version="0.7.0",
            tls={"peerSecretRef": "peer", "rootPasswordSecretRef": "root"},
        ),
        "spec.tls.rootPasswordSecretRef",
        "Xline's auth needs its RSA key pair",
        kind="XlineCluster",
    ),
    Case(
        "engine arg that spec.tls sets",
        federation(engineArgs={"peer-cert-file": "/etc/x.crt"}),
        "spec.engineArgs.peer-cert-file",
        "name the certificates in spec.tls",
    ),
    Case(
        "pod template label xlinefed sets itself",
        federation(podTemplate={"labels": {"xlinefed.io/role": "voter"}}),
        "spec.podTemplate.labels",
        "remove it",
        crd="spec.podTemplate.labels: a key is set by xlinefed itself",
    ),
    Case(
        "pod template annotation with a bad key",
        federation(podTemplate={"annotations": {"bad key": "x"}}),
        "spec.podTemplate.annotations",
        "DNS-subdomain prefix",
        crd="spec.podTemplate.annotations: a key is not a valid Kubernetes label key",
    ),
    Case(
        "pod template label value with a space",
        federation(podTemplate={"labels": {"team": "a b"}}),
        "spec.podTemplate.labels.team",
        "use a value matching",
        crd="spec.podTemplate.labels.team",
    ),
    Case(
        "pod template request above its limit",
        federation(
            podTemplate={"resources": {"requests": {"memory": "4Gi"}, "limits": {"memory": "2Gi"}}}
        ),
        "spec.podTemplate.resources.requests.memory",
        "raise spec.podTemplate.resources.limits.memory",
    ),
    Case(
        "pod template quantity that is no quantity",
        federation(podTemplate={"resources": {"requests": {"cpu": "lots"}}}),
        "spec.podTemplate.resources.requests.cpu",
        "use a value matching",
        crd="spec.podTemplate.resources.requests.cpu",
    ),
    Case(
        "pod template toleration with an unknown effect",
        federation(podTemplate={"tolerations": [{"key": "k", "effect": "Sometimes"}]}),
        "spec.podTemplate.tolerations[0].effect",
        "use the allowed value",
        crd="spec.podTemplate.tolerations[0].effect",
    ),
    Case(
        "pod template affinity with a misspelt part",
        federation(podTemplate={"affinity": {"podAntiAfinity": {}}}),
        "spec.podTemplate.affinity.podAntiAfinity",
        "check the spelling",
    ),
    Case(
        "pod template priority class that is no DNS name",
        federation(podTemplate={"priorityClassName": "High_Priority"}),
        "spec.podTemplate.priorityClassName",
        "use a value matching",
        crd="spec.podTemplate.priorityClassName",
    ),
]


def _problems(case: Case) -> list[Problem]:
    with pytest.raises(SpecError) as caught:
        if isinstance(case.document, str):
            load_federation_yaml(case.document)
        elif case.kind == "XlineCluster":
            load_cluster(case.document)
        else:
            load_federation_yaml(yaml.safe_dump(case.document))
    return list(caught.value.problems)


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_spec_is_rejected_naming_field_and_fix(case: Case) -> None:
    problems = _problems(case)
    fields = [p.field for p in problems]
    assert case.field in fields, f"expected a problem at {case.field}, got {problems}"
    problem = next(p for p in problems if p.field == case.field)
    assert case.fix in problem.fix, f"fix hint {case.fix!r} missing from {problem}"
    assert all(p.fix and p.message for p in problems)
    assert case.field in str(SpecError(problems))


CRD_CASES = [c for c in CASES if c.crd is not None]


@pytest.mark.parametrize("case", CRD_CASES, ids=[c.name for c in CRD_CASES])
def test_bad_spec_is_rejected_by_the_crd_too(case: Case) -> None:
    errors = crd_errors(case.kind, case.document)
    assert any(case.crd in str(e) for e in errors), f"CRD errors: {errors}"


def test_most_cases_are_checked_by_the_crd_as_well() -> None:
    assert len(CRD_CASES) >= 40


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_are_valid(name: str) -> None:
    fed = parse(XlineFederation, EXAMPLES[name])
    assert fed.to_wire()["spec"]["clusters"] == EXAMPLES[name]["spec"]["clusters"]


def test_problems_are_all_reported_at_once() -> None:
    problems = _problems(
        Case(
            "many",
            federation(
                clusters=[{"id": "member1", "replicas": 1}, {"id": "member1", "replicas": 1}],
                engineArgs={"name": "x"},
                updateStrategy={"partitions": {"nowhere": 0}},
            ),
            "",
            "",
        )
    )
    assert {p.field for p in problems} >= {
        "spec.clusters[1].id",
        "spec.engineArgs.name",
        "spec.updateStrategy.partitions.nowhere",
    }


def test_field_and_cross_field_problems_are_reported_together() -> None:
    """Pydantic skips the rules across fields when a field fails; they still run on the
    rest, so a user fixing a typo does not then meet the next problem."""
    document = federation(
        clusters=[{"id": "member1", "replicas": 1}, {"id": "member1", "replicas": 1}],
        engineArgs={"name": "x", "snapshot-count": 5},
        storage={"size": "lots"},
        updateStrategy={"partitions": {"member1": -1, "nowhere": 0}},
    )
    document["spec"]["verison"] = document["spec"].pop("version")
    problems = _problems(Case("many", document, "", ""))
    assert {p.field for p in problems} == {
        # per field
        "spec.verison",
        "spec.version",
        "spec.engineArgs.snapshot-count",
        "spec.storage.size",
        "spec.updateStrategy.partitions.member1",
        # across fields
        "spec.clusters[1].id",
        "spec.engineArgs.name",
        "spec.updateStrategy.partitions.nowhere",
    }


def test_cross_field_problems_of_an_xline_cluster_come_with_its_field_problems() -> None:
    problems = _problems(
        Case("c", _cluster_obj(clusterId="nowhere", bogus=1), "", "", kind="XlineCluster")
    )
    assert {p.field for p in problems} == {"spec.bogus", "spec.clusterId"}


def test_rules_across_fields_do_not_judge_a_guess() -> None:
    """A bad cluster id has no default: the partition naming it is not called unknown."""
    document = federation(
        clusters=[{"id": "Member1", "replicas": 1}],
        updateStrategy={"partitions": {"Member1": 0}},
    )
    assert [p.field for p in _problems(Case("guess", document, "", ""))] == ["spec.clusters[0].id"]


def test_a_file_of_several_documents_is_refused_with_our_message() -> None:
    text = yaml.safe_dump_all([federation(), federation()])
    problems = _problems(Case("two", text, "", ""))
    assert len(problems) == 1
    assert "holds 2 YAML documents" in problems[0].message
    assert "one XlineFederation per file" in problems[0].message
    assert "a file of its own" in problems[0].fix


def test_empty_documents_around_the_spec_are_no_second_spec() -> None:
    text = "---\n" + yaml.safe_dump(federation()) + "---\n"
    assert load_federation_yaml(text).name == "demo"


# --- warnings ------------------------------------------------------------------------


def test_even_total_is_allowed_with_a_warning() -> None:
    fed = parse(XlineFederation, EXAMPLES["even-total"])
    warnings = warnings_for(fed.spec.clusters)
    assert any("4 members (even)" in w and "odd total" in w for w in warnings)


def test_odd_total_spread_over_clusters_has_no_warning() -> None:
    fed = parse(XlineFederation, federation())
    assert warnings_for(fed.spec.clusters) == []


def test_one_cluster_with_a_majority_is_warned_about() -> None:
    fed = parse(
        XlineFederation,
        federation(clusters=[{"id": "member1", "replicas": 3}, {"id": "member2", "replicas": 2}]),
    )
    warnings = warnings_for(fed.spec.clusters)
    assert any("majority" in w for w in warnings)
    assert not any("even" in w for w in warnings)


# --- changes (old spec → new spec) ----------------------------------------------------


@dataclass(frozen=True)
class Change:
    name: str
    old: dict[str, Any]
    new: dict[str, Any]
    field: str
    fix: str
    crd: str


CHANGES = [
    Change(
        "engine change",
        federation(),
        federation(engine="xline"),
        "spec.engine",
        "create a new federation and migrate the data",
        "spec.engine: cannot be changed",
    ),
    Change(
        "major downgrade",
        federation(version="3.5.17"),
        federation(version="2.3.8"),
        "spec.version",
        "restore from a backup",
        "downgrades across a major version",
    ),
    Change(
        "minor downgrade",
        federation(version="v3.5.17"),
        federation(version="v3.4.30"),
        "spec.version",
        "keep v3.5.17",
        "downgrades the minor version",
    ),
    Change(
        "etcd minor skip",
        federation(version="3.4.23"),
        federation(version="3.6.17"),
        "spec.version",
        "set spec.version to a 3.5 release first",
        "skips a minor version",
    ),
    Change(
        "client port",
        federation(network={"ports": {"client": 2379, "peer": 2380}}),
        federation(network={"ports": {"client": 12379, "peer": 2380}}),
        "spec.network.ports.client",
        "keep the current port",
        "spec.network.ports.client: cannot change",
    ),
    Change(
        "peer port",
        federation(),
        federation(network={"ports": {"peer": 12380}}),
        "spec.network.ports.peer",
        "keep the current port",
        "spec.network.ports.peer: cannot change",
    ),
    Change(
        "dns template",
        federation(),
        federation(network={"dnsTemplate": "{member}.{cluster}.{namespace}.svc"}),
        "spec.network.dnsTemplate",
        "keep the current template",
        "spec.network.dnsTemplate: cannot change",
    ),
    Change(
        "storage size",
        federation(storage={"size": "1Gi"}),
        federation(storage={"size": "2Gi"}),
        "spec.storage.size",
        "keep the current size",
        "spec.storage.size: cannot change",
    ),
    Change(
        "storage class added",
        federation(),
        federation(storage={"storageClassName": "fast"}),
        "spec.storage.storageClassName",
        "keep the current class",
        "spec.storage.storageClassName: cannot change",
    ),
    Change(
        "bootstrap mode after formation",
        {**federation(), "status": {"formation": {"formed": True, "initialMembers": []}}},
        federation(bootstrap="dynamic"),
        "spec.bootstrap",
        "keep the current mode",
        "spec.bootstrap: cannot change once the federation has formed",
    ),
]


def test_bootstrap_mode_may_change_before_formation() -> None:
    old, new = federation(), federation(bootstrap="dynamic")
    assert change_problems(_spec(old), _spec(new), formed=False) == []
    assert crd_errors("XlineFederation", new, old=old) == []


def _spec(obj: dict[str, Any]) -> Any:
    return parse(XlineFederation, obj).spec


@pytest.mark.parametrize("change", CHANGES, ids=[c.name for c in CHANGES])
def test_unsafe_change_is_refused(change: Change) -> None:
    problems = change_problems(_spec(change.old), _spec(change.new))
    problem = next(p for p in problems if p.field == change.field)
    assert change.fix in problem.fix
    errors = crd_errors("XlineFederation", change.new, old=change.old)
    assert any(change.crd in str(e) for e in errors), errors


@pytest.mark.parametrize(
    ("old", "new"),
    [("3.5.17", "3.5.18"), ("3.4.30", "3.5.0"), ("v3.5.0", "v4.0.0"), ("3.5.17", "3.5.17")],
)
def test_upgrades_and_patch_changes_are_allowed(old: str, new: str) -> None:
    assert change_problems(_spec(federation(version=old)), _spec(federation(version=new))) == []
    assert crd_errors("XlineFederation", federation(version=new), federation(version=old)) == []


def test_safe_scale_change_is_allowed_by_the_crd() -> None:
    old = federation()
    new = federation(clusters=[{"id": "member1", "replicas": 3}, {"id": "member2", "replicas": 2}])
    assert crd_errors("XlineFederation", new, old=old) == []
