"""Prometheus metrics of both operators (prometheus_client, served on 127.0.0.1 by default;
`--metrics-port`, `XLINEFED_METRICS_ADDRESS`). The step, wait, lock and member metrics are
the member operator's; the `xlinefed_federation_*` ones the federation operator's; the
last reconcile error and the leader gauge are both's."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

STEPS = Counter("xlinefed_steps_applied_total", "Steps applied, by kind.", ["kind"])
STEP_SECONDS = Histogram("xlinefed_step_duration_seconds", "Time to apply a step.", ["kind"])
REFUSALS = Counter("xlinefed_steps_failed_total", "Steps that failed, by kind.", ["kind"])
WAITS = Counter("xlinefed_waits_total", "Passes that ended in a wait, by wait code.", ["code"])
LOCK_WAIT = Histogram("xlinefed_lock_wait_seconds", "Time spent waiting for the lock.")
MEMBERS = Gauge("xlinefed_members", "Members by role and health.", ["resource", "role", "healthy"])
LAST_ERROR = Gauge(
    "xlinefed_last_reconcile_error", "1 if the last reconcile of a resource failed.", ["resource"]
)


def serve(port: int, address: str) -> None:
    start_http_server(port, addr=address)


LEADER = Gauge(
    "xlinefed_operator_leader", "1 while this replica holds its tier's Lease and reconciles."
)

FEDERATION_PASSES = Counter(
    "xlinefed_federation_passes_total",
    "Federation reconcile passes, by outcome: ok, error (retried), invalid (spec refused).",
    ["outcome"],
)
FEDERATION_WRITES = Counter(
    "xlinefed_federation_objects_written_total",
    "XlineClusters and PropagationPolicies written on Karmada (a pass that changes nothing "
    "writes nothing).",
)
FEDERATION_CLUSTERS = Gauge(
    "xlinefed_federation_clusters", "Member clusters a federation is placed in.", ["resource"]
)

BACKUPS = Counter(
    "xlinefed_backups_total", "On-demand backups (XlineBackup) finished, by outcome.", ["outcome"]
)
BACKUP_SECONDS = Histogram(
    "xlinefed_backup_duration_seconds",
    "Time to take a successful backup, retries included.",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
BACKUP_BYTES = Gauge(
    "xlinefed_backup_size_bytes",
    "Size of the last successful backup, by XlineCluster.",
    ["cluster"],
)
