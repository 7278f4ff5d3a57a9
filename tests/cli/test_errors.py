"""The CLI's errors are clean: user text prints exactly as written (no Rich markup), a bad
`-f` gives one line and exit code 2, and every problem of a spec comes back at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli._run import xlinefed

SPEC = {
    "apiVersion": "xlinefed.io/v1alpha1",
    "kind": "XlineFederation",
    "metadata": {"name": "clean"},
    "spec": {"engine": "etcd", "version": "3.4.23", "clusters": [{"id": "a", "replicas": 1}]},
}


def one_line(text: str) -> bool:
    return len(text.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "code", "expected"),
    [
        (["status", "[bold]x"], 1, "no local federation '[bold]x'"),
        (["status", "x", "--output", "[a-z]+"], 2, "--output '[a-z]+' is not known"),
        # A closing tag with nothing to close made Rich raise instead of printing.
        (["scale", "x", "a[/]=x"], 2, "a[/]: replicas 'x' is not a whole number"),
        (["upgrade", "x", "--set", "[red]key"], 2, "'[red]key' is not KEY=VALUE"),
        (["logs", "[i]x[/i]", "m"], 1, "no local federation '[i]x[/i]'"),
    ],
)
def test_user_text_prints_as_written(
    tmp_path: Path, argv: list[str], code: int, expected: str
) -> None:
    result = xlinefed(tmp_path, "local", *argv)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert expected in result.stderr


def test_typer_errors_and_our_help_print_as_written(tmp_path: Path) -> None:
    unknown = xlinefed(tmp_path, "local", "st[bold]")
    assert unknown.returncode == 2 and "No such command 'st[bold]'" in unknown.stderr
    # Typer reads help text as markup: a "[default: …]" in it used to vanish.
    help_text = " ".join(xlinefed(tmp_path, "local", "up", "--help").stdout.split())
    assert "~/.local/state/xlinefed" in help_text


def test_spec_text_prints_as_written(tmp_path: Path) -> None:
    spec = yaml.safe_load(yaml.safe_dump(SPEC))
    spec["spec"]["[bold]"] = 1
    spec["spec"]["engineArgs"] = {"[a-z]+": 5}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = xlinefed(tmp_path, "local", "up", "-f", str(path))
    assert result.returncode == 2, result.stderr
    assert "spec.[bold]: Extra inputs are not permitted" in result.stderr
    assert "spec.engineArgs.[a-z]+: Input should be a valid string" in result.stderr


def test_status_table_prints_status_text_as_written(tmp_path: Path) -> None:
    """What the controller recorded (errors, warnings, reasons) is data, not markup."""
    directory = tmp_path / "clean"
    directory.mkdir()
    (directory / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    status = {
        "phase": "Healing",
        "ready": "0/1",
        "clusters": "a=1",
        "members": [{"name": "clean-a-0", "cluster": "a", "role": "voter", "healthy": False}],
        "currentStep": {"kind": "Wait", "reason": "waiting for [bold]clean-a-0[/]"},
        "warnings": ["matches [a-z]+"],
        "error": "rpc failed: [/] closed",
    }
    (directory / "status.json").write_text(json.dumps(status))
    result = xlinefed(tmp_path, "local", "status", "clean")
    assert result.returncode == 0, result.stderr
    for text in ("waiting for [bold]clean-a-0[/]", "matches [a-z]+", "rpc failed: [/] closed"):
        assert text in result.stdout


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "is a directory"),
        (b"\x7fELF\x02\x01\x01\x00\xd0\xff\xfe", "is not a text file"),
        (b"kind: XlineFederation\n\xe9t\xe9\n", "is not UTF-8 text"),
    ],
    ids=["directory", "binary", "latin-1"],
)
def test_bad_file_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "input"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    result = xlinefed(tmp_path, "local", "up", "-f", str(path))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert one_line(result.stderr), result.stderr
    assert str(path) in result.stderr and expected in result.stderr


def test_multi_document_file_gets_our_message(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    second = yaml.safe_load(yaml.safe_dump(SPEC))
    second["metadata"]["name"] = "other"
    path.write_text(yaml.safe_dump_all([SPEC, second]))
    result = xlinefed(tmp_path, "local", "up", "-f", str(path))
    assert result.returncode == 2, result.stderr
    assert "holds 2 YAML documents" in result.stderr
    assert "one XlineFederation per file" in result.stderr
    assert "but found another document" not in result.stderr


def test_every_problem_of_a_spec_comes_back_at_once(tmp_path: Path) -> None:
    spec = yaml.safe_load(yaml.safe_dump(SPEC))
    spec["spec"]["verison"] = spec["spec"].pop("version")  # field: typo; version missing
    spec["spec"]["clusters"] = [{"id": "a", "replicas": 1}, {"id": "a", "replicas": 1}]
    spec["spec"]["engineArgs"] = {"name": "x"}  # across fields: reserved flag
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    result = xlinefed(tmp_path, "local", "up", "-f", str(path))
    assert result.returncode == 2, result.stderr
    for field in ("spec.verison", "spec.version", "spec.clusters[1].id", "spec.engineArgs.name"):
        assert f"{field}:" in result.stderr, field
