"""A membership executor in its own process, for the lock race test.

`python -m tests.consensus._executor NAME CYCLES BASE_DIR ENDPOINT...` repeats CYCLES times,
each under the membership lock: add a learner, start its etcd process, promote it, remove
it, stop the process. It checks the membership it sees at every stage (nobody else may
change it while it holds the lock), and prints one JSON line with its critical-section
intervals (CLOCK_MONOTONIC, comparable across processes), waits and what it observed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import traceback
from pathlib import Path
from typing import Any

from tests.support.etcd_cluster import EtcdCluster
from xlinefed.consensus.client import ConsensusClient, MemberInfo
from xlinefed.consensus.lock import MembershipLock


def _shape(members: list[MemberInfo]) -> dict[str, int]:
    return {
        "voters": sum(not m.is_learner for m in members),
        "learners": sum(m.is_learner for m in members),
    }


async def execute(name: str, cycles: int, base: Path, endpoints: list[str]) -> dict[str, Any]:
    report: dict[str, Any] = {"name": name, "cycles": [], "error": None}
    launcher = EtcdCluster(base / name, size=0)
    try:
        async with ConsensusClient(endpoints) as client:
            lock = MembershipLock(client, name, ttl=5)
            for i in range(cycles):
                token = await lock.acquire(timeout=180)
                entered = time.monotonic()
                cycle: dict[str, Any] = {"waited": token.waited, "revision": token.revision}
                try:
                    pending = await lock.pending_step()
                    cycle["pending"] = None if pending is None else pending.step
                    shapes = {"before": _shape(await client.member_list())}
                    member = launcher.reserve_member(f"{name}-{i}")
                    step = {"member": member.name, "peer_url": member.peer_url}

                    await lock.record_step(token, {**step, "op": "add-learner"})
                    await lock.ensure_held(token)
                    learner, members = await client.member_add([member.peer_url], deadline=60)
                    shapes["added"] = _shape(members)
                    cycle["member_id"] = learner.id

                    await lock.record_step(token, {**step, "op": "start", "id": learner.id})
                    initial = ",".join(f"{m.name or member.name}={m.peer_urls[0]}" for m in members)
                    await asyncio.to_thread(
                        launcher.start_member, member, initial_cluster=initial, state="existing"
                    )

                    await lock.record_step(token, {**step, "op": "promote", "id": learner.id})
                    await lock.ensure_held(token)
                    shapes["promoted"] = _shape(
                        await client.member_promote(learner.id, deadline=60)
                    )

                    await lock.record_step(token, {**step, "op": "remove", "id": learner.id})
                    await lock.ensure_held(token)
                    shapes["removed"] = _shape(await client.member_remove(learner.id, deadline=60))
                    await asyncio.to_thread(launcher.stop_member, member.name)
                    await lock.finish_step(token)
                    cycle["shapes"] = shapes
                finally:
                    cycle["interval"] = [entered, time.monotonic()]
                    report["cycles"].append(cycle)
                    await lock.release(token)
    except BaseException:
        report["error"] = traceback.format_exc()
    finally:
        launcher.stop()
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("cycles", type=int)
    parser.add_argument("base", type=Path)
    parser.add_argument("endpoints", nargs="+")
    args = parser.parse_args()
    report = asyncio.run(execute(args.name, args.cycles, args.base, args.endpoints))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
