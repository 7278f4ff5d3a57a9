"""What the `xlinefed local` commands do, without the printing: edit the desired spec,
start the controller, and wait for it to report convergence."""

from __future__ import annotations

import shlex
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from xlinefed.api.engines import profile
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineFederation
from xlinefed.api.validation import (
    XLINE_NO_FORCE_NEW_CLUSTER,
    Problem,
    SpecError,
    change_problems,
)
from xlinefed.launch import TLSFiles
from xlinefed.platforms.local import processes
from xlinefed.platforms.local.controller import (
    controller_alive,
    ensure_controller,
    stop_controller,
)
from xlinefed.platforms.local.pki import CLIENT, LocalPKI, tls_spec
from xlinefed.platforms.local.platform import find_binary, loopback_url
from xlinefed.platforms.local.state import FederationDir
from xlinefed.topology import desired_members


class NotFound(LookupError):
    pass


class NotConverged(TimeoutError):
    pass


def federation_dir(root: Path, name: str) -> FederationDir:
    directory = FederationDir(root, name)
    if not directory.exists():
        raise NotFound(
            f"no local federation '{name}' under {root}; "
            "create one with `xlinefed local up -f FILE` (see `xlinefed local list`)"
        )
    return directory


def _with_generation(federation: XlineFederation, generation: int) -> XlineFederation:
    meta = federation.metadata.model_copy(update={"generation": generation})
    return federation.model_copy(update={"metadata": meta})


def apply_spec(root: Path, federation: XlineFederation) -> int:
    """Write a new desired spec (validated against the running one); returns its generation."""
    directory = FederationDir(root, federation.name)
    generation = 1
    current = directory.read_spec() if directory.exists() else None
    if current is not None:
        formed = directory.read_facts().formed
        if problems := change_problems(current.spec, federation.spec, formed=formed):
            raise SpecError(problems)
    # After the change checks (a refused change says why first), before anything is written.
    find_binary(federation.spec.engine, federation.spec.version)
    if current is not None:
        generation = (current.metadata.generation or 0) + 1
        if current.spec == federation.spec:
            generation = current.metadata.generation or 1
    directory.write_spec(_with_generation(federation, generation))
    ensure_controller(root, federation.name)
    return generation


def edit_spec(root: Path, name: str, change: Callable[[dict[str, Any]], None]) -> int:
    directory = federation_dir(root, name)
    data = directory.read_spec().to_wire()
    change(data["spec"])
    return apply_spec(root, parse(XlineFederation, data))


def parse_assignments(items: list[str], what: str) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError([Problem(what, f"'{item}' is not KEY=VALUE", f"write e.g. {what}")])
        result[key] = value
    return result


def scale(root: Path, name: str, assignments: dict[str, str]) -> int:
    counts: dict[str, int] = {}
    for cluster, value in assignments.items():
        if not value.isdigit():
            raise SpecError(
                [
                    Problem(
                        f"{cluster}",
                        f"replicas '{value}' is not a whole number",
                        f"write {cluster}=N with N >= 0",
                    )
                ]
            )
        counts[cluster] = int(value)

    def change(spec: dict[str, Any]) -> None:
        clusters = [dict(c) for c in spec["clusters"]]
        for cluster, replicas in counts.items():
            entry = next((c for c in clusters if c["id"] == cluster), None)
            if entry is None:
                # Plain data: the id is validated with the whole spec in `edit_spec`, so a
                # bad id is reported as a spec problem instead of escaping as a traceback.
                clusters.append({"id": cluster, "replicas": replicas})
            else:
                entry["replicas"] = replicas
        # A cluster scaled to zero leaves the federation once drained.
        spec["clusters"] = [c for c in clusters if c["replicas"] > 0] or clusters
        partitions = spec.get("updateStrategy", {}).get("partitions", {})
        for cluster in list(partitions):
            if cluster not in {c["id"] for c in spec["clusters"]}:
                del partitions[cluster]

    return edit_spec(root, name, change)


def upgrade(root: Path, name: str, version: str | None, args: dict[str, str]) -> int:
    if version is None and not args:
        raise SpecError(
            [
                Problem(
                    "--version/--set",
                    "nothing to change",
                    "pass --version V and/or --set KEY=VALUE",
                )
            ]
        )

    def change(spec: dict[str, Any]) -> None:
        if version is not None:
            spec["version"] = version
        engine_args = dict(spec.get("engineArgs", {}))
        for key, value in args.items():
            if value == "":
                engine_args.pop(key, None)
            else:
                engine_args[key] = value
        spec["engineArgs"] = engine_args

    return edit_spec(root, name, change)


