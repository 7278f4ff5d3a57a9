"""Backup and restore of a large etcd store: xlinefed against the raw sequence by hand, in
one run, against a real S3-compatible server (versitygw, built by hack/objectstore).

    .venv/bin/python bench/backup.py [--size-mib 1024] [--rounds 3]

Setup: one real etcd 3.4 member (`--quota-backend-bytes` 8 GiB) filled with `--size-mib`
MiB of 1 MiB values, and a versitygw serving a directory.

Backup
  (a) xlinefed: `backups.run.take_backup` — member chosen by status, Maintenance.Snapshot
      streamed into a multipart upload (two 16 MiB parts in memory), sha256 and metadata,
      committed by a copy onto itself.
  (b) by hand: `etcdctl snapshot save` to a local file, then boto3's managed upload of
      that file with the same client (`ObjectStore.upload_file`, 16 MiB parts, 2 threads).
Restore (into a fresh data dir)
  (a) xlinefed: `fetch_verified` (download, size and sha256 checked against the metadata)
      and `restore_data_dir` (`etcdctl snapshot restore` into a staging dir, renamed).
  (b) by hand: `ObjectStore.download` of the raw object and `etcdctl snapshot restore`.

Reported per round: seconds and MB/s of each arm, the ratios a/b, and the peak RSS of this
process after the xlinefed backups (the streaming claim: it stays far below the store's
size). The arms alternate which goes first. Speed is a ratio in one run, never a timed
assertion.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import median, print_header, print_table, ratio
from tests.support.etcd_cluster import EtcdCluster
from tests.support.objectstore import ACCESS_KEY, SECRET_KEY, ObjectStoreServer
from xlinefed.api.engines import Engine
from xlinefed.backups.run import (
    MemberAddress,
    Target,
    etcdctl_binary,
    fetch_verified,
    restore_data_dir,
    take_backup,
)
from xlinefed.consensus.client import ConsensusClient

BUCKET = "bench"
VALUE = 1024 * 1024


async def fill(endpoint: str, size_mib: int) -> int:
    """Write `size_mib` values of 1 MiB; returns the db size the member reports."""
    value = b"x" * (VALUE - 64)
    async with ConsensusClient([endpoint], timeout=30.0) as client:
        for i in range(size_mib):
            await client.put(f"/bench/{i:06d}", value)
            if i % 128 == 127:
                print(f"  filled {i + 1}/{size_mib} MiB", flush=True)
        return (await client.status(endpoint)).db_size


def etcdctl(*args: str) -> None:
    subprocess.run(
        [etcdctl_binary(), *args],
        check=True,
        capture_output=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
    )


async def xlinefed_backup(member: MemberAddress, target: Target) -> tuple[float, int, str]:
    started = time.perf_counter()
    result = await take_backup("bench", Engine.ETCD, "3.4.23", [member], target)
    return time.perf_counter() - started, result.size, result.uri


async def raw_backup(endpoint: str, target: Target, work: Path, n: int) -> tuple[float, int]:
    started = time.perf_counter()
    path = work / f"raw-{n}.db"
    await asyncio.to_thread(etcdctl, f"--endpoints={endpoint}", "snapshot", "save", str(path))
    await target.store().upload_file(f"raw/{n}.db", path)
    seconds = time.perf_counter() - started
    size = path.stat().st_size
    path.unlink()
    return seconds, size


async def xlinefed_restore(target: Target, uri: str, work: Path, n: int) -> float:
    started = time.perf_counter()
    snapshot = work / f"fetched-{n}.db"
    await fetch_verified(target, uri, None, snapshot, engine=Engine.ETCD)
    data_dir = work / f"restored-a-{n}"
    await restore_data_dir(
        snapshot,
        member="r",
        data_dir=data_dir,
        initial_cluster=[("r", "http://127.0.0.1:2390")],
        cluster_token="bench",
        peer_url="http://127.0.0.1:2390",
    )
    seconds = time.perf_counter() - started
    snapshot.unlink()
    shutil.rmtree(data_dir)
    return seconds


async def raw_restore(target: Target, n: int, work: Path) -> float:
    started = time.perf_counter()
    snapshot = work / f"downloaded-{n}.db"
    await target.store().download(f"raw/{n}.db", snapshot)
    data_dir = work / f"restored-b-{n}"
    await asyncio.to_thread(
        etcdctl,
        "snapshot",
        "restore",
        str(snapshot),
        "--name=r",
        f"--data-dir={data_dir}",
        "--initial-cluster=r=http://127.0.0.1:2390",
        "--initial-cluster-token=bench",
        "--initial-advertise-peer-urls=http://127.0.0.1:2390",
    )
    seconds = time.perf_counter() - started
    snapshot.unlink()
    shutil.rmtree(data_dir)
    return seconds


def mb_per_s(size: int, seconds: float) -> str:
    return f"{size / 1e6 / seconds:.1f}"


async def run(args: argparse.Namespace, work: Path) -> None:
    s3 = ObjectStoreServer(work / "s3")
    s3.start()
    etcd = EtcdCluster(
        work / "etcd", size=1, extra_args=["--quota-backend-bytes=8589934592"], name_prefix="b"
    )
    try:
        s3.create_bucket(BUCKET)
        etcd.start()
        endpoint = etcd.all_endpoints[0]
        print(f"filling etcd with {args.size_mib} MiB ...", flush=True)
        db_size = await fill(endpoint, args.size_mib)
        print(f"db size: {db_size / 2**20:.0f} MiB")
        member = MemberAddress("b1", "a", endpoint)
        target = Target(BUCKET, "xlinefed", s3.endpoint, access_keys=(ACCESS_KEY, SECRET_KEY))
        rows = []
        backups_a, backups_b, restores_a, restores_b = [], [], [], []
        for n in range(args.rounds):
            print(f"round {n + 1}/{args.rounds} ...", flush=True)
            if n % 2 == 0:
                a, size, uri = await xlinefed_backup(member, target)
                b, raw_size = await raw_backup(endpoint, target, work, n)
                ra = await xlinefed_restore(target, uri, work, n)
                rb = await raw_restore(target, n, work)
            else:
                b, raw_size = await raw_backup(endpoint, target, work, n)
                a, size, uri = await xlinefed_backup(member, target)
                rb = await raw_restore(target, n, work)
                ra = await xlinefed_restore(target, uri, work, n)
            backups_a.append(a)
            backups_b.append(b)
            restores_a.append(ra)
            restores_b.append(rb)
            rows.append(
                [
                    str(n + 1),
                    f"{size / 2**20:.0f}",
                    f"{a:.2f}",
                    mb_per_s(size, a),
                    f"{b:.2f}",
                    mb_per_s(raw_size, b),
                    ratio(a, b),
                    f"{ra:.2f}",
                    f"{rb:.2f}",
                    ratio(ra, rb),
                ]
            )
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print()
        print_table(
            [
                "round",
                "MiB",
                "backup a s",
                "a MB/s",
                "backup b s",
                "b MB/s",
                "a/b",
                "restore a s",
                "restore b s",
                "a/b",
            ],
            rows,
        )
        print()
        print(
            f"median backup: xlinefed {median(backups_a):.2f} s, by hand {median(backups_b):.2f} s "
            f"(a/b {ratio(median(backups_a), median(backups_b))}); median restore: xlinefed "
            f"{median(restores_a):.2f} s, by hand {median(restores_b):.2f} s "
            f"(a/b {ratio(median(restores_a), median(restores_b))})"
        )
        print(
            f"peak RSS of this process (fill, xlinefed and boto3 arms): {rss:.0f} MiB for a "
            f"{db_size / 2**20:.0f} MiB store"
        )
    finally:
        etcd.stop()
        s3.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="store size to fill")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print_header()
    with tempfile.TemporaryDirectory(prefix="xlinefed-bench-backup-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
