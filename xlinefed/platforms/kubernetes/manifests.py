"""Kubernetes objects of the member tier, as plain dicts. Pure: the adapter applies them.

Per member: a Pod named after the member and a PVC `data-<member>`. Per federation and
cluster: a headless Service named after the federation that publishes not-ready
addresses (a joining learner is not Ready yet must be reachable by its peers), and a
ServiceExport of it so the Multi-Cluster Services API publishes
`<member>.<cluster>.<federation>.<namespace>.svc.clusterset.local`; and a client Service
`<federation>-client` selecting only voters (the member operator keeps each pod's
`xlinefed.io/role` label current), exported too, so applications reach every cluster's
voters at `<federation>-client.<namespace>.svc.clusterset.local` and never a learner,
which refuses client requests ("rpc not supported for learner").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xlinefed import __version__
from xlinefed.api.engines import profile
from xlinefed.api.models import MemberRole, MemberStatus, XlineCluster
from xlinefed.launch import LaunchSpec, command
from xlinefed.planner.steps import StartMode
from xlinefed.topology import Member, scheme

DATA_MOUNT = "/var/lib/xlinefed"
LABEL_FEDERATION = "xlinefed.io/federation"
LABEL_CLUSTER = "xlinefed.io/cluster"
LABEL_MEMBER = "xlinefed.io/member"
#: voter or learner, as the consensus member list says; absent while not listed.
LABEL_ROLE = "xlinefed.io/role"
ANNOTATION_REVISION = "xlinefed.io/revision"
ANNOTATION_VERSION = "xlinefed.io/version"
ANNOTATION_DNS = "xlinefed.io/dns-names"
FINALIZER = "xlinefed.io/members"


def image_of(resource: XlineCluster) -> str:
    spec = resource.spec
    repository = spec.image or profile(spec.engine).default_image
    tag = spec.version if spec.version.startswith("v") else f"v{spec.version}"
    return f"{repository}:{tag}"


def labels(resource: XlineCluster, member: str | None = None) -> dict[str, str]:
    result = {
        LABEL_FEDERATION: resource.spec.federation,
        LABEL_CLUSTER: resource.spec.cluster_id,
        "app.kubernetes.io/name": resource.spec.engine.value,
        "app.kubernetes.io/managed-by": "xlinefed",
    }
    if member:
        result[LABEL_MEMBER] = member
    return result


def owner_reference(resource: XlineCluster) -> dict[str, Any]:
    return {
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "name": resource.name,
        "uid": resource.metadata.uid or "",
        "controller": True,
        "blockOwnerDeletion": True,
    }


#: The start guard's init container (see xlinefed/platforms/member_guard.py), run from
#: the operator's own image (MemberOperatorSettings.guard_image picks another).
GUARD_CONTAINER = "start-guard"
GUARD_IMAGE = f"xlinefed/operator:{__version__}"


def pvc_name(member: str) -> str:
    return f"data-{member}"


def pod(
    resource: XlineCluster,
    member: Member,
    mode: StartMode,
    initial_cluster: Sequence[tuple[str, str]],
    revision: str,
    cluster_token: str,
    *,
    initial_leader: bool = False,
    require_data: bool = False,
    guard_image: str = GUARD_IMAGE,
) -> dict[str, Any]:
    spec = resource.spec
    ports = spec.network.ports
    metrics_port = profile(spec.engine).pod_metrics_port
    launch = LaunchSpec(
        engine=spec.engine,
        binary=profile(spec.engine).binary,
        name=member.name,
        data_dir=f"{DATA_MOUNT}/data",
        listen_client_url=f"http://0.0.0.0:{ports.client}",
        advertise_client_url=member.client_url,
        listen_peer_url=f"http://0.0.0.0:{ports.peer}",
        advertise_peer_url=member.peer_url,
        initial_cluster=initial_cluster,
        mode=mode,
        cluster_token=cluster_token,
        extra_args=spec.engine_args,
        initial_leader=initial_leader,
        metrics_listen_port=metrics_port,
    )
    argv = command(launch)
    container_ports: list[dict[str, Any]] = [
        {"name": "client", "containerPort": ports.client},
        {"name": "peer", "containerPort": ports.peer},
    ]
    if metrics_port is not None:
        container_ports.append({"name": "metrics", "containerPort": metrics_port})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": member.name,
            "namespace": resource.namespace,
            "labels": labels(resource, member.name),
            "annotations": {
                ANNOTATION_REVISION: revision,
                ANNOTATION_VERSION: spec.version,
                ANNOTATION_DNS: member.host,
            },
            "ownerReferences": [owner_reference(resource)],
        },
        "spec": {
            "hostname": member.name,
            "subdomain": spec.federation,
            # Never: a container that exits is not restarted in place with the arguments
            # it was created with (a bootstrap pod's `new`, a volume that emptied since);
            # the operator starts a new pod, and the start guard checks the data first.
            "restartPolicy": "Never",
            "initContainers": [
                {
                    "name": GUARD_CONTAINER,
                    "image": guard_image,
                    "command": ["xlinefed", "member-guard"],
                    "args": [
                        f"--data-dir={DATA_MOUNT}/data",
                        f"--member={member.name}",
                        f"--engine={spec.engine.value}",
                        "--require-data" if require_data else "--no-require-data",
                    ],
                    "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}],
                }
            ],
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {
                    "name": spec.engine.value,
                    "image": image_of(resource),
                    "command": argv[:1],
                    "args": argv[1:],
                    "ports": container_ports,
                    # Readiness means "serving", not "caught up": a learner must be reachable.
                    "readinessProbe": {
                        **(
                            {"grpc": {"port": ports.client}}
                            if profile(spec.engine).readiness_probe == "grpc"
                            else {"httpGet": {"path": "/health", "port": ports.client}}
                        ),
                        "periodSeconds": 2,
                        "failureThreshold": 3,
                    },
                    "livenessProbe": {
                        "tcpSocket": {"port": ports.client},
                        "initialDelaySeconds": 15,
                        "periodSeconds": 10,
                        "failureThreshold": 6,
                    },
                    "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}],
                }
            ],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": pvc_name(member.name)}}
            ],
        },
    }


def pvc(resource: XlineCluster, member: str) -> dict[str, Any]:
    storage = resource.spec.storage
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": pvc_name(member),
            "namespace": resource.namespace,
            "labels": labels(resource, member),
        },
        "spec": spec,
    }


def headless_service(resource: XlineCluster) -> dict[str, Any]:
    ports = resource.spec.network.ports
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": resource.spec.federation,
            "namespace": resource.namespace,
            "labels": labels(resource),
            "ownerReferences": [owner_reference(resource)],
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {
                LABEL_FEDERATION: resource.spec.federation,
                LABEL_CLUSTER: resource.spec.cluster_id,
            },
            "ports": [
                {"name": "client", "port": ports.client},
                {"name": "peer", "port": ports.peer},
            ],
        },
    }


def client_service_name(resource: XlineCluster) -> str:
    return f"{resource.spec.federation}-client"


def client_service(resource: XlineCluster) -> dict[str, Any]:
    """Voters only, ready ones only: where applications connect."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": client_service_name(resource),
            "namespace": resource.namespace,
            "labels": labels(resource),
            "ownerReferences": [owner_reference(resource)],
        },
        "spec": {
            "selector": {
                LABEL_FEDERATION: resource.spec.federation,
                LABEL_CLUSTER: resource.spec.cluster_id,
                LABEL_ROLE: MemberRole.VOTER.value,
            },
            "ports": [{"name": "client", "port": resource.spec.network.ports.client}],
        },
    }


def client_endpoint(resource: XlineCluster) -> str:
    """The client Service's clusterset URL: every exporting cluster's voters."""
    host = f"{client_service_name(resource)}.{resource.namespace}.svc.clusterset.local"
    port = resource.spec.network.ports.client
    return f"{scheme(resource.spec, peer=False)}://{host}:{port}"


def role_labels(members: Sequence[MemberStatus], cluster_id: str) -> dict[str, str | None]:
    """The `xlinefed.io/role` each of this cluster's member pods should carry."""
    return {
        m.name: m.role.value if m.role is not None else None
        for m in members
        if m.cluster == cluster_id
    }


def service_export(resource: XlineCluster, name: str | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "multicluster.x-k8s.io/v1alpha1",
        "kind": "ServiceExport",
        "metadata": {
            "name": name or resource.spec.federation,
            "namespace": resource.namespace,
            "labels": labels(resource),
            "ownerReferences": [owner_reference(resource)],
        },
    }
