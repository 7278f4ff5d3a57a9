"""The install manifests of both operator tiers, as plain data (lists of dicts).

Pure: no I/O except in `main()`. The committed YAML under `deploy/member/` and
`deploy/federation/` (and the CRD copies inside the Helm charts) is generated from here and
a test fails when it drifts:

    python -m xlinefed.render --write deploy     # regenerate
    python -m xlinefed.render --check deploy     # exit 1 if anything differs

Where each file goes:

- `deploy/member/operator.yaml` — every member cluster: the XlineCluster CRD, the member
  operator's least-privilege RBAC, its Deployment and metrics Service. The cluster id comes
  from the ConfigMap `xlinefed-member-operator` (key `clusterId`), which this file leaves
  out on purpose: without it the pod stays in CreateContainerConfigError instead of
  silently managing nothing. `member_manifests(cluster_id=...)` includes it.
- `deploy/federation/karmada.yaml` — the Karmada API server: both CRDs, the federation
  operator's RBAC and a token Secret for its ServiceAccount, the ResourceInterpreter-
  Customization for XlineCluster and a ClusterPropagationPolicy that puts the XlineCluster
  CRD in every member cluster.
- `deploy/federation/operator.yaml` — the cluster that runs the federation operator (the
  Karmada host cluster, say): its Deployment, reaching Karmada through a kubeconfig Secret.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from xlinefed import __version__
from xlinefed.api import crds
from xlinefed.api.models import GROUP, VERSION

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "FEDERATION_OPERATOR",
    "INTERPRETER_LUA",
    "KUBECONFIG_SECRET",
    "MEMBER_OPERATOR",
    "METRICS_PORT",
    "federation_karmada_manifests",
    "federation_manifests",
    "federation_operator_manifests",
    "federation_rules",
    "member_manifests",
    "member_rules",
    "rendered_files",
    "to_yaml",
]

Doc = dict[str, Any]

DEFAULT_NAMESPACE = "xlinefed-system"
DEFAULT_IMAGE = f"xlinefed/operator:{__version__}"
MEMBER_OPERATOR = "xlinefed-member-operator"
FEDERATION_OPERATOR = "xlinefed-federation-operator"
#: Secret (key `kubeconfig`) through which the federation operator reaches Karmada.
KUBECONFIG_SECRET = "xlinefed-karmada-kubeconfig"
METRICS_PORT = 8080
#: kopf's liveness endpoint (`XLINEFED_LIVENESS_ENDPOINT`).
HEALTH_PORT = 8081
_KUBECONFIG_DIR = "/etc/xlinefed/karmada"
_MCS_GROUP = "multicluster.x-k8s.io"

# --------------------------------------------------------------------------------------
# Least-privilege rules: exactly the verbs the operators use (see the report in each
# docstring). kopf in standalone mode needs no peering objects; it patches the watched
# objects (finalizers, progress annotations) and their status, and posts core Events.


def _rule(groups: Sequence[str], resources: Sequence[str], verbs: Sequence[str]) -> Doc:
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


def member_rules() -> list[Doc]:
    """What `xlinefed member-operator` does in its cluster.

    XlineCluster: get/list/watch (kopf, `_read`), patch (kopf's finalizer and annotations,
    `mark_formed`), status patch; `xlineclusters/finalizers` update lets the Pods and
    Services carry a blocking owner reference where OwnerReferencesPermissionEnforcement
    is on. Pods: create, delete, get, list, watch. PVCs: create, delete, get, list.
    Services and ServiceExports: create (an existing one is left alone). Events: create.
    """
    return [
        _rule([GROUP], ["xlineclusters"], ["get", "list", "watch", "patch"]),
        _rule([GROUP], ["xlineclusters/status"], ["get", "patch"]),
        _rule([GROUP], ["xlineclusters/finalizers"], ["update"]),
        _rule([""], ["pods"], ["create", "delete", "get", "list", "watch"]),
        _rule([""], ["persistentvolumeclaims"], ["create", "delete", "get", "list"]),
        _rule([""], ["services"], ["create"]),
        _rule([_MCS_GROUP], ["serviceexports"], ["create"]),
        _rule([""], ["events"], ["create"]),
    ]


def federation_rules() -> list[Doc]:
    """What `xlinefed federation-operator` does on the Karmada API server.

    XlineFederation: get/list/watch and patch (kopf's finalizer and annotations), status
    patch, finalizers update (blocking owner references). XlineCluster: read, create,
    patch, delete (a merge patch on conflict; never PUT). PropagationPolicy: the same
    minus reads beyond get. ResourceInterpreterCustomization (cluster-scoped): created
    at startup, patched when it exists. Events: create.
    """
    return [
        _rule([GROUP], ["xlinefederations"], ["get", "list", "watch", "patch"]),
        _rule([GROUP], ["xlinefederations/status"], ["get", "patch"]),
        _rule([GROUP], ["xlinefederations/finalizers"], ["update"]),
        _rule([GROUP], ["xlineclusters"], ["get", "list", "watch", "create", "patch", "delete"]),
        _rule(
            ["policy.karmada.io"],
            ["propagationpolicies"],
            ["get", "list", "create", "patch", "delete"],
        ),
        _rule(
            ["config.karmada.io"], ["resourceinterpretercustomizations"], ["get", "create", "patch"]
        ),
        _rule([""], ["events"], ["create"]),
    ]


# --------------------------------------------------------------------------------------
# Building blocks


def _labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": "xlinefed",
        "app.kubernetes.io/version": __version__,
    }


def _selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component}


def _meta(name: str, component: str, namespace: str | None = None) -> Doc:
    meta: Doc = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = _labels(component)
    return meta


def _namespace(namespace: str, component: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace, component)}


def _rbac(name: str, namespace: str, rules: list[Doc]) -> list[Doc]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(name, name, namespace),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name, name),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name, name),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def _metrics_probe() -> Doc:
    """Ready once the operator's startup handler ran (it starts the metrics server last)."""
    script = (
        "import urllib.request; "
        f"urllib.request.urlopen('http://127.0.0.1:{METRICS_PORT}/metrics', timeout=2)"
    )
    return {
        "exec": {"command": ["python", "-c", script]},
        "initialDelaySeconds": 2,
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def _container_security() -> Doc:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security() -> Doc:
    return {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _resources() -> Doc:
    return {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }


def _deployment(
    name: str,
    namespace: str,
    image: str,
    *,
    args: list[str],
    env: list[Doc],
    service_account: str | None,
    metrics: bool,
    volumes: list[Doc] | None = None,
    mounts: list[Doc] | None = None,
) -> Doc:
    container: Doc = {
        "name": "operator",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "env": [
            *env,
            {
                "name": "XLINEFED_LIVENESS_ENDPOINT",
                "value": f"http://0.0.0.0:{HEALTH_PORT}/healthz",
            },
        ],
    }
    ports = [{"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"}]
    # kopf answers /healthz while its event loop runs and its probes pass.
    container["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": "health"},
        "initialDelaySeconds": 10,
        "periodSeconds": 20,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    if metrics:
        ports.append({"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"})
        container["readinessProbe"] = _metrics_probe()
    else:
        container["readinessProbe"] = {
            "httpGet": {"path": "/healthz", "port": "health"},
            "periodSeconds": 10,
            "timeoutSeconds": 5,
        }
    container["ports"] = ports
    container["resources"] = _resources()
    container["securityContext"] = _container_security()
    # The root filesystem is read-only; Python and its libraries get a writable /tmp.
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, *(mounts or [])]
    pod_spec: Doc = {}
    if service_account is None:
        pod_spec["automountServiceAccountToken"] = False
    else:
        pod_spec["serviceAccountName"] = service_account
    pod_spec["securityContext"] = _pod_security()
    pod_spec["terminationGracePeriodSeconds"] = 30
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = [{"name": "tmp", "emptyDir": {}}, *(volumes or [])]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, name, namespace),
        "spec": {
            "replicas": 1,
            # One operator at a time: kopf runs standalone (no peering), so never overlap.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": _selector(name)},
            "template": {"metadata": {"labels": _labels(name)}, "spec": pod_spec},
        },
    }


