"""Partitioning whole member clusters of a local federation on loopback.

Every member listens on 127.0.0.1, so addresses cannot tell clusters apart; ports and the
sending process can. The test puts each member in a cgroup (v2) of its cluster: it points
`XLINEFED_BIN_DIR` at a wrapper `etcd-<version>` that moves itself into
`<cgroup2>/xlfchaos-<pid>/<cluster>` and execs the real etcd, so every socket the member
creates belongs to that cgroup (restarts by the controller included). A partition is one
nftables table of our own, on the output hook, matching only loopback traffic to
127.0.0.1 on this federation's member ports:

- a packet from a socket of cluster P to a port of a member outside P (or from outside P
  to a port of P) marks its connection with our conntrack mark and is dropped;
- every later packet of a marked connection, in either direction, is dropped too, so
  connections established before the partition die as well.

Nothing else is touched: the test's own clients and the controller are in no such cgroup
and keep reaching every member (the controller stands for a control plane that can still
see both sides). Healing deletes the table.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

from tests.chaos._federation import ChaosFederation

CGROUP_BASE = Path("/sys/fs/cgroup")
MARK = "0x7a110c05"


def ensure_nft() -> str:
    """The nft binary; installed from Debian's packages when missing (we are root)."""
    found = shutil.which("nft")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "nftables"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, check=True)
        subprocess.run(install, env=env, capture_output=True, check=True)
    found = shutil.which("nft")
    assert found, "apt-get install nftables did not provide `nft`"
    return found


def _cgroup2_of(pid: int) -> str:
    """The cgroup (v2) path of `pid`, relative to the cgroup2 mount."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise AssertionError(f"process {pid} is in no cgroup2 cgroup")


def cgroup2_mount() -> Path:
    for line in Path("/proc/mounts").read_text().splitlines():
        fields = line.split()
        if len(fields) > 2 and fields[2] == "cgroup2":
            return Path(fields[1])
    raise AssertionError(
        "no cgroup2 hierarchy is mounted; the partition tests need one to tell the "
        "clusters' sockets apart (mount -t cgroup2 none /sys/fs/cgroup/unified)"
    )


def nft_table(table: str, body: str, mark: str = MARK) -> str:
    """Our own nftables table: one output chain that drops connections we marked, then
    `body`'s rules (which mark and drop what crosses the cut)."""
    return (
        f"table inet {table} {{\n"
        "  chain out {\n"
        "    type filter hook output priority 0; policy accept;\n"
        f'    oif "lo" ct mark {mark} drop\n'
        f"{body}"
        "  }\n"
        "}\n"
    )


