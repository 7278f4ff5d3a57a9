"""The charts against the real stack: what `helm template` renders is accepted by a real
kube-apiserver (a member cluster, and a cluster that runs the federation operator) and by
Karmada, as a server-side dry run (`kubectl apply --server-side --dry-run=server`, through
the tests' client); and the CRD chart really installs, upgrades and is uninstalled with
helm against Karmada, keeping its CRDs.

The ServiceMonitor is left off here (no Prometheus Operator CRDs in the stack);
tests/deploy/test_helm.py checks its shape.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_helm import CRDS, FEDERATION, MEMBER, PLACEMENT, _run
from tests.support.stack import KubeClient, Stack
from tests.support.wait import wait_until
from xlinefed import install
from xlinefed.api import crds

pytestmark = pytest.mark.stack

CRD_API = "apiextensions.k8s.io/v1"
#: Everything but the ServiceMonitor, whose CRD the stack does not have.
NO_MONITOR = tuple(v for v in PLACEMENT if not v.startswith("metrics.serviceMonitor"))


def _template(helm: str, chart: Path, namespace: str, *sets: str) -> list[dict[str, Any]]:
    args = ["template", "xlinefed", str(chart), "--include-crds", "--namespace", namespace]
    for value in sets:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(_run(helm, *args)) if d]


def _dry_run(client: KubeClient, docs: list[dict[str, Any]]) -> list[str]:
    """Server-side apply of every object as a dry run: admission, schemas and webhooks
    judge each one, nothing is stored. What each was accepted as."""
    accepted = []
    for doc in docs:
        meta = doc["metadata"]
        path = client.path(doc["apiVersion"], doc["kind"], meta["name"], meta.get("namespace"))
        answer = client.request(
            "PATCH",
            path,
            doc,
            params={"fieldManager": "helm-dry-run-test", "force": True, "dryRun": "All"},
            content_type="application/apply-patch+yaml",
        )
        assert answer["kind"] == doc["kind"], answer
        accepted.append(f"{doc['kind']}/{meta['name']}")
    return accepted


@pytest.fixture
def release_namespace(stack: Stack, karmada: KubeClient) -> Iterator[str]:
    """A fresh namespace on Karmada (which propagates it to every member)."""
    name = f"helm-{uuid.uuid4().hex[:6]}"
    karmada.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    for member in stack.members[:2]:
        wait_until(
            lambda m=member: stack.member(m).get_or_none("v1", "Namespace", name),
            timeout=60,
            what=f"namespace {name} in {member}",
        )
    yield name
    karmada.delete("v1", "Namespace", name)


def test_member_chart_is_accepted_by_a_member_apiserver(
    helm: str, stack: Stack, release_namespace: str
) -> None:
    member = stack.member(stack.members[0])
    for sets in ((), NO_MONITOR):
        docs = _template(helm, MEMBER, release_namespace, f"clusterId={stack.members[0]}", *sets)
        accepted = _dry_run(member, docs)
        assert {
            "CustomResourceDefinition/xlineclusters.xlinefed.io",
            f"Deployment/{install.MEMBER_OPERATOR}",
            f"ConfigMap/{install.MEMBER_OPERATOR}",
            f"Service/{install.MEMBER_OPERATOR}-metrics",
            f"ClusterRole/{install.MEMBER_OPERATOR}",
        } <= set(accepted)
    # A dry run stores nothing.
    name = install.MEMBER_OPERATOR
    assert member.get_or_none("apps/v1", "Deployment", name, release_namespace) is None


def test_federation_chart_is_accepted_by_karmada_and_the_operator_cluster(
    helm: str, stack: Stack, karmada: KubeClient, release_namespace: str
) -> None:
    control_plane = _template(helm, FEDERATION, release_namespace, "components.operator=false")
    accepted = _dry_run(karmada, control_plane)
    assert {
        "CustomResourceDefinition/xlinefederations.xlinefed.io",
        "ResourceInterpreterCustomization/xlinefed-xlinecluster",
        "ClusterPropagationPolicy/xlinefed-crds",
        f"Secret/{install.FEDERATION_OPERATOR}-token",
    } <= set(accepted)
    # The operator part goes to the cluster that runs its pod (a member plays it here);
    # helm installs it with --skip-crds.
    host = stack.member(stack.members[1])
    for sets in ((), NO_MONITOR):
        operator = [
            d
            for d in _template(
                helm, FEDERATION, release_namespace, "components.controlPlane=false", *sets
            )
            if d["kind"] != "CustomResourceDefinition"
        ]
        assert sorted(_dry_run(host, operator)) == [
            f"Deployment/{install.FEDERATION_OPERATOR}",
            f"Service/{install.FEDERATION_OPERATOR}-metrics",
        ]


def _helm_on(helm: str, kubeconfig: Path, *args: str) -> str:
    done = subprocess.run(
        [helm, "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _columns(karmada: KubeClient) -> list[str]:
    crd = karmada.get(CRD_API, "CustomResourceDefinition", "xlinefederations.xlinefed.io")
    return [c["name"] for c in crd["spec"]["versions"][0].get("additionalPrinterColumns", [])]


def test_crd_chart_installs_upgrades_and_keeps_its_crds(
    helm: str, stack: Stack, karmada: KubeClient, release_namespace: str, tmp_path: Path
) -> None:
    """The documented path (README, docs/operators.md "Installing and upgrading the CRDs"):
    CRDs an older install left (here: one printer column fewer, applied server-side as
    `kubectl apply --server-side -f deploy/crds/` does) are taken over and upgraded by
    `helm upgrade --install --take-ownership`; a newer chart's change arrives with a plain
    `helm upgrade` (crds/ would never carry it); `helm uninstall` leaves them."""
    kubeconfig = stack.karmada_kubeconfig
    generated = crds.all_crds()["XlineFederation"]
    want = [c["name"] for c in generated["spec"]["versions"][0]["additionalPrinterColumns"]]
    older = copy.deepcopy(generated)
    older["spec"]["versions"][0]["additionalPrinterColumns"].pop()
    karmada.apply(older, manager="older-install")
    assert _columns(karmada) == want[:-1]

    release = ["xlinefed-crds", "--namespace", release_namespace]
    _helm_on(helm, kubeconfig, "upgrade", "--install", *release, str(CRDS), "--take-ownership")
    assert _columns(karmada) == want
    stored = karmada.get(CRD_API, "CustomResourceDefinition", "xlinefederations.xlinefed.io")
    assert stored["metadata"]["annotations"]["meta.helm.sh/release-name"] == "xlinefed-crds"

    # A newer chart (a column added) upgrades the CRD in place, and going back removes it.
    newer = tmp_path / "xlinefed-crds"
    shutil.copytree(CRDS, newer)
    crd_file = newer / "files" / "xlinefed.io_xlinefederations.yaml"
    document = yaml.safe_load(crd_file.read_text())
    document["spec"]["versions"][0]["additionalPrinterColumns"].append(
        {"name": "Upgraded", "type": "string", "jsonPath": ".spec.engine"}
    )
    crd_file.write_text(yaml.safe_dump(document, sort_keys=False))
    _helm_on(helm, kubeconfig, "upgrade", *release, str(newer))
    assert _columns(karmada) == [*want, "Upgraded"]
    _helm_on(helm, kubeconfig, "upgrade", *release, str(CRDS))
    assert _columns(karmada) == want

    _helm_on(helm, kubeconfig, "uninstall", *release)
    for crd in crds.all_crds().values():
        assert karmada.get_or_none(CRD_API, "CustomResourceDefinition", crd["metadata"]["name"])
