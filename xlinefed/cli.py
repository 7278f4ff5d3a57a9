"""`xlinefed …`: the command line. Parsing and printing only; the work is elsewhere.

typer (on click) for commands and help, rich for tables and progress. Both consoles have
markup and emoji codes off: what they print is user and engine text (names, spec values,
error messages), which must come out exactly as written; styling is added with `Text`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from xlinefed import __version__
from xlinefed.api.engines import Engine
from xlinefed.api.loading import load_federation_yaml, parse
from xlinefed.api.models import XlineFederation
from xlinefed.api.validation import SpecError
from xlinefed.platforms.local import commands as local_ops
from xlinefed.platforms.local.platform import EngineNotFound
from xlinefed.platforms.local.state import FederationDir, default_root, list_federations

app = typer.Typer(
    help="Run one Xline/etcd consensus cluster across many clusters, or on this machine.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
local = typer.Typer(help="Run a whole federation as local processes.", no_args_is_help=True)
app.add_typer(local, name="local")

# Pipes and CI logs get wide lines instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 160, markup=False, emoji=False)
errors = Console(stderr=True, width=None if sys.stderr.isatty() else 160, markup=False, emoji=False)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"xlinefed {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    # Only the eager --version lives here; typer needs a callback to carry an app option.
    pass


StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar="XLINEFED_STATE_DIR",
        help="Where local federations live (default: ~/.local/state/xlinefed).",
    ),
]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the spec to be reached.")]


def _root(state_dir: Path | None) -> Path:
    return state_dir or default_root()


def _labelled(label: str, style: str, message: str) -> Text:
    return Text.assemble((label, style), " ", message)


def _fail(message: str, code: int = 1) -> typer.Exit:
    # soft_wrap: one message stays one line, however long its paths.
    errors.print(_labelled("error:", "bold red", message), highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _spec_fail(error: SpecError) -> typer.Exit:
    errors.print(_labelled("error:", "bold red", "the spec is not valid:"), highlight=False)
    for problem in error.problems:
        line = Text.assemble("  • ", (problem.field, "bold"), f": {problem.message}; {problem.fix}")
        errors.print(line, highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _progress_line(status: dict[str, Any] | None, elapsed: float) -> Text:
    if not status:
        return Text(f"[{elapsed:5.1f}s] starting the controller…")
    step = status.get("currentStep") or {}
    what = Text(step.get("reason") or "reached")
    if status.get("error"):
        what = Text(str(status["error"]), style="red")
    return Text.assemble(
        f"[{elapsed:5.1f}s] {status.get('phase', '?'):<13} ready {status.get('ready', '?'):<5} "
        f"leader {status.get('leader') or '-':<22} ",
        what,
    )


def _wait(root: Path, name: str, generation: int, timeout: float) -> dict[str, Any]:
    last = ""
    interactive = console.is_terminal
    with Live(console=console, transient=True, auto_refresh=False) as live:

        def show(progress: local_ops.Progress) -> None:
            nonlocal last
            line = _progress_line(progress.status, progress.elapsed)
            if progress.controller_restarted:
                console.print("controller was not running; started it")
            if interactive:
                live.update(line, refresh=True)
            else:
                # Non-interactive output (CI, pipes): print a line only when it changes.
                core = line.plain.split("] ", 1)[-1]
                if core != last:
                    console.print(line, highlight=False)
                    last = core

        try:
            return local_ops.wait_converged(root, name, generation, timeout, show)
        except local_ops.NotConverged as error:
            raise _fail(str(error)) from None


def _run_change(root: Path, name: str, action: Any, timeout: float) -> None:
    try:
        generation = action()
    except SpecError as error:
        raise _spec_fail(error) from None
    except (local_ops.NotFound, EngineNotFound) as error:
        raise _fail(str(error)) from None
    status = _wait(root, name, generation, timeout)
    console.print(_labelled("✓", "green", f"{name} reached generation {generation}"))
    print_table(
        local_ops.with_client_urls(status, local_ops.client_urls(FederationDir(root, name)))
    )


def _read_spec_file(file: Path) -> str:
    """The text of a spec file; anything that is not a readable UTF-8 text file ends the
    command with one line that names the file."""
    try:
        raw = file.read_bytes()
    except FileNotFoundError:
        raise _fail(f"{file} does not exist; pass an XlineFederation YAML with -f") from None
    except IsADirectoryError:
        raise _fail(
            f"{file} is a directory; pass an XlineFederation YAML file with -f", 2
        ) from None
    except OSError as error:
        raise _fail(f"{file} cannot be read ({error.strerror}); check the path", 2) from None
    # NUL never occurs in YAML text, and valid UTF-8 binaries would otherwise reach the
    # YAML parser and come back as a multi-line complaint about a control character.
    if b"\0" in raw:
        raise _fail(f"{file} is not a text file; pass an XlineFederation YAML with -f", 2)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _fail(
            f"{file} is not UTF-8 text (byte {error.start} is 0x{raw[error.start]:02x}); "
            "save it as UTF-8 YAML",
            2,
        ) from None


@local.command("up")
def up(
    file: Annotated[Path, typer.Option("-f", "--file", help="An XlineFederation YAML file.")],
    from_backup: Annotated[
        str | None,
        typer.Option(
            "--from-backup",
            metavar="URI",
            help="Start a new federation from this backup (s3://bucket/key, or "
            "s3://bucket/prefix/ for the newest there): sets spec.fromBackup.",
        ),
    ] = None,
    state_dir: StateDir = None,
    timeout: Timeout = 180.0,
) -> None:
    """Create (or update) a local federation from FILE; returns once it is Available.
    With spec.fromBackup (or --from-backup) the backup is downloaded and verified first;
    nothing starts unless it is whole."""
    try:
        federation = load_federation_yaml(_read_spec_file(file))
        if from_backup is not None:
            federation = _with_from_backup(federation, from_backup)
    except SpecError as error:
        raise _spec_fail(error) from None
    root = _root(state_dir)
    _restore_first(root, federation)
    _run_change(root, federation.name, lambda: local_ops.apply_spec(root, federation), timeout)


def _with_from_backup(federation: XlineFederation, uri: str) -> XlineFederation:
    """The federation with spec.fromBackup.uri set (validated like the file's fields)."""
    data = federation.to_wire()
    source = dict(data["spec"].get("fromBackup") or {})
    source["uri"] = uri
    data["spec"]["fromBackup"] = source
    return parse(XlineFederation, data)


def _bytes(size: int | None) -> str:
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def _transfer(description: str) -> Any:
    """A byte progress bar for a download or an upload (total when known)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    return Progress(
        TextColumn(description),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _restore_first(root: Path, federation: XlineFederation) -> None:
    from xlinefed.backups.run import RestoreError
    from xlinefed.backups.store import StoreError
    from xlinefed.platforms.local.backups import prepare_restore

    if federation.spec.from_backup is None:
        return
    with _transfer("fetching the backup") as progress:
        task = progress.add_task("fetch", total=None)

        def show(got: int, total: int | None) -> None:
            progress.update(task, completed=got, total=total)

        try:
            manifest = prepare_restore(root, federation, show)
        except (RestoreError, StoreError, ValueError) as error:
            raise _fail(f"{error}") from None
    if manifest is None:
        return
    console.print(
        _labelled(
            "✓",
            "green",
            f"verified {manifest.uri}: {_bytes(manifest.size)}, revision {manifest.revision}, "
            f"sha256 {manifest.sha256[:16]}…; restoring it into the initial members",
        ),
        highlight=False,
    )


@local.command("scale")
def scale(
    name: str,
    assignments: Annotated[list[str], typer.Argument(help="CLUSTER=N, one or more.")],
    state_dir: StateDir = None,
    timeout: Timeout = 300.0,
) -> None:
    """Set replicas per cluster (several at once is safe); a new id adds a cluster, N=0
    drains and removes one."""
    root = _root(state_dir)

    def action() -> int:
        return local_ops.scale(root, name, local_ops.parse_assignments(assignments, "CLUSTER=N"))

    _run_change(root, name, action, timeout)


@local.command("upgrade")
def upgrade(
    name: str,
    version: Annotated[str | None, typer.Option(help="The engine version to roll to.")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Engine flag KEY=VALUE (without dashes); KEY= removes it."),
    ] = None,
    state_dir: StateDir = None,
    timeout: Timeout = 300.0,
) -> None:
    """Rolling update: one member at a time, leader last, never losing quorum."""
    root = _root(state_dir)

    def action() -> int:
        args = local_ops.parse_assignments(set_ or [], "--set KEY=VALUE")
        return local_ops.upgrade(root, name, version, args)

    _run_change(root, name, action, timeout)


@local.command("recover")
def recover(
    name: str,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="MEMBER",
            help="The surviving member to rebuild from (it must answer and be the most "
            "advanced survivor).",
        ),
    ] = None,
    automatic: Annotated[
        bool,
        typer.Option(
            "--automatic",
            help="Instead: let the controller recover on its own, from the most advanced "
            "survivor, once every lost member has been silent for the grace period.",
        ),
    ] = False,
    state_dir: StateDir = None,
    timeout: Timeout = 300.0,
) -> None:
    """Quorum-loss recovery: a majority of the members is gone for good; rebuild the
    cluster from one survivor (etcd --force-new-cluster), then regrow to the spec one
    member at a time. Refused while a lost member was seen within
    spec.lostClusterGracePeriodSeconds (it may be alive behind a partition)."""
    import getpass
    import socket

    from xlinefed.reporting import now_rfc3339

    if (from_ is None) == (not automatic):
        raise _fail("name the survivor with --from MEMBER, or pass --automatic (not both)", 2)
    root = _root(state_dir)
    requested_at = now_rfc3339()
    command = f"xlinefed local recover {name} " + (f"--from {from_}" if from_ else "--automatic")
    requested_by = f"{getpass.getuser()}@{socket.gethostname()}: {command}"
    try:
        generation, key = local_ops.request_recovery(root, name, from_, requested_at, requested_by)
    except SpecError as error:
        raise _spec_fail(error) from None
    except (local_ops.NotFound, local_ops.RecoveryRefused) as error:
        raise _fail(str(error)) from None
    if from_ is None:
        console.print(
            _labelled(
                "✓",
                "green",
                f"automatic recovery enabled for {name} (spec.recovery.automatic): if a "
                "majority is lost, the controller rebuilds from the most advanced survivor "
                "once every lost member has been silent for the grace period",
            ),
            highlight=False,
        )
        return
    console.print(f"recovery of {name} from {from_} requested at {requested_at}", highlight=False)
    started = time.monotonic()
    try:
        local_ops.wait_recovered(root, name, generation, key, timeout)
    except local_ops.RecoveryRefused as error:
        local_ops.withdraw_recovery(root, name, requested_at)
        raise _fail(f"{error}\nnothing was changed; the request was withdrawn") from None
    done = FederationDir(root, name).read_status() or {}
    print_recovery(done.get("recovery"))
    console.print(f"regrowing {name} to its spec, one member at a time", highlight=False)
    status = _wait(root, name, generation, max(timeout - (time.monotonic() - started), 10.0))
    print_table(
        local_ops.with_client_urls(status, local_ops.client_urls(FederationDir(root, name)))
    )


def print_recovery(recovery: dict[str, Any] | None) -> None:
    """The recovery on record, and what a requested one waits for now."""
    if not recovery:
        return
    if recovery.get("fromMember"):
        revision = recovery.get("revision")
        console.print(
            f"recovery: {recovery.get('phase')} from {recovery['fromMember']} at "
            f"{recovery.get('at')} (request {recovery.get('request') or '-'}); applied index "
            f"{recovery.get('appliedIndex') or '-'}, revision reached "
            f"{'-' if revision is None else revision}; dropped "
            f"{', '.join(recovery.get('lost') or []) or '-'}",
            highlight=False,
        )
    if recovery.get("message"):
        console.print(_labelled("recovery:", "yellow", str(recovery["message"])), highlight=False)


#: The columns of a member row, shared by `xlinefed local status` and `kubectl xlinefed`.
MEMBER_COLUMNS = ("member", "cluster", "role", "leader", "version", "healthy", "raft index", "lag")


def security_text(status: Mapping[str, Any]) -> str | None:
    """One line on what protects the links, from `status.security`; None when unreported."""
    security = status.get("security") or {}
    if not security:
        return None
    if not security.get("tls"):
        return "security: plain text (see the warnings)"
    parts = ["security: mutual TLS", "auth on" if security.get("auth") else "auth not on yet"]
    if fingerprint := security.get("caFingerprint"):
        parts.append(f"CA sha256:{fingerprint[:16]}")
    if expires := security.get("certificatesExpire"):
        parts.append(f"certificates expire {expires}")
    return ", ".join(parts)


def leader_index(members: list[dict[str, Any]]) -> int | None:
    """The leader's applied raft index, which every member's lag is counted from."""
    return max((m.get("raftIndex") or 0 for m in members if m.get("leader")), default=None)


def member_cells(m: dict[str, Any], lead: int | None) -> list[str | Text]:
    """One member of a status document as the cells of MEMBER_COLUMNS; the lag is how
    many raft entries it has applied fewer than the leader (blank when either is unknown)."""
    index = m.get("raftIndex")
    return [
        m["name"],
        m.get("cluster", ""),
        m.get("role") or "-",
        "★" if m.get("leader") else "",
        m.get("version") or "-",
        Text("yes", style="green") if m.get("healthy") else Text("no", style="red"),
        "" if index is None else str(index),
        "" if index is None or lead is None else str(max(lead - index, 0)),
    ]


def print_table(status: dict[str, Any] | None) -> None:
    if not status:
        console.print("no status yet: the controller has not finished a pass")
        return
    table = Table(
        title=f"phase {status.get('phase')}  ·  ready {status.get('ready')}  ·  "
        f"leader {status.get('leader') or '-'}  ·  clusters {status.get('clusters')}"
    )
    for column in (*MEMBER_COLUMNS, "client URL"):
        table.add_column(column, justify="right" if column in ("raft index", "lag") else "left")
    members = status.get("members", [])
    lead = leader_index(members)
    for m in members:
        table.add_row(*member_cells(m, lead), m.get("clientUrl") or "-")
    console.print(table)
    if (security := security_text(status)) is not None:
        console.print(security, highlight=False)
    step = status.get("currentStep")
    if step:
        console.print(f"step: {step.get('kind')} — {step.get('reason')}", highlight=False)
    recovery = status.get("recovery") or {}
    if recovery.get("fromMember"):
        print_recovery({**recovery, "message": None})
    for warning in status.get("warnings", []):
        console.print(_labelled("warning:", "yellow", str(warning)), highlight=False)
    if status.get("error"):
        console.print(_labelled("error:", "red", str(status["error"])), highlight=False)


def _status_with_urls(directory: FederationDir) -> dict[str, Any] | None:
    from xlinefed.platforms.local.backups import status_document

    status = directory.read_status()
    if not status:
        return None
    status = local_ops.with_client_urls(status, local_ops.client_urls(directory))
    backup = status_document(directory)
    return {**status, "backup": backup} if backup else status


@local.command("status")
def status(
    name: str,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Refresh every second.")] = False,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    state_dir: StateDir = None,
) -> None:
    """Members, roles, leader, versions, health, raft index, lag and client URLs."""
    if output not in ("table", "json"):
        raise _fail(f"--output '{output}' is not known; use table or json", 2)
    root = _root(state_dir)
    try:
        directory = local_ops.federation_dir(root, name)
    except local_ops.NotFound as error:
        raise _fail(str(error)) from None
    if output == "json":
        console.print_json(json.dumps(_status_with_urls(directory) or {}))
        return
    if not watch:
        shown = _status_with_urls(directory)
        print_table(shown)
        print_backup((shown or {}).get("backup"))
        if not local_ops.controller_running(root, name):
            console.print(
                _labelled(
                    "note:",
                    "yellow",
                    "the controller is not running; any `xlinefed local` change command "
                    "(or `up -f`) restarts it",
                ),
                highlight=False,
            )
        return
    try:
        while True:
            console.clear()
            shown = _status_with_urls(directory)
            print_table(shown)
            print_backup((shown or {}).get("backup"))
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass


@local.command("endpoints")
def endpoints(name: str, state_dir: StateDir = None) -> None:
    """The voters' client URLs, comma-separated: ready for ETCDCTL_ENDPOINTS or any etcd
    client (learners are left out: they refuse most client RPCs)."""
    try:
        urls = local_ops.voter_endpoints(_root(state_dir), name)
    except (local_ops.NotFound, local_ops.NoVoters) as error:
        raise _fail(str(error)) from None
    sys.stdout.write(",".join(urls) + "\n")


@local.command("env")
def env(name: str, state_dir: StateDir = None) -> None:
    """Shell exports that point etcdctl at the store: eval "$(xlinefed local env NAME)"."""
    try:
        urls = local_ops.voter_endpoints(_root(state_dir), name)
        tls = local_ops.client_certificate(_root(state_dir), name)
    except (local_ops.NotFound, local_ops.NoVoters) as error:
        raise _fail(str(error)) from None
    sys.stdout.write(local_ops.shell_exports(local_ops.client_environment(urls, tls)))


@local.command("renew-certificates")
def renew_certificates(name: str, state_dir: StateDir = None) -> None:
    """Issue every certificate of the federation again from its CA, without a restart
    (members read their certificate files at every new connection)."""
    try:
        local_ops.request_certificate_renewal(_root(state_dir), name)
    except local_ops.NotFound as error:
        raise _fail(str(error)) from None
    console.print(
        f"renewal of every certificate of '{name}' requested; the controller "
        "issues them on its next pass"
    )


@local.command("down")
def down(
    name: str,
    purge: Annotated[bool, typer.Option(help="Also delete data, logs and the spec.")] = False,
    state_dir: StateDir = None,
) -> None:
    """Stop the controller and every member (data is kept unless --purge)."""
    try:
        stopped = local_ops.down(_root(state_dir), name, purge)
    except local_ops.NotFound as error:
        raise _fail(str(error)) from None
    console.print(f"stopped {len(stopped)} member(s){' and purged the state' if purge else ''}")


@local.command("logs")
def logs(
    name: str,
    member: str,
    lines: Annotated[int, typer.Option("--lines", "-n")] = 50,
    state_dir: StateDir = None,
) -> None:
    """The last lines of a member's log (`controller` for the controller's)."""
    try:
        directory = local_ops.federation_dir(_root(state_dir), name)
    except local_ops.NotFound as error:
        raise _fail(str(error)) from None
    path = directory.controller_log if member == "controller" else directory.member_log(member)
    if not path.exists():
        known = ", ".join(directory.members_on_disk()) or "none yet"
        raise _fail(f"no log for '{member}'; members: {known} (or 'controller')")
    for line in path.read_text(errors="replace").splitlines()[-lines:]:
        sys.stdout.write(line + "\n")


@local.command("list")
def list_(state_dir: StateDir = None) -> None:
    """Local federations and their phase."""
    root = _root(state_dir)
    table = Table("name", "phase", "ready", "leader", "clusters", "controller")
    for name in list_federations(root):
        status = FederationDir(root, name).read_status() or {}
        table.add_row(
            name,
            status.get("phase", "-"),
            status.get("ready", "-"),
            status.get("leader") or "-",
            status.get("clusters") or "-",
            "running" if local_ops.controller_running(root, name) else "stopped",
        )
    console.print(table)


@local.command("backup")
def backup(
    name: str,
    to: Annotated[
        str | None,
        typer.Option(
            metavar="URI",
            help="s3://bucket/prefix (default: spec.backup.destination); the endpoint and "
            "credentials still come from spec.backup.destination or the AWS_* variables.",
        ),
    ] = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
    state_dir: StateDir = None,
) -> None:
    """Take a backup now: a snapshot of one healthy member (a follower in another cluster
    than the leader's when there is one), streamed to the object store with its sha256."""
    import asyncio
    from dataclasses import asdict

    from xlinefed.platforms.local import backups as local_backups

    if output not in ("table", "json"):
        raise _fail(f"--output '{output}' is not known; use table or json", 2)
    try:
        directory = local_ops.federation_dir(_root(state_dir), name)
    except local_ops.NotFound as error:
        raise _fail(str(error)) from None
    with _transfer(f"backing up {name}") as progress:
        task = progress.add_task("backup", total=None)

        def show(sent: int, total: int | None) -> None:
            progress.update(task, completed=sent, total=total)

        try:
            result = asyncio.run(local_backups.backup_now(directory, to=to, on_progress=show))
        except (local_backups.BackupBusy, *local_backups.FAILURES) as error:
            raise _fail(str(error)) from None
    if output == "json":
        console.print_json(json.dumps(asdict(result)))
        return
    console.print(_labelled("✓", "green", f"backed up {name} to {result.uri}"), highlight=False)
    table = Table(show_header=False, title="backup")
    table.add_column("field", style="bold")
    table.add_column("value")
    rate = result.size / result.duration / 1e6 if result.duration > 0 else 0.0
    for field, value in (
        ("object", result.uri),
        ("from member", result.member),
        ("revision", str(result.revision)),
        ("size", f"{_bytes(result.size)} ({result.size} bytes)"),
        ("sha256", result.sha256),
        ("started", result.started_at),
        ("duration", f"{result.duration:.2f} s ({rate:.1f} MB/s)"),
        ("pruned", ", ".join(result.pruned) or "-"),
        ("kept", "-" if result.kept is None else str(result.kept)),
    ):
        table.add_row(field, value)
    console.print(table)


def print_backup(backup: dict[str, Any] | None) -> None:
    """status.backup as one small table (nothing when backups were never used)."""
    if not backup:
        return
    table = Table(title="backups")
    for column in ("last success", "size", "duration", "revision", "from", "next run", "failures"):
        table.add_column(column)
    failures = backup.get("consecutiveFailures") or 0
    duration = backup.get("lastDurationSeconds")
    table.add_row(
        backup.get("lastSuccess") or "never",
        _bytes(backup.get("lastSizeBytes")),
        "-" if duration is None else f"{duration:.2f} s",
        str(backup.get("lastRevision") or "-"),
        backup.get("lastMember") or "-",
        backup.get("nextRun") or "-",
        Text(str(failures), style="red") if failures else Text("0"),
    )
    console.print(table)
    if backup.get("lastUri"):
        console.print(f"last backup: {backup['lastUri']}", highlight=False)
    if failures and backup.get("lastError"):
        console.print(
            _labelled(
                "backup failed:", "red", f"{backup['lastError']} (at {backup.get('lastFailure')})"
            ),
            highlight=False,
            soft_wrap=True,
        )


@local.command("controller", hidden=True)
def controller(name: str, state_dir: StateDir = None) -> None:
    """Run the reconcile loop of one federation (started for you by the other commands)."""
    from xlinefed.platforms.local.controller import main

    raise typer.Exit(main(_root(state_dir), name))


@app.command("member-operator")
def member_operator(
    cluster_id: Annotated[str, typer.Option(help="This member cluster's id, as in the spec.")],
    namespace: Annotated[
        str | None, typer.Option(help="Watch one namespace only (default: all).")
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option(envvar="KUBECONFIG", help="Default: the in-cluster config.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on PORT (address: XLINEFED_METRICS_ADDRESS)."),
    ] = None,
) -> None:
    """Run the member operator: reconcile this cluster's XlineCluster objects."""
    from xlinefed.operators.run import run_operator
    from xlinefed.operators.settings import MemberOperatorSettings

    try:
        settings = MemberOperatorSettings.build(
            cluster_id=cluster_id,
            kubeconfig=kubeconfig,
            namespace=namespace,
            metrics_port=metrics_port,
        )
    except ValueError as error:
        raise _fail(str(error), 2) from None
    run_operator("xlinefed.operators.member", settings)


@app.command("federation-operator")
def federation_operator(
    namespace: Annotated[
        str | None, typer.Option(help="Watch one namespace only (default: all).")
    ] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(envvar="KUBECONFIG", help="The Karmada API server (default: in-cluster)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve Prometheus metrics on PORT (address: XLINEFED_METRICS_ADDRESS)."),
    ] = None,
) -> None:
    """Run the federation operator on the Karmada API server."""
    from xlinefed.operators.run import run_operator
    from xlinefed.operators.settings import FederationOperatorSettings

    try:
        settings = FederationOperatorSettings.build(
            kubeconfig=kubeconfig, namespace=namespace, metrics_port=metrics_port
        )
    except ValueError as error:
        raise _fail(str(error), 2) from None
    run_operator("xlinefed.operators.federation", settings)


