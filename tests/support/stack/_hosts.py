"""Tagged entries in /etc/hosts: how pods' DNS names resolve without a cluster DNS.

Each entry the hostlet writes ends with `# xlinefed-stack <stack id> <cluster> <pod uid>`,
so entries of one pod, one cluster or one whole stack can be removed without touching
anyone else's lines. Writers (several hostlet processes) serialise on an flock'ed lock
file and rewrite /etc/hosts in place (it may be a bind mount, so no rename).

Resolvers re-read /etc/hosts: glibc on every lookup, Go programs (etcd) when its mtime
changed and their 5-second cache expired, so a new name can take up to 5 s to resolve
in a Go process.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable
from pathlib import Path

HOSTS = Path(os.environ.get("XLINEFED_STACK_HOSTS", "/etc/hosts"))
LOCK = Path(os.environ.get("XLINEFED_STACK_HOSTS_LOCK", "/tmp/xlinefed-stack-hosts.lock"))
TAG = "# xlinefed-stack"


def _tag(stack: str, cluster: str = "", uid: str = "") -> str:
    return " ".join(part for part in (TAG, stack, cluster, uid) if part)


def _rewrite(edit: Callable[[list[str]], list[str]]) -> None:
    with open(LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            lines = HOSTS.read_text().splitlines()
            new = edit(lines)
            if new != lines:
                with open(HOSTS, "r+") as hosts:
                    hosts.seek(0)
                    hosts.write("\n".join(new) + "\n")
                    hosts.truncate()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _matches(line: str, prefix: str) -> bool:
    index = line.find(TAG)
    return index >= 0 and (line[index:] + " ").startswith(prefix + " ")


def set_entries(stack: str, cluster: str, uid: str, ip: str, names: Iterable[str]) -> None:
    """Make `names` resolve to `ip` (replacing earlier entries of that pod)."""
    tag = _tag(stack, cluster, uid)
    wanted = [f"{ip} {name} {tag}" for name in sorted(set(names))]

    def edit(lines: list[str]) -> list[str]:
        return [line for line in lines if not _matches(line, tag)] + wanted

    _rewrite(edit)


def remove_entries(stack: str, cluster: str = "", uid: str = "") -> None:
    """Remove the entries of one pod, of one cluster, or (only `stack`) of a whole stack."""
    tag = _tag(stack, cluster, uid)
    _rewrite(lambda lines: [line for line in lines if not _matches(line, tag)])


def entries(stack: str, cluster: str = "") -> list[tuple[str, str]]:
    """(ip, name) of the tagged entries of a stack (or of one of its clusters)."""
    tag = _tag(stack, cluster)
    found = []
    for line in HOSTS.read_text().splitlines():
        if _matches(line, tag):
            ip, name = line.split()[:2]
            found.append((ip, name))
    return found
