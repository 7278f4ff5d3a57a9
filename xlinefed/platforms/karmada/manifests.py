"""Karmada objects of the federation tier, as plain dicts. Pure."""

from __future__ import annotations

from typing import Any

from xlinefed.api.models import API_VERSION, XlineCluster
from xlinefed.placement import LABEL_CLUSTER, LABEL_FEDERATION

POLICY_API = "policy.karmada.io/v1alpha1"


def propagation_policy(cluster: XlineCluster) -> dict[str, Any]:
    """Places one XlineCluster in exactly its member cluster."""
    return {
        "apiVersion": POLICY_API,
        "kind": "PropagationPolicy",
        "metadata": {
            "name": cluster.name,
            "namespace": cluster.namespace,
            "labels": {
                LABEL_FEDERATION: cluster.spec.federation,
                LABEL_CLUSTER: cluster.spec.cluster_id,
            },
        },
        "spec": {
            "resourceSelectors": [
                {"apiVersion": API_VERSION, "kind": "XlineCluster", "name": cluster.name}
            ],
            "placement": {"clusterAffinity": {"clusterNames": [cluster.spec.cluster_id]}},
        },
    }


def xline_cluster(cluster: XlineCluster) -> dict[str, Any]:
    """The object to apply: spec and identity, never status (the member writes that)."""
    document = cluster.to_wire()
    document.pop("status", None)
    return document
