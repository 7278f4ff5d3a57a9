"""Prometheus metrics of the operators (prometheus_client, served on 127.0.0.1 by default)."""

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
