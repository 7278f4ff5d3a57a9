"""The two custom resources: `XlineFederation` (Karmada tier) and `XlineCluster` (member tier).

Field names are camelCase on the wire (YAML, the Kubernetes API) and snake_case in Python.
Constraints that a schema can express live on the fields, so that the generated CRDs
carry them too; rules across fields live in `validation.py`.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

from xlinefed.api.engines import Engine

GROUP = "xlinefed.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DEFAULT_DNS_TEMPLATE = "{member}.{cluster}.{federation}.{namespace}.svc.clusterset.local"

#: Bounds that keep the CRD's CEL rules within the apiserver's cost budget.
MAX_CLUSTERS = 64
MAX_MAP_ENTRIES = 64
MAX_TEMPLATE_LENGTH = 512

Dns1123Label = Annotated[str, Field(min_length=1, max_length=63, pattern=DNS1123_LABEL)]


class Model(BaseModel):
    """Base: camelCase aliases, unknown fields rejected so typos surface at once."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        use_enum_values=False,
    )

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class BootstrapMode(StrEnum):
    STATIC = "static"
    DYNAMIC = "dynamic"


class ClusterOrder(StrEnum):
    #: Clusters without the leader first, in list order; the leader's cluster last.
    LEADER_LAST = "LeaderLast"
    #: Strictly the order of `spec.clusters`.
    LISTED = "Listed"


class ScaleInPolicy(StrEnum):
    RETAIN = "retain"
    DELETE = "delete"


class Phase(StrEnum):
    PENDING = "Pending"
    BOOTSTRAPPING = "Bootstrapping"
    AVAILABLE = "Available"
    SCALING = "Scaling"
    UPDATING = "Updating"
    HEALING = "Healing"
    DEGRADED = "Degraded"
    PAUSED = "Paused"
    FAILED = "Failed"


class ConditionType(StrEnum):
    AVAILABLE = "Available"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


class ObjectMeta(Model):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    name: Dns1123Label
    namespace: str = "default"
    generation: int | None = None
    resource_version: str | None = None
    uid: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None


class MemberClusterSpec(Model):
    """One member cluster of the federation and how many members it runs."""

    id: Dns1123Label = Field(description="Member cluster id, as registered in Karmada.")
    replicas: int = Field(ge=0, le=99, description="Consensus members in this cluster.")


class StorageSpec(Model):
    size: str = Field(default="1Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$")
    storage_class_name: str | None = None
    on_scale_in: ScaleInPolicy = Field(
        default=ScaleInPolicy.RETAIN,
        description="What happens to a removed member's volume: retain or delete.",
    )


class PortsSpec(Model):
    client: int = Field(default=2379, ge=1, le=65535)
    peer: int = Field(default=2380, ge=1, le=65535)


class NetworkSpec(Model):
    dns_template: str = Field(
        default=DEFAULT_DNS_TEMPLATE,
        max_length=MAX_TEMPLATE_LENGTH,
        description=(
            "Host name of a member. Placeholders: {member} (required), {cluster}, "
            "{federation}, {namespace}, {ordinal}."
        ),
    )
    ports: PortsSpec = PortsSpec()


