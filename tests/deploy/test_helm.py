"""The Helm charts: `helm lint --strict` clean, and `helm template` gives the objects
xlinefed.install gives (less the Namespace, which `helm install --create-namespace` makes),
named for the release and placed in the release namespace; the values that only a chart
has (pod placement, pull secrets, a ServiceMonitor) land where they should and change
nothing else. tests/deploy/test_helm_stack.py takes the same output to a real apiserver.

helm comes from hack/install_helm.sh (built from the Go module proxy once, then cached).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from xlinefed import install
from xlinefed.api import crds

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "deploy" / "charts"
MEMBER = CHARTS / "xlinefed-member"
FEDERATION = CHARTS / "xlinefed-federation"
CRDS = CHARTS / "xlinefed-crds"
NAMESPACE = install.DEFAULT_NAMESPACE

Key = tuple[str, str, str | None]


def _run(helm: str, *args: str) -> str:
    done = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _template(
    helm: str,
    chart: Path,
    *sets: str,
    release: str = install.DEFAULT_RELEASE,
    namespace: str = NAMESPACE,
) -> list[dict[str, Any]]:
    args = ["template", release, str(chart), "--include-crds", "--namespace", namespace]
    for value in sets:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(_run(helm, *args)) if d]


def _without_namespace(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a chart installs of a rendered tier: Helm makes the release namespace."""
    return [d for d in docs if d["kind"] != "Namespace"]


