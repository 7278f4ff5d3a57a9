"""Building blocks of both tiers' objects: labels, metadata, the Namespace, the RBAC
objects around a rule list, and the operator Deployment with its probes and security."""

from __future__ import annotations

import copy

from xlinefed import __version__
from xlinefed.api import crds
from xlinefed.install.names import HEALTH_PORT, METRICS_PORT, Doc, scoped

#: Operator replicas per tier: a leader and a standby.
REPLICAS = 2


def labels(component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/part-of": "xlinefed",
        "app.kubernetes.io/version": __version__,
    }


def selector(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component}


def meta(name: str, component: str, namespace: str | None = None) -> Doc:
    meta: Doc = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels(component)
    return meta


def namespace_object(namespace: str, component: str) -> Doc:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(namespace, component)}


def rbac_objects(name: str, namespace: str, rules: list[Doc]) -> list[Doc]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": meta(name, name, namespace),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": meta(name, name),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(name, name),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]


def metrics_probe() -> Doc:
    """Ready once the metrics server answers (it starts before the election, so a standby
    is ready too)."""
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


def liveness_probe() -> Doc:
    """kopf answers /healthz while its event loop runs and its probes pass."""
    return {
        "httpGet": {"path": "/healthz", "port": "health"},
        "initialDelaySeconds": 10,
        "periodSeconds": 20,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }


def chart_pod_fields() -> Doc:
    """The fixed pod fields a chart includes verbatim (`files/pod-fields.yaml`), so the
    chart and the rendered manifests cannot drift. The readiness probe carries a chart
    value (the metrics port), so it stays in the template."""
    return {
        "podSecurityContext": pod_security(),
        "containerSecurityContext": container_security(),
        "livenessProbe": liveness_probe(),
    }


def container_security() -> Doc:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def pod_security() -> Doc:
    return {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources() -> Doc:
    return {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"memory": "512Mi"},
    }


def deployment(
    name: str,
    namespace: str,
    image: str,
    *,
    args: list[str],
    env: list[Doc],
    service_account: str | None,
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
            # The replicas elect a leader with a Lease; each names itself by its pod.
            {
                "name": "XLINEFED_LEASE_IDENTITY",
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            {
                "name": "XLINEFED_LIVENESS_ENDPOINT",
                "value": f"http://0.0.0.0:{HEALTH_PORT}/healthz",
            },
        ],
    }
    container["livenessProbe"] = liveness_probe()
    container["readinessProbe"] = metrics_probe()
    container["ports"] = [
        {"name": "health", "containerPort": HEALTH_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]
    container["resources"] = resources()
    container["securityContext"] = container_security()
    # The root filesystem is read-only; Python and its libraries get a writable /tmp.
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, *(mounts or [])]
    pod_spec: Doc = {}
    if service_account is None:
        pod_spec["automountServiceAccountToken"] = False
    else:
        pod_spec["serviceAccountName"] = service_account
    pod_spec["securityContext"] = pod_security()
    pod_spec["terminationGracePeriodSeconds"] = 30
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = [{"name": "tmp", "emptyDir": {}}, *(volumes or [])]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(name, name, namespace),
        "spec": {
            "replicas": REPLICAS,
            # Two replicas; only the holder of the tier's Lease reconciles, so pods may
            # overlap: a rollout starts the new pod before it stops an old one, and the
            # leader releases the Lease as it stops (docs/operators.md, "High availability").
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "selector": {"matchLabels": selector(name)},
            "template": {"metadata": {"labels": labels(name)}, "spec": pod_spec},
        },
    }


def metrics_service(name: str, namespace: str) -> Doc:
    """`<name>-metrics`, for Prometheus (and the charts' optional ServiceMonitor)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(scoped(name, "metrics"), name, namespace),
        "spec": {
            "selector": selector(name),
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


def crd_copy(kind: str) -> Doc:
    return copy.deepcopy(crds.all_crds()[kind])


# --------------------------------------------------------------------------------------
# Member tier
