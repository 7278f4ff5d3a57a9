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

import base64
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from xlinefed import __version__
from xlinefed.api.engines import profile, restore_tool
from xlinefed.api.models import MemberRole, MemberStatus, XlineCluster
from xlinefed.launch import LaunchSpec, TLSFiles, command
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
#: Which label and annotation keys of a pod came from spec.podTemplate (JSON), so a key
#: removed from the template is removed from running pods too.
ANNOTATION_TEMPLATE_KEYS = "xlinefed.io/pod-template-keys"
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


#: The user and group member pods run as: numeric (the `restricted` Pod Security
#: Standard wants runAsNonRoot provable without reading the image), the same as the
#: operator image's (65532, distroless' `nonroot`), and the group the data volume is
#: made writable for (fsGroup), since the engine images would otherwise write as root.
POD_USER = 65532


def pod_security_context() -> dict[str, Any]:
    """The pod-level half of the `restricted` Pod Security Standard (docs/pods.md)."""
    return {
        "runAsNonRoot": True,
        "runAsUser": POD_USER,
        "runAsGroup": POD_USER,
        "fsGroup": POD_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Every container's half: no privilege escalation, no capabilities, and a
    read-only root filesystem (the engines write only under the data volume)."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }


#: The engine container's requests and memory limit unless `spec.podTemplate.resources`
#: says otherwise (docs/pods.md). Requests reserve what a small member needs so the
#: scheduler never packs members onto a node that cannot hold them; the memory limit
#: sits at the default 2 GiB backend quota (etcd maps its whole database, and a member
#: near its quota touches most of it), so a runaway member is killed rather than the
#: node. No CPU limit: throttling a member delays its heartbeats and causes elections.
DEFAULT_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "250m", "memory": "512Mi"},
    "limits": {"memory": "2Gi"},
}
#: The start guard reads a directory listing and exits.
GUARD_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "10m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}
#: The restore's fetch streams a backup to the volume and hashes it; its memory is two
#: chunks, whatever the backup's size.
RESTORE_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
NODE_TOPOLOGY_KEY = "kubernetes.io/hostname"
ZONE_TOPOLOGY_KEY = "topology.kubernetes.io/zone"


def federation_selector(resource: XlineCluster) -> dict[str, Any]:
    return {"matchLabels": {LABEL_FEDERATION: resource.spec.federation}}


def default_affinity(resource: XlineCluster) -> dict[str, Any]:
    """Preferred, not required, anti-affinity across nodes for one federation's members:
    a cluster with fewer nodes than members still runs them all (two on a node is
    better than one never scheduled), and the scheduler spreads them when it can."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "labelSelector": federation_selector(resource),
                        "topologyKey": NODE_TOPOLOGY_KEY,
                    },
                }
            ]
        }
    }


def topology_spread(resource: XlineCluster) -> list[dict[str, Any]]:
    """Members spread across zones, one apart at most, as a preference (ScheduleAnyway):
    a single-zone cluster, or one whose nodes carry no zone label, still schedules."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": ZONE_TOPOLOGY_KEY,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": federation_selector(resource),
        }
    ]


def template_metadata(resource: XlineCluster) -> tuple[dict[str, str], dict[str, str]]:
    """The labels and annotations spec.podTemplate adds to every member pod, with the
    record of their keys (ANNOTATION_TEMPLATE_KEYS) among the annotations."""
    template = resource.spec.pod_template
    keys = {"labels": sorted(template.labels), "annotations": sorted(template.annotations)}
    annotations = dict(template.annotations)
    if template.labels or template.annotations:
        annotations[ANNOTATION_TEMPLATE_KEYS] = json.dumps(keys, separators=(",", ":"))
    return dict(template.labels), annotations


def metadata_patch(resource: XlineCluster, current: Any) -> dict[str, Any] | None:
    """The merge patch that brings a running pod's template labels and annotations to
    what spec.podTemplate says (keys it no longer names removed); None when they are."""
    labels_now = dict(getattr(current, "labels", None) or {})
    annotations_now = dict(getattr(current, "annotations", None) or {})
    try:
        before = json.loads(annotations_now.get(ANNOTATION_TEMPLATE_KEYS) or "{}")
    except ValueError:
        before = {}
    wanted_labels, wanted_annotations = template_metadata(resource)
    patch: dict[str, dict[str, str | None]] = {}
    for part, now, wanted in (
        ("labels", labels_now, wanted_labels),
        ("annotations", annotations_now, wanted_annotations),
    ):
        changes: dict[str, str | None] = {k: v for k, v in wanted.items() if now.get(k) != v}
        gone = [
            *before.get(part, []),
            *([ANNOTATION_TEMPLATE_KEYS] if part == "annotations" else []),
        ]
        changes.update({k: None for k in gone if k not in wanted and k in now})
        if changes:
            patch[part] = changes
    return {"metadata": patch} if patch else None


