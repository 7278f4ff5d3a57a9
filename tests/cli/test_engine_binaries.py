"""Which binary local mode runs for a spec's version: exactly that release, or a clear
error naming spec.version and the fix before anything starts. Real binaries: Debian's
etcd 3.4.23 on PATH and the releases hack/etcd/build.sh builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from xlinefed.api.engines import Engine
from xlinefed.platforms.local.platform import EngineNotFound, binary_version, find_binary

DEBIAN = shutil.which("etcd")


@pytest.fixture(autouse=True)
def no_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("XLINEFED_BIN_DIR", raising=False)
    monkeypatch.setenv("XLINEFED_ETCD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.mark.skipif(DEBIAN is None, reason="Debian's etcd-server is not installed")
def test_etcd_on_path_serves_only_the_release_it_reports() -> None:
    assert DEBIAN is not None
    release = binary_version(DEBIAN)
    assert release and release.startswith("3.4.")
    assert find_binary(Engine.ETCD, release) == (DEBIAN, True)
    assert find_binary(Engine.ETCD, f"v{release}") == (DEBIAN, True)


def test_an_unknown_release_names_the_field_and_the_fix(no_overrides: Path) -> None:
    with pytest.raises(EngineNotFound) as refused:
        find_binary(Engine.ETCD, "3.6.99")
    message = str(refused.value)
    assert message.startswith("spec.version: no etcd 3.6.99 binary")
    assert str(no_overrides / "3.6.99" / "etcd") in message
    assert "hack/etcd/build.sh" in message and "XLINEFED_BIN_DIR" in message


@pytest.mark.skipif(DEBIAN is None, reason="Debian's etcd-server is not installed")
def test_the_build_cache_and_the_bin_dir_are_looked_up_by_version(
    no_overrides: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert DEBIAN is not None
    cached = no_overrides / "3.5.36" / "etcd"
    cached.parent.mkdir(parents=True)
    cached.symlink_to(DEBIAN)
    assert find_binary(Engine.ETCD, "3.5.36") == (str(cached), True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "etcd-3.6.17").symlink_to(DEBIAN)
    monkeypatch.setenv("XLINEFED_BIN_DIR", str(bin_dir))
    assert find_binary(Engine.ETCD, "3.6.17") == (str(bin_dir / "etcd-3.6.17"), True)
    # The bin dir comes first, the cache next.
    (bin_dir / "etcd-3.5.36").symlink_to(DEBIAN)
    assert find_binary(Engine.ETCD, "3.5.36")[0] == str(bin_dir / "etcd-3.5.36")
