"""CustomResourceDefinitions (apiextensions.k8s.io/v1) generated from the pydantic models.

The models are the source of truth; `deploy/crds/*.yaml` is generated from them and a test
fails when the committed files drift. Regenerate with

    python -m xlinefed.install --write deploy     # or hack/gen_crds.sh
    python -m xlinefed.install --check deploy     # exit 1 if anything differs

The pydantic JSON schema is turned into a *structural* schema (every node typed, `$ref`s
inlined, no `anyOf`/`const`/`title`/`$defs`, `anyOf [X, null]` → X with `nullable: true`),
and rules across fields that CEL can express are added as `x-kubernetes-validations`, with
messages that name the field and the fix, as `validation.py` does. Building the manifests is
pure, and so is this module: `xlinefed.install` writes the files.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel

from xlinefed.api.engines import Engine, profile
from xlinefed.api.models import (
    GROUP,
    LABEL_KEY,
    VERSION,
    ConsensusStatus,
    XlineBackupSpec,
    XlineBackupStatus,
    XlineClusterSpec,
    XlineFederationSpec,
)
from xlinefed.api.validation import (
    RESERVED_ENGINE_ARGS,
    RESERVED_POD_LABELS,
    RESERVED_PREFIX,
    TEMPLATE_PLACEHOLDERS,
)

__all__ = [
    "CRDS",
    "CrdInfo",
    "all_crds",
    "crd",
    "render",
    "rendered_files",
    "structural_schema",
]

#: Keywords a structural schema may carry (apiextensions.k8s.io/v1 JSONSchemaProps we use).
ALLOWED_KEYWORDS = frozenset(
    {
        "type",
        "description",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "enum",
        "default",
        "nullable",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "uniqueItems",
        "format",
        "x-kubernetes-validations",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-map-type",
        "x-kubernetes-int-or-string",
        "x-kubernetes-embedded-resource",
    }
)

#: Pydantic output that carries no meaning for Kubernetes (or that Kubernetes rejects).
_DROPPED = frozenset(
    {"title", "$defs", "discriminator", "examples", "readOnly", "writeOnly", "$schema"}
)


class SchemaError(ValueError):
    """The models use a JSON-schema construct that has no structural equivalent."""


# --------------------------------------------------------------------------------------
# JSON schema → structural schema


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_none(v) for v in value]
    return value


def _resolve(ref: str, defs: dict[str, Any]) -> dict[str, Any]:
    prefix = "#/$defs/"
    if not ref.startswith(prefix) or ref[len(prefix) :] not in defs:
        raise SchemaError(f"cannot inline $ref {ref!r}")
    return defs[ref[len(prefix) :]]


def _convert(node: dict[str, Any], defs: dict[str, Any], where: str) -> dict[str, Any]:
    node = dict(node)
    out: dict[str, Any] = {}
    # Inline references; keys beside the $ref (description, default) win over the target's.
    if "$ref" in node:
        out.update(_convert(_resolve(node.pop("$ref"), defs), defs, where))
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise SchemaError(f"{where}: allOf with {len(parts)} parts is not structural")
        out.update(_convert(parts[0], defs, where))
    if "anyOf" in node or "oneOf" in node:
        options = node.pop("anyOf", None) or node.pop("oneOf")
        concrete = [o for o in options if o != {"type": "null"}]
        if len(concrete) != 1:
            raise SchemaError(f"{where}: a union of {len(concrete)} types is not structural")
        out.update(_convert(concrete[0], defs, where))
        if len(concrete) < len(options):
            out["nullable"] = True
    if "const" in node:
        out["enum"] = [node.pop("const")]
    if "exclusiveMinimum" in node:  # JSON Schema's number → OpenAPI 3.0's boolean
        out["minimum"] = node.pop("exclusiveMinimum")
        out["exclusiveMinimum"] = True
    if "exclusiveMaximum" in node:
        out["maximum"] = node.pop("exclusiveMaximum")
        out["exclusiveMaximum"] = True
    for key, value in node.items():
        if key in _DROPPED:
            continue
        if key == "properties":
            out[key] = {name: _convert(sub, defs, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            out[key] = _convert(value, defs, f"{where}[*]")
        elif key == "additionalProperties":
            # `false` beside `properties` is forbidden in a CRD; the apiserver prunes (or, with
            # fieldValidation=Strict, rejects) unknown fields instead.
            if isinstance(value, dict):
                out[key] = _convert(value, defs, f"{where}.*")
            elif value is not False:
                raise SchemaError(f"{where}: additionalProperties {value!r} is not structural")
        elif key == "default":
            if value is not None:
                out[key] = _strip_none(value)
        elif key in ALLOWED_KEYWORDS:
            out[key] = value
        else:
            raise SchemaError(f"{where}: keyword {key!r} has no structural equivalent")
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{where}: no type")
    return out


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's validation JSON schema (camelCase) as a structural OpenAPI v3 schema."""
    schema = model.model_json_schema(by_alias=True, mode="validation")
    defs = schema.pop("$defs", {})
    return _convert(schema, defs, model.__name__)