class TLSSpec(Model):
    """Mutual TLS on every peer and client link."""

    enabled: bool = Field(
        default=True,
        description="Serve and dial only with certificates. Local mode issues them from a CA "
        "of the federation's own; on Kubernetes they come from peerSecretRef/clientSecretRef. "
        "false serves plain text (the status warns).",
    )
    peer_secret_ref: str | None = Field(
        default=None,
        description="Kubernetes: a Secret of type kubernetes.io/tls with ca.crt (what "
        "cert-manager writes) in every member cluster's namespace, under this one name; "
        "each cluster's certificate must cover its members' names (a wildcard "
        "*.<cluster>.<federation>.<namespace>.svc.clusterset.local does). Members show it to "
        "their peers, and to clients unless clientSecretRef is set. Required on Kubernetes "
        "when TLS is on.",
    )
    client_secret_ref: str | None = Field(
        default=None,
        description="Kubernetes: the Secret (same shape) members serve their clients with; "
        "default: peerSecretRef.",
    )
    operator_secret_ref: str | None = Field(
        default=None,
        description="Kubernetes: the Secret (same shape) with the client certificate the "
        "operators dial members with; default: clientSecretRef, else peerSecretRef. Its "
        "key and certificate are read through the API, never mounted.",
    )
    root_password_secret_ref: str | None = Field(
        default=None,
        max_length=253,
        description="Kubernetes, etcd: a Secret with key `password` in every member "
        "cluster's namespace, under this one name and with the same value. Naming it turns "
        "auth on once the federation forms: the operator's certificate (CN `operator`) owns "
        "the reserved /xlinefed/ prefix, a certificate with CN `client` reads and writes "
        "every other key, and `root` (this password) is for breaking glass. Unset: any "
        "certificate of the CA may write /xlinefed/ (the status warns).",
    )
    certificate_validity_days: int = Field(
        default=90,
        ge=1,
        le=825,
        description="Lifetime of the certificates xlinefed issues (local mode); each is "
        "renewed after two thirds of it.",
    )


class UpdateStrategy(Model):
    cluster_order: ClusterOrder = ClusterOrder.LEADER_LAST
    partitions: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        max_length=MAX_MAP_ENTRIES,
        description="Per cluster id: members with an ordinal below it keep the old template.",
    )
    max_promote_lag: int | None = Field(
        default=None,
        ge=0,
        description="A learner is caught up (and a voter counts toward a quorum) when its "
        "applied index is within this many entries of the leader's. Default: 1000 for "
        "etcd, 500 for Xline (the most Xline promotes).",
    )


#: Members one federation can have (MAX_CLUSTERS clusters of at most 99).
MAX_MEMBERS = 1024


class FormationSpec(Model):
    """Bootstrap authority, recorded once per federation by the federation tier and
    carried in every XlineCluster's spec: who bootstraps, and whether it has formed.
    Not for users to write: the federation operator owns it."""

    initial_members: list[Dns1123Label] = Field(
        max_length=MAX_MEMBERS,
        description="Members that bootstrap with --initial-cluster-state new (static: the "
        "spec's members when the federation was first placed; dynamic: the seed).",
    )
    formed: bool = Field(
        default=False,
        description="The federation has formed: every new member anywhere joins as a learner.",
    )
    formed_at: str | None = Field(default=None, description="When it formed (RFC 3339).")


class DepartedCluster(Model):
    """A cluster taken out of the federation's spec, still draining."""

    id: Dns1123Label
    since: str = Field(description="When it left the spec (RFC 3339).")


class RecoverySpec(Model):
    """Quorum-loss recovery (docs/recovery.md): rebuild the cluster from one surviving
    voter when a majority is gone for good. Carried out only while the quorum is lost
    and every lost voter has been silent for lostClusterGracePeriodSeconds."""

    from_member: Dns1123Label | None = Field(
        default=None,
        description="The surviving voter to rebuild from (explicit recovery, carried out "
        "once per requestedAt). It must answer and be the most advanced survivor.",
    )
    automatic: bool = Field(
        default=False,
        description="Without fromMember: recover on its own from the survivor with the "
        "highest applied index once the grace period has passed (opt-in; see "
        "docs/recovery.md for what a partition can do).",
    )
    requested_at: str | None = Field(
        default=None,
        description="When the explicit recovery was asked for (RFC 3339); a recovery is "
        "carried out once per value (`xlinefed local recover` sets it).",
    )
    requested_by: str | None = Field(
        default=None,
        max_length=256,
        description="Who or what asked (the audit trail; `xlinefed local recover` writes "
        "user@host and the command).",
    )


#: A schedule: five cron fields ("*/15 * * * *", UTC) or "@every <N>s|m|h" (an interval
#: from the last run, for short test schedules). The shape is checked by the schema; the
#: fields' values by `validation.backup_problems`.
SCHEDULE_PATTERN = r"^(@every [0-9]+(s|m|h)|\S+( \S+){4})$"
#: S3 bucket names (the rules S3 gives, loosely: 3-63 lowercase letters, digits, '.', '-').
BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
BACKUP_URI_PATTERN = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"


