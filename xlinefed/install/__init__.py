"""xlinefed's install manifests, both operator tiers, as plain data (lists of dicts).

Pure: no I/O except in `__main__`. Every committed file under `deploy/` that is not a
hand-written chart template is generated from here (and from the models, for the CRDs), and
a test fails when it drifts:

    python -m xlinefed.install --write deploy     # regenerate (or hack/gen_crds.sh)
    python -m xlinefed.install --check deploy     # exit 1 if anything differs

The modules: `names` (names, ports, default image), `rbac` (each operator's rules),
`workloads` (labels, RBAC objects, the operator Deployment), `karmada` (the interpreter's
Lua and the CRD propagation policy), `tiers` (each tier's objects in apply order) and
`files` (the text of every generated file).

Everything is named as the Helm release `release` (default `xlinefed`, the README's)
names it: `<release>-member-operator`, `<release>-federation-operator`; the charts' default
objects are these (tests/deploy/test_helm.py), less the Namespace (`helm --create-namespace`).

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
  Karmada host cluster, say): its Deployment, reaching Karmada through a kubeconfig Secret,
  and its metrics Service.
- `deploy/charts/xlinefed-crds/files/` — the CRDs again, for the CRD chart (upgradable).
"""

from xlinefed.install.files import to_yaml
from xlinefed.install.karmada import INTERPRETER_LUA, interpreter_customization
from xlinefed.install.names import (
    DEFAULT_IMAGE,
    DEFAULT_NAMESPACE,
    DEFAULT_RELEASE,
    FEDERATION_OPERATOR,
    KUBECONFIG_SECRET,
    MEMBER_OPERATOR,
    METRICS_PORT,
    federation_operator_name,
    member_operator_name,
)
from xlinefed.install.rbac import federation_rules, member_rules
from xlinefed.install.tiers import (
    federation_karmada_manifests,
    federation_manifests,
    federation_operator_manifests,
    member_manifests,
)

__all__ = [
    "DEFAULT_IMAGE",
    "DEFAULT_NAMESPACE",
    "DEFAULT_RELEASE",
    "FEDERATION_OPERATOR",
    "INTERPRETER_LUA",
    "KUBECONFIG_SECRET",
    "MEMBER_OPERATOR",
    "METRICS_PORT",
    "federation_karmada_manifests",
    "federation_manifests",
    "federation_operator_manifests",
    "federation_operator_name",
    "federation_rules",
    "interpreter_customization",
    "member_manifests",
    "member_operator_name",
    "member_rules",
    "to_yaml",
]
