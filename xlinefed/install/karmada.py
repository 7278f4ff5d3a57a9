"""What Karmada needs to place XlineClusters: how its interpreter reads one (Lua), and
the policy that puts the XlineCluster CRD in every member cluster."""

from __future__ import annotations

from xlinefed.api import crds
from xlinefed.api.models import GROUP, VERSION
from xlinefed.install.names import FEDERATION_OPERATOR, Doc
from xlinefed.install.workloads import meta

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


def interpreter_customization(component: str = FEDERATION_OPERATOR) -> Doc:
    """How Karmada reads an XlineCluster: the member's status comes back unchanged.

    Its name is fixed whatever the release: Karmada allows one customization per kind and
    operation, and the federation operator ensures this one at startup."""
    return {
        "apiVersion": "config.karmada.io/v1alpha1",
        "kind": "ResourceInterpreterCustomization",
        "metadata": meta("xlinefed-xlinecluster", component),
        "spec": {
            "target": {"apiVersion": f"{GROUP}/{VERSION}", "kind": "XlineCluster"},
            "customizations": {
                key: {"luaScript": script} for key, script in INTERPRETER_LUA.items()
            },
        },
    }


def crd_propagation_policy(component: str = FEDERATION_OPERATOR) -> Doc:
    """The XlineCluster CRD in every member cluster (the only kind members need). One per
    Karmada whatever the release (its name is fixed), as the CRD is.

    `Overwrite` adopts a CRD the member tier installed first (same generator, same
    content); `preserveResourcesOnDeletion` keeps it in the members if it is deleted on
    Karmada — removing a CRD deletes every XlineCluster, and so every member's pods.
    """
    return {
        "apiVersion": "policy.karmada.io/v1alpha1",
        "kind": "ClusterPropagationPolicy",
        "metadata": meta("xlinefed-crds", component),
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
