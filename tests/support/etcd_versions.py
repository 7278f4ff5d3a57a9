"""The etcd releases the version tests run: Debian's 3.4 and the 3.5 and 3.6 that
hack/etcd/build.sh builds from the Go module proxy (cached; a no-op when current)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "etcd" / "build.sh"


@functools.cache
def bin_dir() -> Path:
    """Run hack/etcd/build.sh; the dir of `etcd-<version>` links local mode looks up as
    `XLINEFED_BIN_DIR`."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{BUILD_SCRIPT} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


def _key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def releases() -> list[str]:
    """Every release in the bin dir, oldest first (e.g. 3.4.23, 3.5.36, 3.6.17)."""
    names = (p.name.removeprefix("etcd-") for p in bin_dir().glob("etcd-*"))
    return sorted(names, key=_key)


def release_of(minor: str) -> str:
    """The release of minor `3.5` the cache holds."""
    found = [v for v in releases() if v.startswith(f"{minor}.")]
    if not found:
        raise LookupError(f"no etcd {minor}.x in {bin_dir()}: see {BUILD_SCRIPT}")
    return found[-1]