class BackupDestination(Model):
    """Where backups go: an S3-compatible bucket. Credentials come, in this order, from the
    Secret (Kubernetes), the file (local mode), or the usual AWS environment variables and
    files (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, ...)."""

    bucket: str = Field(pattern=BUCKET_PATTERN, description="The bucket (it must exist).")
    prefix: str = Field(
        default="",
        max_length=512,
        description="Key prefix; backups are written under <prefix>/<federation>/.",
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s/]+(/.*)?$",
        description="The S3 endpoint URL of a non-AWS store (default: AWS, or AWS_ENDPOINT_URL).",
    )
    region: str | None = Field(default=None, max_length=64)
    credentials_secret: str | None = Field(
        default=None,
        max_length=253,
        description="A Secret with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (Kubernetes).",
    )
    credentials_file: str | None = Field(
        default=None,
        max_length=4096,
        description="An AWS shared-credentials file (local mode; profile `default` or "
        "AWS_PROFILE).",
    )


class BackupRetention(Model):
    """Which backups are kept. The newest successful backup is never pruned."""

    count: int | None = Field(
        default=7, ge=1, le=10000, description="Keep at most this many (newest first)."
    )
    max_age_seconds: int | None = Field(
        default=None, ge=60, description="Delete backups older than this many seconds."
    )


class BackupSpec(Model):
    """Scheduled backups of the whole store, to object storage."""

    schedule: str | None = Field(
        default=None,
        pattern=SCHEDULE_PATTERN,
        max_length=128,
        description="Cron (five fields, UTC) or '@every 10m'; unset: on demand only.",
    )
    retention: BackupRetention = BackupRetention()
    destination: BackupDestination


class BackupSource(Model):
    """The backup a new federation starts from."""

    uri: str = Field(
        pattern=BACKUP_URI_PATTERN,
        max_length=2048,
        description="s3://bucket/key of one backup, or s3://bucket/prefix/ (ending in '/') "
        "for the newest backup under it.",
    )
    revision: int | None = Field(
        default=None,
        ge=1,
        description="With a prefix: the newest backup at or below this revision. With one "
        "backup: refuse it unless it is at or below this revision.",
    )


# --------------------------------------------------------------------------------------
# spec.podTemplate: what a user may adjust of the member pods (docs/pods.md). Kept in a
# block of its own. Typed after the Kubernetes API's own fields, so the CRD schema checks
# them at admission; only what xlinefed cannot know is offered (no containers, volumes
# or security context: those are the operator's).

#: A Kubernetes label or annotation key: an optional DNS-subdomain prefix and a name.
LABEL_KEY = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
#: A resource quantity in its usual forms (`250m`, `1`, `0.5`, `512Mi`, `2G`).
QUANTITY = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"
MAX_TERMS = 16

LabelKey = Annotated[str, Field(min_length=1, max_length=316, pattern=LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=63, pattern=LABEL_VALUE)]
Quantity = Annotated[str, Field(min_length=1, max_length=64, pattern=QUANTITY)]


class LabelSelectorRequirement(Model):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_MAP_ENTRIES)


class LabelSelector(Model):
    match_labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_TERMS
    )


class NodeSelectorRequirement(Model):
    key: LabelKey
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_MAP_ENTRIES)


class NodeSelectorTerm(Model):
    match_expressions: list[NodeSelectorRequirement] = Field(
        default_factory=list, max_length=MAX_TERMS
    )
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=list, max_length=MAX_TERMS)


class NodeSelector(Model):
    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1, max_length=MAX_TERMS)


class PreferredSchedulingTerm(Model):
    weight: int = Field(ge=1, le=100)
    preference: NodeSelectorTerm


class NodeAffinity(Model):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(
        default_factory=list, max_length=MAX_TERMS
    )


class PodAffinityTerm(Model):
    label_selector: LabelSelector | None = None
    namespaces: list[Dns1123Label] = Field(default_factory=list, max_length=MAX_TERMS)
    namespace_selector: LabelSelector | None = None
    topology_key: LabelKey


