"""The names, ports and default image every install manifest shares."""

from __future__ import annotations

from typing import Any

from xlinefed import __version__

#: One Kubernetes object as plain data.
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
KUBECONFIG_DIR = "/etc/xlinefed/karmada"
MCS_GROUP = "multicluster.x-k8s.io"
