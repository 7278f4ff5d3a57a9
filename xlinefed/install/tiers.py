"""Each tier's install, in apply order: the member cluster's, the Karmada API server's,
and the federation operator's own cluster's."""

from __future__ import annotations

from xlinefed.install.karmada import crd_propagation_policy, interpreter_customization
from xlinefed.install.names import (
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    DEFAULT_RELEASE,
    FEDERATION_KINDS,
    KUBECONFIG_DIR,
    KUBECONFIG_SECRET,
    MEMBER_KINDS,
    METRICS_PORT,
    Doc,
    federation_operator_name,
    member_operator_name,
    scoped,
)
from xlinefed.install.rbac import federation_rules, member_rules
from xlinefed.install.workloads import (
    crd_copy,
    deployment,
    meta,
    metrics_service,
    namespace_object,
    rbac_objects,
)


def member_manifests(
    cluster_id: str | None,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    release: str = DEFAULT_RELEASE,
) -> list[Doc]:
    """Everything one member cluster needs, in apply order; named as the chart names
    them for the Helm release `release` (`<release>-member-operator`).

    With `cluster_id` None the ConfigMap that names the cluster is left out (the committed
    `deploy/member/operator.yaml`); create it with
    `kubectl -n NS create configmap xlinefed-member-operator --from-literal=clusterId=ID`.
    """
    name = member_operator_name(release)
    docs: list[Doc] = [namespace_object(namespace, name), *map(crd_copy, MEMBER_KINDS)]
    docs += rbac_objects(name, namespace, member_rules())
    if cluster_id is not None:
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(name, name, namespace),
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
        # The Lease lives beside the operator (the federation operator's, on the Karmada
        # API server, in the watched namespace or "default").
        {
            "name": "XLINEFED_LEASE_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
    ]
    args = [
        "member-operator",
        "--cluster-id=$(XLINEFED_CLUSTER_ID)",
        f"--metrics-port={METRICS_PORT}",
    ]
    docs.append(deployment(name, namespace, image, args=args, env=env, service_account=name))
    docs.append(metrics_service(name, namespace))
    return docs


# --------------------------------------------------------------------------------------
# Federation tier: the Karmada API server's objects


def federation_karmada_manifests(
    namespace: str = DEFAULT_NAMESPACE, release: str = DEFAULT_RELEASE
) -> list[Doc]:
    """Apply to the Karmada API server, in this order."""
    name = federation_operator_name(release)
    docs: list[Doc] = [
        namespace_object(namespace, name),
        *map(crd_copy, FEDERATION_KINDS),
    ]
    docs += rbac_objects(name, namespace, federation_rules())
    docs.append(
        {
            # A long-lived token for the ServiceAccount, to build the kubeconfig that the
            # operator uses from outside Karmada (Karmada runs no pods of its own).
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                **meta(scoped(name, "token"), name, namespace),
                "annotations": {"kubernetes.io/service-account.name": name},
            },
            "type": "kubernetes.io/service-account-token",
        }
    )
    docs += [interpreter_customization(name), crd_propagation_policy(name)]
    return docs


def federation_operator_manifests(
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    kubeconfig_secret: str = KUBECONFIG_SECRET,
    release: str = DEFAULT_RELEASE,
) -> list[Doc]:
    """Apply to the cluster that runs the operator (e.g. Karmada's host cluster): its
    Deployment and metrics Service.

    The operator talks only to Karmada, through the kubeconfig in `kubeconfig_secret`
    (key `kubeconfig`), so its pod gets no token for the cluster it runs in.
    """
    name = federation_operator_name(release)
    operator = deployment(
        name,
        namespace,
        image,
        args=["federation-operator", f"--metrics-port={METRICS_PORT}"],
        env=[
            {"name": "KUBECONFIG", "value": f"{KUBECONFIG_DIR}/kubeconfig"},
            # The metrics Service needs more than loopback.
            {"name": "XLINEFED_METRICS_ADDRESS", "value": "0.0.0.0"},
        ],
        service_account=None,
        volumes=[{"name": "karmada", "secret": {"secretName": kubeconfig_secret}}],
        mounts=[{"name": "karmada", "mountPath": KUBECONFIG_DIR, "readOnly": True}],
    )
    return [namespace_object(namespace, name), operator, metrics_service(name, namespace)]


def federation_manifests(
    namespace: str = DEFAULT_NAMESPACE,
    image: str = DEFAULT_IMAGE,
    kubeconfig_secret: str = KUBECONFIG_SECRET,
    release: str = DEFAULT_RELEASE,
) -> list[Doc]:
    """Both parts: `federation_karmada_manifests` then `federation_operator_manifests`
    (the second Namespace is dropped; the two parts go to different API servers)."""
    karmada = federation_karmada_manifests(namespace, release)
    operator = federation_operator_manifests(namespace, image, kubeconfig_secret, release)
    return karmada + [d for d in operator if d["kind"] != "Namespace"]