class WeightedPodAffinityTerm(Model):
    weight: int = Field(ge=1, le=100)
    pod_affinity_term: PodAffinityTerm


class PodAffinity(Model):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(
        default_factory=list, max_length=MAX_TERMS
    )
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(
        default_factory=list, max_length=MAX_TERMS
    )


class Affinity(Model):
    """Each part given replaces the operator's default for it (only podAntiAffinity has
    one: members of a federation preferably on different nodes)."""

    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


class Toleration(Model):
    key: LabelKey | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: LabelValue | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = Field(default=None, ge=0)


class Resources(Model):
    """The engine container's requests and limits; given, they replace the defaults
    (requests 250m CPU and 512Mi, limit 2Gi memory) as a whole."""

    requests: dict[str, Quantity] = Field(default_factory=dict, max_length=16)
    limits: dict[str, Quantity] = Field(default_factory=dict, max_length=16)


class PodTemplate(Model):
    """Overrides for the member pods. Labels and annotations reach running pods in place;
    the rest needs new pods, made by the rolling restart one member at a time."""

    labels: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_MAP_ENTRIES,
        description="Added to the member pods' labels (patched in place, no restart).",
    )
    annotations: dict[str, Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=dict,
        max_length=MAX_MAP_ENTRIES,
        description="Added to the member pods' annotations (patched in place, no restart).",
    )
    node_selector: dict[str, LabelValue] = Field(default_factory=dict, max_length=MAX_MAP_ENTRIES)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=MAX_TERMS)
    affinity: Affinity | None = None
    resources: Resources | None = None
    priority_class_name: str | None = Field(
        default=None, min_length=1, max_length=253, pattern=DNS1123_SUBDOMAIN
    )

    #: The fields a running pod cannot take: a change of one means new pods.
    RESTART_FIELDS: ClassVar[tuple[str, ...]] = (
        "node_selector",
        "tolerations",
        "affinity",
        "resources",
        "priority_class_name",
    )

    def restart_part(self) -> dict[str, Any]:
        """The fields that need new pods, as on the wire, left out when unset."""
        wire = self.to_wire()
        return {
            alias: wire[alias]
            for alias in (to_camel(name) for name in self.RESTART_FIELDS)
            if wire.get(alias) not in (None, {}, [])
        }


class ConsensusTemplate(Model):
    """What every member runs: shared by both tiers."""

    engine: Engine = Engine.ETCD
    image: str | None = Field(default=None, description="Image repository; engine default.")
    version: str = Field(min_length=1, pattern=r"^v?[0-9]+\.[0-9]+\.[0-9]+([-.+][0-9A-Za-z.-]+)?$")
    bootstrap: BootstrapMode = BootstrapMode.STATIC
    update_strategy: UpdateStrategy = UpdateStrategy()
    storage: StorageSpec = StorageSpec()
    network: NetworkSpec = NetworkSpec()
    tls: TLSSpec | None = None
    engine_args: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_MAP_ENTRIES,
        description="Extra engine flags, without the leading dashes.",
    )
    paused: bool = False
    backup: BackupSpec | None = Field(
        default=None, description="Scheduled backups to S3-compatible object storage."
    )
    from_backup: BackupSource | None = Field(
        default=None,
        description="Start the federation from this backup (restored into the initial "
        "members before they first start). Only read before the federation forms.",
    )
    lost_cluster_grace_period_seconds: int = Field(
        default=600,
        ge=0,
        le=7 * 24 * 3600,
        description="How long a cluster removed from the spec (or a learner its cluster never "
        "starts) may stay unreachable before the remaining clusters remove its members; "
        "also how long every lost voter must be silent before a quorum-loss recovery.",
    )
    recovery: RecoverySpec | None = Field(
        default=None,
        description="Quorum-loss recovery from one surviving member (docs/recovery.md).",
    )
    # spec.podTemplate (issue 13 item 4): kept last, in a block of its own.
    pod_template: PodTemplate = Field(
        default_factory=PodTemplate,
        description="Member pod overrides: labels, annotations, nodeSelector, tolerations, "
        "affinity, resources, priorityClassName (docs/pods.md).",
    )