def _crd(kind: str) -> Doc:
    return copy.deepcopy(crds.all_crds()[kind])


# --------------------------------------------------------------------------------------
# Member tier


def member_manifests(
    cluster_id: str | None,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
) -> list[Doc]:
    """Everything one member cluster needs, in apply order.

    With `cluster_id` None the ConfigMap that names the cluster is left out (the committed
    `deploy/member/operator.yaml`); create it with
    `kubectl -n NS create configmap xlinefed-member-operator --from-literal=clusterId=ID`.
    """
    name = MEMBER_OPERATOR
    docs: list[Doc] = [_namespace(namespace, name), _crd("XlineCluster")]
    docs += _rbac(name, namespace, member_rules())
    if cluster_id is not None:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(name, name, namespace),
                "data": {"clusterId": cluster_id},
            }
        )
    env = [
        {
            "name": "XLINEFED_CLUSTER_ID",
            "valueFrom": {"configMapKeyRef": {"name": name, "key": "clusterId"}},
        },
        # Where the metrics server listens (the Service below needs more than loopback).
        {"name": "XLINEFED_METRICS_ADDRESS", "value": "0.0.0.0"},
    ]
    args = [
        "member-operator",
        "--cluster-id=$(XLINEFED_CLUSTER_ID)",
        f"--metrics-port={METRICS_PORT}",
    ]
    docs.append(
        _deployment(name, namespace, image, args=args, env=env, service_account=name, metrics=True)
    )
    docs.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(f"{name}-metrics", name, namespace),
            "spec": {
                "selector": _selector(name),
                "ports": [
                    {
                        "name": "metrics",
                        "port": METRICS_PORT,
                        "targetPort": "metrics",
                        "protocol": "TCP",
                    }
                ],
            },
        }
    )
    return docs


