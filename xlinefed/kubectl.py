"""`kubectl xlinefed …` (the `kubectl-xlinefed` entry point, a kubectl plugin): day-2
commands against the Karmada API server. Parsing and printing only; the reads and writes
are in `xlinefed.platforms.karmada.day2`, the member cells and consoles are `xlinefed.cli`'s.

`status NAME` puts every member cluster's members in one table (role, leader, version,
health, raft index, lag behind the leader) with the step each member cluster's operator
is taking; `pause NAME` / `resume NAME` set `spec.paused`.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table
from rich.text import Text

from xlinefed import __version__
from xlinefed.api import conditions
from xlinefed.cli import (
    MEMBER_COLUMNS,
    _fail,
    _labelled,
    console,
    leader_index,
    member_cells,
    security_text,
)

if TYPE_CHECKING:
    from xlinefed.platforms.karmada import day2

app = typer.Typer(
    help="Day-2 commands for XlineFederations on the Karmada API server (a kubectl plugin).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"kubectl-xlinefed {__version__}\n")
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
    pass


Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="The federation's namespace (default: the context's)."),
]
Kubeconfig = Annotated[
    Path | None,
    typer.Option(help="The kubeconfig of the Karmada API server (default: KUBECONFIG)."),
]
Context = Annotated[str | None, typer.Option(help="The kubeconfig context (default: current).")]

T = TypeVar("T")


def _run(
    kubeconfig: Path | None,
    context: str | None,
    namespace: str | None,
    work: Callable[[day2.Target], Awaitable[T]],
) -> T:
    # Imported here: kubernetes_asyncio takes a second to import, which --help need not wait.
    from xlinefed.platforms.karmada import day2

    async def main() -> T:
        async with day2.connect(kubeconfig, context, namespace) as target:
            return await work(target)

    try:
        return asyncio.run(main())
    except day2.Day2Error as error:
        raise _fail(str(error)) from None


# --- status --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    cluster: str
    member: dict[str, Any] | None  # one of status.members; None: the cluster has none
    step: str


def _step_text(step: Mapping[str, Any] | None) -> str:
    if not step:
        return ""
    return f"{step.get('kind')}: {step.get('reason')}" if step.get("reason") else str(step["kind"])


def _cluster_step(
    cluster: str, xline_cluster: Mapping[str, Any] | None, federation_step: Mapping[str, Any]
) -> tuple[str, str | None]:
    """What one member cluster's operator is doing, and the member it concerns: from its
    XlineCluster's status on Karmada (what Karmada collected from that cluster), else
    from the federation's own step when that names this cluster."""
    if xline_cluster is not None:
        status = xline_cluster.get("status") or {}
        if not status:
            return "no status from this cluster yet", None
        step = status.get("currentStep")
        return (_step_text(step), step.get("member")) if step else ("", None)
    reason = str(federation_step.get("reason") or "")
    if reason.startswith(f"{cluster}: "):
        kind = federation_step.get("kind")
        return f"{kind}: {reason.removeprefix(f'{cluster}: ')}", federation_step.get("member")
    return "", None


