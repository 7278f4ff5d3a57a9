"""The federation operator's reads and writes on the Karmada API server: the
XlineClusters and PropagationPolicies of each federation, and the interpreter that
brings member status back. Writes are server-side applies skipped when unchanged."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client

from xlinefed import install
from xlinefed.api.models import API_VERSION, XlineCluster, XlineFederation
from xlinefed.logs import get_logger
from xlinefed.placement import LABEL_FEDERATION
from xlinefed.platforms.karmada import manifests
from xlinefed.platforms.kubernetes import objects

log = get_logger(__name__)

MANAGER = objects.FEDERATION_MANAGER


@dataclass(frozen=True)
class Placed:
    """What one federation has on Karmada now, by object name."""

    clusters: dict[str, dict[str, Any]]
    policies: dict[str, dict[str, Any]]


class KarmadaObjects:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    async def ensure_interpreter(self) -> None:
        """The same object `xlinefed render federation` installs; applied here too so
        that member status flows back where only the operator was deployed."""
        await objects.apply(self.api, install.interpreter_customization(), manager=MANAGER)

    async def placed(self, federation: XlineFederation) -> Placed:
        selector = f"{LABEL_FEDERATION}={federation.name}"
        return Placed(
            clusters=await objects.list_labelled(
                self.api, API_VERSION, "XlineCluster", federation.namespace, selector
            ),
            policies=await objects.list_labelled(
                self.api,
                manifests.POLICY_API,
                "PropagationPolicy",
                federation.namespace,
                selector,
            ),
        )

    async def place(self, cluster: XlineCluster, placed: Placed) -> int:
        """Apply one member cluster's XlineCluster and its policy; how many were written."""
        written = 0
        for wanted, current in (
            (manifests.xline_cluster(cluster), placed.clusters.get(cluster.name)),
            (manifests.propagation_policy(cluster), placed.policies.get(cluster.name)),
        ):
            if await objects.apply_if_changed(self.api, wanted, current, manager=MANAGER):
                written += 1
                log.info(
                    "applied",
                    kind=wanted["kind"],
                    name=cluster.name,
                    namespace=cluster.namespace,
                    federation=cluster.spec.federation,
                )
        return written

    async def remove(self, namespace: str, name: str) -> None:
        """One member cluster's XlineCluster and policy; absent ones are fine."""
        await objects.delete_if_present(self.api, API_VERSION, "XlineCluster", namespace, name)
        await objects.delete_if_present(
            self.api, manifests.POLICY_API, "PropagationPolicy", namespace, name
        )