# --------------------------------------------------------------------------------------
# Federation tier: the Karmada API server's objects


_STATUS_REFLECTION = """\
function ReflectStatus(observedObj)
  if observedObj.status == nil then
    return {}
  end
  return observedObj.status
end
"""

_HEALTH = """\
function InterpretHealth(observedObj)
  return observedObj.status ~= nil and observedObj.status.phase == 'Available'
end
"""

# Each XlineCluster is placed in exactly one member cluster (its own PropagationPolicy),
# so there is one status item; should there be more, the item of spec.clusterId wins.
_AGGREGATION = """\
function AggregateStatus(desiredObj, statusItems)
  if statusItems == nil then
    return desiredObj
  end
  local chosen = nil
  for i = 1, #statusItems do
    local item = statusItems[i]
    if item.status ~= nil then
      if chosen == nil then
        chosen = item
      end
      if desiredObj.spec ~= nil and item.clusterName == desiredObj.spec.clusterId then
        chosen = item
      end
    end
  end
  if chosen ~= nil then
    desiredObj.status = chosen.status
  end
  return desiredObj
end
"""

_RETENTION = """\
function Retain(desiredObj, observedObj)
  if observedObj.status ~= nil then
    desiredObj.status = observedObj.status
  end
  return desiredObj
end
"""

#: The interpreter's Lua scripts by customization (Karmada's ResourceInterpreterCustomization).
INTERPRETER_LUA: dict[str, str] = {
    "retention": _RETENTION,
    "statusReflection": _STATUS_REFLECTION,
    "statusAggregation": _AGGREGATION,
    "healthInterpretation": _HEALTH,
}


def interpreter_customization() -> Doc:
    """How Karmada reads an XlineCluster: the member's status comes back unchanged."""
    return {
        "apiVersion": "config.karmada.io/v1alpha1",
        "kind": "ResourceInterpreterCustomization",
        "metadata": _meta("xlinefed-xlinecluster", FEDERATION_OPERATOR),
        "spec": {
            "target": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "XlineCluster"},
            "customizations": {
                key: {"luaScript": script} for key, script in INTERPRETER_LUA.items()
            },
        },
    }


def crd_propagation_policy() -> Doc:
    """The XlineCluster CRD in every member cluster (the only kind members need).

    `Overwrite` adopts a CRD the member tier installed first (same generator, same
    content); `preserveResourcesOnDeletion` keeps it in the members if it is deleted on
    Karmada — removing a CRD deletes every XlineCluster, and so every member's pods.
    """
    return {
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "ClusterPropagationPolicy",
        "metadata": _meta("xlinefed-crds", FEDERATION_OPERATOR),
        "spec": {
            "resourceSelectors": [
                {
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "kind": "CustomResourceDefinition",
                    "name": crds.all_crds()["XlineCluster"]["metadata"]["name"],
                }
            ],
            "conflictResolution": "Overwrite",
            "preserveResourcesOnDeletion": True,
            "placement": {"clusterAffinity": {}},
        },
    }


def federation_karmada_manifests(namespace: str = DEFAULT_NAMESPACE) -> list[Doc]:
    """Apply to the Karmada API server, in this order."""
    name = FEDERATION_OPERATOR
    docs: list[Doc] = [_namespace(namespace, name), _crd("XlineFederation"), _crd("XlineCluster")]
    docs += _rbac(name, namespace, federation_rules())
    docs.append(
        {
            # A long-lived token for the ServiceAccount, to build the kubeconfig that the
            # operator uses from outside Karmada (Karmada runs no pods of its own).
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                **_meta(f"{name}-token", name, namespace),
                "annotations": {"kubernetes.io/service-account.name": name},
            },
            "type": "kubernetes.io/service-account-token",
        }
    )
    docs += [interpreter_customization(), crd_propagation_policy()]
    return docs