@app.command("member-guard")
def member_guard(
    data_dir: Annotated[Path, typer.Option(help="The member's data directory.")],
    member: Annotated[str, typer.Option(help="The member's name, for the message.")],
    engine: Annotated[Engine, typer.Option(help="etcd or xline.")] = Engine.ETCD,
    require_data: Annotated[
        bool, typer.Option(help="The member ran before: refuse to start it empty.")
    ] = False,
) -> None:
    """Init container of a member pod: refuse to start a member that lost its data."""
    from xlinefed.platforms.member_guard import guard

    raise typer.Exit(guard(engine, data_dir, member, require_data=require_data))


member_restore = typer.Typer(
    help="Init containers of a member that starts from a backup (Kubernetes).",
    no_args_is_help=True,
    hidden=True,
)
app.add_typer(member_restore, name="member-restore")


@member_restore.command("fetch")
def member_restore_fetch(
    uri: Annotated[str, typer.Option(help="s3://bucket/key, or s3://bucket/prefix/ (newest).")],
    volume: Annotated[Path, typer.Option(help="The member's volume.")],
    data_dir: Annotated[Path, typer.Option(help="The member's data directory.")],
    member: Annotated[str, typer.Option(help="The member's name, for the messages.")],
    engine: Annotated[Engine, typer.Option(help="etcd or xline.")] = Engine.ETCD,
    revision: Annotated[int | None, typer.Option(help="The newest backup at or below it.")] = None,
    endpoint: Annotated[str | None, typer.Option(help="The S3 endpoint URL.")] = None,
    region: Annotated[str | None, typer.Option(help="The S3 region.")] = None,
) -> None:
    """Download the backup and verify it before the member's data is restored from it."""
    from xlinefed.backups.run import Target
    from xlinefed.platforms.member_restore import fetch

    target = Target("", endpoint=endpoint, region=region)
    raise typer.Exit(fetch(engine, uri, revision, target, volume, data_dir, member))