class XlineFederationSpec(ConsensusTemplate):
    clusters: list[MemberClusterSpec] = Field(min_length=1, max_length=MAX_CLUSTERS)


class XlineClusterSpec(ConsensusTemplate):
    federation: Dns1123Label
    cluster_id: Dns1123Label
    replicas: int = Field(ge=0, le=99)
    #: The whole topology, this cluster included, in federation order.
    clusters: list[MemberClusterSpec] = Field(min_length=1, max_length=MAX_CLUSTERS)
    formation: FormationSpec | None = Field(
        default=None,
        description="Set by the federation operator: who bootstraps, and whether the "
        "federation formed. Without it, a cluster of a multi-cluster topology never bootstraps.",
    )
    departed: list[DepartedCluster] = Field(
        default_factory=list,
        max_length=MAX_CLUSTERS,
        description="Set by the federation operator: clusters leaving the federation.",
    )


class Condition(Model):
    """A `metav1.Condition`."""

    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The generation this condition was computed for."
    )


class MemberRole(StrEnum):
    VOTER = "voter"
    LEARNER = "learner"


class MemberStatus(Model):
    name: str
    cluster: str
    id: str | None = Field(default=None, description="Consensus member id (hex).")
    role: MemberRole | None = None
    leader: bool = False
    version: str | None = None
    healthy: bool = False
    raft_index: int | None = None


class StepStatus(Model):
    kind: str
    member: str | None = None
    reason: str = ""
    #: For a Wait: its stable code (`WaitCode`), which Events and metrics key on.
    code: str | None = None


class RecoveryStatus(Model):
    """The last quorum-loss recovery, for the audit (docs/recovery.md)."""

    from_member: str | None = Field(
        default=None, description="The survivor the last recovery rebuilt from."
    )
    at: str | None = Field(
        default=None, description="When the survivor was restarted as a new cluster (RFC 3339)."
    )
    lost: list[str] = Field(default_factory=list, description="The voters it dropped.")
    applied_index: int | None = Field(
        default=None, description="The survivor's applied raft index when recovery began."
    )
    revision: int | None = Field(
        default=None, description="The store revision the recovered cluster reached."
    )
    request: str | None = Field(
        default=None, description="spec.recovery.requestedAt it answered, or 'automatic'."
    )
    phase: str = Field(
        default="Forcing",
        description="Forcing (the survivor runs forced), then Recovered; Refused while one "
        "asked for waits or is refused (see message).",
    )
    #: Why a recovery is refused or waits right now (empty when none is asked for).
    message: str | None = None


class ConsensusStatus(Model):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    phase: Phase = Phase.PENDING
    observed_generation: int | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    members: list[MemberStatus] = Field(default_factory=list)
    leader: str | None = None
    current_step: StepStatus | None = None
    lock_holder: str | None = None
    warnings: list[str] = Field(default_factory=list)
    #: This tier saw the consensus cluster formed (its own record; the federation-wide
    #: fact is `formation`).
    formed: bool = False
    #: Federation tier only: the bootstrap authority it carries into every XlineCluster.
    formation: FormationSpec | None = None
    #: Federation tier only: clusters removed from the spec and still draining.
    departed: list[DepartedCluster] = Field(default_factory=list)
    #: Hash of the spec this status describes (`spec_hash`), so that a copy of the spec
    #: elsewhere (the federation tier) can tell whether it has been reached.
    observed_spec: str | None = None
    #: "ready/total", for the printer column.
    ready: str | None = None
    #: "member1=3,member2=2", for the printer column.
    clusters: str | None = None
    #: What the members run, as they report it: one version, or several during an
    #: upgrade ("3.4.23,3.4.24"). The spec's target is `spec.version`.
    version: str | None = None
    #: Client URLs to connect to: the serving voters' (and, on Kubernetes, the client
    #: Service per member cluster and its clusterset name).
    endpoints: list[str] = Field(default_factory=list)
    #: The last quorum-loss recovery and why one waits now (docs/recovery.md).
    recovery: RecoveryStatus | None = None
    #: Backups: the last success and failure, and the next run.
    backup: BackupStatus | None = None
    #: What protects the links (Kubernetes: the certificates the Secrets hold).
    security: SecurityStatus | None = None


