"""Version upgrades on real etcd releases: Debian's 3.4.23 and the 3.5 and 3.6 that
hack/etcd/build.sh builds from the Go module proxy.

Each release starts with the flags xlinefed gives it (3.6 refuses `--enable-v2`); a
federation rolls 3.4 → 3.5 → 3.6 under a writer (every acknowledged write read back, one
leader, membership equal to the spec, every member reporting the new version, the cluster
version following); a skip of a minor and a downgrade are refused before anything runs."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_local.conftest import CliFederation
from tests.e2e_local.test_lifecycle import run_under_writer
from tests.support import etcd_versions
from tests.support.wait import wait_until
from xlinefed.consensus.client import ConsensusClient
from xlinefed.consensus.errors import RequestRejected

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


def reported(federation: CliFederation) -> tuple[dict[str, str], set[int]]:
    """(Maintenance.Status version by endpoint, member ids) as the members say."""

    async def read() -> tuple[dict[str, str], set[int]]:
        endpoints = federation.all_endpoints()
        async with ConsensusClient(endpoints, timeout=3.0, tls=federation.client_tls()) as client:
            versions = {e: (await client.status(e)).version for e in endpoints}
            ids = {m.id for m in await client.member_list()}
        return versions, ids

    return asyncio.run(read())


def test_rolling_upgrade_one_minor_at_a_time_under_a_writer(
    one_off: CliFederation, tmp_path: Path
) -> None:
    """3.4 → 3.5 → 3.6 with `xlinefed local upgrade` under a writer: after each roll every
    acknowledged write reads back, one leader, every member reports the new release, and
    the member list kept its ids (a roll restarts in place; no membership change). The
    skip 3.4 → 3.6 is refused first, with nothing restarted."""
    first, *later = [etcd_versions.release_of(m) for m in ("3.4", "3.5", "3.6")]
    one_off.up(spec("v", first, {"a": 2, "b": 1}), tmp_path)
    _, ids = reported(one_off)
    pids = {n: one_off.dir.read_process(n).record.pid for n in one_off.desired_names()}  # type: ignore[union-attr]

    skipped = one_off.cli("local", "upgrade", "v", "--version", later[-1], check=False)
    assert skipped.returncode == 2, skipped.stderr
    assert "spec.version" in skipped.stderr and "skips a minor" in skipped.stderr
    assert {n: one_off.dir.read_process(n).record.pid for n in pids} == pids  # type: ignore[union-attr]

    for version in later:
        run_under_writer(
            one_off, f"upgrade to {version}", "local", "upgrade", "v", "--version", version
        )
        versions, now_ids = reported(one_off)
        assert set(versions.values()) == {version}, versions
        assert now_ids == ids, "a rolling upgrade changed the member list"
        assert set(member_versions(one_off).values()) == {version}
        # The leader raises the cluster version once every member runs the new release
        # (etcd checks every few seconds); the next minor joins only a cluster there.
        minor = ".".join(version.split(".")[:2])
        wait_until(
            lambda m=minor: cluster_versions(one_off) == {f"{m}.0"},
            timeout=60,
            what=f"cluster version {minor}.0",
        )
    # No member failed to start on its new release (a refused flag, a cluster version it
    # cannot join) on the way.
    log = one_off.dir.controller_log.read_text()
    assert "exited within" not in log, one_off.controller_log_tail()


def cluster_versions(federation: CliFederation) -> set[str]:
    """The cluster version each member serves at /version (`etcdcluster`)."""
    found = set()
    for endpoint in federation.all_endpoints():
        with urllib.request.urlopen(f"{endpoint}/version", timeout=3) as answer:
            found.add(json.load(answer)["etcdcluster"])
    return found


def test_status_warns_when_a_members_database_nears_its_quota(
    one_off: CliFederation, tmp_path: Path
) -> None:
    """A real member's Maintenance.Status dbSize against `quota-backend-bytes` (set low
    through engineArgs): at 80% the status carries a warning naming the member and the fix."""
    quota = 4 * 2**20
    federation = spec("v", etcd_versions.release_of("3.5"), {"a": 1})
    federation["spec"]["engineArgs"] = {"quota-backend-bytes": str(quota)}  # type: ignore[index]
    one_off.up(federation, tmp_path)
    assert not any("quota" in w for w in one_off.status().get("warnings", []))

    async def fill() -> int:
        """Write until the member's database reports 80% of the quota, asking after every
        put. bbolt grows in steps, so dbSize can jump past the quota in one put: etcd then
        raises its NOSPACE alarm and refuses the put (seen in CI), which is the quota
        reached as well; the size it reports then is what the status sees."""
        endpoint = one_off.all_endpoints()[0]
        size = 0
        async with ConsensusClient(
            one_off.all_endpoints(), timeout=5.0, tls=one_off.client_tls()
        ) as client:
            for i in range(400):
                try:
                    await client.put(f"/fill/{i}".encode(), b"x" * 50_000)
                except RequestRejected as error:
                    assert "space exceeded" in str(error), error
                    return (await client.status(endpoint)).db_size
                size = (await client.status(endpoint)).db_size
                if size >= 0.8 * quota:
                    return size
        return size

    assert asyncio.run(fill()) >= 0.8 * quota
    wait_until(
        lambda: any(
            w.startswith("v-a-0: database") and "quota-backend-bytes" in w
            for w in one_off.status().get("warnings", [])
        ),
        timeout=60,
        what="a quota warning in the status",
    )
