"""The generated CRDs: committed YAML up to date, structural, and as strict as the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml

from tests.api._crd import compile_rule, crd_errors, openapi_schema, to_jsonschema
from tests.api._examples import EXAMPLES, federation
from xlinefed.api import crds
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineFederation
from xlinefed.placement import split

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "deploy" / "crds"
KINDS = ("XlineFederation", "XlineCluster")

#: Keywords the apiserver rejects in (or that make) a non-structural schema.
FORBIDDEN = {"$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "const", "title"}
FORBIDDEN |= {"discriminator", "$schema", "propertyNames", "patternProperties", "examples"}


def test_committed_yaml_matches_the_models() -> None:
    files = crds.rendered_files()
    assert sorted(files) == [
        "xlinefed.io_xlinebackups.yaml",
        "xlinefed.io_xlineclusters.yaml",
        "xlinefed.io_xlinefederations.yaml",
    ]
    for name, text in files.items():
        committed = (CRD_DIR / name).read_text()
        assert committed == text, (
            f"deploy/crds/{name} is stale; run: python -m xlinefed.install --write deploy"
        )


def test_rendering_is_deterministic_and_round_trips() -> None:
    first, second = crds.rendered_files(), crds.rendered_files()
    assert first == second
    for info in crds.CRDS:
        assert yaml.safe_load(first[info.filename]) == crds.crd(info)


def _nodes(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path or "(root)", node)]
    for name, sub in node.get("properties", {}).items():
        found += _nodes(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += _nodes(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        found += _nodes(node["additionalProperties"], f"{path}.*")
    return found


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_structural(kind: str) -> None:
    nodes = _nodes(openapi_schema(kind))
    assert len(nodes) > 40
    for path, node in nodes:
        assert node.get("type") or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert not (FORBIDDEN & node.keys()), f"{path}: {FORBIDDEN & node.keys()}"
        assert set(node) <= crds.ALLOWED_KEYWORDS, f"{path}: {set(node) - crds.ALLOWED_KEYWORDS}"
        assert not ("properties" in node and "additionalProperties" in node), path
        assert not isinstance(node.get("items"), list), path
        if node.get("type") == "array":
            assert "items" in node, path


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_validate_against_their_schema(kind: str) -> None:
    defaults = [(p, n) for p, n in _nodes(openapi_schema(kind)) if "default" in n]
    assert len(defaults) >= 10
    for path, node in defaults:
        jsonschema.Draft4Validator(to_jsonschema(node)).validate(node["default"])
        assert "nullable" not in node or node["default"] is not None, path


@pytest.mark.parametrize("kind", KINDS)
def test_cel_rules_compile_and_carry_field_and_fix(kind: str) -> None:
    rules = [
        (path, rule)
        for path, node in _nodes(openapi_schema(kind))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    assert len(rules) >= 12
    for path, rule in rules:
        assert compile_rule(rule["rule"]), path
        field, _, rest = rule["message"].partition(": ")
        assert field.startswith(("spec.", "metadata.")), rule["message"]
        assert ";" in rest, f"{path}: message has no fix: {rule['message']}"


def test_uncompilable_cel_is_caught() -> None:
    with pytest.raises(celpy.CELParseError):
        compile_rule("self.all(c,")


def test_names_subresource_and_printer_columns() -> None:
    by_kind = crds.all_crds()
    fed = by_kind["XlineFederation"]
    assert fed["metadata"]["name"] == "xlinefederations.xlinefed.io"
    names = fed["spec"]["names"]
    assert (names["plural"], names["kind"]) == ("xlinefederations", "XlineFederation")
    assert {"xfed", "xlf"} <= set(names["shortNames"])
    version = fed["spec"]["versions"][0]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Clusters": ".status.clusters",
        "Ready": ".status.ready",
        "Leader": ".status.leader",
        "Version": ".status.version",
        "Phase": ".status.phase",
        "Age": ".metadata.creationTimestamp",
    }
    cluster = by_kind["XlineCluster"]
    assert cluster["spec"]["names"]["plural"] == "xlineclusters"
    assert "xcl" in cluster["spec"]["names"]["shortNames"]
    assert cluster["spec"]["versions"][0]["subresources"] == {"status": {}}
    schema = openapi_schema("XlineFederation")
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert "status" in schema["properties"] and schema["required"] == ["spec"]


def test_schema_keeps_the_models_constraints() -> None:
    spec = openapi_schema("XlineFederation")["properties"]["spec"]["properties"]
    cluster = spec["clusters"]["items"]["properties"]
    assert cluster["id"]["pattern"] == "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
    assert (cluster["id"]["minLength"], cluster["id"]["maxLength"]) == (1, 63)
    assert (cluster["replicas"]["minimum"], cluster["replicas"]["maximum"]) == (0, 99)
    assert (spec["clusters"]["minItems"], spec["clusters"]["maxItems"]) == (1, 64)
    assert spec["engine"]["enum"] == ["xline", "etcd"] and spec["engine"]["default"] == "etcd"
    assert spec["engineArgs"]["additionalProperties"] == {"type": "string"}
    assert spec["tls"]["nullable"] is True and spec["tls"]["type"] == "object"
    assert spec["image"] == {
        "type": "string",
        "nullable": True,
        "description": "Image repository; engine default.",
    }
    partitions = spec["updateStrategy"]["properties"]["partitions"]
    assert partitions["additionalProperties"] == {"type": "integer", "minimum": 0}
    assert spec["network"]["properties"]["ports"]["properties"]["peer"]["maximum"] == 65535
    status = openapi_schema("XlineFederation")["properties"]["status"]["properties"]
    assert status["phase"]["enum"][0] == "Pending"
    assert status["members"]["items"]["properties"]["role"]["enum"] == ["voter", "learner"]


def test_unsupported_model_shapes_fail_loudly() -> None:
    from pydantic import BaseModel

    class Union(BaseModel):
        value: int | str

    with pytest.raises(crds.SchemaError, match="union"):
        crds.structural_schema(Union)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_examples_are_accepted_by_the_crd(name: str) -> None:
    assert crd_errors("XlineFederation", EXAMPLES[name]) == []


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_split_clusters_are_accepted_by_the_member_crd(name: str) -> None:
    parts = split(parse(XlineFederation, EXAMPLES[name]))
    for part in parts.values():
        wire = part.to_wire()
        assert crd_errors("XlineCluster", wire) == [], wire


def test_status_written_by_an_operator_is_accepted() -> None:
    obj = federation()
    obj["status"] = {
        "phase": "Available",
        "observedGeneration": 3,
        "conditions": [{"type": "Available", "status": "True", "reason": "Quorum"}],
        "members": [
            {
                "name": "demo-member1-0",
                "cluster": "member1",
                "id": "8e9e05c52164694d",
                "role": "voter",
                "leader": True,
                "healthy": True,
                "raftIndex": 42,
            }
        ],
        "leader": "demo-member1-0",
        "ready": "3/3",
        "clusters": "member1=1,member2=1,member3=1",
    }
    assert crd_errors("XlineFederation", obj) == []
    obj["status"]["members"][0]["role"] = "observer"
    assert any("status.members[0].role" in str(e) for e in crd_errors("XlineFederation", obj))


def test_defaults_make_cel_rules_see_the_default_engine() -> None:
    # No engine given: the default (etcd) applies, so one member is fine ...
    obj = EXAMPLES["minimal-etcd-single"]
    assert crd_errors("XlineFederation", obj) == []
    # ... but not for xline.
    obj = {**obj, "spec": {**obj["spec"], "engine": "xline"}}
    assert any("xline needs at least 3" in str(e) for e in crd_errors("XlineFederation", obj))


REPO_EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def test_repository_has_examples() -> None:
    assert REPO_EXAMPLES, "examples/*.yaml missing"


@pytest.mark.parametrize("path", REPO_EXAMPLES, ids=[p.name for p in REPO_EXAMPLES])
def test_repository_examples_are_accepted_by_models_and_crd(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if not document or document.get("kind") != "XlineFederation":
            continue
        fed = parse(XlineFederation, document)
        assert crd_errors("XlineFederation", document) == []
        for part in split(fed).values():
            assert crd_errors("XlineCluster", part.to_wire()) == []


def test_the_backup_crd_has_its_own_status() -> None:
    schema = crds.all_crds()["XlineBackup"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert schema["properties"]["spec"]["required"] == ["cluster"]
    status = schema["properties"]["status"]["properties"]
    assert {"phase", "uri", "sizeBytes", "sha256", "revision", "member"} <= set(status)
    assert status["phase"]["enum"] == ["Pending", "Running", "Succeeded", "Failed"]
