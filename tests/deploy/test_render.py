"""The install manifests: committed YAML up to date, least privilege, the right wiring."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from xlinefed import install
from xlinefed.api import crds
from xlinefed.install.__main__ import main as generate
from xlinefed.install.files import rendered_files, to_yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = _by_kind(docs, kind)
    return found


def test_committed_files_match_render() -> None:
    files = rendered_files()
    assert {
        "member/operator.yaml",
        "federation/karmada.yaml",
        "federation/operator.yaml",
        "charts/xlinefed-federation/files/interpreter.yaml",
        "charts/xlinefed-federation/files/rbac-rules.yaml",
        "charts/xlinefed-member/files/rbac-rules.yaml",
        "crds/xlinefed.io_xlineclusters.yaml",
    } <= set(files)
    for name, text in files.items():
        assert (DEPLOY / name).read_text() == text, (
            f"deploy/{name} is stale; run: python -m xlinefed.install --write deploy"
        )


def test_check_mode_detects_drift(tmp_path: Path) -> None:
    assert generate(["--write", str(tmp_path)]) == 0
    assert generate(["--check", str(tmp_path)]) == 0
    target = tmp_path / "member" / "operator.yaml"
    target.write_text(target.read_text().replace("replicas: 2", "replicas: 3"))
    assert generate(["--check", str(tmp_path)]) == 1


def test_yaml_round_trips() -> None:
    docs = install.member_manifests("member1") + install.federation_manifests()
    assert list(yaml.safe_load_all(to_yaml(docs))) == docs
    member = list(yaml.safe_load_all((DEPLOY / "member" / "operator.yaml").read_text()))
    assert member == install.member_manifests(None)


def test_the_crds_are_the_generated_ones() -> None:
    generated = crds.all_crds()
    member = install.member_manifests("m")
    assert _by_kind(member, "CustomResourceDefinition") == [
        generated["XlineCluster"],
        generated["XlineBackup"],
    ]
    karmada = install.federation_karmada_manifests()
    assert _by_kind(karmada, "CustomResourceDefinition") == [
        generated["XlineFederation"],
        generated["XlineCluster"],
    ]


def test_member_tier_names_its_cluster_through_a_configmap() -> None:
    docs = install.member_manifests("member7", namespace="ops", image="reg/x:1")
    assert _one(docs, "ConfigMap")["data"] == {"clusterId": "member7"}
    assert not _by_kind(install.member_manifests(None), "ConfigMap")
    deployment = _one(docs, "Deployment")
    assert deployment["metadata"]["namespace"] == "ops"
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "reg/x:1"
    assert container["args"][:2] == ["member-operator", "--cluster-id=$(XLINEFED_CLUSTER_ID)"]
    env = {e["name"]: e for e in container["env"]}
    assert (
        env["XLINEFED_CLUSTER_ID"]["valueFrom"]["configMapKeyRef"]["name"]
        == (_one(docs, "ConfigMap")["metadata"]["name"])
    )
    assert "--metrics-port=8080" in container["args"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8081,
        "metrics": 8080,
    }
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "8080/metrics" in " ".join(container["readinessProbe"]["exec"]["command"])
    service = _one(docs, "Service")
    assert service["spec"]["selector"].items() <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    assert "metrics" in {p["name"] for p in container["ports"]}
    # Everything namespaced lands in the operator's namespace; the binding names its SA.
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "ConfigMap", "Deployment", "Service"):
            assert doc["metadata"]["namespace"] == "ops", doc["kind"]
    binding = _one(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": install.MEMBER_OPERATOR, "namespace": "ops"}
    ]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == install.MEMBER_OPERATOR


def test_names_are_scoped_to_the_release() -> None:
    docs = install.member_manifests("m", release="blue")
    named = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "blue-member-operator") in named
    assert ("ClusterRole", "blue-member-operator") in named
    assert ("Service", "blue-member-operator-metrics") in named
    karmada = install.federation_karmada_manifests(release="blue")
    assert _one(karmada, "Secret")["metadata"]["name"] == "blue-federation-operator-token"
    # One per Karmada whatever the release (one customization per kind; one CRD).
    assert _one(karmada, "ResourceInterpreterCustomization")["metadata"]["name"] == (
        "xlinefed-xlinecluster"
    )
    assert _one(karmada, "ClusterPropagationPolicy")["metadata"]["name"] == "xlinefed-crds"
    # The default release's names are the ones documented everywhere.
    assert install.member_operator_name() == install.MEMBER_OPERATOR == "xlinefed-member-operator"
    assert install.member_operator_name("x" * 60) == "x" * 60 + "-me"


def _grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_rbac_is_least_privilege() -> None:
    for rules in (install.member_rules(), install.federation_rules()):
        grants = _grants(rules)
        assert not {g for g in grants if "*" in g}, "no wildcards"
        assert not {g for g in grants if g[1] in ("configmaps", "nodes")}
        assert not {g for g in grants if g[1].startswith("clusterkopfpeerings")}
        assert not {g for g in grants if g[2] in ("escalate", "bind", "impersonate")}
        assert all("resourceNames" not in r for r in rules)
    member = _grants(install.member_rules())
    # Exactly what the member operator's code calls.
    assert ("xlinefed.io", "xlineclusters", "patch") in member
    assert ("xlinefed.io", "xlineclusters", "create") not in member
    assert ("xlinefed.io", "xlineclusters", "delete") not in member
    assert ("xlinefed.io", "xlineclusters/status", "patch") in member
    assert {v for g, r, v in member if r == "persistentvolumeclaims"} == {
        "create",
        "delete",
        "get",
        "list",
        "watch",
    }
    assert {v for g, r, v in member if r == "services"} == {"create"}
    assert ("multicluster.x-k8s.io", "serviceexports", "create") in member
    # Secrets: the ones spec.tls names are read one by one, the checked copies the pods
    # mount are applied; never listed, watched or deleted (the copies go with their owner).
    assert {v for g, r, v in member if r == "secrets"} == {"get", "create", "patch"}
    # XlineBackups are taken and their status written; users create and delete them.
    assert {v for g, r, v in member if r == "xlinebackups"} == {"get", "list", "watch", "patch"}
    assert {v for g, r, v in member if r == "xlinebackups/status"} == {"get", "patch"}
    federation = _grants(install.federation_rules())
    assert not {g for g in federation if g[1] in ("pods", "persistentvolumeclaims", "secrets")}
    assert ("xlinefed.io", "xlinefederations", "delete") not in federation
    assert ("policy.karmada.io", "propagationpolicies", "delete") in federation
    assert ("config.karmada.io", "resourceinterpretercustomizations", "create") in federation


def test_federation_parts_go_to_two_api_servers() -> None:
    karmada = install.federation_karmada_manifests("fed")
    assert not _by_kind(karmada, "Deployment")
    assert {d["kind"] for d in karmada} >= {
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Secret",
        "ResourceInterpreterCustomization",
        "ClusterPropagationPolicy",
    }
    token = _one(karmada, "Secret")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"] == {
        "kubernetes.io/service-account.name": install.FEDERATION_OPERATOR
    }
    operator = install.federation_operator_manifests("fed", "img:2", kubeconfig_secret="kc")
    assert [d["kind"] for d in operator] == ["Namespace", "Deployment", "Service"]
    pod = _one(operator, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    assert container["args"] == ["federation-operator", "--metrics-port=8080"]
    # It serves metrics as the member operator does, and is ready once they answer.
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "health": 8081,
        "metrics": 8080,
    }
    assert "8080/metrics" in " ".join(container["readinessProbe"]["exec"]["command"])
    metrics = _one(operator, "Service")
    assert metrics["metadata"]["name"] == f"{install.FEDERATION_OPERATOR}-metrics"
    assert metrics["spec"]["ports"][0]["targetPort"] == "metrics"
    assert container["image"] == "img:2"
    assert {"name": "karmada", "secret": {"secretName": "kc"}} in pod["volumes"]
    kubeconfig = next(e["value"] for e in container["env"] if e["name"] == "KUBECONFIG")
    mount = next(m for m in container["volumeMounts"] if m["name"] == "karmada")
    assert kubeconfig == f"{mount['mountPath']}/kubeconfig"
    both = install.federation_manifests("fed", "img:2", "kc")
    assert [d["kind"] for d in both].count("Namespace") == 1
    assert _one(both, "Deployment") == _one(operator, "Deployment")


def test_interpreter_and_crd_propagation() -> None:
    karmada = install.federation_karmada_manifests()
    ric = _one(karmada, "ResourceInterpreterCustomization")
    assert ric["spec"]["target"] == {"apiVersion": "xlinefed.io/v1alpha1", "kind": "XlineCluster"}
    customizations = ric["spec"]["customizations"]
    functions = {
        "retention": "function Retain(desiredObj, observedObj)",
        "statusReflection": "function ReflectStatus(observedObj)",
        "statusAggregation": "function AggregateStatus(desiredObj, statusItems)",
        "healthInterpretation": "function InterpretHealth(observedObj)",
    }
    assert set(customizations) == set(functions)
    for key, signature in functions.items():
        assert customizations[key]["luaScript"].startswith(signature), key
    assert "'Available'" in customizations["healthInterpretation"]["luaScript"]
    policy = _one(karmada, "ClusterPropagationPolicy")
    assert policy["spec"]["resourceSelectors"] == [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "name": "xlineclusters.xlinefed.io",
        }
    ]
    assert policy["spec"]["preserveResourcesOnDeletion"] is True
    assert policy["spec"]["conflictResolution"] == "Overwrite"


def test_both_tiers_run_two_replicas_that_elect_a_leader_with_a_lease() -> None:
    """docs/operators.md: two replicas, Lease RBAC (no more), the pod's name as the
    holder identity, and the member Lease in the operator's own namespace."""
    for rules in (install.member_rules(), install.federation_rules()):
        leases = {v for g, r, v in _grants(rules) if r == "leases"}
        assert leases == {"get", "create", "update"}
        assert {g for g, r, _ in _grants(rules) if r == "leases"} == {"coordination.k8s.io"}
    for docs, lease_namespace in (
        (install.member_manifests("m"), True),
        (install.federation_operator_manifests(), False),
    ):
        deployment = _one(docs, "Deployment")
        assert deployment["spec"]["replicas"] == 2
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        identity = env["XLINEFED_LEASE_IDENTITY"]["valueFrom"]["fieldRef"]["fieldPath"]
        assert identity == "metadata.name"
        # The federation operator's Lease is on Karmada, not in the pod's host cluster.
        assert ("XLINEFED_LEASE_NAMESPACE" in env) == lease_namespace