def _index(docs: list[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    index = {}
    for doc in docs:
        meta = doc["metadata"]
        key = (doc["kind"], meta["name"], meta.get("namespace"))
        assert key not in index, key
        index[key] = doc
    return index


def _container(doc: dict[str, Any]) -> dict[str, Any]:
    (container,) = doc["spec"]["template"]["spec"]["containers"]
    return container


def _same_objects(chart: dict[Key, dict[str, Any]], rendered: dict[Key, dict[str, Any]]) -> None:
    assert sorted(chart, key=str) == sorted(rendered, key=str)
    for key, want in rendered.items():
        got = chart[key]
        if key[0] == "CustomResourceDefinition":
            assert got == want, key
        for field in ("rules", "roleRef", "subjects", "data", "type"):
            assert got.get(field) == want.get(field), (key, field)
        if key[0] in ("ClusterPropagationPolicy", "ResourceInterpreterCustomization", "Service"):
            assert got["spec"] == want["spec"], key
        if key[0] == "Secret":
            assert got["metadata"]["annotations"] == want["metadata"]["annotations"]
        if key[0] == "Deployment":
            assert got["spec"]["replicas"] == want["spec"]["replicas"] == 2
            assert got["spec"]["strategy"] == want["spec"]["strategy"]
            assert got["spec"]["selector"] == want["spec"]["selector"]
            pod_got, pod_want = got["spec"]["template"]["spec"], want["spec"]["template"]["spec"]
            for field in ("securityContext", "volumes", "serviceAccountName"):
                assert pod_got.get(field) == pod_want.get(field), (key, field)
            assert pod_got.get("automountServiceAccountToken") == pod_want.get(
                "automountServiceAccountToken"
            )
            assert _container(got) == _container(want), key
        # Both carry the common labels (the chart adds Helm's own).
        assert (
            want["metadata"].get("labels", {}).items() <= got["metadata"].get("labels", {}).items()
        )


#: Every value only a chart has, set (the lint and the placement tests).
PLACEMENT = (
    "imagePullSecrets[0].name=regcred",
    "nodeSelector.kubernetes\\.io/os=linux",
    "tolerations[0].key=dedicated",
    "tolerations[0].operator=Equal",
    "tolerations[0].value=operators",
    "tolerations[0].effect=NoSchedule",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    ".nodeSelectorTerms[0].matchExpressions[0].key=kubernetes.io/arch",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    ".nodeSelectorTerms[0].matchExpressions[0].operator=In",
    "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    ".nodeSelectorTerms[0].matchExpressions[0].values[0]=amd64",
    "resources.requests.cpu=250m",
    "resources.limits.memory=1Gi",
    "metrics.serviceMonitor.enabled=true",
    "metrics.serviceMonitor.interval=30s",
    "metrics.serviceMonitor.labels.release=prometheus",
)


def _lint(helm: str, chart: Path, *sets: str) -> None:
    args = ["lint", "--strict", str(chart), "--namespace", NAMESPACE]
    for value in sets:
        args += ["--set", value]
    out = _run(helm, *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in out, out


def test_lint(helm: str) -> None:
    _lint(helm, MEMBER, "clusterId=member1")
    _lint(helm, MEMBER, "clusterId=member1", *PLACEMENT)
    _lint(helm, FEDERATION)
    _lint(helm, FEDERATION, *PLACEMENT)
    _lint(helm, FEDERATION, "components.operator=false")
    _lint(helm, CRDS)
    _lint(helm, CRDS, "xlineFederation=false")


def test_member_chart_requires_a_cluster_id(helm: str) -> None:
    done = subprocess.run(
        [helm, "template", "x", str(MEMBER)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "set clusterId" in done.stderr


def test_member_chart_matches_render(helm: str) -> None:
    """Another release in another namespace: names and namespace follow it, as render's."""
    chart = _index(
        _template(helm, MEMBER, "clusterId=member2", "image.tag=9.9", release="ops", namespace="db")
    )
    rendered = install.member_manifests(
        "member2", namespace="db", image="xlinefed/operator:9.9", release="ops"
    )
    _same_objects(chart, _index(_without_namespace(rendered)))
    assert ("Deployment", "ops-member-operator", "db") in chart
    binding = chart[("ClusterRoleBinding", "ops-member-operator", None)]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ops-member-operator", "namespace": "db"}
    ]


def test_member_chart_defaults_match_the_static_yaml(helm: str) -> None:
    chart = _index(_template(helm, MEMBER, "clusterId=member1"))
    rendered = install.member_manifests("member1")
    _same_objects(chart, _index(_without_namespace(rendered)))
    assert not [k for k in chart if k[0] in ("Namespace", "ServiceMonitor")]


def test_federation_chart_matches_render(helm: str) -> None:
    chart = _index(_template(helm, FEDERATION, "kubeconfigSecret=kc", release="r", namespace="fed"))
    rendered = install.federation_karmada_manifests("fed", release="r") + (
        install.federation_operator_manifests("fed", kubeconfig_secret="kc", release="r")
    )
    _same_objects(chart, _index(_without_namespace(rendered)))
    assert ("Secret", "r-federation-operator-token", "fed") in chart
    assert ("Service", "r-federation-operator-metrics", "fed") in chart


def test_federation_chart_parts(helm: str) -> None:
    control_plane = _index(_template(helm, FEDERATION, "components.operator=false"))
    assert ("Deployment", install.FEDERATION_OPERATOR, NAMESPACE) not in control_plane
    _same_objects(control_plane, _index(_without_namespace(install.federation_karmada_manifests())))
    operator = [
        d
        for d in _template(helm, FEDERATION, "components.controlPlane=false")
        if d["kind"] != "CustomResourceDefinition"  # helm --skip-crds leaves them out
    ]
    _same_objects(
        _index(operator), _index(_without_namespace(install.federation_operator_manifests()))
    )


def test_long_release_names_are_cut_as_render_cuts_them(helm: str) -> None:
    release = "a-release-name-long-enough-to-need-cutting-at-53"  # helm allows 53
    chart = _index(_template(helm, MEMBER, "clusterId=m", release=release))
    name = install.member_operator_name(release)
    assert len(name) <= 63 and ("Deployment", name, NAMESPACE) in chart
    rendered = install.member_manifests("m", release=release)
    _same_objects(chart, _index(_without_namespace(rendered)))


def test_fullname_override_names_everything(helm: str) -> None:
    chart = _index(_template(helm, MEMBER, "clusterId=m", "fullnameOverride=xmo"))
    assert {k[1] for k in chart if k[0] != "CustomResourceDefinition"} == {"xmo", "xmo-metrics"}
    deployment = chart[("Deployment", "xmo", NAMESPACE)]
    env = {e["name"]: e for e in _container(deployment)["env"]}
    assert env["XLINEFED_CLUSTER_ID"]["valueFrom"]["configMapKeyRef"]["name"] == "xmo"
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == "xmo"


@pytest.mark.parametrize("chart", [MEMBER, FEDERATION], ids=["member", "federation"])
def test_placement_values_reach_the_pod_and_nothing_else(helm: str, chart: Path) -> None:
    sets = ("clusterId=m",) if chart == MEMBER else ()
    default = _index(_template(helm, chart, *sets))
    placed = _index(_template(helm, chart, *sets, *PLACEMENT))
    name = install.member_operator_name() if chart == MEMBER else install.FEDERATION_OPERATOR
    pod = placed[("Deployment", name, NAMESPACE)]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "operators", "effect": "NoSchedule"}
    ]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}
    ]
    assert _container(placed[("Deployment", name, NAMESPACE)])["resources"] == {
        "requests": {"cpu": "250m", "memory": "128Mi"},
        "limits": {"memory": "1Gi"},
    }
    default_pod = default[("Deployment", name, NAMESPACE)]["spec"]["template"]["spec"]
    for field in ("imagePullSecrets", "nodeSelector", "tolerations", "affinity"):
        assert field not in default_pod, field
    # Everything else is as with the defaults: only the ServiceMonitor is added.
    added = set(placed) - set(default)
    assert added == {("ServiceMonitor", name, NAMESPACE)}
    for key, doc in default.items():
        if key[0] != "Deployment":
            assert placed[key] == doc, key


