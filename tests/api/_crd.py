"""An approximation of the apiserver's CRD validation, for tests without a cluster.

It checks an object against a generated CRD the way kube-apiserver would, in three passes:
the OpenAPI schema (with `jsonschema`, unknown fields rejected as with
fieldValidation=Strict), defaulting, then the `x-kubernetes-validations` CEL rules (with
`cel-python`, plus the Kubernetes CEL library functions the rules use). The real apiserver
check comes with the Kubernetes test stack; this catches most mistakes much earlier.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from typing import Any

import celpy
import jsonschema
from celpy import celtypes

from xlinefed.api.crds import all_crds


@dataclass(frozen=True)
class CrdError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def openapi_schema(kind: str) -> dict[str, Any]:
    return all_crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def to_jsonschema(node: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """OpenAPI v3.0 (Kubernetes flavour) → JSON Schema draft 4."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default"):
            continue
        if key == "properties":
            out[key] = {k: to_jsonschema(v, strict) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_jsonschema(value, strict)
        else:
            out[key] = value
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    if strict and "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def _field(path: Any) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(root)"


def apply_defaults(node: dict[str, Any], value: Any) -> Any:
    """Kubernetes defaulting: fill absent properties with their defaults, top-down."""
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
        if isinstance(node.get("additionalProperties"), dict):
            for key in value:
                value[key] = apply_defaults(node["additionalProperties"], value[key])
    elif isinstance(value, list) and "items" in node:
        return [apply_defaults(node["items"], item) for item in value]
    return value


def _cel_sum(values: celtypes.ListType) -> Any:
    return sum(values[1:], values[0]) if values else celtypes.IntType(0)


def _cel_split(text: celtypes.StringType, sep: celtypes.StringType) -> celtypes.ListType:
    return celtypes.ListType([celtypes.StringType(p) for p in str(text).split(str(sep))])


def _cel_replace(
    text: celtypes.StringType, old: celtypes.StringType, new: celtypes.StringType
) -> celtypes.StringType:
    return celtypes.StringType(str(text).replace(str(old), str(new)))


#: Kubernetes CEL library functions (lists, strings) that cel-python does not have.
K8S_FUNCTIONS = {"sum": _cel_sum, "split": _cel_split, "replace": _cel_replace}


@cache
def compile_rule(rule: str) -> celpy.Runner:
    env = celpy.Environment()
    return env.program(env.compile(rule), functions=K8S_FUNCTIONS)


def _cel_errors(node: dict[str, Any], value: Any, old: Any, path: list[Any]) -> list[CrdError]:
    if value is None:
        return []
    errors = []
    for rule in node.get("x-kubernetes-validations", []):
        if "oldSelf" in rule["rule"] and old is None:
            continue  # transition rules run on updates only
        activation = {"self": celpy.json_to_cel(value)}
        if old is not None:
            activation["oldSelf"] = celpy.json_to_cel(old)
        try:
            ok = bool(compile_rule(rule["rule"]).evaluate(activation))
        except celpy.CELEvalError as error:
            errors.append(CrdError(_field(path), f"{rule['message']} (CEL error: {error})"))
            continue
        if not ok:
            errors.append(CrdError(_field(path), rule["message"]))
    if isinstance(value, dict):
        for name, sub in node.get("properties", {}).items():
            if name in value:
                old_sub = old.get(name) if isinstance(old, dict) else None
                errors += _cel_errors(sub, value[name], old_sub, [*path, name])
        if isinstance(node.get("additionalProperties"), dict):
            for key, item in value.items():
                old_sub = old.get(key) if isinstance(old, dict) else None
                errors += _cel_errors(node["additionalProperties"], item, old_sub, [*path, key])
    elif isinstance(value, list) and "items" in node:
        for index, item in enumerate(value):
            errors += _cel_errors(node["items"], item, None, [*path, index])
    return errors


def crd_errors(kind: str, obj: Any, old: Any = None) -> list[CrdError]:
    """Every reason the apiserver (approximately) would refuse `obj` (an update if `old`)."""
    schema = openapi_schema(kind)
    validator = jsonschema.Draft4Validator(to_jsonschema(schema))
    errors = [
        CrdError(_field(e.absolute_path), e.message)
        for e in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    ]
    if errors:
        return errors  # the apiserver stops before CEL when the schema fails
    value = apply_defaults(schema, copy.deepcopy(obj))
    old_value = apply_defaults(schema, copy.deepcopy(old)) if old is not None else None
    return _cel_errors(schema, value, old_value, [])
