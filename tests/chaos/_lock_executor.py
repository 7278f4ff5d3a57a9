"""One xlinefed `Executor` in its own process, for the frozen-holder test.

`python -m tests.chaos._lock_executor CONFIG_JSON` runs `Executor.reconcile_once` over a
fixed set of etcd members the test started (this process starts and stops nothing: the
platform refuses to), until one step that needs the membership lock was tried, and prints
one JSON line: every outcome, and any platform call it was refused.

`freeze` makes the process stop itself (SIGSTOP) at an exact point of that step, as an
outside SIGSTOP landing there would: "intent" right after the step's intent is recorded
beside the lock, "proof" right after `Fence.prove` returned (before the membership RPC it
guards). The test sends SIGCONT.

CONFIG: {"holder", "federation", "clusters": {id: replicas}, "scope": [ids],
"members": {name: {"client", "peer", "pid", "data_dir"}}, "ttl", "freeze", "passes"}
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlinefed.api.loading import parse
from xlinefed.api.models import XlineFederation
from xlinefed.consensus import lock as lock_module
from xlinefed.executor import Executor
from xlinefed.logs import configure
from xlinefed.planner import Wait
from xlinefed.planner.desired import desired_from
from xlinefed.planner.model import Desired, Formation
from xlinefed.planner.observation import MemberRuntime
from xlinefed.planner.steps import StartMode


def _alive(pid: int) -> bool:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return raw[raw.rindex(")") + 2] not in "ZX"


class FixedPlatform:
    """Members the test runs; this executor may observe them, never start or stop them."""

    def __init__(self, members: dict[str, dict[str, Any]], revision: str, version: str) -> None:
        self.members = members
        self.revision = revision
        self.version = version
        self.refused: list[str] = []

    async def known_members(self) -> Sequence[str]:
        return sorted(self.members)

    def sees(self, member: str) -> bool:
        return True

    def client_url(self, member: str) -> str:
        return str(self.members[member]["client"])

    def peer_url(self, member: str) -> str:
        return str(self.members[member]["peer"])

    async def runtime(self, member: str) -> MemberRuntime:
        info = self.members.get(member)
        if info is None:
            return MemberRuntime()
        return MemberRuntime(
            present=True,
            running=_alive(int(info["pid"])),
            has_data=(Path(info["data_dir"]) / "member" / "wal").is_dir(),
            revision=self.revision,
            version=self.version,
        )

    def _refuse(self, what: str) -> None:
        self.refused.append(what)
        raise RuntimeError(f"the test platform does not {what}")

    async def start(
        self,
        member: str,
        mode: StartMode,
        initial_cluster: Sequence[tuple[str, str]],
        revision: str,
    ) -> None:
        self._refuse(f"start {member} ({mode.value})")

    async def stop(self, member: str) -> None:
        self._refuse(f"stop {member}")

    async def delete(self, member: str, delete_data: bool) -> None:
        self._refuse(f"delete {member}")

    async def wipe_data(self, member: str) -> None:
        self._refuse(f"wipe {member}")

    async def formed(self) -> bool:
        return True

    async def mark_formed(self) -> None:
        return None

    async def formation(self, desired: Desired) -> Formation:
        return Formation(initial_members=tuple(sorted(self.members)), formed=True)

    async def recovery(self) -> None:
        return None

    async def record_recovery(self, record: object) -> None:
        self._refuse("record a recovery")

    async def start_forced(self, member: str, revision: str) -> None:
        self._refuse(f"start {member} forced")


def _freeze_after(owner: type, method: str, when: Any) -> None:
    """Wrap `owner.method` so that the process stops itself after it returns, once."""
    original = getattr(owner, method)
    frozen = False

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal frozen
        result = await original(*args, **kwargs)
        if not frozen and when(*args, **kwargs):
            frozen = True
            print(f"freezing after {method}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGSTOP)
            print(f"resumed after {method}", file=sys.stderr, flush=True)
        return result

    setattr(owner, method, wrapper)


async def run(config: dict[str, Any]) -> dict[str, Any]:
    spec = {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineFederation",
        "metadata": {"name": config["federation"]},
        "spec": {
            "engine": "etcd",
            "version": "3.4.23",
            "clusters": [{"id": c, "replicas": n} for c, n in config["clusters"].items()],
        },
    }
    desired = desired_from(parse(XlineFederation, spec), scope=frozenset(config["scope"]))
    platform = FixedPlatform(config["members"], desired.revision, "3.4.23")
    if config.get("freeze") == "intent":
        _freeze_after(
            lock_module.MembershipLock,
            "record_step",
            lambda _self, _token, _step, phase="intent": phase == "intent",
        )
    elif config.get("freeze") == "proof":
        _freeze_after(lock_module.Fence, "prove", lambda *_a, **_k: True)
    executor = Executor(platform, config["federation"], config["holder"], _lock_ttl=config["ttl"])
    outcomes: list[dict[str, Any]] = []
    for _ in range(int(config.get("passes", 30))):
        outcome = await executor.reconcile_once(desired)
        step = outcome.step
        outcomes.append(
            {
                "kind": step.kind,
                "member": step.member,
                "what": step.reason if isinstance(step, Wait) else step.describe(),
                "applied": outcome.applied,
                "error": outcome.error,
                "at": time.monotonic(),
            }
        )
        if step.needs_lock and (outcome.applied or outcome.error):
            break
        await asyncio.sleep(0.2)
    return {"holder": config["holder"], "outcomes": outcomes, "refused": platform.refused}


def main() -> None:
    configure()
    config = json.loads(sys.argv[1])
    print(json.dumps(asyncio.run(run(config))), flush=True)


if __name__ == "__main__":
    main()
