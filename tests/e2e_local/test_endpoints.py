"""Clients find a local federation on real etcd: the URLs `xlinefed local endpoints` and
`xlinefed local env` print are the voters', and etcdctl writes and reads through them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e_local.conftest import CliFederation

pytestmark = pytest.mark.slow

SPEC = {
    "apiVersion": "xlinefed.io/v1alpha1",
    "kind": "XlineFederation",
    "metadata": {"name": "e2e"},
    "spec": {
        "engine": "etcd",
        "version": "3.4.23",
        "clusters": [{"id": "a", "replicas": 1}, {"id": "b", "replicas": 1}],
        # The explicit opt-out: plain text, and a status that warns about it.
        "tls": {"enabled": False},
    },
}


def etcdctl(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["etcdctl", "--command-timeout=10s", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_endpoints_and_env_reach_the_voters(
    local_federation: CliFederation, tmp_path: Path
) -> None:
    spec = tmp_path / "e2e.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    reached = local_federation.cli("local", "up", "-f", str(spec)).stdout
    status = local_federation.status()
    voters = {m["name"] for m in status["members"] if m.get("role") == "voter"}
    assert voters == local_federation.desired_names()
    # Without spec.tls the status says the store is open to every local process.
    assert status["security"] == {"tls": False, "auth": False}
    assert any(w.startswith("plain text:") for w in status["warnings"])
    facts = local_federation.dir.read_facts()
    expected = {f"http://127.0.0.1:{facts.ports[name].client}" for name in voters}

    printed = local_federation.cli("local", "endpoints", "e2e").stdout.strip()
    assert set(printed.split(",")) == expected and len(printed.split(",")) == len(expected)

    clean = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    etcdctl({**clean, "ETCDCTL_API": "3", "ETCDCTL_ENDPOINTS": printed}, "put", "/e2e/k", "v1")
    # Each URL on its own answers for the same store.
    for url in expected:
        got = etcdctl({**clean, "ETCDCTL_API": "3"}, f"--endpoints={url}", "get", "/e2e/k")
        assert got.split() == ["/e2e/k", "v1"]

    # `env` as a user runs it: eval'd by a shell, then a plain etcdctl.
    cli = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "xlinefed.cli"))
    script = (
        f'eval "$({cli} local env e2e)" && etcdctl put /e2e/k v2 >/dev/null '
        '&& etcdctl get --print-value-only /e2e/k && printf "%s" "$ETCDCTL_ENDPOINTS"'
    )
    shell = subprocess.run(
        ["bash", "-c", script],
        env={**clean, "XLINEFED_STATE_DIR": str(local_federation.root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shell.returncode == 0, shell.stderr
    value, endpoints = shell.stdout.splitlines()
    assert value == "v2" and endpoints == printed

    shown = json.loads(local_federation.cli("local", "status", "e2e", "-o", "json").stdout)
    assert {m["clientUrl"] for m in shown["members"]} == expected
    table = local_federation.cli("local", "status", "e2e").stdout
    assert all(url in table and url in reached for url in expected)
