"""`xlinefed local recover` refuses bad requests up front, before the spec is touched:
no survivor named (or both modes), a member that is not in the federation, an engine
that cannot force a new cluster (Xline). docs/recovery.md."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli._run import xlinefed

SPEC: dict[str, Any] = {
    "apiVersion": "xlinefed.io/v1alpha1",
    "kind": "XlineFederation",
    "metadata": {"name": "rec", "generation": 1},
    "spec": {
        "engine": "etcd",
        "version": "3.4.23",
        "clusters": [{"id": "a", "replicas": 1}, {"id": "b", "replicas": 1}],
    },
}


def _federation(tmp_path: Path, **spec: Any) -> Path:
    document = copy.deepcopy(SPEC)
    document["spec"].update(spec)
    directory = tmp_path / "rec"
    directory.mkdir()
    (directory / "spec.yaml").write_text(yaml.safe_dump(document))
    return directory / "spec.yaml"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "name the survivor with --from MEMBER, or pass --automatic"),
        (["--from", "rec-a-0", "--automatic"], "(not both)"),
    ],
)
def test_the_request_names_one_mode(tmp_path: Path, argv: list[str], expected: str) -> None:
    spec = _federation(tmp_path)
    before = spec.read_text()
    result = xlinefed(tmp_path, "local", "recover", "rec", *argv)
    assert result.returncode == 2, result
    assert expected in result.stdout + result.stderr
    assert spec.read_text() == before


def test_a_member_not_in_the_federation_is_refused(tmp_path: Path) -> None:
    spec = _federation(tmp_path)
    before = spec.read_text()
    result = xlinefed(tmp_path, "local", "recover", "rec", "--from", "rec-z-0")
    assert result.returncode == 1, result
    out = result.stdout + result.stderr
    assert "--from rec-z-0: rec has no such member; its members: rec-a-0, rec-b-0" in out
    assert spec.read_text() == before


def test_xline_is_refused_with_the_alternative(tmp_path: Path) -> None:
    clusters = [{"id": c, "replicas": 1} for c in "abc"]
    spec = _federation(tmp_path, engine="xline", version="0.7.0", clusters=clusters)
    before = spec.read_text()
    result = xlinefed(tmp_path, "local", "recover", "rec", "--from", "rec-a-0")
    assert result.returncode == 1, result
    out = " ".join((result.stdout + result.stderr).split())
    assert "Xline has no --force-new-cluster" in out
    assert "--from-backup" in out
    assert spec.read_text() == before
