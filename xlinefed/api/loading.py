"""Parse user input into models, turning every failure into `field: message; fix` lines."""

from __future__ import annotations

import copy
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

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


#: Required fields that no rule across fields reads: while one is missing or invalid, the
#: rules run on the rest of the spec with this stand-in in its place.
_STAND_INS: dict[tuple[str | int, ...], Any] = {("spec", "version"): "0.0.0"}


def _bare(annotation: Any) -> Any:
    """`X` from `Annotated[X, ...]` and `X | None`."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _field(model: type[BaseModel], key: str | int) -> FieldInfo | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _neutralise(model: type[BaseModel], data: Any, loc: tuple[str | int, ...]) -> bool:
    """Make the value at `loc` stop failing without inventing anything a rule across
    fields reads: drop it where the model has a default, it is unknown or it is a map
    entry; put in a stand-in where no rule reads it. False where neither is possible."""
    kind: Any = model
    for depth, key in enumerate(loc):
        last = depth == len(loc) - 1
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            if not isinstance(data, dict):
                return False
            info = _field(kind, key)
            if last:
                if info is not None and info.is_required():
                    if loc not in _STAND_INS:
                        return False
                    data[key] = _STAND_INS[loc]
                else:
                    data.pop(key, None)
                return True
            if info is None or key not in data:
                return False
            kind, data = _bare(info.annotation), data[key]
        elif get_origin(kind) is dict and isinstance(data, dict):
            # An entry of a map (engine flags, partitions): without it, the rules judge
            # the entries that are valid.
            data.pop(key, None)
            return True
        elif get_origin(kind) is list and isinstance(data, list) and isinstance(key, int):
            if last:
                # Dropping an item would renumber the ones after it, and every rule that
                # names a list item by its index would name the wrong one.
                return False
            kind, data = _bare(get_args(kind)[0]), data[key]
        else:
            return False
    return False


def _rules_across_fields(model: type[R], data: Any, error: ValidationError) -> list[Problem]:
    """The cross-field problems of a document whose fields failed (pydantic runs a model
    validator only once every field is valid): the failing values are neutralised and the
    document validated again. Where a failing value is one the rules read and has no default (a
    cluster's id, the federation's name), they are not run: they would judge a guess."""
    repaired = copy.deepcopy(data)
    for item in error.errors():
        if not _neutralise(model, repaired, tuple(item["loc"])):
            return []
    try:
        model.model_validate(repaired)
    except ValidationError as again:
        return [
            problem
            for item in again.errors()
            if isinstance(original := (item.get("ctx") or {}).get("error"), SpecError)
            for problem in original.problems
        ]
    return []


def parse(model: type[R], data: Any) -> R:
    if not isinstance(data, dict):
        raise SpecError([Problem("(document)", "is not a mapping", f"write a {model.KIND} object")])
    kind = data.get("kind", model.KIND)
    if kind != model.KIND:
        raise SpecError([Problem("kind", f"is '{kind}'", f"set kind: {model.KIND}")])
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = problems_from(error)
        across = _rules_across_fields(model, data, error)
        raise SpecError(problems + [p for p in across if p not in problems]) from None


def load_federation_yaml(text: str) -> XlineFederation:
    try:
        # Empty documents (a leading or trailing `---`) are no second spec.
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        raise SpecError(
            [Problem("(document)", f"is not valid YAML: {error}", "fix the syntax")]
        ) from None
    if len(documents) > 1:
        raise SpecError(
            [
                Problem(
                    "(document)",
                    f"the file holds {len(documents)} YAML documents; xlinefed reads one "
                    "XlineFederation per file",
                    "put each federation in a file of its own and pass one with -f",
                )
            ]
        )
    return parse(XlineFederation, documents[0] if documents else None)


def load_cluster(data: Any) -> XlineCluster:
    return parse(XlineCluster, data)
