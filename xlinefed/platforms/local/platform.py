"""Members as local processes under a state directory.

Every member listens on 127.0.0.1 with its own pair of ports, allocated once (checked
free), kept in facts.json and reused across restarts. Locally a member's DNS name
resolves to loopback: its URLs are `http://127.0.0.1:<port>`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from xlinefed.api.engines import Engine, profile
from xlinefed.api.models import XlineFederation
from xlinefed.launch import LaunchSpec, command
from xlinefed.logs import get_logger
from xlinefed.planner.model import Desired, Formation, RecoveryRecord
from xlinefed.planner.steps import StartMode
from xlinefed.platforms.local import processes
from xlinefed.platforms.local.backups import restore_member
from xlinefed.platforms.local.pki import LocalPKI, tls_spec
from xlinefed.platforms.local.state import (
    Facts,
    FederationDir,
    MemberProcess,
    Ports,
    list_federations,
)
from xlinefed.platforms.member_guard import has_consensus_data
from xlinefed.platforms.protocol import MemberRuntime

log = get_logger(__name__)

HOST = "127.0.0.1"


def loopback_url(port: int, *, tls: bool = False) -> str:
    """The URL of a member's listener on `port`: the one members advertise and clients use."""
    return f"{'https' if tls else 'http'}://{HOST}:{port}"


class EngineNotFound(RuntimeError):
    pass


#: Seconds a member that died right after its start waits before the next start.
RESTART_BACKOFF = 2.0


class MemberStartBackoff(RuntimeError):
    """A member died right after its last start; the next start waits."""


class MemberDataLost(RuntimeError):
    """A member that ran before would start with an empty data directory."""


