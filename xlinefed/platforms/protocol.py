"""What the executor needs from a platform (local processes, Kubernetes pods)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from xlinefed.planner.model import Desired, Formation, RecoveryRecord
from xlinefed.planner.observation import MemberRuntime
from xlinefed.planner.steps import StartMode

__all__ = ["MemberRuntime", "Platform"]


class Platform(Protocol):
    """Where members run. Every method is idempotent: the executor may repeat any call
    after a crash."""

    async def known_members(self) -> Sequence[str]:
        """Members the platform has a process, pod or data for."""
        ...

    def sees(self, member: str) -> bool:
        """Whether `runtime(member)` tells the truth: a member operator sees only the pods
        of its own cluster; for other members the executor relies on the store."""
        ...

    def client_url(self, member: str) -> str: ...

    def peer_url(self, member: str) -> str: ...

    async def runtime(self, member: str) -> MemberRuntime: ...

    async def start(
        self,
        member: str,
        mode: StartMode,
        initial_cluster: Sequence[tuple[str, str]],
        revision: str,
        *,
        initial_leader: bool = False,
        require_data: bool = False,
    ) -> None:
        """Start `member`. With `require_data` (it ran before) it must not start empty:
        the platform refuses, or has the member's start guard refuse, when its data
        directory holds no consensus state."""
        ...

    async def stop(self, member: str) -> None: ...

    async def delete(self, member: str, delete_data: bool) -> None: ...

    async def wipe_data(self, member: str) -> None: ...

    async def formed(self) -> bool: ...

    async def mark_formed(self) -> None: ...

    async def formation(self, desired: Desired) -> Formation:
        """The bootstrap authority: who may bootstrap, and whether the federation formed.
        Kubernetes: the XlineCluster's spec (written by the federation tier); local: the
        controller's state (recorded once, at the first bootstrap)."""
        ...

    # --- quorum-loss recovery (docs/recovery.md)
    async def recovery(self) -> RecoveryRecord | None:
        """The last quorum-loss recovery recorded (the audit trail), if any."""
        ...

    async def record_recovery(self, record: RecoveryRecord) -> None:
        """Record (or update) the last recovery; kept where a restart still reads it."""
        ...

    async def start_forced(self, member: str, revision: str) -> None:
        """Start `member` once on its own data with the engine's force-new-cluster flag
        (it must be stopped); its next start is a normal one."""
        ...