@member_restore.command("finish")
def member_restore_finish(
    volume: Annotated[Path, typer.Option(help="The member's volume.")],
    data_dir: Annotated[Path, typer.Option(help="The member's data directory.")],
    member: Annotated[str, typer.Option(help="The member's name, for the messages.")],
    engine: Annotated[Engine, typer.Option(help="etcd or xline.")] = Engine.ETCD,
) -> None:
    """Put the restored data in place (unless the member has data of its own)."""
    from xlinefed.platforms.member_restore import finish

    raise typer.Exit(finish(engine, volume, data_dir, member))


render = typer.Typer(
    help="Print the manifests that install an operator tier.", no_args_is_help=True
)
app.add_typer(render, name="render")


@render.command("member")
def render_member(
    cluster_id: Annotated[str, typer.Option(help="This member cluster's id in Karmada.")],
    namespace: Annotated[str, typer.Option(help="The operator's namespace.")] = "xlinefed-system",
    image: Annotated[str | None, typer.Option(help="The operator image.")] = None,
    release: Annotated[
        str, typer.Option(help="Name objects as this Helm release would: RELEASE-member-operator.")
    ] = "xlinefed",
) -> None:
    """The member tier for one cluster: CRDs, RBAC, ConfigMap, Deployment, metrics Service."""
    from xlinefed import install as manifests

    docs = manifests.member_manifests(
        cluster_id, namespace=namespace, image=image or manifests.DEFAULT_IMAGE, release=release
    )
    sys.stdout.write(manifests.to_yaml(docs))


@render.command("federation")
def render_federation(
    target: Annotated[
        str, typer.Option(help="karmada (the API server's objects), operator, or all.")
    ] = "all",
    namespace: Annotated[str, typer.Option(help="The operator's namespace.")] = "xlinefed-system",
    image: Annotated[str | None, typer.Option(help="The operator image.")] = None,
    release: Annotated[
        str,
        typer.Option(help="Name objects as this Helm release would: RELEASE-federation-operator."),
    ] = "xlinefed",
) -> None:
    """The federation tier: CRDs, RBAC, interpreter customization and CRD propagation on
    Karmada; the operator Deployment and metrics Service for the cluster that runs it."""
    from xlinefed import install as manifests

    image = image or manifests.DEFAULT_IMAGE
    if target == "karmada":
        docs = manifests.federation_karmada_manifests(namespace=namespace, release=release)
    elif target == "operator":
        docs = manifests.federation_operator_manifests(
            namespace=namespace, image=image, release=release
        )
    elif target == "all":
        docs = manifests.federation_manifests(namespace=namespace, image=image, release=release)
    else:
        raise _fail(f"--target '{target}' is not known; use karmada, operator or all", 2)
    sys.stdout.write(manifests.to_yaml(docs))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
