"""The Helm charts: `helm lint` clean, and `helm template` gives the objects xlinefed.install gives.

helm comes from hack/install_helm.sh (built from the Go module proxy once, then cached).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from xlinefed import install

ROOT = Path(__file__).resolve().parents[2]
CHARTS = ROOT / "deploy" / "charts"
MEMBER = CHARTS / "xlinefed-member"
FEDERATION = CHARTS / "xlinefed-federation"

Key = tuple[str, str, str | None]


@pytest.fixture(scope="module")
def helm() -> str:
    done = subprocess.run(
        ["bash", str(ROOT / "hack" / "install_helm.sh")],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _run(helm: str, *args: str) -> str:
    done = subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _template(helm: str, chart: Path, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "xlinefed", str(chart), "--include-crds"]
    for value in sets:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(_run(helm, *args)) if d]


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
            assert got["spec"]["replicas"] == want["spec"]["replicas"] == 1
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


def test_lint(helm: str) -> None:
    out = _run(helm, "lint", "--strict", str(MEMBER), "--set", "clusterId=member1")
    assert "1 chart(s) linted, 0 chart(s) failed" in out
    out = _run(helm, "lint", "--strict", str(FEDERATION))
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_member_chart_requires_a_cluster_id(helm: str) -> None:
    done = subprocess.run(
        [helm, "template", "x", str(MEMBER)], capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "set clusterId" in done.stderr


def test_member_chart_matches_render(helm: str) -> None:
    chart = _index(_template(helm, MEMBER, "clusterId=member2", "namespace=ops", "image.tag=9.9"))
    rendered = _index(
        install.member_manifests("member2", namespace="ops", image="xlinefed/operator:9.9")
    )
    _same_objects(chart, rendered)


def test_member_chart_defaults_match_the_static_yaml(helm: str) -> None:
    chart = _index(_template(helm, MEMBER, "clusterId=member1"))
    rendered = _index(install.member_manifests("member1"))
    _same_objects(chart, rendered)


def test_federation_chart_matches_render(helm: str) -> None:
    chart = _index(_template(helm, FEDERATION, "namespace=fed", "kubeconfigSecret=kc"))
    rendered = _index(
        install.federation_karmada_manifests("fed")
        + install.federation_operator_manifests("fed", kubeconfig_secret="kc")[1:]
    )
    _same_objects(chart, rendered)


def test_federation_chart_parts(helm: str) -> None:
    control_plane = _index(
        _template(helm, FEDERATION, "components.operator=false", "createNamespace=true")
    )
    assert ("Deployment", install.FEDERATION_OPERATOR, "xlinefed-system") not in control_plane
    _same_objects(control_plane, _index(install.federation_karmada_manifests()))
    operator = [
        d
        for d in _template(helm, FEDERATION, "components.controlPlane=false")
        if d["kind"] != "CustomResourceDefinition"  # helm --skip-crds leaves them out
    ]
    _same_objects(_index(operator), _index(install.federation_operator_manifests()))
