"""Rules across fields. Each problem names the field and says how to fix it.

These run when a model is parsed (so the CLI and both operators refuse a bad spec before
touching anything) and, for changes, on the pair (old spec, new spec).
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from cronsim import CronSim, CronSimError

from xlinefed.api.engines import Engine, profile, restore_tool
from xlinefed.api.models import (
    DNS1123_LABEL,
    LABEL_KEY,
    ConsensusTemplate,
    MemberClusterSpec,
    XlineClusterSpec,
    XlineFederationSpec,
)
from xlinefed.topology import member_name, render_host

TEMPLATE_PLACEHOLDERS = frozenset({"member", "cluster", "federation", "namespace", "ordinal"})
REQUIRED_PLACEHOLDERS = frozenset({"member"})

#: Flags xlinefed sets itself; a user value would break identity or bootstrap.
RESERVED_ENGINE_ARGS = frozenset(
    {
        "name",
        "data-dir",
        "initial-cluster",
        "initial-cluster-state",
        "initial-cluster-token",
        "initial-advertise-peer-urls",
        "advertise-client-urls",
        "listen-peer-urls",
        "listen-client-urls",
        "members",
        "storage-engine",
        # Quorum-loss recovery sets it for exactly one start (spec.recovery).
        "force-new-cluster",
    }
)


def _tls_engine_args(engine: Engine) -> frozenset[str]:
    data = profile(engine)
    flags = [f for f, _, _ in data.tls_file_flags] + [*data.tls_args, *data.plain_health_args]
    return frozenset(f.lstrip("-").split("=", 1)[0] for f in flags)


@dataclass(frozen=True)
class Problem:
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}; {self.fix}"


class SpecError(ValueError):
    """A spec that must not be applied. `problems` lists every reason."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def template_problems(spec: ConsensusTemplate) -> list[Problem]:
    field = "spec.network.dnsTemplate"
    try:
        names = template_fields(spec.network.dns_template)
    except ValueError as error:
        return [Problem(field, f"is not a valid template ({error})", "balance the braces")]
    problems = []
    if unknown := sorted(names - TEMPLATE_PLACEHOLDERS):
        problems.append(
            Problem(
                field,
                f"has unknown placeholders {unknown}",
                f"use only {sorted(TEMPLATE_PLACEHOLDERS)}",
            )
        )
    if missing := sorted(REQUIRED_PLACEHOLDERS - names):
        problems.append(
            Problem(
                field,
                f"lacks the required placeholder(s) {missing}, so members would share a name",
                "add {member} to the template, e.g. "
                "'{member}.{cluster}.{federation}.{namespace}.svc.clusterset.local'",
            )
        )
    return problems