def engine_resources(resource: XlineCluster) -> dict[str, Any]:
    given = resource.spec.pod_template.resources
    if given is None:
        return DEFAULT_RESOURCES
    return {k: v for k, v in given.to_wire().items() if v}


def affinity(resource: XlineCluster) -> dict[str, Any]:
    """The defaults, each part of spec.podTemplate.affinity given replacing its own."""
    given = resource.spec.pod_template.affinity
    return {**default_affinity(resource), **(given.to_wire() if given is not None else {})}


def scheduling(resource: XlineCluster) -> dict[str, Any]:
    """The pod spec fields spec.podTemplate sets when given."""
    template = resource.spec.pod_template
    fields: dict[str, Any] = {}
    if template.node_selector:
        fields["nodeSelector"] = dict(template.node_selector)
    if template.tolerations:
        fields["tolerations"] = [t.to_wire() for t in template.tolerations]
    if template.priority_class_name:
        fields["priorityClassName"] = template.priority_class_name
    return fields


#: Where a member's certificate Secrets appear (the kubernetes.io/tls keys).
TLS_MOUNT = "/etc/xlinefed/tls"
#: kubernetes.io/tls Secrets, plus the CA cert-manager writes beside them.
TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")


def tls_secrets(resource: XlineCluster) -> dict[str, str]:
    """link ("peer", "client") -> the Secret its certificate comes from; empty without TLS."""
    tls = resource.spec.tls
    if tls is None or not tls.enabled or not tls.peer_secret_ref:
        return {}
    return {"peer": tls.peer_secret_ref, "client": tls.client_secret_ref or tls.peer_secret_ref}


def operator_secret(resource: XlineCluster) -> str | None:
    """The Secret whose client certificate the operators dial this cluster's members with."""
    tls = resource.spec.tls
    if not tls_secrets(resource) or tls is None:
        return None
    return tls.operator_secret_ref or tls.client_secret_ref or tls.peer_secret_ref


def _tls_files(link: str) -> TLSFiles:
    base = f"{TLS_MOUNT}/{link}"
    return TLSFiles(ca=f"{base}/ca.crt", cert=f"{base}/tls.crt", key=f"{base}/tls.key")


def served_links(resource: XlineCluster) -> list[str]:
    """The links whose certificate pods mount: the client one only when it differs."""
    secrets = tls_secrets(resource)
    if not secrets:
        return []
    return ["peer"] if secrets["client"] == secrets["peer"] else ["peer", "client"]


def tls_copy_name(resource: XlineCluster, link: str) -> str:
    return f"{resource.name}-tls-{link}"


def tls_copy(resource: XlineCluster, link: str, data: Mapping[str, bytes]) -> dict[str, Any]:
    """The operator's copy of a checked certificate Secret, which the pods mount. Pods
    never mount the user's Secret: a kubelet syncs a Secret into running pods, so a bad
    edit (a key dropped, a certificate for other names) would reach every member at
    once; the copy changes only once the operator has checked the new contents."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {
            "name": tls_copy_name(resource, link),
            "namespace": resource.namespace,
            "labels": labels(resource),
            "ownerReferences": [owner_reference(resource)],
        },
        "data": {key: base64.b64encode(data[key]).decode() for key in TLS_KEYS},
    }


def _tls_volumes(resource: XlineCluster) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) for the certificate copies. Mounted whole (no subPath), so the
    kubelet swaps in a rotated certificate while the member runs and the engine reads the
    new files at its next handshake."""
    volumes, mounts = [], []
    for link in served_links(resource):
        name = f"tls-{link}"
        volumes.append(
            {
                "name": name,
                # 0440 with the pod's fsGroup: readable by the engine's group only.
                "secret": {"secretName": tls_copy_name(resource, link), "defaultMode": 0o440},
            }
        )
        mounts.append({"name": name, "mountPath": f"{TLS_MOUNT}/{link}", "readOnly": True})
    return volumes, mounts


def _readiness_probe(resource: XlineCluster, tls: bool) -> dict[str, Any]:
    engine = profile(resource.spec.engine)
    port = resource.spec.network.ports.client
    if tls and engine.plain_health_port is not None:
        # The kubelet presents no client certificate; the engine's plain health listener.
        check: dict[str, Any] = {
            "httpGet": {"path": engine.plain_health_path, "port": engine.plain_health_port}
        }
    elif tls:
        check = {"tcpSocket": {"port": port}}
    elif engine.readiness_probe == "grpc":
        check = {"grpc": {"port": port}}
    else:
        check = {"httpGet": {"path": "/health", "port": port}}
    return {**check, "periodSeconds": 2, "failureThreshold": 3}


