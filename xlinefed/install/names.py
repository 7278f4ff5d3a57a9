"""The names, ports and default image every install manifest shares."""

from __future__ import annotations

from typing import Any

from xlinefed import __version__

#: One Kubernetes object as plain data.
Doc = dict[str, Any]

DEFAULT_NAMESPACE = "xlinefed-system"
#: The Helm release name the README installs with; `xlinefed render` names everything as
#: that release does, so the two give the same objects.
DEFAULT_RELEASE = "xlinefed"
DEFAULT_IMAGE = f"xlinefed/operator:{__version__}"


def scoped(release: str, suffix: str) -> str:
    """A release-scoped name, as the charts' `fullname` helpers make it: `<release>-<suffix>`
    cut to a DNS label (63 characters, no trailing dash), Helm's `trunc 63 | trimSuffix "-"`."""
    return f"{release}-{suffix}"[:63].removesuffix("-")


def member_operator_name(release: str = DEFAULT_RELEASE) -> str:
    return scoped(release, "member-operator")


def federation_operator_name(release: str = DEFAULT_RELEASE) -> str:
    return scoped(release, "federation-operator")


#: The default release's names. The Leases keep these names whatever the release: the
#: Lease guards the work in its namespace, so two installs there must share one leader.
MEMBER_OPERATOR = member_operator_name()
FEDERATION_OPERATOR = federation_operator_name()
#: The kinds each tier's API server serves: a member cluster runs XlineClusters and takes
#: on-demand XlineBackups; Karmada holds the federations and the XlineClusters it places.
MEMBER_KINDS = ("XlineCluster", "XlineBackup")
FEDERATION_KINDS = ("XlineFederation", "XlineCluster")
#: Secret (key `kubeconfig`) through which the federation operator reaches Karmada.
KUBECONFIG_SECRET = "xlinefed-karmada-kubeconfig"
METRICS_PORT = 8080
#: kopf's liveness endpoint (`XLINEFED_LIVENESS_ENDPOINT`).
HEALTH_PORT = 8081
KUBECONFIG_DIR = "/etc/xlinefed/karmada"
MCS_GROUP = "multicluster.x-k8s.io"