def _destroy_tcp_sockets_of(pid: int) -> None:
    """Abort every TCP connection process `pid` holds (the kernel's sock_destroy)."""
    listing = subprocess.run(
        ["ss", "-tnpH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    for line in listing.splitlines():
        if f"pid={pid}," not in line:
            continue
        local, peer = line.split()[2:4]
        subprocess.run(["ss", "-K", "src", local, "dst", peer], capture_output=True, check=False)


class Partitioner:
    def __init__(self, federation_name: str, bin_dir: Path) -> None:
        self.nft = ensure_nft()
        self.federation_name = federation_name
        self.mount = cgroup2_mount()
        self.cgroup = self.mount / f"xlfchaos-{os.getpid()}"
        self.table = f"xlfchaos_{os.getpid()}"
        self.bin_dir = bin_dir
        self.active = False

    # --- setup
    def install_wrapper(self, version: str) -> dict[str, str]:
        """Write the etcd wrapper; returns the environment the CLI must run with."""
        real = shutil.which("etcd")
        assert real, "etcd is not on PATH (apt-get install etcd-server)"
        self.cgroup.mkdir(exist_ok=True)
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        wrapper = self.bin_dir / f"etcd-{version}"
        wrapper.write_text(
            "#!/bin/sh\n"
            "# chaos tests: run this member in its cluster's cgroup, then become etcd\n"
            'for arg in "$@"; do case "$arg" in --name=*) name="${arg#--name=}";; esac; done\n'
            f'rest="${{name#{self.federation_name}-}}"; cluster="${{rest%-*}}"\n'
            # every start, refused or not, one line: the record of what the controller ran
            f'echo "$$ $*" >> "{self.starts_log}"\n'
            f'if [ -e "{self.bin_dir}/refuse-$cluster" ]; then\n'
            '  echo "chaos wrapper: cluster $cluster is gone for good; not starting" >&2\n'
            "  exit 1\n"
            "fi\n"
            f'mkdir -p "{self.cgroup}/$cluster"\n'
            f'echo $$ > "{self.cgroup}/$cluster/cgroup.procs"\n'
            f'exec {real} "$@"\n'
        )
        wrapper.chmod(0o755)
        return {"XLINEFED_BIN_DIR": str(self.bin_dir)}

    @property
    def starts_log(self) -> Path:
        """One line per member start the wrapper saw: `<pid> <etcd arguments>`."""
        return self.bin_dir / "starts.log"

    def starts(self) -> list[str]:
        return self.starts_log.read_text().splitlines() if self.starts_log.exists() else []

    def refuse(self, cluster: str) -> None:
        """From now on the wrapper refuses to start members of `cluster` (exit 1)."""
        (self.bin_dir / f"refuse-{cluster}").touch()

    def _nft_path(self, cluster: str) -> tuple[str, int]:
        """(path as nft wants it: relative to /sys/fs/cgroup, level in the hierarchy)."""
        path = self.cgroup / cluster
        path.mkdir(exist_ok=True)
        level = len(path.relative_to(self.mount).parts)
        return str(path.relative_to(CGROUP_BASE)), level

    # --- the partition
    def rules(self, federation: ChaosFederation, isolated: str) -> str:
        facts = federation.dir.read_facts()
        clusters = sorted(federation.desired())
        prefix = f"{federation.name}-"

        def ports(cluster: str) -> list[int]:
            return sorted(
                port
                for member, pair in facts.ports.items()
                if member.startswith(f"{prefix}{cluster}-")
                for port in (pair.client, pair.peer)
            )

        def rule(sender: str, to: list[int]) -> str:
            path, level = self._nft_path(sender)
            targets = ", ".join(map(str, to))
            return (
                f'    oif "lo" ip daddr 127.0.0.1 socket cgroupv2 level {level} "{path}" '
                f"tcp dport {{ {targets} }} ct mark set {MARK} drop\n"
            )

        inside = ports(isolated)
        outside = sorted(p for c in clusters if c != isolated for p in ports(c))
        assert inside and outside, (isolated, clusters)
        body = rule(isolated, outside)
        body += "".join(rule(c, inside) for c in clusters if c != isolated)
        return nft_table(self.table, body)

    def rules_for_new(self, federation: ChaosFederation, isolated: str) -> str:
        """`rules` for a cluster whose members have no ports yet (it is about to be added):
        its sockets may not reach the others' ports, and the others' sockets may not open
        a connection to any port but their own clusters' (replies to clients are not new
        connections, so the test and the controller still reach everyone)."""
        facts = federation.dir.read_facts()
        others = sorted(c for c in federation.desired() if c != isolated)
        prefix = f"{federation.name}-"
        known = sorted(
            port
            for member, pair in facts.ports.items()
            if any(member.startswith(f"{prefix}{c}-") for c in others)
            for port in (pair.client, pair.peer)
        )
        assert known and others, (isolated, others)
        ports = ", ".join(map(str, known))
        path, level = self._nft_path(isolated)
        body = (
            f'    oif "lo" ip daddr 127.0.0.1 socket cgroupv2 level {level} "{path}" '
            f"tcp dport {{ {ports} }} ct mark set {MARK} drop\n"
        )
        for cluster in others:
            path, level = self._nft_path(cluster)
            body += (
                f'    oif "lo" ip daddr 127.0.0.1 socket cgroupv2 level {level} "{path}" '
                f"ct direction original tcp dport != {{ {ports} }} ct mark set {MARK} drop\n"
            )
        return nft_table(self.table, body)

    def move_into(self, pid: int, cluster: str) -> str:
        """Put process `pid` (one this test started) in `cluster`'s cgroup, so that a
        partition of that cluster cuts it off too; returns the cgroup it was in.

        The rules match a socket by the cgroup it was created in, so the connections the
        process already holds (the controller keeps its gRPC channels open across passes)
        would still pass: they are destroyed (`ss -K`), as a real partition breaks them,
        and every new one is made in the new cgroup."""
        previous = _cgroup2_of(pid)
        self._nft_path(cluster)
        (self.cgroup / cluster / "cgroup.procs").write_text(f"{pid}\n")
        _destroy_tcp_sockets_of(pid)
        return previous

    def move_back(self, pid: int, previous: str) -> None:
        (self.mount / previous.lstrip("/") / "cgroup.procs").write_text(f"{pid}\n")

    @contextlib.contextmanager
    def _applied(self, ruleset: str) -> Iterator[None]:
        subprocess.run([self.nft, "-f", "-"], input=ruleset, text=True, check=True)
        self.active = True
        try:
            yield
        finally:
            self.heal()

    def isolate_new(self, federation: ChaosFederation, cluster: str) -> ContextManager[None]:
        """`isolate` for a cluster about to be added (see `rules_for_new`)."""
        return self._applied(self.rules_for_new(federation, cluster))

    def isolate(self, federation: ChaosFederation, cluster: str) -> ContextManager[None]:
        return self._applied(self.rules(federation, cluster))

    def heal(self) -> None:
        if self.active:
            subprocess.run([self.nft, "delete", "table", "inet", self.table], check=False)
            self.active = False

    def cleanup(self) -> list[str]:
        """Remove the table and our cgroups (after the members are stopped)."""
        self.heal()
        problems = []
        if self.cgroup.exists():
            for child in sorted(self.cgroup.iterdir()):
                if child.is_dir():
                    try:
                        child.rmdir()
                    except OSError as error:
                        problems.append(f"{child}: {error}")
            try:
                self.cgroup.rmdir()
            except OSError as error:
                problems.append(f"{self.cgroup}: {error}")
        return problems