@dataclass(frozen=True)
class Progress:
    status: dict[str, Any] | None
    elapsed: float
    controller_restarted: bool


def wait_converged(
    root: Path,
    name: str,
    generation: int,
    timeout: float,
    on_progress: Callable[[Progress], None] = lambda _: None,
    interval: float = 0.2,
) -> dict[str, Any]:
    """Block until the controller reports the spec of `generation` reached."""
    directory = federation_dir(root, name)
    started = time.monotonic()
    while True:
        restarted = ensure_controller(root, name)
        status = directory.read_status()
        on_progress(Progress(status, time.monotonic() - started, restarted))
        if (
            status
            and status.get("converged")
            and (status.get("observedGeneration") or 0) >= generation
        ):
            return status
        if time.monotonic() - started > timeout:
            step = (status or {}).get("currentStep") or {}
            raise NotConverged(
                f"'{name}' has not reached its spec after {timeout:.0f}s; the controller is "
                f"at: {step.get('reason') or step.get('kind') or 'unknown'}. It keeps working "
                f"in the background: watch `xlinefed local status {name} --watch`, read "
                f"{directory.controller_log}, or run the command again with a longer --timeout"
            )
        time.sleep(interval)


class RecoveryRefused(RuntimeError):
    """A quorum-loss recovery was refused (or not carried out in time); says why."""


#: How long a refusal must stand before `wait_recovered` reports it (a member that only
#: timed out once is asked again on the next pass).
REFUSAL_SETTLE = 2.0


def request_recovery(
    root: Path, name: str, from_member: str | None, requested_at: str, requested_by: str
) -> tuple[int, str]:
    """Write spec.recovery (explicit with `from_member`, else automatic); returns the
    generation and the request's key (what status.recovery.request answers)."""
    directory = federation_dir(root, name)
    spec = directory.read_spec().spec
    if profile(spec.engine).force_new_cluster_flag is None:
        raise RecoveryRefused(
            f"{name} runs {spec.engine.value}: {XLINE_NO_FORCE_NEW_CLUSTER}. Restore a new "
            "federation from a backup instead: `xlinefed local up -f SPEC --from-backup URI` "
            "(docs/recovery.md)"
        )
    members = sorted(m.name for m in desired_members(directory.read_spec()))
    if from_member is not None and from_member not in members:
        raise RecoveryRefused(
            f"--from {from_member}: {name} has no such member; its members: {', '.join(members)}"
        )

    def change(data: dict[str, Any]) -> None:
        if from_member is None:
            data["recovery"] = {"automatic": True, "requestedBy": requested_by}
        else:
            data["recovery"] = {
                "fromMember": from_member,
                "requestedAt": requested_at,
                "requestedBy": requested_by,
            }

    key = "automatic" if from_member is None else f"{from_member}@{requested_at}"
    return edit_spec(root, name, change), key


def withdraw_recovery(root: Path, name: str, requested_at: str) -> None:
    """Remove an explicit spec.recovery that was refused, if it is still that one: a
    refused request must not fire later, when nobody is watching."""

    def change(data: dict[str, Any]) -> None:
        if (data.get("recovery") or {}).get("requestedAt") == requested_at:
            data.pop("recovery", None)

    edit_spec(root, name, change)


def wait_recovered(
    root: Path,
    name: str,
    generation: int,
    key: str,
    timeout: float,
    on_progress: Callable[[Progress], None] = lambda _: None,
    interval: float = 0.2,
) -> dict[str, Any]:
    """Block until status.recovery says the request `key` was carried out (Recovered);
    raise RecoveryRefused with the controller's reason once a refusal has stood for
    REFUSAL_SETTLE seconds, or at the timeout."""
    directory = federation_dir(root, name)
    started = time.monotonic()
    refused_since: float | None = None
    while True:
        restarted = ensure_controller(root, name)
        status = directory.read_status() or {}
        on_progress(Progress(status, time.monotonic() - started, restarted))
        recovery = status.get("recovery") or {}
        if recovery.get("request") == key and recovery.get("phase") == "Recovered":
            return status
        step = status.get("currentStep") or {}
        current = (status.get("observedGeneration") or 0) >= generation
        now = time.monotonic()
        if current and step.get("code") == "RecoveryRefused" and recovery.get("request") != key:
            refused_since = now if refused_since is None else refused_since
            if now - refused_since >= REFUSAL_SETTLE:
                raise RecoveryRefused(f"refused: {recovery.get('message') or step.get('reason')}")
        else:
            refused_since = None
        if now - started > timeout:
            raise RecoveryRefused(
                f"not carried out within {timeout:.0f}s; the controller is at: "
                f"{recovery.get('message') or step.get('reason') or 'unknown'}"
            )
        time.sleep(interval)