class SecurityStatus(Model):
    """TLS and auth as this tier last checked them."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    tls: bool = False
    auth: bool = False
    #: sha256 of the CA bundle members trust, so the federation tier can tell whether
    #: every cluster trusts the same one.
    ca_fingerprint: str | None = None
    #: RFC 3339: when the first of the certificates in use expires.
    certificates_expire: str | None = None


class BackupStatus(Model):
    """What the backups last did (local: the controller; Kubernetes: the operator)."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    last_success: str | None = Field(default=None, description="RFC 3339 time of it.")
    last_uri: str | None = None
    last_size_bytes: int | None = None
    last_duration_seconds: float | None = None
    last_revision: int | None = None
    last_member: str | None = Field(default=None, description="The member it was taken from.")
    last_failure: str | None = Field(default=None, description="RFC 3339 time of it.")
    last_error: str | None = None
    consecutive_failures: int = 0
    next_run: str | None = Field(default=None, description="RFC 3339 time of the next backup.")
    kept: int | None = Field(default=None, description="Backups kept under the prefix.")


class _Object(Model):
    """A stored object of ours: its API version, metadata and the names it is known by."""

    KIND: ClassVar[str]
    api_version: Literal["xlinefed.io/v1alpha1"] = API_VERSION  # type: ignore[assignment]
    metadata: ObjectMeta

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def namespace(self) -> str:
        return self.metadata.namespace


class _Resource(_Object):
    status: ConsensusStatus | None = None


class XlineFederation(_Resource):
    KIND: ClassVar[str] = "XlineFederation"
    kind: Literal["XlineFederation"] = "XlineFederation"
    spec: XlineFederationSpec

    @model_validator(mode="after")
    def _cross_field_rules(self) -> XlineFederation:
        from xlinefed.api.validation import SpecError, federation_problems

        if problems := federation_problems(self.name, self.namespace, self.spec):
            raise SpecError(problems)
        return self


class XlineCluster(_Resource):
    KIND: ClassVar[str] = "XlineCluster"
    kind: Literal["XlineCluster"] = "XlineCluster"
    spec: XlineClusterSpec

    @model_validator(mode="after")
    def _cross_field_rules(self) -> XlineCluster:
        from xlinefed.api.validation import SpecError, cluster_problems

        if problems := cluster_problems(self.namespace, self.spec):
            raise SpecError(problems)
        return self


class BackupRunPhase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class XlineBackupSpec(Model):
    """One backup, taken now, of the federation an XlineCluster in this namespace belongs to."""

    cluster: Dns1123Label = Field(
        description="The XlineCluster (in this namespace) whose federation is backed up; "
        "the operator of its member cluster takes the backup."
    )
    destination: BackupDestination | None = Field(
        default=None,
        description="Where it goes; default: the XlineCluster's spec.backup.destination.",
    )


class XlineBackupStatus(Model):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True
    )

    phase: BackupRunPhase = BackupRunPhase.PENDING
    uri: str | None = Field(default=None, description="s3://bucket/key of the backup.")
    size_bytes: int | None = None
    sha256: str | None = None
    revision: int | None = Field(
        default=None, description="Every write at or below this revision is in the backup."
    )
    member: str | None = Field(default=None, description="The member it was taken from.")
    started_at: str | None = Field(default=None, description="RFC 3339.")
    completed_at: str | None = Field(default=None, description="RFC 3339.")
    duration_seconds: float | None = None
    attempts: int = 0
    message: str | None = Field(default=None, description="Why it failed, or what it waits for.")


class XlineBackup(_Object):
    """An on-demand backup (member tier): created by a user, run once by the member
    operator, its outcome recorded in status. Deleting it keeps the object in the store."""

    KIND: ClassVar[str] = "XlineBackup"
    kind: Literal["XlineBackup"] = "XlineBackup"
    spec: XlineBackupSpec
    status: XlineBackupStatus | None = None


def spec_hash(spec: ConsensusTemplate) -> str:
    """A short, stable hash of a spec, as both tiers parse it."""
    payload = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]
