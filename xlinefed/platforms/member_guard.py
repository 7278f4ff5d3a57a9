"""Whether a member's data directory holds consensus state, and the start guard built on it.

A member that ran must never come back empty under its old identity: with an empty log
it could vote for a candidate that lacks entries it acknowledged, and etcd and Xline
would both accept it (`existing` fetches the cluster from its peers; `new` re-derives the
same member id). Where the executor can read the directory itself (local mode) it asks
`has_consensus_data`; in a pod, `xlinefed member-guard` runs as an init container on the
member's volume before the engine starts, and refuses (exit code `DATA_LOST`) when the
planner said the member must have data and the volume has none. The member pod's
restartPolicy is Never, so every start goes through the guard.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from xlinefed.api.engines import Engine, profile

#: Exit code of a guard that found the data gone; the platform reads it back.
DATA_LOST = 3
#: Where Kubernetes reads a container's termination message.
TERMINATION_LOG = Path("/dev/termination-log")


def has_consensus_data(engine: Engine, data_dir: Path) -> bool:
    return (data_dir / profile(engine).data_marker).exists()


def guard(engine: Engine, data_dir: Path, member: str, *, require_data: bool) -> int:
    """0 when the member may start; DATA_LOST (with a message on stderr and in the
    termination log) when it ran before and its data directory is empty."""
    if not require_data or has_consensus_data(engine, data_dir):
        return 0
    message = (
        f"xlinefed: {member} refuses to start: {data_dir} holds no {engine.value} data "
        f"({profile(engine).data_marker} is missing) although the member ran before; "
        "starting it empty could let it vote without the log it acknowledged. The operator "
        "replaces it: removed from the member list, then added back as a new learner"
    )
    print(message, file=sys.stderr)
    with contextlib.suppress(OSError):  # not in a pod (tests, the hostlet): stderr has it
        TERMINATION_LOG.write_text(message)
    return DATA_LOST
