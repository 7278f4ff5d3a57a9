"""The on-disk layout of a local federation, and atomic reads and writes of it.

```
<root>/<federation>/
  spec.yaml            desired XlineFederation (by the CLI; metadata.generation counts edits)
  facts.json           what the controller must remember: formed, ports, cluster token
  status.json          what the controller last observed and did (read by the CLI)
  controller.json      the controller's PID record;  controller.log
  members/<member>/    data/  member.log  process.json
```
Only the controller writes facts, status and process records; only the CLI writes the
spec. The root is `$XLINEFED_STATE_DIR`, else `~/.local/state/xlinefed`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from xlinefed.api.loading import parse
from xlinefed.api.models import XlineFederation
from xlinefed.platforms.local.processes import ProcessRecord


def default_root() -> Path:
    env = os.environ.get("XLINEFED_STATE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "xlinefed"


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


@dataclass
class Ports:
    client: int
    peer: int
    #: For engines whose metrics listener would collide on one host (Xline: 9100).
    metrics: int | None = None


@dataclass
class Facts:
    formed: bool = False
    cluster_token: str = ""
    ports: dict[str, Ports] = field(default_factory=dict)
    #: The bootstrap authority, recorded once: the members that start as a new cluster.
    initial_members: list[str] | None = None
    formed_at: str | None = None
    #: The last quorum-loss recovery (`RecoveryRecord` as a dict): the audit trail, and
    #: what keeps the dropped members from ever being started on their old data.
    recovery: dict[str, Any] | None = None
    #: Users, roles and auth are on in the store (with TLS; `consensus.auth`).
    auth_enabled: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Facts:
        if not data:
            return cls()
        return cls(
            formed=data.get("formed", False),
            cluster_token=data.get("cluster_token", ""),
            ports={k: Ports(**v) for k, v in data.get("ports", {}).items()},
            initial_members=data.get("initial_members"),
            formed_at=data.get("formed_at"),
            recovery=data.get("recovery"),
            auth_enabled=data.get("auth_enabled", False),
        )


@dataclass
class MemberProcess:
    record: ProcessRecord
    revision: str
    version: str
    #: Wall-clock seconds of the spawn (0 when unknown), for the restart back-off.
    started_at: float = 0.0
    #: Size of the member's log when this process was spawned: its own output starts
    #: there (the log is appended to across restarts). None when unknown (a record from
    #: before this field): only output from the first look on is read then.
    log_offset: int | None = None
    #: Started with the engine's force-new-cluster flag (a recovery's first start).
    forced: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "record": asdict(self.record),
            "revision": self.revision,
            "version": self.version,
            "started_at": self.started_at,
            "log_offset": self.log_offset,
            "forced": self.forced,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> MemberProcess:
        record = data["record"]
        return cls(
            record=ProcessRecord(record["pid"], record["start_ticks"], tuple(record["argv"])),
            revision=data["revision"],
            version=data["version"],
            started_at=float(data.get("started_at", 0.0)),
            log_offset=data.get("log_offset"),
            forced=bool(data.get("forced", False)),
        )


class FederationDir:
    def __init__(self, root: Path, name: str) -> None:
        self.name = name
        self.path = root / name

    # --- paths
    @property
    def spec_path(self) -> Path:
        return self.path / "spec.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def controller_path(self) -> Path:
        return self.path / "controller.json"

    @property
    def controller_log(self) -> Path:
        return self.path / "controller.log"

    @property
    def controller_lock(self) -> Path:
        return self.path / "controller.lock"

    def member_dir(self, member: str) -> Path:
        return self.path / "members" / member

    def data_dir(self, member: str) -> Path:
        return self.member_dir(member) / "data"

    def member_log(self, member: str) -> Path:
        return self.member_dir(member) / "member.log"

    def exists(self) -> bool:
        return self.spec_path.exists()

    # --- spec
    def read_spec(self) -> XlineFederation:
        return parse(XlineFederation, yaml.safe_load(self.spec_path.read_text()))

    def write_spec(self, federation: XlineFederation) -> None:
        write_atomic(self.spec_path, yaml.safe_dump(federation.to_wire(), sort_keys=False))

    # --- facts
    def read_facts(self) -> Facts:
        return Facts.from_json(read_json(self.path / "facts.json"))

    def write_facts(self, facts: Facts) -> None:
        write_atomic(self.path / "facts.json", json.dumps(asdict(facts), indent=2))

    # --- status
    def read_status(self) -> dict[str, Any] | None:
        return read_json(self.status_path)

    def write_status(self, status: dict[str, Any]) -> None:
        write_atomic(self.status_path, json.dumps(status, indent=2, default=str))

    # --- processes
    def members_on_disk(self) -> list[str]:
        base = self.path / "members"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def read_process(self, member: str) -> MemberProcess | None:
        data = read_json(self.member_dir(member) / "process.json")
        return MemberProcess.from_json(data) if data else None

    def write_process(self, member: str, process: MemberProcess) -> None:
        write_atomic(self.member_dir(member) / "process.json", json.dumps(process.to_json()))

    def forget_process(self, member: str) -> None:
        (self.member_dir(member) / "process.json").unlink(missing_ok=True)

    def read_controller(self) -> ProcessRecord | None:
        data = read_json(self.controller_path)
        return (
            ProcessRecord(data["pid"], data["start_ticks"], tuple(data["argv"])) if data else None
        )

    def write_controller(self, record: ProcessRecord) -> None:
        write_atomic(self.controller_path, json.dumps(asdict(record)))

    def remove_member_dir(self, member: str) -> None:
        shutil.rmtree(self.member_dir(member), ignore_errors=True)

    def wipe_data(self, member: str) -> None:
        shutil.rmtree(self.data_dir(member), ignore_errors=True)


def list_federations(root: Path) -> list[str]:
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "spec.yaml").exists())
