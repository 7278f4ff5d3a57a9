"""A lock holder in its own process, for tests that kill it mid-step.

`python -m tests.consensus._holder HOLDER TTL ENDPOINT... [--step JSON]` acquires the
membership lock, optionally records JSON as the step's intent, prints one line
`HELD <token json>` and then waits forever (keeping the lease alive) until killed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json

from xlinefed.consensus.client import ConsensusClient
from xlinefed.consensus.lock import MembershipLock


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("holder")
    parser.add_argument("ttl", type=int)
    parser.add_argument("endpoints", nargs="+")
    parser.add_argument("--step", default="")
    args = parser.parse_args()
    async with ConsensusClient(args.endpoints) as client:
        lock = MembershipLock(client, args.holder, ttl=args.ttl)
        token = await lock.acquire(timeout=30)
        if args.step:
            await lock.record_step(token, json.loads(args.step))
        print("HELD", json.dumps(dataclasses.asdict(token)), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
