"""Karmada objects of the federation tier, as plain dicts. Pure."""

from __future__ import annotations

from typing import Any

from xlinefed.api.models import API_VERSION, XlineCluster
from xlinefed.federation import LABEL_CLUSTER, LABEL_FEDERATION

POLICY_API = "policy.karmada.io/v1alpha1"
CONFIG_API = "config.karmada.io/v1alpha1"
INTERPRETER_NAME = "xlinefed-xlinecluster"

# Lua for Karmada's resource interpreter (one function per operation, as Karmada's
# ResourceInterpreterCustomization documents). Each member cluster runs its own copy of
# an XlineCluster; its status is reflected back whole and, there being exactly one
# member per copy, aggregated by taking it as it is.
_REFLECT = """
function ReflectStatus(observedObj)
  if observedObj.status == nil then
    return {}
  end
  return observedObj.status
end
"""
_AGGREGATE = """
function AggregateStatus(desiredObj, statusItems)
  if statusItems == nil then
    return desiredObj
  end
  for i = 1, #statusItems do
    if statusItems[i].status ~= nil then
      desiredObj.status = statusItems[i].status
    end
  end
  return desiredObj
end
"""
_HEALTH = """
function InterpretHealth(observedObj)
  return observedObj.status ~= nil and observedObj.status.phase == 'Available'
end
"""
_RETAIN = """
function Retain(desiredObj, observedObj)
  if observedObj.status ~= nil then
    desiredObj.status = observedObj.status
  end
  return desiredObj
end
"""


def interpreter_customization() -> dict[str, Any]:
    return {
        "apiVersion": CONFIG_API,
        "kind": "ResourceInterpreterCustomization",
        "metadata": {"name": INTERPRETER_NAME},
        "spec": {
            "target": {"apiVersion": API_VERSION, "kind": "XlineCluster"},
            "customizations": {
                "statusReflection": {"luaScript": _REFLECT.strip()},
                "statusAggregation": {"luaScript": _AGGREGATE.strip()},
                "healthInterpretation": {"luaScript": _HEALTH.strip()},
                "retention": {"luaScript": _RETAIN.strip()},
            },
        },
    }


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