def topology_problems(
    federation: str, namespace: str, spec: ConsensusTemplate, clusters: Sequence[MemberClusterSpec]
) -> list[Problem]:
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for index, cluster in enumerate(clusters):
        if cluster.id in seen:
            problems.append(
                Problem(
                    f"spec.clusters[{index}].id",
                    f"'{cluster.id}' is listed twice (also at spec.clusters[{seen[cluster.id]}])",
                    "list each member cluster once and sum the replicas",
                )
            )
        seen.setdefault(cluster.id, index)
    total = sum(c.replicas for c in clusters)
    engine = profile(spec.engine)
    if total == 0:
        problems.append(
            Problem(
                "spec.clusters",
                "the federation would have zero voters and lose all data",
                "keep at least one member (replicas >= 1 in some cluster); "
                "delete the resource to tear it down",
            )
        )
    elif total < engine.min_voters:
        problems.append(
            Problem(
                "spec.clusters",
                f"{spec.engine.value} cannot run with {total} member(s): it needs at least "
                f"{engine.min_voters} (it can neither grow from one member nor shrink below "
                "three, Xline issue #447)",
                f"set replicas so that they add up to {engine.min_voters} or more",
            )
        )
    lag = spec.update_strategy.max_promote_lag
    if engine.max_promote_gap is not None and lag is not None and lag > engine.max_promote_gap:
        problems.append(
            Problem(
                "spec.updateStrategy.maxPromoteLag",
                f"{lag} is more than {spec.engine.value} allows: it refuses to promote a learner "
                f"more than {engine.max_promote_gap} entries behind the leader",
                f"set it to {engine.max_promote_gap} or less, or leave it unset",
            )
        )
    for index, cluster in enumerate(clusters):
        if cluster.replicas == 0:
            continue
        longest = member_name(federation, cluster.id, cluster.replicas - 1)
        if len(longest) > 63:
            problems.append(
                Problem(
                    f"spec.clusters[{index}].id",
                    f"member name '{longest}' is {len(longest)} characters; a pod name and DNS "
                    "label allow 63",
                    "shorten the federation name or the cluster id",
                )
            )
            continue
        if template_problems(spec):
            continue
        host = render_host(
            spec.network.dns_template,
            member=longest,
            cluster=cluster.id,
            federation=federation,
            namespace=namespace,
            ordinal=cluster.replicas - 1,
        )
        bad = [label for label in host.split(".") if not re.match(DNS1123_LABEL, label)]
        long = [label for label in host.split(".") if len(label) > 63]
        if long or bad or len(host) > 253:
            problems.append(
                Problem(
                    "spec.network.dnsTemplate",
                    f"renders '{host}', which is not a valid DNS name (labels of at most 63 "
                    "lowercase letters, digits and '-', 253 characters in all)",
                    "shorten the names or change the template",
                )
            )
    ids = {c.id for c in clusters}
    by_id = {c.id: c for c in clusters}
    for cluster_id, partition in sorted(spec.update_strategy.partitions.items()):
        field = f"spec.updateStrategy.partitions.{cluster_id}"
        if cluster_id not in ids:
            problems.append(
                Problem(
                    field,
                    f"names cluster '{cluster_id}', which is not in spec.clusters",
                    f"use one of {sorted(ids)} or remove the entry",
                )
            )
        elif partition > by_id[cluster_id].replicas:
            problems.append(
                Problem(
                    field,
                    f"is {partition}, more than the cluster's {by_id[cluster_id].replicas} "
                    "replicas",
                    f"set it between 0 and {by_id[cluster_id].replicas}",
                )
            )
    for arg in sorted(spec.engine_args):
        field = f"spec.engineArgs.{arg}"
        if arg.startswith("-"):
            problems.append(Problem(field, "starts with '-'", f"write it as '{arg.lstrip('-')}'"))
        elif arg in RESERVED_ENGINE_ARGS:
            problems.append(
                Problem(
                    field,
                    "is set by xlinefed from the member's identity",
                    "remove it; use spec.network or spec.storage instead",
                )
            )
        elif arg in _tls_engine_args(spec.engine):
            problems.append(
                Problem(
                    field,
                    "is set by xlinefed from spec.tls",
                    "remove it; name the certificates in spec.tls instead",
                )
            )
    problems.extend(template_problems(spec))
    if (
        spec.tls is not None
        and not spec.tls.enabled
        and (
            spec.tls.peer_secret_ref
            or spec.tls.client_secret_ref
            or spec.tls.operator_secret_ref
            or spec.tls.root_password_secret_ref
        )
    ):
        problems.append(
            Problem(
                "spec.tls.enabled",
                "is false but a secret is named (peer/client/operator/rootPasswordSecretRef)",
                "set enabled: true to use the secrets, or remove them",
            )
        )
    return problems


#: Bounds of an "@every" schedule, seconds.
MIN_EVERY_SECONDS = 1
MAX_EVERY_SECONDS = 366 * 24 * 3600
_EVERY_UNITS = {"s": 1, "m": 60, "h": 3600}


def every_seconds(schedule: str) -> int | None:
    """The interval of an "@every 10m" schedule in seconds; None for a cron schedule."""
    if not schedule.startswith("@every "):
        return None
    amount = schedule.removeprefix("@every ").strip()
    return int(amount[:-1]) * _EVERY_UNITS[amount[-1]]


