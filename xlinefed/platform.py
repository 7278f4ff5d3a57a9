"""What the executor needs from a platform (local processes, Kubernetes pods)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from xlinefed.planner.steps import StartMode


@dataclass(frozen=True)
class MemberRuntime:
    present: bool = False
    running: bool = False
    has_data: bool = False
    revision: str | None = None
    version: str | None = None


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
    ) -> None: ...

    async def stop(self, member: str) -> None: ...

    async def delete(self, member: str, delete_data: bool) -> None: ...

    async def wipe_data(self, member: str) -> None: ...

    async def formed(self) -> bool: ...

    async def mark_formed(self) -> None: ...