def pvc_name(member: str) -> str:
    return f"data-{member}"


def restores_from_backup(resource: XlineCluster, mode: StartMode) -> bool:
    """An initial member of a federation that starts from a backup, before it formed."""
    formation = resource.spec.formation
    return (
        mode is StartMode.NEW
        and resource.spec.from_backup is not None
        and not (formation is not None and formation.formed)
    )


def _restore_containers(
    resource: XlineCluster,
    member: Member,
    initial_cluster: Sequence[tuple[str, str]],
    cluster_token: str,
    guard_image: str,
) -> list[dict[str, Any]]:
    """Fetch and verify, restore with the engine's tool, move into place
    (`platforms.member_restore`)."""
    spec = resource.spec
    source = spec.from_backup
    assert source is not None
    tool = restore_tool(spec.engine, spec.version)
    if tool is None:
        raise ValueError(f"no snapshot restore for {spec.engine.value} {spec.version} in a pod")
    data_dir = f"{DATA_MOUNT}/data"
    staging = f"{data_dir}.restoring"
    snapshot = f"{DATA_MOUNT}/restore/snapshot.db"
    mounts = [{"name": "data", "mountPath": DATA_MOUNT}]
    destination = spec.backup.destination if spec.backup is not None else None
    env: list[dict[str, Any]] = []
    fetch_args = [
        f"--uri={source.uri}",
        f"--engine={spec.engine.value}",
        f"--volume={DATA_MOUNT}",
        f"--data-dir={data_dir}",
        f"--member={member.name}",
    ]
    if source.revision is not None:
        fetch_args.append(f"--revision={source.revision}")
    if destination is not None:
        if destination.endpoint:
            fetch_args.append(f"--endpoint={destination.endpoint}")
        if destination.region:
            fetch_args.append(f"--region={destination.region}")
        if destination.credentials_secret:
            env = [
                {
                    "name": key,
                    "valueFrom": {
                        "secretKeyRef": {"name": destination.credentials_secret, "key": key}
                    },
                }
                for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            ]
    common = {
        "volumeMounts": mounts,
        "resources": RESTORE_RESOURCES,
        "securityContext": container_security_context(),
    }
    return [
        {
            "name": "restore-fetch",
            "image": guard_image,
            "command": ["xlinefed", "member-restore", "fetch"],
            "args": fetch_args,
            "env": env,
            **common,
        },
        {
            "name": "restore",
            "image": image_of(resource),
            "command": [tool],
            "args": [
                "snapshot",
                "restore",
                snapshot,
                f"--name={member.name}",
                f"--data-dir={staging}",
                "--initial-cluster=" + ",".join(f"{n}={u}" for n, u in initial_cluster),
                f"--initial-cluster-token={cluster_token}",
                f"--initial-advertise-peer-urls={member.peer_url}",
            ],
            "env": [{"name": "ETCDCTL_API", "value": "3"}],
            **common,
        },
        {
            "name": "restore-finish",
            "image": guard_image,
            "command": ["xlinefed", "member-restore", "finish"],
            "args": [
                f"--engine={spec.engine.value}",
                f"--volume={DATA_MOUNT}",
                f"--data-dir={data_dir}",
                f"--member={member.name}",
            ],
            **common,
        },
    ]


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
    engine = profile(spec.engine)
    metrics_port = engine.pod_metrics_port
    secrets = tls_secrets(resource)
    tls_volumes, tls_mounts = _tls_volumes(resource)
    client_scheme, peer_scheme = scheme(spec, peer=False), scheme(spec, peer=True)
    launch = LaunchSpec(
        engine=spec.engine,
        binary=engine.binary,
        name=member.name,
        data_dir=f"{DATA_MOUNT}/data",
        listen_client_url=f"{client_scheme}://0.0.0.0:{ports.client}",
        advertise_client_url=member.client_url,
        listen_peer_url=f"{peer_scheme}://0.0.0.0:{ports.peer}",
        advertise_peer_url=member.peer_url,
        initial_cluster=initial_cluster,
        mode=mode,
        cluster_token=cluster_token,
        version=spec.version,
        extra_args=spec.engine_args,
        initial_leader=initial_leader,
        metrics_listen_port=metrics_port,
        tls=_tls_files("peer") if secrets else None,
        client_tls=_tls_files("client") if "client" in served_links(resource) else None,
        plain_health_port=engine.plain_health_port if secrets else None,
    )
    argv = command(launch)
    container_ports: list[dict[str, Any]] = [
        {"name": "client", "containerPort": ports.client},
        {"name": "peer", "containerPort": ports.peer},
    ]
    if metrics_port is not None:
        container_ports.append({"name": "metrics", "containerPort": metrics_port})
    if secrets and engine.plain_health_port is not None:
        container_ports.append({"name": "health", "containerPort": engine.plain_health_port})
    template_labels, template_annotations = template_metadata(resource)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": member.name,
            "namespace": resource.namespace,
            "labels": {**template_labels, **labels(resource, member.name)},
            "annotations": {
                **template_annotations,
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
            "securityContext": pod_security_context(),
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
                    "resources": GUARD_RESOURCES,
                    "securityContext": container_security_context(),
                },
                *(
                    _restore_containers(
                        resource, member, initial_cluster, cluster_token, guard_image
                    )
                    if restores_from_backup(resource, mode)
                    else []
                ),
            ],
            "affinity": affinity(resource),
            "topologySpreadConstraints": topology_spread(resource),
            **scheduling(resource),
            "terminationGracePeriodSeconds": 30,
            "containers": [
                {
                    "name": spec.engine.value,
                    "image": image_of(resource),
                    "command": argv[:1],
                    "args": argv[1:],
                    "ports": container_ports,
                    # Readiness means "serving", not "caught up": a learner must be reachable.
                    "readinessProbe": _readiness_probe(resource, bool(secrets)),
                    "livenessProbe": {
                        "tcpSocket": {"port": ports.client},
                        "initialDelaySeconds": 15,
                        "periodSeconds": 10,
                        "failureThreshold": 6,
                    },
                    "volumeMounts": [{"name": "data", "mountPath": DATA_MOUNT}, *tls_mounts],
                    "resources": engine_resources(resource),
                    "securityContext": container_security_context(),
                }
            ],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": pvc_name(member.name)}},
                *tls_volumes,
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


