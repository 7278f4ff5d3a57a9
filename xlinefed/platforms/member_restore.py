"""A new federation from a backup, on Kubernetes: the init containers of an initial member.

The engine's own tool restores a snapshot (`etcdctl snapshot restore` up to 3.4,
`etcdutl` from 3.5), and the engine images have no shell (etcd's are distroless), so the
pod runs three init containers in a row on the member's volume:

1. `xlinefed member-restore fetch` (the operator's image): download the backup and check
   it against its metadata (`backups.run.fetch_verified`: committed, same engine, size,
   sha256, revision) into `restore/snapshot.db`; anything else and the pod stops here,
   with the reason in its termination message, before any member starts. A staging
   directory left by an earlier try is removed.
2. the engine's tool restores the snapshot into the staging directory, with the new
   member list (its name, the initial cluster, the token).
3. `xlinefed member-restore finish`: the staging directory becomes the data directory,
   unless the member already has data (a pod of this bootstrap started before and the
   member ran): then the member keeps its own and the staging is dropped. The snapshot is
   removed either way.

Every try starts from the snapshot, so a pod that died half way is simply tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from pathlib import Path

from xlinefed.api.engines import Engine
from xlinefed.backups.run import RestoreError, Target, fetch_verified
from xlinefed.backups.store import StoreError
from xlinefed.platforms.member_guard import TERMINATION_LOG, has_consensus_data

#: Exit code of a fetch that refused the backup.
REFUSED = 4


def snapshot_path(volume: Path) -> Path:
    return volume / "restore" / "snapshot.db"


def staging_dir(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".restoring")


def _refuse(message: str) -> int:
    print(message, file=sys.stderr)
    with contextlib.suppress(OSError):  # not in a pod (tests, the hostlet): stderr has it
        TERMINATION_LOG.write_text(message)
    return REFUSED


def fetch(
    engine: Engine,
    uri: str,
    revision: int | None,
    target: Target,
    volume: Path,
    data_dir: Path,
    member: str,
) -> int:
    """Step 1: the verified snapshot in place, or REFUSED with the reason."""
    shutil.rmtree(staging_dir(data_dir), ignore_errors=True)
    path = snapshot_path(volume)
    try:
        manifest = asyncio.run(fetch_verified(target, uri, revision, path, engine=engine))
    except (RestoreError, StoreError, OSError) as error:
        return _refuse(f"xlinefed: {member} does not start from {uri}: {error}")
    print(
        f"xlinefed: {member}: {manifest.uri} verified ({manifest.size} bytes, sha256 "
        f"{manifest.sha256[:12]}…, revision {manifest.revision})"
    )
    return 0


def finish(engine: Engine, volume: Path, data_dir: Path, member: str) -> int:
    """Step 3: the restored directory becomes the member's data, unless it has its own."""
    staging = staging_dir(data_dir)
    if has_consensus_data(engine, data_dir):
        shutil.rmtree(staging, ignore_errors=True)
        print(f"xlinefed: {member} has data of its own; the restored copy is dropped")
    elif not has_consensus_data(engine, staging):
        return _refuse(
            f"xlinefed: {member}: the restore left no {engine.value} data in {staging}; "
            "see the restore container's log"
        )
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
        staging.replace(data_dir)
        print(f"xlinefed: {member} restored into {data_dir}")
    snapshot_path(volume).unlink(missing_ok=True)
    return 0