@pytest.mark.parametrize("chart", [MEMBER, FEDERATION], ids=["member", "federation"])
def test_the_service_monitor_scrapes_the_metrics_service(helm: str, chart: Path) -> None:
    """No Prometheus Operator in the stack, so its schema is checked here: a
    monitoring.coreos.com/v1 ServiceMonitor whose selector picks exactly the metrics
    Service, in the release namespace, by the Service's port name."""
    sets = ("clusterId=m",) if chart == MEMBER else ()
    docs = _index(
        _template(
            helm,
            chart,
            *sets,
            "metrics.serviceMonitor.enabled=true",
            "metrics.serviceMonitor.labels.release=prometheus",
            "metrics.serviceMonitor.scrapeTimeout=10s",
            release="obs",
            namespace="mon",
        )
    )
    (monitor,) = [d for d in docs.values() if d["kind"] == "ServiceMonitor"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "mon"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert set(monitor["spec"]) == {"namespaceSelector", "selector", "endpoints"}
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["mon"]}
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "scrapeTimeout": "10s"}
    ]
    wanted = monitor["spec"]["selector"]["matchLabels"]
    picked = [
        d
        for d in docs.values()
        if d["kind"] == "Service" and wanted.items() <= d["metadata"]["labels"].items()
    ]
    assert [d["metadata"]["name"] for d in picked] == [f"{monitor['metadata']['name']}-metrics"]
    assert [p["name"] for p in picked[0]["spec"]["ports"]] == ["metrics"]
    if chart == FEDERATION:
        # Only where the operator runs: the control-plane part has no pod to scrape.
        control_plane = _template(
            helm, chart, "components.operator=false", "metrics.serviceMonitor.enabled=true"
        )
        assert not [d for d in control_plane if d["kind"] in ("ServiceMonitor", "Service")]


def test_crd_chart_holds_the_generated_crds_and_keeps_them(helm: str) -> None:
    generated = crds.all_crds()
    docs = _template(helm, CRDS)
    assert [d["spec"]["names"]["kind"] for d in docs] == [
        "XlineFederation",
        "XlineCluster",
        "XlineBackup",
    ]
    for doc in docs:
        want = generated[doc["spec"]["names"]["kind"]]
        assert doc["spec"] == want["spec"]
        assert doc["metadata"]["name"] == want["metadata"]["name"]
        # helm uninstall leaves them: deleting a CRD deletes every object of its kind.
        assert doc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "xlinefed"
    member_cluster = _template(helm, CRDS, "xlineFederation=false")
    assert [d["spec"]["names"]["kind"] for d in member_cluster] == ["XlineCluster", "XlineBackup"]
