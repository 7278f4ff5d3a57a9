"""Least-privilege rules: exactly the verbs the operators use (see the report in each
docstring). kopf in standalone mode needs no peering objects; it patches the watched
objects (finalizers, progress annotations) and their status, and posts core Events.
Both tiers elect a leader with a `coordination.k8s.io` Lease: get, create, and update
(a replace carrying the read resourceVersion: `xlinefed.operators.leadership`).

The Helm charts include these rules from the files `python -m xlinefed.install` writes
(`deploy/charts/*/files/rbac-rules.yaml`), so the chart and `xlinefed render` grant the same.
"""

from __future__ import annotations

from collections.abc import Sequence

from xlinefed.api.models import GROUP
from xlinefed.install.names import MCS_GROUP, Doc


def _rule(groups: Sequence[str], resources: Sequence[str], verbs: Sequence[str]) -> Doc:
    return {"apiGroups": list(groups), "resources": list(resources), "verbs": list(verbs)}


LEASE_RULE = _rule(["coordination.k8s.io"], ["leases"], ["get", "create", "update"])


def member_rules() -> list[Doc]:
    """What `xlinefed member-operator` does in its cluster.

    XlineCluster: get/list/watch (kopf, `_read`), patch (kopf's finalizer and annotations,
    `mark_formed`), status patch; `xlineclusters/finalizers` update lets the Pods and
    Services carry a blocking owner reference where OwnerReferencesPermissionEnforcement
    is on. Pods: create, delete, get, list, watch. PVCs: create, delete, get, list, watch (a
    wiped volume is waited for with a watch).
    Services and ServiceExports: create (an existing one is left alone). Events: create.
    Pods: patch too (role labels, spec.podTemplate's labels and annotations in place).
    PodDisruptionBudgets: get, create, patch (server-side apply of the voters' budget).
    Secrets: get the ones spec.tls names (checked before use; the operator's own client
    certificate is read, never mounted); create and patch (server-side apply) the checked
    copies the pods mount, and read the one spec.backup.destination.credentialsSecret names.
    XlineBackup: get/list/watch and patch (kopf's annotations), status patch.
    """
    return [
        _rule([GROUP], ["xlineclusters"], ["get", "list", "watch", "patch"]),
        _rule([GROUP], ["xlineclusters/status"], ["get", "patch"]),
        _rule([GROUP], ["xlineclusters/finalizers"], ["update"]),
        _rule([GROUP], ["xlinebackups"], ["get", "list", "watch", "patch"]),
        _rule([GROUP], ["xlinebackups/status"], ["get", "patch"]),
        _rule([""], ["pods"], ["create", "delete", "get", "list", "watch", "patch"]),
        _rule([""], ["persistentvolumeclaims"], ["create", "delete", "get", "list", "watch"]),
        _rule([""], ["services"], ["create"]),
        _rule([MCS_GROUP], ["serviceexports"], ["create"]),
        _rule([""], ["events"], ["create"]),
        _rule(["policy"], ["poddisruptionbudgets"], ["get", "create", "patch"]),
        _rule([""], ["secrets"], ["get", "create", "patch"]),
        LEASE_RULE,
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
        LEASE_RULE,
    ]
