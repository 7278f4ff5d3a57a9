"""Members as Pods and PVCs in one member cluster (kubernetes_asyncio).

Why kubernetes_asyncio: it is the maintained asyncio port of the official client, so the
operator's gRPC calls and API calls share one event loop with kopf.

The platform sees only its own cluster's pods; members elsewhere are observed through
the consensus store (their health over gRPC, their template revision as published by
their own operator).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import client

from xlinefed.api.models import XlineCluster
from xlinefed.logs import get_logger
from xlinefed.planner.desired import formation_of
from xlinefed.planner.model import Desired, Formation, RecoveryRecord
from xlinefed.planner.steps import StartMode
from xlinefed.platforms.kubernetes import manifests, objects
from xlinefed.platforms.kubernetes.objects import ObjectConflict, ObjectNotFound, translated
from xlinefed.platforms.member_guard import DATA_LOST
from xlinefed.platforms.protocol import MemberRuntime
from xlinefed.topology import Member, desired_members, make_member, parse_member_name

log = get_logger(__name__)

#: Why a recovery step cannot be carried out by the member operator yet.
RECOVERY_NOT_ON_KUBERNETES = (
    "quorum-loss recovery is carried out in local mode only so far; on Kubernetes follow "
    "the manual runbook in docs/recovery.md (restart the surviving pod once with "
    "--force-new-cluster) or restore from a backup"
)


def cluster_token(resource: XlineCluster) -> str:
    # Every member cluster must compute the same token without talking to the others.
    return f"{resource.namespace}-{resource.spec.federation}"


def _guard_found_data_lost(pod: Any) -> bool:
    """The pod's start guard refused: the member's volume holds no consensus data."""
    statuses = (pod.status.init_container_statuses or []) if pod and pod.status else []
    for status in statuses:
        terminated = status.state.terminated if status.state else None
        if status.name == manifests.GUARD_CONTAINER and terminated is not None:
            return bool(terminated.exit_code == DATA_LOST)
    return False


def _pod_ready(pod: Any) -> bool:
    """The pod's Ready condition is True (and it is not being deleted)."""
    if pod.metadata.deletion_timestamp is not None or pod.status is None:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _started_at(pod: Any | None) -> float | None:
    """When the kubelet started the pod (whole seconds), as wall-clock seconds."""
    started = pod.status.start_time if pod is not None and pod.status is not None else None
    return started.timestamp() if started is not None else None