def federation_operator_manifests(
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    kubeconfig_secret: str = KUBECONFIG_SECRET,
) -> list[Doc]:
    """Apply to the cluster that runs the operator (e.g. Karmada's host cluster).

    The operator talks only to Karmada, through the kubeconfig in `kubeconfig_secret`
    (key `kubeconfig`), so its pod gets no token for the cluster it runs in.
    """
    name = FEDERATION_OPERATOR
    # No readiness probe yet: the federation operator serves no metrics, and kopf's
    # liveness endpoint is not switched on by `run_operator`.
    deployment = _deployment(
        name,
        namespace,
        image,
        args=["federation-operator"],
        env=[{"name": "KUBECONFIG", "value": f"{_KUBECONFIG_DIR}/kubeconfig"}],
        service_account=None,
        metrics=False,
        volumes=[{"name": "karmada", "secret": {"secretName": kubeconfig_secret}}],
        mounts=[{"name": "karmada", "mountPath": _KUBECONFIG_DIR, "readOnly": True}],
    )
    return [_namespace(namespace, name), deployment]


def federation_manifests(
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    kubeconfig_secret: str = KUBECONFIG_SECRET,
) -> list[Doc]:
    """Both parts: `federation_karmada_manifests` then `federation_operator_manifests`
    (the second Namespace is dropped; the two parts go to different API servers)."""
    karmada = federation_karmada_manifests(namespace)
    operator = federation_operator_manifests(namespace, image, kubeconfig_secret)
    return karmada + [d for d in operator if d["kind"] != "Namespace"]


# --------------------------------------------------------------------------------------
# YAML


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(docs: Sequence[Doc], header: str = "") -> str:
    """A multi-document YAML stream (key order kept, multi-line strings as blocks)."""
    parts = [
        yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=10_000)
        for doc in docs
    ]
    return header + "---\n" + "---\n".join(parts)


def _header(command: str, where: str) -> str:
    return (
        f"# Generated by `python -m xlinefed.render --write deploy` ({command}).\n"
        f"# Apply to {where}. Do not edit by hand.\n"
    )


def rendered_files() -> dict[str, str]:
    """Path under deploy/ → text, for every generated file."""
    files = {
        "member/operator.yaml": to_yaml(
            member_manifests(None),
            _header("member tier", "every member cluster")
            + "# Then name the cluster: kubectl -n xlinefed-system create configmap "
            "xlinefed-member-operator --from-literal=clusterId=<id>\n",
        ),
        "federation/karmada.yaml": to_yaml(
            federation_karmada_manifests(), _header("federation tier", "the Karmada API server")
        ),
        "federation/operator.yaml": to_yaml(
            federation_operator_manifests(),
            _header("federation tier", "the cluster that runs the federation operator")
            + f"# It needs the Secret {KUBECONFIG_SECRET} (key kubeconfig) for Karmada.\n",
        ),
    }
    # The federation chart includes the interpreter's customizations from this file.
    files["charts/xlinefed-federation/files/interpreter.yaml"] = (
        "# Generated by `python -m xlinefed.render --write deploy`. Do not edit by hand.\n"
        + yaml.dump(
            interpreter_customization()["spec"]["customizations"],
            Dumper=_Dumper,
            sort_keys=False,
            default_flow_style=False,
            width=10_000,
        )
    )
    # The charts ship the same CRDs in their crds/ directories (helm installs, never deletes).
    crd_texts = crds.rendered_files()
    cluster_file = next(info.filename for info in crds.CRDS if info.kind == "XlineCluster")
    files[f"charts/xlinefed-member/crds/{cluster_file}"] = crd_texts[cluster_file]
    for filename, text in crd_texts.items():
        files[f"charts/xlinefed-federation/crds/{filename}"] = text
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m xlinefed.render", description="Generate xlinefed's install manifests."
    )
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", metavar="DIR", type=Path, help="write the files under DIR")
    mode.add_argument("--check", metavar="DIR", type=Path, help="exit 1 if DIR's files differ")
    args = parser.parse_args(argv)
    files = rendered_files()
    if args.write:
        for name, text in files.items():
            path = args.write / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
        return 0
    stale = [
        name
        for name, text in files.items()
        if not (args.check / name).is_file() or (args.check / name).read_text() != text
    ]
    for name in stale:
        print(
            f"{args.check / name} is stale; run: python -m xlinefed.render --write {args.check}",
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
