"""Parse user input into models, turning every failure into `field: message; fix` lines."""

from __future__ import annotations

from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from xlinefed.api.models import DNS1123_LABEL, XlineCluster, XlineFederation, _Resource
from xlinefed.api.validation import Problem, SpecError

R = TypeVar("R", bound=_Resource)

_FIXES = {
    "extra_forbidden": "remove it (check the spelling against the CRD)",
    "missing": "add it",
    "enum": "use one of the allowed values",
    "literal_error": "use the allowed value",
    "greater_than_equal": "raise it",
    "less_than_equal": "lower it",
    "string_pattern_mismatch": "use lowercase letters, digits and '-' (a DNS-1123 label)",
    "string_too_long": "shorten it",
    "string_too_short": "set a value",
    "too_short": "add at least one entry",
    "too_long": "remove entries",
    "int_parsing": "use a whole number",
    "int_type": "use a whole number",
}


def _camel(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    head, *rest = part.split("_")
    return "." + head + "".join(word.title() for word in rest)


def problems_from(error: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for item in error.errors():
        original = (item.get("ctx") or {}).get("error")
        if isinstance(original, SpecError):
            problems.extend(original.problems)
            continue
        field = "".join(_camel(p) for p in item["loc"]).lstrip(".") or "(document)"
        fix = _FIXES.get(item["type"], "correct the value")
        pattern = (item.get("ctx") or {}).get("pattern")
        if item["type"] == "string_pattern_mismatch" and pattern != DNS1123_LABEL:
            fix = f"use a value matching {pattern}"
        problems.append(Problem(field, item["msg"], fix))
    return problems


def parse(model: type[R], data: Any) -> R:
    if not isinstance(data, dict):
        raise SpecError([Problem("(document)", "is not a mapping", f"write a {model.KIND} object")])
    kind = data.get("kind", model.KIND)
    if kind != model.KIND:
        raise SpecError([Problem("kind", f"is '{kind}'", f"set kind: {model.KIND}")])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise SpecError(problems_from(error)) from None


def load_federation_yaml(text: str) -> XlineFederation:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise SpecError(
            [Problem("(document)", f"is not valid YAML: {error}", "fix the syntax")]
        ) from None
    return parse(XlineFederation, data)


def load_cluster(data: Any) -> XlineCluster:
    return parse(XlineCluster, data)