class KubernetesPlatform:
    def __init__(
        self,
        api: client.ApiClient,
        resource: XlineCluster,
        *,
        guard_image: str = manifests.GUARD_IMAGE,
    ) -> None:
        self.api = api
        self.guard_image = guard_image
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.resource = resource
        self.namespace = resource.namespace
        self._pods: dict[str, Any] = {}
        self._pvcs: dict[str, Any] = {}

    # --- identity
    def _member(self, name: str) -> Member:
        for member in desired_members(self.resource):
            if member.name == name:
                return member
        place = parse_member_name(self.resource.spec.federation, name)
        if place is None:
            raise LookupError(f"{name} is not a member of {self.resource.spec.federation}")
        return make_member(
            self.resource.spec.federation, self.namespace, self.resource.spec, place[0], place[1]
        )

    def client_url(self, member: str) -> str:
        return self._member(member).client_url

    def peer_url(self, member: str) -> str:
        return self._member(member).peer_url

    def sees(self, member: str) -> bool:
        place = parse_member_name(self.resource.spec.federation, member)
        return place is not None and place[0] == self.resource.spec.cluster_id

    # --- observation
    def _selector(self) -> str:
        return (
            f"{manifests.LABEL_FEDERATION}={self.resource.spec.federation},"
            f"{manifests.LABEL_CLUSTER}={self.resource.spec.cluster_id}"
        )

    async def known_members(self) -> Sequence[str]:
        pods = await self.core.list_namespaced_pod(self.namespace, label_selector=self._selector())
        pvcs = await self.core.list_namespaced_persistent_volume_claim(
            self.namespace, label_selector=self._selector()
        )
        self._pods = {p.metadata.name: p for p in pods.items}
        self._pvcs = {
            p.metadata.labels.get(manifests.LABEL_MEMBER, ""): p
            for p in pvcs.items
            if p.metadata.deletion_timestamp is None
        }
        return sorted(set(self._pods) | (set(self._pvcs) - {""}))

    async def runtime(self, member: str) -> MemberRuntime:
        pod = self._pods.get(member)
        annotations = (pod.metadata.annotations or {}) if pod else {}
        # A pod the kubelet is starting counts as running: starting it again would be
        # a no-op, and its health (over gRPC) tells whether it serves yet.
        running = bool(
            pod
            and pod.metadata.deletion_timestamp is None
            and (pod.status is None or pod.status.phase in (None, "Pending", "Running"))
        )
        return MemberRuntime(
            present=pod is not None,
            running=running,
            # The PVC object says a volume exists; whether it holds the member's data
            # only the start guard can tell, reading the volume itself.
            has_data=member in self._pvcs and not _guard_found_data_lost(pod),
            revision=annotations.get(manifests.ANNOTATION_REVISION),
            version=annotations.get(manifests.ANNOTATION_VERSION),
            started_at=_started_at(pod),
            serving=_pod_ready(pod) if pod is not None else None,
        )

    async def formed(self) -> bool:
        # Kept in status, which Karmada leaves alone when it re-applies the spec.
        return bool(self.resource.status and self.resource.status.formed)

    async def formation(self, desired: Desired) -> Formation:
        # The federation tier's record in the spec, never re-derived from what this
        # cluster can reach; this cluster's own memory (status) can only add "formed".
        return formation_of(self.resource, desired)

    async def mark_formed(self) -> None:
        await objects.patch_status(
            self.api, "xlineclusters", self.namespace, self.resource.name, {"formed": True}
        )

    # --- actions
    async def _read_pod(self, member: str) -> Any | None:
        try:
            with translated(f"reading pod {member}"):
                return await self.core.read_namespaced_pod(member, self.namespace)
        except ObjectNotFound:
            return None

    async def _clear_finished_pod(self, member: str) -> None:
        """A pod that ran to an end (restartPolicy Never) is replaced, not restarted."""
        pod = await self._read_pod(member)
        if (
            pod is not None
            and pod.status is not None
            and pod.status.phase in ("Failed", "Succeeded")
        ):
            await self.stop(member)

    async def _ensure_pvc(self, member: str) -> None:
        # A PVC's spec cannot change once bound (size and class are refused at
        # admission instead), so it is created once, never applied.
        try:
            with translated(f"creating the PVC of {member}"):
                await self.core.create_namespaced_persistent_volume_claim(
                    self.namespace, manifests.pvc(self.resource, member)
                )
        except ObjectConflict:
            pass

    async def start(
        self,
        member: str,
        mode: StartMode,
        initial_cluster: Sequence[tuple[str, str]],
        revision: str,
        *,
        initial_leader: bool = False,
        require_data: bool = False,
    ) -> None:
        await self._wait_pod_gone(member, only_if_terminating=True)
        await self._clear_finished_pod(member)
        await self._ensure_pvc(member)
        body = manifests.pod(
            self.resource,
            self._member(member),
            mode,
            initial_cluster,
            revision,
            cluster_token(self.resource),
            initial_leader=initial_leader,
            require_data=require_data,
            guard_image=self.guard_image,
        )
        try:
            with translated(f"creating pod {member}"):
                await self.core.create_namespaced_pod(self.namespace, body)
        except ObjectConflict:
            return
        log.info("pod created", member=member, mode=mode.value, revision=revision)

    async def _wait_pod_gone(
        self, member: str, *, only_if_terminating: bool = False, timeout: float = 60.0
    ) -> None:
        """Until the pod is deleted (or, with `only_if_terminating`, until it is gone or
        not being deleted), woken by a watch on it."""
        try:
            await objects.wait_deleted(
                lambda: self._read_pod(member),
                self.core.list_namespaced_pod,
                self.namespace,
                member,
                timeout=timeout,
                until=(lambda pod: pod.metadata.deletion_timestamp is None)
                if only_if_terminating
                else (lambda pod: False),
            )
        except TimeoutError:
            raise TimeoutError(f"pod {member} did not go away within {timeout:.0f}s") from None

    async def stop(self, member: str) -> None:
        try:
            with translated(f"deleting pod {member}"):
                await self.core.delete_namespaced_pod(member, self.namespace)
        except ObjectNotFound:
            pass
        await self._wait_pod_gone(member)
        log.info("pod deleted", member=member)

    async def delete(self, member: str, delete_data: bool) -> None:
        await self.stop(member)
        if delete_data:
            await self.wipe_data(member)

    # --- quorum-loss recovery: local mode only so far (docs/recovery.md)
    async def recovery(self) -> RecoveryRecord | None:
        return None

    async def record_recovery(self, record: RecoveryRecord) -> None:
        raise NotImplementedError(RECOVERY_NOT_ON_KUBERNETES)

    async def start_forced(self, member: str, revision: str) -> None:
        raise NotImplementedError(RECOVERY_NOT_ON_KUBERNETES)

    async def wipe_data(self, member: str) -> None:
        name = manifests.pvc_name(member)
        try:
            with translated(f"deleting PVC {name}"):
                await self.core.delete_namespaced_persistent_volume_claim(name, self.namespace)
        except ObjectNotFound:
            return
        try:
            await objects.wait_deleted(
                lambda: self._read_pvc(name),
                self.core.list_namespaced_persistent_volume_claim,
                self.namespace,
                name,
                timeout=60.0,
            )
        except TimeoutError:
            raise TimeoutError(f"PVC {name} was not deleted within 60s") from None

    async def _read_pvc(self, name: str) -> Any | None:
        try:
            with translated(f"reading PVC {name}"):
                return await self.core.read_namespaced_persistent_volume_claim(name, self.namespace)
        except ObjectNotFound:
            return None

    async def ensure_service(self) -> None:
        """The headless Service and its ServiceExport (where the MCS CRD is installed),
        applied when they differ from what this operator last applied."""
        for body in (
            manifests.headless_service(self.resource),
            manifests.service_export(self.resource),
            manifests.client_service(self.resource),
            manifests.service_export(self.resource, manifests.client_service_name(self.resource)),
        ):
            meta = body["metadata"]
            try:
                current = await objects.read_object(
                    self.api, body["apiVersion"], body["kind"], self.namespace, meta["name"]
                )
                if await objects.apply_if_changed(
                    self.api, body, current, manager=objects.MEMBER_MANAGER
                ):
                    log.info("applied", kind=body["kind"], name=meta["name"])
            except ObjectNotFound:
                # No ServiceExport CRD in this cluster: nothing exports across clusters.
                continue

    async def label_roles(self, roles: Mapping[str, str | None]) -> None:
        """Keep each member pod's role label as the member list says (the client
        Service selects voters by it); pods already labelled right are not written."""
        for member, role in roles.items():
            pod = self._pods.get(member)
            if pod is None or pod.metadata.deletion_timestamp is not None:
                continue
            if (pod.metadata.labels or {}).get(manifests.LABEL_ROLE) == role:
                continue
            try:
                with translated(f"labelling pod {member}"):
                    await self.core.patch_namespaced_pod(
                        member,
                        self.namespace,
                        {"metadata": {"labels": {manifests.LABEL_ROLE: role}}},
                    )
            except ObjectNotFound:
                continue
            log.info("pod role labelled", member=member, role=role)

    async def sync_template_metadata(self) -> None:
        """Bring running pods' spec.podTemplate labels and annotations up to date in
        place (a merge patch; no restart): they are not part of the revision, so no
        rolling restart follows a change of only them. Pods already right are not
        written."""
        for member, pod in self._pods.items():
            if pod.metadata.deletion_timestamp is not None:
                continue
            patch = manifests.metadata_patch(self.resource, pod.metadata)
            if patch is None:
                continue
            try:
                with translated(f"patching the metadata of pod {member}"):
                    await self.core.patch_namespaced_pod(member, self.namespace, patch)
            except ObjectNotFound:
                continue
            log.info("pod template metadata patched", member=member, patch=patch["metadata"])

    async def ensure_disruption_budget(self, voters: int, allowance: int) -> None:
        """Apply this cluster's PodDisruptionBudget with the allowance the federation's
        healthy voters leave (manifests.voter_allowance); unchanged, nothing is written."""
        body = manifests.disruption_budget(self.resource, voters, allowance)
        name = body["metadata"]["name"]
        current = await objects.read_object(
            self.api, body["apiVersion"], body["kind"], self.namespace, name
        )
        if await objects.apply_if_changed(self.api, body, current, manager=objects.MEMBER_MANAGER):
            log.info("disruption budget applied", name=name, voters=voters, allowed=allowance)