def schedule_problem(schedule: str, field: str) -> Problem | None:
    """Why a schedule string cannot be used, or None. Pure: cronsim only parses."""
    fix = "write five cron fields (minute hour day month weekday, UTC), e.g. '*/15 * * * *', "
    fix += "or '@every 10m'"
    try:
        seconds = every_seconds(schedule)
    except (ValueError, KeyError, IndexError):
        return Problem(field, f"'{schedule}' is not a valid interval", fix)
    if seconds is not None:
        if not MIN_EVERY_SECONDS <= seconds <= MAX_EVERY_SECONDS:
            return Problem(field, f"'{schedule}' is outside 1s..366 days", fix)
        return None
    try:
        from datetime import UTC, datetime

        CronSim(schedule, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as error:
        return Problem(field, f"'{schedule}' is not a valid cron expression ({error})", fix)
    return None


def backup_problems(spec: ConsensusTemplate) -> list[Problem]:
    problems: list[Problem] = []
    backup = spec.backup
    if backup is not None:
        if backup.schedule is not None and (
            problem := schedule_problem(backup.schedule, "spec.backup.schedule")
        ):
            problems.append(problem)
        if backup.destination.prefix.startswith("/"):
            problems.append(
                Problem(
                    "spec.backup.destination.prefix",
                    f"'{backup.destination.prefix}' starts with '/'",
                    "write the key prefix without a leading '/', e.g. 'backups/prod'",
                )
            )
        if backup.retention.count is None and backup.retention.max_age_seconds is None:
            problems.append(
                Problem(
                    "spec.backup.retention",
                    "keeps every backup forever",
                    "set count and/or maxAgeSeconds",
                )
            )
    source = spec.from_backup
    if source is not None:
        _, _, key = source.uri.removeprefix("s3://").partition("/")
        if not key:
            problems.append(
                Problem(
                    "spec.fromBackup.uri",
                    f"'{source.uri}' names a bucket but no backup",
                    "write s3://bucket/key of one backup, or s3://bucket/prefix/ for the "
                    "newest one under the prefix",
                )
            )
    return problems + recovery_problems(spec)


#: Why Xline cannot be recovered in place (docs/recovery.md).
XLINE_NO_FORCE_NEW_CLUSTER = (
    "Xline has no --force-new-cluster (no way to restart one member as a new cluster on "
    "its own data), so a lost quorum cannot be recovered in place"
)


def recovery_problems(spec: ConsensusTemplate) -> list[Problem]:
    recovery = spec.recovery
    if recovery is None or not (recovery.automatic or recovery.from_member):
        return []
    if profile(spec.engine).force_new_cluster_flag is None:
        return [
            Problem(
                "spec.recovery",
                f"{spec.engine.value}: {XLINE_NO_FORCE_NEW_CLUSTER}",
                "remove spec.recovery and restore a new federation from a backup "
                "(spec.fromBackup, `xlinefed local up --from-backup URI`)",
            )
        ]
    if recovery.from_member and recovery.automatic:
        return [
            Problem(
                "spec.recovery",
                "names fromMember and sets automatic",
                "set one: fromMember for an explicit recovery, or automatic: true",
            )
        ]
    return []


# --- spec.podTemplate (docs/pods.md)

#: Label keys xlinefed sets on member pods itself; a Service selects by some of them.
RESERVED_POD_LABELS = frozenset({"app.kubernetes.io/name", "app.kubernetes.io/managed-by"})
RESERVED_PREFIX = "xlinefed.io/"
_SUFFIXES = {
    "": 1,
    "m": Decimal("0.001"),
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
}


def quantity(value: str) -> Decimal:
    """A resource quantity's value (`250m` → 0.25, `2Gi` → 2147483648)."""
    match = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", value)
    if match is None or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]


def _key_problem(field: str, key: str) -> Problem | None:
    name = key.rpartition("/")[2]
    if re.fullmatch(LABEL_KEY, key) is None or len(name) > 63:
        return Problem(
            field,
            f"key {key!r} is not a valid Kubernetes label key",
            "use an optional DNS-subdomain prefix and '/', then at most 63 letters, digits, "
            "'-', '_' or '.' (e.g. 'example.com/team')",
        )
    return None