def down(root: Path, name: str, purge: bool) -> list[str]:
    directory = federation_dir(root, name)
    stop_controller(directory)
    stopped = []
    for member in directory.members_on_disk():
        process = directory.read_process(member)
        if process is not None and processes.is_alive(process.record):
            processes.stop(process.record)
            stopped.append(member)
        directory.forget_process(member)
    if purge:
        shutil.rmtree(directory.path)
    return stopped


def controller_running(root: Path, name: str) -> bool:
    return controller_alive(federation_dir(root, name))


# --- where clients connect


def _tls_on(directory: FederationDir) -> bool:
    try:
        return tls_spec(directory, directory.read_spec()) is not None
    except (FileNotFoundError, SpecError):
        return False


def client_urls(directory: FederationDir) -> dict[str, str]:
    """Each member's client URL, from the ports the controller allocated. Read only: a
    member without ports yet has no URL (only the controller allocates)."""
    tls = _tls_on(directory)
    return {
        member: loopback_url(p.client, tls=tls)
        for member, p in directory.read_facts().ports.items()
    }


def with_client_urls(status: dict[str, Any], urls: Mapping[str, str]) -> dict[str, Any]:
    """`status` with each member's `clientUrl` beside what the controller reported."""
    members = [
        {**m, "clientUrl": urls[m["name"]]} if m.get("name") in urls else dict(m)
        for m in status.get("members", [])
    ]
    return {**status, "members": members}


def voter_client_urls(members: Sequence[Mapping[str, Any]], urls: Mapping[str, str]) -> list[str]:
    """The client URLs of the voters, in status order. Learners are left out: they refuse
    most client RPCs ("rpc not supported for learner"), and a client that picks one fails
    while a scale-out is under way. Members not in the member list serve nothing."""
    return [urls[m["name"]] for m in members if m.get("role") == "voter" and m.get("name") in urls]


class NoVoters(LookupError):
    pass


def voter_endpoints(root: Path, name: str) -> list[str]:
    directory = federation_dir(root, name)
    urls = voter_client_urls(
        (directory.read_status() or {}).get("members", []), client_urls(directory)
    )
    if not urls:
        raise NoVoters(
            f"no voter of '{name}' is known yet: the controller has not reported one; wait "
            f"for `xlinefed local up` to return, or see `xlinefed local status {name}`"
        )
    return urls


def client_environment(
    endpoints: Sequence[str], tls: TLSFiles | None = None
) -> list[tuple[str, str]]:
    """The variables that point etcdctl (and clients reading the same names) at the
    store, in the order they are printed; with TLS, the CA and the client certificate."""
    variables = [("ETCDCTL_API", "3"), ("ETCDCTL_ENDPOINTS", ",".join(endpoints))]
    if tls is not None:
        variables += [
            ("ETCDCTL_CACERT", tls.ca),
            ("ETCDCTL_CERT", tls.cert),
            ("ETCDCTL_KEY", tls.key),
        ]
    return variables


def client_certificate(root: Path, name: str) -> TLSFiles | None:
    """The application client certificate of a federation with TLS on (None when off)."""
    directory = federation_dir(root, name)
    tls = tls_spec(directory, directory.read_spec())
    if tls is None:
        return None
    files = LocalPKI(directory, tls).files(CLIENT)
    if not Path(files.cert).exists():
        raise NotFound(
            f"'{name}' has no client certificate yet: the controller issues it on its first "
            f"pass; wait for `xlinefed local up` to return, or see `xlinefed local status {name}`"
        )
    return files


def request_certificate_renewal(root: Path, name: str) -> None:
    """Ask the controller to issue every certificate of the federation again (same CA)."""
    directory = federation_dir(root, name)
    tls = tls_spec(directory, directory.read_spec())
    if tls is None:
        raise NotFound(f"'{name}' runs without TLS (spec.tls.enabled is false): nothing to renew")
    LocalPKI(directory, tls).request_renewal(datetime.now(UTC))


def shell_exports(variables: Sequence[tuple[str, str]]) -> str:
    return "".join(f"export {key}={shlex.quote(value)}\n" for key, value in variables)