# --------------------------------------------------------------------------------------
# CEL rules (x-kubernetes-validations): the cross-field rules of validation.py that CEL
# can express. Each message names the field and the fix.


XLINE_GAP = profile(Engine.XLINE).max_promote_gap


def _rule(
    rule: str,
    message: str,
    *,
    field_path: str | None = None,
    reason: str | None = None,
    message_expression: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    if reason:
        out["reason"] = reason
    if message_expression:
        out["messageExpression"] = message_expression
    return out


def _cel_list(values: Sequence[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


_PLACEHOLDER_RE = (
    "^([^{}]|[{](" + "|".join(sorted(TEMPLATE_PLACEHOLDERS)) + ")[}])*$"
)  # only known {placeholders}, balanced braces


def _major(expr: str) -> str:
    return f"int({expr}.replace('v', '').split('.')[0])"


def _minor(expr: str) -> str:
    return f"int({expr}.replace('v', '').split('.')[1])"


def _pod_template_rules(prefix: str) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """spec.podTemplate's keys (map keys, which a structural schema cannot pattern):
    valid label keys, none of those xlinefed sets on member pods itself."""
    reserved = _cel_list(sorted(RESERVED_POD_LABELS))
    rules: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for part in ("labels", "annotations", "nodeSelector"):
        where = f"{prefix}.podTemplate.{part}"
        part_rules = [
            _rule(
                f"self.all(k, k.matches(r'{LABEL_KEY}'))",
                f"{where}: a key is not a valid Kubernetes label key; use an optional "
                "DNS-subdomain prefix and '/', then at most 63 letters, digits, '-', '_' "
                "or '.' (e.g. 'example.com/team')",
            )
        ]
        if part != "nodeSelector":
            part_rules.append(
                _rule(
                    f"self.all(k, !k.startsWith('{RESERVED_PREFIX}') && !(k in {reserved}))",
                    f"{where}: a key is set by xlinefed itself (its Services and operators "
                    f"select member pods by it); remove it, or use a key outside "
                    f"{RESERVED_PREFIX} and {sorted(RESERVED_POD_LABELS)}",
                )
            )
        rules[("spec", "podTemplate", part)] = part_rules
    return rules


def _template_rules(prefix: str) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Rules shared by both tiers, keyed by the path of the node they sit on."""
    return {**_shared_rules(prefix), **_pod_template_rules(prefix)}


def _shared_rules(prefix: str) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    p = prefix
    return {
        ("spec", "clusters"): [
            _rule(
                "self.all(c, self.exists_one(d, d.id == c.id))",
                f"{p}.clusters: a cluster id is listed more than once; list each member "
                "cluster once and sum its replicas",
                reason="FieldValueDuplicate",
            ),
        ],
        ("spec",): [
            _rule(
                "self.clusters.exists(c, c.replicas > 0)",
                f"{p}.clusters: the federation would have zero voters and lose all data; "
                "keep replicas >= 1 in some cluster (delete the resource to tear it down)",
                field_path=".clusters",
            ),
            _rule(
                "!has(self.engine) || self.engine != 'xline' || "
                "self.clusters.map(c, c.replicas).sum() >= 3",
                f"{p}.clusters: xline needs at least 3 members in all (it can neither grow "
                "from one member nor shrink below three, Xline issue #447); set replicas "
                "so that they add up to 3 or more",
                field_path=".clusters",
            ),
            _rule(
                "!has(self.engine) || self.engine != 'xline' || !has(self.updateStrategy) || "
                "!has(self.updateStrategy.maxPromoteLag) || "
                f"self.updateStrategy.maxPromoteLag <= {XLINE_GAP}",
                f"{p}.updateStrategy.maxPromoteLag: more than xline allows (it refuses to "
                f"promote a learner more than {XLINE_GAP} entries behind the leader); set it "
                f"to {XLINE_GAP} or less, or leave it unset",
                field_path=".updateStrategy.maxPromoteLag",
            ),
            # A transition rule: etcd upgrades in place one minor at a time.
            _rule(
                "(has(self.engine) && self.engine != 'etcd') || "
                f"{_major('self.version')} != {_major('oldSelf.version')} || "
                f"{_minor('self.version')} <= {_minor('oldSelf.version')} + 1",
                f"{p}.version: skips a minor version; etcd upgrades in place one minor at a "
                "time (3.6 joins only a cluster at 3.5, and data written by 3.4 must pass "
                "through 3.5): upgrade to the next minor first, let the roll finish, then go on",
                field_path=".version",
            ),
            _rule(
                "!has(self.updateStrategy) || !has(self.updateStrategy.partitions) || "
                "self.updateStrategy.partitions.all(k, self.clusters.exists(c, c.id == k))",
                f"{p}.updateStrategy.partitions: names a cluster that is not in "
                f"{p}.clusters; use one of the ids in {p}.clusters or remove the entry",
                field_path=".updateStrategy.partitions",
            ),
            _rule(
                "!has(self.updateStrategy) || !has(self.updateStrategy.partitions) || "
                "self.updateStrategy.partitions.all(k, !self.clusters.exists(c, c.id == k) "
                "|| self.clusters.exists(c, c.id == k && "
                "self.updateStrategy.partitions[k] <= c.replicas))",
                f"{p}.updateStrategy.partitions: a partition is larger than its cluster's "
                "replicas; set it between 0 and the cluster's replicas",
                field_path=".updateStrategy.partitions",
            ),
        ],
        ("spec", "engine"): [
            _rule(
                "self == oldSelf",
                f"{p}.engine: cannot be changed in place; create a new federation and "
                "migrate the data",
            ),
        ],
        ("spec", "version"): [
            _rule(
                f"{_major('self')} >= {_major('oldSelf')}",
                f"{p}.version: downgrades across a major version, whose data format the "
                "older release cannot read; keep the current version or restore from a backup",
            ),
            _rule(
                f"{_major('self')} != {_major('oldSelf')} || "
                f"{_minor('self')} >= {_minor('oldSelf')}",
                f"{p}.version: downgrades the minor version, which the engine does not "
                "support in place; keep the current version",
            ),
        ],
        ("spec", "engineArgs"): [
            _rule(
                "self.all(k, !k.startsWith('-'))",
                f"{p}.engineArgs: a flag starts with '-'; write flags without the leading dashes",
            ),
            _rule(
                f"self.all(k, !(k in {_cel_list(sorted(RESERVED_ENGINE_ARGS))}))",
                f"{p}.engineArgs: sets a flag that xlinefed derives from the member's "
                f"identity ({', '.join(sorted(RESERVED_ENGINE_ARGS))}); remove it and use "
                f"{p}.network or {p}.storage instead",
                reason="FieldValueForbidden",
            ),
        ],
        ("spec", "network", "dnsTemplate"): [
            _rule(
                "self.contains('{member}')",
                f"{p}.network.dnsTemplate: lacks the required placeholder {{member}}, so "
                "members would share a name; add {member}, e.g. "
                "'{member}.{cluster}.{federation}.{namespace}.svc.clusterset.local'",
            ),
            _rule(
                f"self.matches('{_PLACEHOLDER_RE}')",
                f"{p}.network.dnsTemplate: has an unknown placeholder or unbalanced braces; "
                f"use only {', '.join('{' + n + '}' for n in sorted(TEMPLATE_PLACEHOLDERS))}",
            ),
        ],
        ("spec", "network", "ports"): [
            _rule(
                "self.client == oldSelf.client",
                f"{p}.network.ports.client: cannot change on a running federation (every "
                "client and every member's advertised URL names it); keep the current port",
                field_path=".client",
                reason="FieldValueForbidden",
            ),
            _rule(
                "self.peer == oldSelf.peer",
                f"{p}.network.ports.peer: cannot change on a running federation (the member "
                "list stores every peer URL); keep the current port",
                field_path=".peer",
                reason="FieldValueForbidden",
            ),
        ],
        ("spec", "network"): [
            _rule(
                "self.dnsTemplate == oldSelf.dnsTemplate",
                f"{p}.network.dnsTemplate: cannot change on a running federation (the member "
                "list stores every member's name-based URL); keep the current template",
                field_path=".dnsTemplate",
                reason="FieldValueForbidden",
            ),
        ],
        ("spec", "storage"): [
            _rule(
                "self.size == oldSelf.size",
                f"{p}.storage.size: cannot change (a bound volume is not resized by "
                "xlinefed); keep the current size",
                field_path=".size",
                reason="FieldValueForbidden",
            ),
            _rule(
                "has(self.storageClassName) == has(oldSelf.storageClassName) && "
                "(!has(self.storageClassName) || "
                "self.storageClassName == oldSelf.storageClassName)",
                f"{p}.storage.storageClassName: cannot change (existing volumes keep their "
                "class); keep the current class",
                field_path=".storageClassName",
                reason="FieldValueForbidden",
            ),
        ],
        ("spec", "tls"): [
            _rule(
                "!has(self.enabled) || self.enabled || "
                "((!has(self.peerSecretRef) || self.peerSecretRef == '') && "
                "(!has(self.clientSecretRef) || self.clientSecretRef == '') && "
                "(!has(self.operatorSecretRef) || self.operatorSecretRef == '') && "
                "(!has(self.rootPasswordSecretRef) || self.rootPasswordSecretRef == ''))",
                f"{p}.tls.enabled: is false but a secret is named; set enabled: true to use "
                "the secrets, or remove them",
            ),
            _rule(
                "(has(self.enabled) && !self.enabled) || "
                "(has(self.peerSecretRef) && self.peerSecretRef != '')",
                f"{p}.tls.peerSecretRef: is required on Kubernetes when TLS is on; name a "
                "kubernetes.io/tls Secret with ca.crt present in every member cluster "
                "(docs/security.md), or set enabled: false",
                field_path=".peerSecretRef",
                reason="FieldValueRequired",
            ),
        ],
    }


def _member_name_rule(federation: str, clusters: str, field_path: str) -> dict[str, Any]:
    """`<federation>-<cluster>-<highest ordinal>` must fit a DNS label (63 characters)."""
    return _rule(
        f"{clusters}.all(c, c.replicas == 0 || "
        f"size({federation}) + size(c.id) + size(string(c.replicas - 1)) + 2 <= 63)",
        "spec.clusters[*].id: a member name '<federation>-<cluster>-<ordinal>' would be "
        "longer than 63 characters (a pod name and DNS label); shorten the federation name "
        "or the cluster id",
        field_path=field_path,
    )


def _federation_rules() -> dict[tuple[str, ...], list[dict[str, Any]]]:
    rules = _template_rules("spec")
    rules[()] = [
        _rule(
            "size(self.metadata.name) <= 63 && !self.metadata.name.contains('.')",
            "metadata.name: the federation name must be a DNS-1123 label (at most 63 "
            "characters, no dots) because it prefixes every member name; choose a shorter "
            "name without dots",
        ),
        _member_name_rule("self.metadata.name", "self.spec.clusters", ".spec.clusters"),
        _rule(
            "!has(oldSelf.status) || !has(oldSelf.status.formation) || "
            "!oldSelf.status.formation.formed || self.spec.bootstrap == oldSelf.spec.bootstrap",
            "spec.bootstrap: cannot change once the federation has formed (it only says how "
            "the first members start); keep the current mode",
            field_path=".spec.bootstrap",
            reason="FieldValueForbidden",
        ),
    ]
    return rules


def _cluster_rules() -> dict[tuple[str, ...], list[dict[str, Any]]]:
    rules = _template_rules("spec")
    rules[("spec",)] += [
        _rule(
            "self.clusters.exists(c, c.id == self.clusterId)",
            "spec.clusterId: is not in spec.clusters; add this cluster to the topology",
            field_path=".clusterId",
        ),
        _rule(
            "self.clusters.all(c, c.id != self.clusterId || c.replicas == self.replicas)",
            "spec.replicas: differs from this cluster's replicas in spec.clusters; make them agree",
            field_path=".replicas",
        ),
        _member_name_rule("self.federation", "self.clusters", ".clusters"),
        _rule(
            "!has(oldSelf.formation) || !oldSelf.formation.formed || "
            "self.bootstrap == oldSelf.bootstrap",
            "spec.bootstrap: cannot change once the federation has formed (it only says how "
            "the first members start); keep the current mode",
            field_path=".bootstrap",
            reason="FieldValueForbidden",
        ),
    ]
    return rules


# --------------------------------------------------------------------------------------
# The CRDs


@dataclass(frozen=True)
class CrdInfo:
    kind: str
    plural: str
    singular: str
    short_names: tuple[str, ...]
    spec_model: type[BaseModel]
    description: str
    columns: tuple[dict[str, Any], ...]
    rules: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    status_model: type[BaseModel] = ConsensusStatus

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"

    @property
    def filename(self) -> str:
        return f"{GROUP}_{self.plural}.yaml"


def _column(name: str, path: str, kind: str = "string", **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": kind, "jsonPath": path, **extra}


_STATUS_COLUMNS = (
    _column("Ready", ".status.ready", description="Ready members / desired members"),
    _column("Leader", ".status.leader"),
    _column("Version", ".status.version", description="What the members run, as reported"),
    _column("Phase", ".status.phase"),
    _column("Age", ".metadata.creationTimestamp", "date"),
)

CRDS: tuple[CrdInfo, ...] = (
    CrdInfo(
        kind="XlineFederation",
        plural="xlinefederations",
        singular="xlinefederation",
        short_names=("xfed", "xlf"),
        spec_model=XlineFederationSpec,
        description=(
            "One Xline or etcd consensus cluster spread over several member clusters "
            "(Karmada tier). The federation operator splits it into one XlineCluster per "
            "member cluster and sequences membership changes across them."
        ),
        columns=(
            _column("Clusters", ".status.clusters", description="Members per cluster"),
            *_STATUS_COLUMNS,
        ),
        rules=_federation_rules(),
    ),
    CrdInfo(
        kind="XlineCluster",
        plural="xlineclusters",
        singular="xlinecluster",
        short_names=("xcl",),
        spec_model=XlineClusterSpec,
        description=(
            "One member cluster's share of an XlineFederation (member tier), carrying the "
            "whole topology so the member operator can name every peer."
        ),
        columns=(
            _column("Federation", ".spec.federation"),
            _column("Replicas", ".spec.replicas", "integer"),
            _column("Clusters", ".status.clusters", priority=1),
            *_STATUS_COLUMNS,
        ),
        rules=_cluster_rules(),
    ),
    CrdInfo(
        kind="XlineBackup",
        plural="xlinebackups",
        singular="xlinebackup",
        short_names=("xbk",),
        spec_model=XlineBackupSpec,
        status_model=XlineBackupStatus,
        description=(
            "One on-demand backup of a federation (member tier), taken by the member "
            "operator of the XlineCluster it names and streamed to S3-compatible storage."
        ),
        columns=(
            _column("Cluster", ".spec.cluster"),
            _column("Phase", ".status.phase"),
            _column("Revision", ".status.revision", "integer"),
            _column("Size", ".status.sizeBytes", "integer"),
            _column("URI", ".status.uri", priority=1),
            _column("Age", ".metadata.creationTimestamp", "date"),
        ),
    ),
)


def _node(schema: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    node = schema
    for part in path:
        try:
            node = node["properties"][part]
        except KeyError:
            raise SchemaError(f"no field {'.'.join(path)} for a CEL rule") from None
    return node


def crd(info: CrdInfo) -> dict[str, Any]:
    """The CustomResourceDefinition manifest for one kind."""
    spec = structural_schema(info.spec_model)
    status = structural_schema(info.status_model)
    status["description"] = "Observed state, written by the operator."
    root: dict[str, Any] = {
        "type": "object",
        "description": info.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "xlinefed.io/v1alpha1"},
            "kind": {"type": "string", "description": info.kind},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status,
        },
    }
    for path, rules in info.rules.items():
        _node(root, path).setdefault("x-kubernetes-validations", []).extend(copy.deepcopy(rules))
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.name},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.singular,
                "shortNames": list(info.short_names),
                "categories": ["xlinefed"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [dict(c) for c in info.columns],
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def all_crds() -> dict[str, dict[str, Any]]:
    """kind → CRD manifest."""
    return {info.kind: crd(info) for info in CRDS}


_HEADER = (
    "# Generated from the pydantic models in xlinefed/api by `python -m xlinefed.install "
    "--write deploy`.\n# Do not edit by hand; change the models and regenerate.\n"
)


def render(manifest: dict[str, Any]) -> str:
    """Deterministic YAML: sorted keys, block style, no line wrapping."""
    return _HEADER + yaml.safe_dump(
        manifest, sort_keys=True, default_flow_style=False, width=10_000, allow_unicode=True
    )


def rendered_files() -> dict[str, str]:
    """file name → YAML text, for every CRD."""
    return {info.filename: render(crd(info)) for info in CRDS}