def pod_template_problems(spec: ConsensusTemplate) -> list[Problem]:
    template = spec.pod_template
    problems: list[Problem] = []
    for part in ("labels", "annotations", "nodeSelector"):
        mapping = getattr(template, _snake(part))
        for key in mapping:
            field = f"spec.podTemplate.{part}"
            if problem := _key_problem(field, key):
                problems.append(problem)
            elif part != "nodeSelector" and (
                key.startswith(RESERVED_PREFIX) or key in RESERVED_POD_LABELS
            ):
                problems.append(
                    Problem(
                        field,
                        f"{key!r} is set by xlinefed itself (its Services and operators "
                        "select member pods by it)",
                        f"remove it, or use a key outside {RESERVED_PREFIX} and "
                        f"{sorted(RESERVED_POD_LABELS)}",
                    )
                )
    resources = template.resources
    if resources is not None:
        for part in ("requests", "limits"):
            for key in getattr(resources, part):
                if problem := _key_problem(f"spec.podTemplate.resources.{part}", key):
                    problems.append(problem)
        for name, limit in resources.limits.items():
            request = resources.requests.get(name)
            if request is not None and quantity(request) > quantity(limit):
                problems.append(
                    Problem(
                        f"spec.podTemplate.resources.requests.{name}",
                        f"{request} is above its limit {limit}",
                        f"lower the request or raise spec.podTemplate.resources.limits.{name}",
                    )
                )
    return problems


def federation_problems(name: str, namespace: str, spec: XlineFederationSpec) -> list[Problem]:
    return (
        topology_problems(name, namespace, spec, spec.clusters)
        + backup_problems(spec)
        + pod_template_problems(spec)
    )


def cluster_problems(namespace: str, spec: XlineClusterSpec) -> list[Problem]:
    problems = []
    here = [c for c in spec.clusters if c.id == spec.cluster_id]
    if not here:
        problems.append(
            Problem(
                "spec.clusterId",
                f"'{spec.cluster_id}' is not in spec.clusters",
                "add this cluster to the topology",
            )
        )
    elif here[0].replicas != spec.replicas:
        problems.append(
            Problem(
                "spec.replicas",
                f"is {spec.replicas} but spec.clusters says "
                f"{here[0].replicas} for '{spec.cluster_id}'",
                "make them agree",
            )
        )
    return (
        problems
        + topology_problems(spec.federation, namespace, spec, spec.clusters)
        + backup_problems(spec)
        + pod_template_problems(spec)
        + kubernetes_problems(spec)
    )


def kubernetes_problems(spec: ConsensusTemplate) -> list[Problem]:
    """What only Kubernetes refuses: TLS on without a Secret named would leave the members
    nothing to serve (local mode issues its own certificates); a restore needs the
    engine's restore tool in its image."""
    problems = _kubernetes_restore_problems(spec)
    if spec.tls is None or not spec.tls.enabled:
        return problems
    if not spec.tls.peer_secret_ref:
        problems.append(
            Problem(
                "spec.tls.peerSecretRef",
                "is required on Kubernetes when TLS is on",
                "name a kubernetes.io/tls Secret with ca.crt present in every member cluster "
                "(a cert-manager Certificate writes one; docs/security.md), or set "
                "spec.tls.enabled: false",
            )
        )
    if spec.tls.root_password_secret_ref and spec.engine is not Engine.ETCD:
        problems.append(
            Problem(
                "spec.tls.rootPasswordSecretRef",
                f"auth on Kubernetes is built for etcd only, not {spec.engine.value}",
                "remove it (Xline's auth needs its RSA key pair, not distributed yet)",
            )
        )
    return problems


def _kubernetes_restore_problems(spec: ConsensusTemplate) -> list[Problem]:
    if spec.from_backup is None or restore_tool(spec.engine, spec.version) is not None:
        return []
    return [
        Problem(
            "spec.fromBackup",
            f"a pod cannot restore {spec.engine.value} {spec.version} yet",
            "restore it locally (`xlinefed local up --from-backup`), or remove spec.fromBackup",
        )
    ]