def etcd_cache_dir() -> Path:
    """Where hack/etcd/build.sh puts the etcd releases it builds (`<version>/etcd`):
    `$XLINEFED_ETCD_CACHE`, else `$XDG_CACHE_HOME/xlinefed-etcd` (~/.cache/xlinefed-etcd)."""
    explicit = os.environ.get("XLINEFED_ETCD_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "xlinefed-etcd"


@functools.cache
def _reported_version(path: str, mtime_ns: int) -> str | None:
    """What `etcd --version` says (`etcd Version: 3.4.23`), once per binary file."""
    del mtime_ns  # part of the cache key: a replaced binary is asked again
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.splitlines():
        if line.startswith("etcd Version:"):
            return line.split(":", 1)[1].strip()
    return None


def binary_version(path: str) -> str | None:
    """The release an etcd binary reports, or None when it cannot tell."""
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError:
        return None
    return _reported_version(path, mtime)


def find_binary(engine: Engine, version: str) -> tuple[str, bool]:
    """The binary for `engine` at `version`. Returns (path, exact) where `exact` says the
    version was matched rather than a fallback.

    Xline: `$XLINEFED_XLINE_BIN` when set, else `$XLINEFED_BIN_DIR/xline-<version>`, else
    `xline` on PATH. etcd, always of exactly that release (a member on another release
    would join or roll as something the spec did not ask for):
    `$XLINEFED_BIN_DIR/etcd-<version>`, else `<etcd cache>/<version>/etcd` (what
    hack/etcd/build.sh builds, see `etcd_cache_dir`), else `etcd` on PATH when it reports
    that release (Debian's etcd-server is 3.4.23); otherwise `EngineNotFound` naming
    spec.version and the fix."""
    name = profile(engine).binary
    explicit = os.environ.get("XLINEFED_XLINE_BIN") if engine is Engine.XLINE else None
    if explicit:
        if not Path(explicit).is_file():
            raise EngineNotFound(
                f"XLINEFED_XLINE_BIN={explicit} is not a file; point it at an xline binary"
            )
        return explicit, False
    bare = version.lstrip("v")
    bin_dir = os.environ.get("XLINEFED_BIN_DIR")
    looked: list[str] = []
    if bin_dir:
        for candidate in (f"{name}-{bare}", f"{name}-v{bare}"):
            path = Path(bin_dir) / candidate
            looked.append(str(path))
            if path.exists():
                return str(path), True
    if engine is Engine.ETCD:
        cached = etcd_cache_dir() / bare / name
        looked.append(str(cached))
        if cached.is_file():
            return str(cached), True
    found = shutil.which(name)
    if engine is Engine.XLINE:
        if found is None:
            raise EngineNotFound(
                f"the xline binary `{name}` is not on PATH; Xline is in no package registry: "
                "take the `xline` binary from https://github.com/xline-kv/Xline/releases (or "
                "the image ghcr.io/xline-kv/xline), then put it on PATH or set "
                "XLINEFED_XLINE_BIN; or use `engine: etcd`"
            )
        return found, False
    on_path = binary_version(found) if found else None
    if found is not None and on_path == bare:
        return found, True
    seen = f"`etcd` on PATH is {on_path}" if found else "no `etcd` on PATH"
    install = (
        f"set spec.version to {on_path}, "
        if on_path
        else "install Debian's 3.4 with `apt-get install etcd-server`, "
    )
    raise EngineNotFound(
        f"spec.version: no etcd {bare} binary on this machine (looked for "
        f"{', '.join(looked)}; {seen}); {install}build it with `hack/etcd/build.sh` "
        f"(3.5 and 3.6 releases), or put an `etcd-{bare}` binary in a directory named by "
        "XLINEFED_BIN_DIR"
    )


def port_free(port: int) -> bool:
    """Whether a member could listen on `port` now (the bind test before a start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


#: Member ports come from below Linux's ephemeral range (32768-60999), so that while a
#: member is down no outgoing connection can take its port.
PORT_RANGE = range(21000, 32000)


def _free_port(taken: set[int]) -> int:
    for port in PORT_RANGE:
        if port not in taken and port_free(port):
            return port
    raise RuntimeError(
        f"no free port left in {PORT_RANGE.start}-{PORT_RANGE.stop - 1} on {HOST}; "
        "stop some local federations (`xlinefed local down NAME`)"
    )


def _ports_of_every_federation(root: Path) -> set[int]:
    """Ports promised to any member of any local federation, running or not."""
    taken: set[int] = set()
    for name in list_federations(root):
        for pair in FederationDir(root, name).read_facts().ports.values():
            taken.update(p for p in (pair.client, pair.peer, pair.metrics) if p is not None)
    return taken


@dataclass
class _Output:
    """What one member process wrote that matters (see EngineProfile)."""

    #: Bytes of the log read so far; None until known.
    offset: int | None
    #: The first line of fatal output, and of output that says it lost part of its log.
    fatal: str | None = None
    lost_log: str | None = None


def _first_line(pattern: str, text: str) -> str | None:
    found = re.search(pattern, text, re.MULTILINE)
    if found is None:
        return None
    line_start = text.rfind("\n", 0, found.start()) + 1
    line_end = text.find("\n", found.start())
    return text[line_start : line_end if line_end >= 0 else None]


class LocalPlatform:
    def __init__(self, directory: FederationDir, federation: XlineFederation) -> None:
        self.dir = directory
        self.federation = federation
        #: (pid, start ticks) of a member process → what its output said so far, and how
        #: far it has been read (each look reads only what was written since the last).
        self._output: dict[tuple[int, int], _Output] = {}
        self._ports_text: bytes | None = None
        self._ports_seen: dict[str, Ports] = {}
        tls = tls_spec(directory, federation)
        self.pki = LocalPKI(directory, tls) if tls is not None else None

    # --- addresses
    def _known_ports(self) -> dict[str, Ports]:
        """Every member's ports as facts.json says now, parsed again only when its text
        changed: an observation asks for each member's URLs many times, and parsing the
        file each time cost a third of an observation (bench/scale_out.py)."""
        try:
            text = (self.dir.path / "facts.json").read_bytes()
        except FileNotFoundError:
            return {}
        if text != self._ports_text:
            self._ports_seen = dict(Facts.from_json(json.loads(text)).ports)
            self._ports_text = text
        return self._ports_seen

    def _ports(self, member: str) -> Ports:
        wants_metrics = bool(profile(self.federation.spec.engine).loopback_metrics_args)
        known = self._known_ports().get(member)
        if known is not None and (known.metrics is not None or not wants_metrics):
            return known
        facts = self.dir.read_facts()
        ports = facts.ports.get(member)
        if ports is not None and (ports.metrics is not None or not wants_metrics):
            return ports
        taken = _ports_of_every_federation(self.dir.path.parent) | {
            p for pair in facts.ports.values() for p in (pair.client, pair.peer, pair.metrics) if p
        }
        if ports is None:
            client = _free_port(taken)
            peer = _free_port(taken | {client})
            ports = Ports(client=client, peer=peer)
            taken |= {client, peer}
        if wants_metrics:
            ports.metrics = _free_port(taken)
        facts.ports[member] = ports
        self.dir.write_facts(facts)
        return ports

    def client_url(self, member: str) -> str:
        return loopback_url(self._ports(member).client, tls=self.pki is not None)

    def peer_url(self, member: str) -> str:
        return loopback_url(self._ports(member).peer, tls=self.pki is not None)

    async def known_members(self) -> Sequence[str]:
        return self.dir.members_on_disk()

    def sees(self, member: str) -> bool:
        return True

    # --- observation
    def _read_output(self, member: str, process: MemberProcess) -> _Output:
        """What this process has written to its log since it started that the engine's
        profile says matters (`fatal_output`, `lost_log_output`); read incrementally."""
        engine = profile(self.federation.spec.engine)
        key = (process.record.pid, process.record.start_ticks)
        seen = self._output.setdefault(key, _Output(offset=process.log_offset))
        if engine.fatal_output is None and engine.lost_log_output is None:
            return seen
        path = self.dir.member_log(member)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return seen
        if seen.offset is None:
            seen.offset = size  # a record from before log offsets: from now on only
        if size <= seen.offset:
            seen.offset = min(seen.offset, size)
            return seen
        with path.open("rb") as log_file:
            log_file.seek(seen.offset)
            chunk = log_file.read(size - seen.offset)
        # Only whole lines: a line being written is read again next time.
        end = chunk.rfind(b"\n") + 1
        seen.offset += end
        text = chunk[:end].decode(errors="replace")
        if seen.fatal is None and engine.fatal_output is not None:
            seen.fatal = _first_line(engine.fatal_output, text)
        if seen.lost_log is None and engine.lost_log_output is not None:
            seen.lost_log = _first_line(engine.lost_log_output, text)
        return seen

    async def _kill_if_broken(self, member: str, process: MemberProcess, line: str) -> None:
        """Kill a running member whose own output says it is broken (a task panicked:
        it answers but never commits, and as the leader it keeps the term by heartbeats,
        so nobody elects another). Treated as a crash, the crash restart brings it back,
        as a kubelet's liveness probe would."""
        log.warning(
            "member wrote fatal output while running; killing it so it is restarted",
            member=member,
            pid=process.record.pid,
            line=line,
        )
        await asyncio.to_thread(processes.kill_and_wait, process.record)

    async def runtime(self, member: str) -> MemberRuntime:
        process = self.dir.read_process(member)
        running = process is not None and processes.is_alive(process.record)
        lost_log = False
        if running and process is not None:
            output = self._read_output(member, process)
            if output.fatal is not None:
                await self._kill_if_broken(member, process, output.fatal)
                running = processes.is_alive(process.record)
            # A member that came up without part of the log it had acknowledged holds
            # no trustworthy consensus data: while it runs so, it counts as data lost
            # and is replaced (removed, stopped, wiped, added back as a learner).
            lost_log = running and output.lost_log is not None
        return MemberRuntime(
            present=process is not None,
            running=running,
            has_data=not lost_log
            and has_consensus_data(self.federation.spec.engine, self.dir.data_dir(member)),
            revision=process.revision if process else None,
            version=process.version if process else None,
            started_at=(process.started_at or None) if process else None,
            forced=bool(process and process.forced),
        )

    async def formed(self) -> bool:
        return self.dir.read_facts().formed

    async def mark_formed(self) -> None:
        facts = self.dir.read_facts()
        if not facts.formed:
            facts.formed = True
            facts.formed_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self.dir.write_facts(facts)

    async def formation(self, desired: Desired) -> Formation:
        # The controller is the only authority here; it records the initial set the
        # first time it is asked, and never changes it.
        facts = self.dir.read_facts()
        if facts.initial_members is None:
            facts.initial_members = list(desired.proposed_initial_members())
            self.dir.write_facts(facts)
        return Formation(
            initial_members=tuple(facts.initial_members),
            formed=facts.formed,
            formed_at=facts.formed_at,
        )

    async def recovery(self) -> RecoveryRecord | None:
        data = self.dir.read_facts().recovery
        if not data:
            return None
        return RecoveryRecord(
            from_member=data["from_member"],
            at=float(data["at"]),
            lost=tuple(data.get("lost", ())),
            lost_ids=tuple(data.get("lost_ids", ())),
            applied_index=data.get("applied_index"),
            request=data.get("request", ""),
            revision=data.get("revision"),
        )

    async def record_recovery(self, record: RecoveryRecord) -> None:
        facts = self.dir.read_facts()
        facts.recovery = asdict(record)
        self.dir.write_facts(facts)

    async def start_forced(self, member: str, revision: str) -> None:
        # With its data directory in place etcd ignores the initial cluster; it names
        # only the member itself, the cluster it becomes.
        own = [(member, self.peer_url(member))]
        await self.start(member, StartMode.EXISTING, own, revision, require_data=True, forced=True)

    def _cluster_token(self) -> str:
        facts = self.dir.read_facts()
        if not facts.cluster_token:
            facts.cluster_token = f"{self.federation.name}-{secrets.token_hex(4)}"
            self.dir.write_facts(facts)
        return facts.cluster_token

    # --- actions
    async def start(
        self,
        member: str,
        mode: StartMode,
        initial_cluster: Sequence[tuple[str, str]],
        revision: str,
        *,
        initial_leader: bool = False,
        require_data: bool = False,
        forced: bool = False,
    ) -> None:
        existing = self.dir.read_process(member)
        if existing is not None and processes.is_alive(existing.record):
            return
        if existing is not None and time.time() - existing.started_at < RESTART_BACKOFF:
            # It died right after its last start: do not spin (a kubelet's CrashLoopBackOff).
            raise MemberStartBackoff(
                f"{member} exited within {RESTART_BACKOFF:.0f}s of its last start; see "
                f"{self.dir.member_log(member)}; retrying after the back-off"
            )
        spec = self.federation.spec
        if require_data and not has_consensus_data(spec.engine, self.dir.data_dir(member)):
            raise MemberDataLost(
                f"{member} ran before but {self.dir.data_dir(member)} holds no "
                f"{spec.engine.value} data; not starting it empty (the controller replaces it)"
            )
        binary, exact = find_binary(spec.engine, spec.version)
        ports = self._ports(member)
        if (
            mode is StartMode.NEW
            and spec.from_backup is not None
            and not self.dir.read_facts().formed
            and not has_consensus_data(spec.engine, self.dir.data_dir(member))
        ):
            # An initial member of a federation that starts from a backup: its data
            # directory is the verified snapshot, restored with the new member list
            # (`up` fetched and checked it before anything started).
            await restore_member(
                self.dir,
                member,
                initial_cluster=list(initial_cluster),
                cluster_token=self._cluster_token(),
                peer_url=self.peer_url(member),
            )
        for pid in processes.find_by_argument(f"--data-dir={self.dir.data_dir(member)}"):
            orphan = processes.record_of(pid)
            if orphan is not None:
                log.warning("stopping an unrecorded process of this member", member=member, pid=pid)
                await asyncio.to_thread(processes.stop, orphan)
        for port in (ports.client, ports.peer):
            if not port_free(port):
                raise RuntimeError(
                    f"port {port} of {member} is taken by another program; stop it or run "
                    f"`xlinefed local down {self.federation.name} --purge` and start again"
                )
        tls = (
            self.pki.ensure(member, now=datetime.now(UTC), server=True)
            if self.pki is not None
            else None
        )
        launch = LaunchSpec(
            engine=spec.engine,
            binary=binary,
            name=member,
            data_dir=str(self.dir.data_dir(member)),
            listen_client_url=self.client_url(member),
            advertise_client_url=self.client_url(member),
            listen_peer_url=self.peer_url(member),
            advertise_peer_url=self.peer_url(member),
            initial_cluster=initial_cluster,
            mode=mode,
            cluster_token=self._cluster_token(),
            version=spec.version,
            extra_args=spec.engine_args,
            initial_leader=initial_leader,
            metrics_port=ports.metrics,
            force_new_cluster=forced,
            tls=tls,
        )
        self.dir.member_dir(member).mkdir(parents=True, exist_ok=True)
        log_path = self.dir.member_log(member)
        # Where this process's output starts: the log is appended to across restarts.
        offset = log_path.stat().st_size if log_path.exists() else 0
        record = processes.spawn(command(launch), log_path)
        self.dir.write_process(
            member,
            MemberProcess(record, revision, spec.version, time.time(), offset, forced=forced),
        )
        log.info(
            "member started",
            member=member,
            pid=record.pid,
            mode=mode.value,
            exact=exact,
            revision=revision,
            forced=forced,
        )

    async def stop(self, member: str) -> None:
        process = self.dir.read_process(member)
        if process is not None:
            await asyncio.to_thread(processes.stop, process.record)
            # Stopped on purpose: the next start is no crash loop and needs no back-off.
            process.started_at = 0.0
            self.dir.write_process(member, process)
            log.info("member stopped", member=member, pid=process.record.pid)

    async def delete(self, member: str, delete_data: bool) -> None:
        await self.stop(member)
        if delete_data:
            self.dir.remove_member_dir(member)
            facts = self.dir.read_facts()
            facts.ports.pop(member, None)
            self.dir.write_facts(facts)
        else:
            self.dir.forget_process(member)
        log.info("member deleted", member=member, data="deleted" if delete_data else "kept")

    async def wipe_data(self, member: str) -> None:
        self.dir.wipe_data(member)
