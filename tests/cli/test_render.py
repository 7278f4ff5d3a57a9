"""`xlinefed render`, the README's install commands, prints the install objects."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.cli._run import xlinefed
from xlinefed import install


def test_render_member_prints_the_member_tier(tmp_path: Path) -> None:
    done = xlinefed(tmp_path, "render", "member", "--cluster-id", "member1")
    assert done.returncode == 0, done.stderr
    assert list(yaml.safe_load_all(done.stdout)) == install.member_manifests("member1")


def test_render_federation_prints_both_parts(tmp_path: Path) -> None:
    done = xlinefed(tmp_path, "render", "federation", "--namespace", "fed")
    assert done.returncode == 0, done.stderr
    assert list(yaml.safe_load_all(done.stdout)) == install.federation_manifests("fed")
    done = xlinefed(tmp_path, "render", "federation", "--target", "karmada")
    assert done.returncode == 0, done.stderr
    assert list(yaml.safe_load_all(done.stdout)) == install.federation_karmada_manifests()


def test_render_names_objects_for_a_release(tmp_path: Path) -> None:
    done = xlinefed(tmp_path, "render", "member", "--cluster-id", "m", "--release", "blue")
    assert done.returncode == 0, done.stderr
    assert list(yaml.safe_load_all(done.stdout)) == install.member_manifests("m", release="blue")
    done = xlinefed(tmp_path, "render", "federation", "--target", "operator", "--release", "blue")
    assert done.returncode == 0, done.stderr
    names = {d["metadata"]["name"] for d in yaml.safe_load_all(done.stdout)}
    assert names == {
        "xlinefed-system",
        "blue-federation-operator",
        "blue-federation-operator-metrics",
    }
