"""Where clients connect, locally: the voters' client URLs from the controller's ports
and status, learners and members outside the member list left out."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import yaml

from tests.cli._run import xlinefed
from xlinefed.platforms.local.commands import (
    client_environment,
    shell_exports,
    voter_client_urls,
)

URLS = {
    "f-a-0": "http://127.0.0.1:21000",
    "f-b-0": "http://127.0.0.1:21002",
    "f-c-0": "http://127.0.0.1:21004",
    "f-c-1": "http://127.0.0.1:21006",
}


def test_voters_only_in_status_order() -> None:
    members = [
        {"name": "f-b-0", "role": "voter"},
        {"name": "f-a-0", "role": "voter", "leader": True},
        {"name": "f-c-0", "role": "learner"},
        {"name": "f-c-1"},  # started, not (or no longer) in the member list
        {"name": "f-d-0", "role": "voter"},  # no ports allocated: nothing to connect to
    ]
    assert voter_client_urls(members, URLS) == [URLS["f-b-0"], URLS["f-a-0"]]


def test_no_members_no_urls() -> None:
    assert voter_client_urls([], URLS) == []


def test_exports_are_shell_safe() -> None:
    exports = shell_exports(client_environment([URLS["f-a-0"], URLS["f-b-0"]]))
    assert exports == (
        "export ETCDCTL_API=3\n"
        "export ETCDCTL_ENDPOINTS=http://127.0.0.1:21000,http://127.0.0.1:21002\n"
    )
    shown = subprocess.run(
        ["bash", "-c", exports + 'printf "%s|%s" "$ETCDCTL_API" "$ETCDCTL_ENDPOINTS"'],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert shown == "3|http://127.0.0.1:21000,http://127.0.0.1:21002"
    odd = shell_exports([("X", "a b;$(false)")])
    assert odd == f"export X={shlex.quote('a b;$(false)')}\n"


def _state(root: Path, members: list[dict[str, object]]) -> None:
    """A federation's state as the controller leaves it: spec, ports, status."""
    directory = root / "f"
    directory.mkdir()
    spec = {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineFederation",
        "metadata": {"name": "f"},
        "spec": {"version": "3.4.23", "clusters": [{"id": "a", "replicas": 1}]},
    }
    (directory / "spec.yaml").write_text(yaml.safe_dump(spec))
    ports = {n: {"client": int(u.rsplit(":", 1)[1]), "peer": 1} for n, u in URLS.items()}
    (directory / "facts.json").write_text(json.dumps({"formed": True, "ports": ports}))
    (directory / "status.json").write_text(json.dumps({"phase": "Scaling", "members": members}))


def test_commands_leave_learners_out(tmp_path: Path) -> None:
    _state(
        tmp_path,
        [
            {"name": "f-a-0", "cluster": "a", "role": "voter", "healthy": True},
            {"name": "f-c-0", "cluster": "c", "role": "learner", "healthy": True},
        ],
    )
    endpoints = xlinefed(tmp_path, "local", "endpoints", "f")
    assert (endpoints.returncode, endpoints.stdout) == (0, URLS["f-a-0"] + "\n")
    env = xlinefed(tmp_path, "local", "env", "f")
    assert env.returncode == 0, env.stderr
    assert f"export ETCDCTL_ENDPOINTS={URLS['f-a-0']}\n" in env.stdout
    shown = xlinefed(tmp_path, "local", "status", "f", "-o", "json")
    by_name = {m["name"]: m for m in json.loads(shown.stdout)["members"]}
    # Every member's URL is shown, the learner's too: status is about all of them.
    assert by_name["f-c-0"]["clientUrl"] == URLS["f-c-0"]
    table = xlinefed(tmp_path, "local", "status", "f")
    assert URLS["f-a-0"] in table.stdout and URLS["f-c-0"] in table.stdout


def test_no_voter_known_yet_is_an_error(tmp_path: Path) -> None:
    _state(tmp_path, [])
    for command in ("endpoints", "env"):
        result = xlinefed(tmp_path, "local", command, "f")
        assert result.returncode == 1
        assert result.stdout == ""
        assert "no voter of 'f' is known yet" in result.stderr


def test_unknown_federation(tmp_path: Path) -> None:
    result = xlinefed(tmp_path, "local", "endpoints", "nosuch")
    assert result.returncode == 1 and "local up -f" in result.stderr