def rows(body: Mapping[str, Any], clusters: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """The table's rows: per member cluster (the spec's order, then clusters still
    reported but leaving), its members from the federation's status, and its step on the
    row of the member it concerns (else the cluster's first row)."""
    status = body.get("status") or {}
    members = status.get("members") or []
    order = [c["id"] for c in body.get("spec", {}).get("clusters", [])]
    order += [c for c in dict.fromkeys(m.get("cluster", "?") for m in members) if c not in order]
    order += [c for c in clusters if c not in order]
    federation_step = status.get("currentStep") or {}
    table: list[Row] = []
    for cluster in order:
        own = [m for m in members if m.get("cluster") == cluster]
        step, about = _cluster_step(cluster, clusters.get(cluster), federation_step)
        if not own:
            table.append(Row(cluster, None, step or "no members reported"))
            continue
        at = next((i for i, m in enumerate(own) if m["name"] == about), 0)
        table.extend(Row(cluster, m, step if i == at else "") for i, m in enumerate(own))
    return table


def _condition(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    found = [c for c in (body.get("status") or {}).get("conditions", []) if c.get("type") == kind]
    return found[0] if found else {}


def paused_text(body: Mapping[str, Any]) -> str:
    """Whether it is paused, as the spec asks and as the operator has reported."""
    wanted = bool(body.get("spec", {}).get("paused", False))
    status = body.get("status") or {}
    generation = body.get("metadata", {}).get("generation")
    reported = (
        _condition(body, "Progressing").get("reason") == conditions.PAUSED
        and status.get("observedGeneration") == generation
    )
    if wanted:
        return "yes" if reported else "yes in the spec; the operator has not reported it yet"
    stale = _condition(body, "Progressing").get("reason") == conditions.PAUSED
    return "no; the operator has not reported the resume yet" if stale else "no"


def header(body: Mapping[str, Any]) -> list[str]:
    meta, spec = body.get("metadata", {}), body.get("spec", {})
    status = body.get("status") or {}
    members = status.get("members") or []
    listed = sum(1 for m in members if m.get("role"))
    wanted = sum(int(c.get("replicas", 0)) for c in spec.get("clusters", []))
    lines = [
        f"XlineFederation {meta.get('namespace')}/{meta.get('name')}  ·  "
        f"phase {status.get('phase') or '-'}  ·  paused {paused_text(body)}",
        f"members: spec {wanted}, in the member list {listed}, ready {status.get('ready') or '-'}"
        f"  ·  leader {status.get('leader') or '-'}  ·  version {status.get('version') or '-'}"
        f" (spec {spec.get('version')})  ·  clusters {status.get('clusters') or '-'}",
    ]
    if (security := security_text(status)) is not None:
        lines.append(security)
    observed = status.get("observedGeneration")
    if status and observed != meta.get("generation"):
        lines.append(
            f"note: the status describes generation {observed}; the spec is at "
            f"{meta.get('generation')} (the federation operator has not finished a pass on it)"
        )
    for c in status.get("conditions", []):
        lines.append(f"  {c.get('type')}={c.get('status')} {c.get('reason')}: {c.get('message')}")
    return lines


def print_status(view: day2.FederationView) -> None:
    body = view.body
    for line in header(body):
        console.print(line, highlight=False, soft_wrap=True)
    status = body.get("status") or {}
    if not status:
        console.print(
            "no status yet: the federation operator has not finished a pass (is it running?)",
            highlight=False,
        )
        return
    table = Table()
    for column in (*MEMBER_COLUMNS, "step"):
        table.add_column(column, justify="right" if column in ("raft index", "lag") else "left")
    lead = leader_index(status.get("members") or [])
    for row in rows(body, view.clusters):
        if row.member is None:
            cells: list[str | Text] = ["-", row.cluster, "-", "", "-", "-", "", ""]
        else:
            cells = member_cells(row.member, lead)
        table.add_row(*cells, row.step)
    console.print(table)
    step = status.get("currentStep")
    if step:
        console.print(f"federation step: {_step_text(step)}", highlight=False, soft_wrap=True)
    for warning in status.get("warnings", []):
        console.print(_labelled("warning:", "yellow", str(warning)), highlight=False)


@app.command()
def status(
    name: str,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    output: Annotated[str, typer.Option("--output", "-o", help="table or json")] = "table",
) -> None:
    """Every member cluster's members, roles, leader, versions, lag and step in progress."""
    if output not in ("table", "json"):
        raise _fail(f"--output '{output}' is not known; use table or json", 2)

    from xlinefed.platforms.karmada import day2

    async def work(target: day2.Target) -> day2.FederationView:
        return await day2.read_federation(target, name)

    view = _run(kubeconfig, context, namespace, work)
    if output == "json":
        clusters = {c: item.get("status") or {} for c, item in view.clusters.items()}
        document = {"federation": view.body, "clusterStatus": clusters}
        console.print_json(json.dumps(document))
        return
    print_status(view)


# --- pause / resume ------------------------------------------------------------------


def _set_paused(
    name: str,
    paused: bool,
    namespace: str | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    from xlinefed.platforms.karmada import day2

    async def work(target: day2.Target) -> tuple[str, bool]:
        before, _ = await day2.set_paused(target, name, paused)
        return target.namespace, before

    where, before = _run(kubeconfig, context, namespace, work)
    subject = f"XlineFederation {where}/{name}"
    word = "paused" if paused else "not paused"
    if before == paused:
        console.print(
            f"{subject} is already {word} (spec.paused is {str(paused).lower()}); nothing changed",
            highlight=False,
        )
        return
    then = (
        "the operators take no further step (members keep running) until "
        f"`kubectl xlinefed resume {name}`"
        if paused
        else "the operators carry on from their next pass"
    )
    console.print(
        f"{subject}: spec.paused {str(before).lower()} → {str(paused).lower()} "
        f"(field manager {day2.MANAGER}); {then}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def pause(
    name: str, namespace: Namespace = None, kubeconfig: Kubeconfig = None, context: Context = None
) -> None:
    """Set spec.paused: the operators stop taking steps; the members keep serving."""
    _set_paused(name, True, namespace, kubeconfig, context)


@app.command()
def resume(
    name: str, namespace: Namespace = None, kubeconfig: Kubeconfig = None, context: Context = None
) -> None:
    """Clear spec.paused: the operators carry on toward the spec."""
    _set_paused(name, False, namespace, kubeconfig, context)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