def warnings_for(clusters: Sequence[MemberClusterSpec]) -> list[str]:
    total = sum(c.replicas for c in clusters)
    warnings = []
    if total and total % 2 == 0:
        warnings.append(
            f"{total} members (even) tolerate as many failures as {total - 1}; "
            "an odd total gives the same safety with one member less"
        )
    placed = [c for c in clusters if c.replicas]
    if total and any(c.replicas >= total // 2 + 1 for c in placed):
        warnings.append(
            "one cluster holds a majority of the members: losing that cluster loses quorum"
        )
    return warnings


def _major(version: str) -> int:
    return int(version.lstrip("v").split(".")[0])


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.lstrip("v").split(".")[:2]
    return int(major), int(minor)


#: Fields fixed once members exist, and why (the CRD's CEL transition rules say the same).
IMMUTABLE_FIELDS: tuple[tuple[str, str, str], ...] = (
    (
        "spec.network.ports.client",
        "every client and every member's advertised URL names it",
        "keep the current port",
    ),
    ("spec.network.ports.peer", "the member list stores every peer URL", "keep the current port"),
    (
        "spec.network.dnsTemplate",
        "the member list stores every member's name-based URL",
        "keep the current template",
    ),
    ("spec.storage.size", "a bound volume is not resized by xlinefed", "keep the current size"),
    (
        "spec.storage.storageClassName",
        "existing volumes keep their class",
        "keep the current class",
    ),
)


def _field(spec: ConsensusTemplate, path: str) -> object:
    value: object = spec
    for part in path.split(".")[1:]:
        value = getattr(value, _snake(part))
    return value


def _snake(name: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in name)


def _tls_on(spec: ConsensusTemplate) -> bool:
    # An omitted spec.tls is the engine's default (on for etcd).
    if spec.tls is None:
        return profile(spec.engine).tls_by_default
    return spec.tls.enabled


def change_problems(
    old: ConsensusTemplate, new: ConsensusTemplate, *, formed: bool = True
) -> list[Problem]:
    """Changes that cannot be carried out safely one step at a time."""
    problems = [
        Problem(path, f"cannot change on a running federation ({why})", fix)
        for path, why, fix in IMMUTABLE_FIELDS
        if _field(old, path) != _field(new, path)
    ]
    if formed and old.bootstrap != new.bootstrap:
        problems.append(
            Problem(
                "spec.bootstrap",
                "cannot change once the federation has formed (it only says how the first "
                "members start)",
                "keep the current mode",
            )
        )
    if formed and old.from_backup != new.from_backup:
        problems.append(
            Problem(
                "spec.fromBackup",
                "cannot change once the federation has formed (it is only read when the "
                "first members start)",
                "keep the current value; restore into a new federation instead",
            )
        )
    if formed and _tls_on(old) != _tls_on(new):
        problems.append(
            Problem(
                "spec.tls.enabled",
                "cannot change once the federation has formed (the member list stores "
                "every peer URL with its scheme)",
                "keep the current setting; restore a backup into a new federation to change it",
            )
        )
    if old.engine != new.engine:
        problems.append(
            Problem(
                "spec.engine",
                f"cannot change from {old.engine.value} to {new.engine.value}",
                "create a new federation and migrate the data",
            )
        )
    if _major(new.version) < _major(old.version):
        problems.append(
            Problem(
                "spec.version",
                f"{new.version} downgrades across a major version from {old.version}; the "
                "data format is not readable by the older release",
                f"keep {old.version} or restore from a backup",
            )
        )
    elif (
        profile(new.engine).one_minor_at_a_time
        and _major(new.version) == _major(old.version)
        and _minor(new.version)[1] > _minor(old.version)[1] + 1
    ):
        major, minor = _minor(old.version)
        problems.append(
            Problem(
                "spec.version",
                f"{new.version} skips a minor version from {old.version}; "
                f"{new.engine.value} upgrades in place one minor at a time ({major}.{minor + 2} "
                f"joins only a cluster at {major}.{minor + 1}, and data written by "
                f"{major}.{minor} must pass through {major}.{minor + 1})",
                f"set spec.version to a {major}.{minor + 1} release first, let the roll "
                "finish, then upgrade again",
            )
        )
    elif _minor(new.version) < _minor(old.version):
        problems.append(
            Problem(
                "spec.version",
                f"{new.version} downgrades the minor version from {old.version}, which "
                "the engine does not support in place",
                f"keep {old.version}",
            )
        )
    return problems