# --- the federation-wide disruption budget (docs/pods.md)


def disruption_budget_name(resource: XlineCluster) -> str:
    return f"{resource.spec.federation}-voters"


def local_voters(members: Sequence[MemberStatus], cluster_id: str) -> int:
    return sum(1 for m in members if m.role is MemberRole.VOTER and m.cluster == cluster_id)


def voter_allowance(
    members: Sequence[MemberStatus], cluster_id: str, silent: Collection[str] = ()
) -> int:
    """How many of this cluster's voters may be evicted now without risking the
    federation's quorum, whatever the other clusters do at the same moment.

    The spare is the healthy voters of the whole federation (every cluster's, as this
    operator observed them over gRPC) above a majority of the voters. It is split between
    the clusters that have a healthy voter, in the order of their ids (cluster i gets the
    spares i, i+n, i+2n, ...), so the allowances of all clusters, each computed by its own
    operator from the same member list, add up to the spare at most: two clusters
    draining nodes at once cannot together take the federation below its majority. No
    spare (a voter down anywhere, or a member list not known): nothing may be evicted.
    `silent` members (no answer yet this pass, whose last report the status keeps
    standing) count as down here: a budget errs towards refusing.
    """
    voters = [m for m in members if m.role is MemberRole.VOTER]
    healthy = [m for m in voters if m.healthy and m.name not in silent]
    spare = len(healthy) - (len(voters) // 2 + 1)
    holders = sorted({m.cluster for m in healthy})
    if spare <= 0 or cluster_id not in holders:
        return 0
    rank = holders.index(cluster_id)
    share = sum(1 for j in range(spare) if j % len(holders) == rank)
    return min(share, sum(1 for m in healthy if m.cluster == cluster_id))


def disruption_budget(resource: XlineCluster, voters: int, allowance: int) -> dict[str, Any]:
    """This cluster's `voters` voter pods may be unavailable `allowance` at a time.

    As `minAvailable: voters - allowance`, a whole number: `maxUnavailable` (or a
    percentage) makes the disruption controller ask the pods' controller for its scale,
    and an XlineCluster has no scale subresource (seen on the stack: "xlineclusters.
    xlinefed.io does not implement the scale subresource", and no eviction is ever
    allowed). The effect is the same: a local voter pod already not Ready uses up part of
    the allowance, on top of counting against the federation's spare; both err towards
    refusing. Learners are not selected: they carry no vote, and evicting one only
    delays its catching up."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {
            "name": disruption_budget_name(resource),
            "namespace": resource.namespace,
            "labels": labels(resource),
            "ownerReferences": [owner_reference(resource)],
        },
        "spec": {
            "selector": {
                "matchLabels": {
                    LABEL_FEDERATION: resource.spec.federation,
                    LABEL_CLUSTER: resource.spec.cluster_id,
                    LABEL_ROLE: MemberRole.VOTER.value,
                }
            },
            "minAvailable": max(0, voters - allowance),
        },
    }
