"""The hostlet's pure helpers (no stack needed): command mapping, `$(VAR)` expansion,
mount-path substitution, and tagged /etc/hosts editing on a scratch file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.stack import _hosts
from tests.support.stack.hostlet import ETCD_BINARY, expand, resolve_argv, rewrite_paths


def test_expand_follows_kubernetes_rules() -> None:
    env = {"POD_NAME": "e0", "POD_IP": "127.20.0.2"}
    assert expand("--name=$(POD_NAME)", env) == "--name=e0"
    assert expand("http://$(POD_IP):2379", env) == "http://127.20.0.2:2379"
    assert expand("$$(POD_NAME)", env) == "$(POD_NAME)"
    assert expand("$(UNDEFINED)", env) == "$(UNDEFINED)"


def test_mount_paths_are_rewritten_as_whole_path_components() -> None:
    mounts = [("/var/lib/etcd", "/state/pvc-1"), ("/data", "/state/d")]
    assert rewrite_paths("--data-dir=/var/lib/etcd/data", mounts) == "--data-dir=/state/pvc-1/data"
    assert rewrite_paths("/var/lib/etcd", mounts) == "/state/pvc-1"
    assert rewrite_paths("/var/lib/etcd2", mounts) == "/var/lib/etcd2"
    assert rewrite_paths("--x=/data,/data/a", mounts) == "--x=/state/d,/state/d/a"
    assert rewrite_paths("/datax", mounts) == "/datax"


def test_images_and_commands_map_to_local_binaries() -> None:
    images = [("etcd", ETCD_BINARY), ("xline", None)]
    assert resolve_argv("quay.io/coreos/etcd:v3.5", [], ["--a"], images) == [ETCD_BINARY, "--a"]
    assert resolve_argv("any", ["/usr/local/bin/etcd"], ["--a"], images) == [ETCD_BINARY, "--a"]
    assert resolve_argv("any", ["etcd", "--b"], ["--a"], images) == [ETCD_BINARY, "--b", "--a"]
    assert resolve_argv("busybox", ["/bin/sh", "-c", "true"], [], images)[0] == "/bin/sh"
    with pytest.raises(ValueError, match="not installed"):
        resolve_argv("ghcr.io/xline-kv/xline:v0.7", [], [], images)
    with pytest.raises(ValueError, match="no local binary"):
        resolve_argv("nginx", [], [], images)


def test_hosts_entries_are_tagged_replaced_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    monkeypatch.setattr(_hosts, "HOSTS", hosts)
    monkeypatch.setattr(_hosts, "LOCK", tmp_path / "lock")
    _hosts.set_entries("s1", "m1", "uid-a", "127.20.0.2", ["a.example", "b.example"])
    _hosts.set_entries("s1", "m2", "uid-b", "127.21.0.2", ["c.example"])
    _hosts.set_entries("s2", "m1", "uid-c", "127.30.0.2", ["d.example"])
    _hosts.set_entries("s1", "m1", "uid-a", "127.20.0.3", ["a.example"])  # replaces
    assert _hosts.entries("s1", "m1") == [("127.20.0.3", "a.example")]
    _hosts.remove_entries("s1", "m2")
    assert _hosts.entries("s1") == [("127.20.0.3", "a.example")]
    _hosts.remove_entries("s1")
    assert _hosts.entries("s1") == []
    assert _hosts.entries("s2") == [("127.30.0.2", "d.example")]
    assert hosts.read_text().splitlines()[0] == "127.0.0.1 localhost"
