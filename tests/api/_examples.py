"""Example resources shared by the API tests: valid ones, as plain wire dicts."""

from __future__ import annotations

import copy
from typing import Any


def federation(**spec: Any) -> dict[str, Any]:
    """A valid 3-cluster etcd federation; keyword arguments override spec fields."""
    base: dict[str, Any] = {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineFederation",
        "metadata": {"name": "demo", "namespace": "db"},
        "spec": {
            "engine": "etcd",
            "version": "3.5.17",
            "clusters": [
                {"id": "member1", "replicas": 1},
                {"id": "member2", "replicas": 1},
                {"id": "member3", "replicas": 1},
            ],
        },
    }
    base["spec"].update(copy.deepcopy(spec))
    return base


#: Valid federations, from minimal to every field set.
EXAMPLES: dict[str, dict[str, Any]] = {
    "minimal-etcd-single": {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineFederation",
        "metadata": {"name": "solo"},
        "spec": {"version": "3.5.17", "clusters": [{"id": "local", "replicas": 1}]},
    },
    "etcd-three-clusters": federation(),
    "xline-full": federation(
        engine="xline",
        image="ghcr.io/xline-kv/xline",
        version="v0.7.0",
        bootstrap="dynamic",
        clusters=[
            {"id": "aws-eu", "replicas": 2},
            {"id": "gcp-us", "replicas": 2},
            {"id": "onprem", "replicas": 1},
        ],
        updateStrategy={
            "clusterOrder": "Listed",
            "partitions": {"aws-eu": 1, "onprem": 0},
            "maxPromoteLag": 50,
        },
        storage={"size": "10Gi", "storageClassName": "fast", "onScaleIn": "delete"},
        network={
            "dnsTemplate": "{member}.{cluster}.{namespace}.mesh.example",
            "ports": {"client": 12379, "peer": 12380},
        },
        tls={"peerSecretRef": "peer-tls", "clientSecretRef": "client-tls"},
        engineArgs={"quota-backend-bytes": "8589934592", "auto-compaction-retention": "1"},
        paused=True,
    ),
    "etcd-with-empty-cluster": federation(
        clusters=[{"id": "member1", "replicas": 3}, {"id": "standby", "replicas": 0}]
    ),
    "even-total": federation(
        clusters=[{"id": "member1", "replicas": 2}, {"id": "member2", "replicas": 2}]
    ),
}
