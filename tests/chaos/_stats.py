"""What the chaos session did, summed up for the terminal summary and a JSON report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ChaosStats:
    seed: int = 0
    soak: bool = False
    runs: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    writes_acknowledged: int = 0
    writes_lost: int = 0
    #: Longest stretch without an acknowledged write, per kind of run, seconds.
    unavailability: dict[str, float] = field(default_factory=dict)
    histories_checked: int = 0
    operations_checked: int = 0
    indeterminate_writes: int = 0
    anomalies: int = 0
    anomaly_details: list[str] = field(default_factory=list)
    #: Distinct cluster ids the members reported at the end, per kind of run (1 = one cluster).
    cluster_ids_seen: dict[str, int] = field(default_factory=dict)
    #: Steps that broke a safety rule (a second bootstrap, a wipe of a listed member, a
    #: repeated add, a late change by a holder whose lease expired, quorum lost).
    unsafe_steps: int = 0
    unsafe_details: list[str] = field(default_factory=list)

    def fault(self, kind: str, count: int = 1) -> None:
        self.faults[kind] += count

    def unavailable(self, kind: str, seconds: float) -> None:
        self.unavailability[kind] = max(self.unavailability.get(kind, 0.0), seconds)

    def cluster_ids(self, kind: str, count: int) -> None:
        self.cluster_ids_seen[kind] = max(self.cluster_ids_seen.get(kind, 0), count)

    def unsafe(self, kind: str, details: list[str]) -> None:
        self.unsafe_steps += len(details)
        self.unsafe_details += [f"[{kind}] {d}" for d in details]

    def as_dict(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "soak": self.soak,
            "runs": self.runs,
            "faults": dict(sorted(self.faults.items())),
            "writes_acknowledged": self.writes_acknowledged,
            "writes_lost": self.writes_lost,
            "longest_unavailability_s": {
                k: round(v, 3) for k, v in sorted(self.unavailability.items())
            },
            "histories_checked": self.histories_checked,
            "operations_checked": self.operations_checked,
            "indeterminate_writes": self.indeterminate_writes,
            "anomalies": self.anomalies,
            "anomaly_details": self.anomaly_details[:20],
            "cluster_ids_seen": dict(sorted(self.cluster_ids_seen.items())),
            "unsafe_steps": self.unsafe_steps,
            "unsafe_details": self.unsafe_details[:20],
        }

    def lines(self) -> list[str]:
        out = [
            f"seed {self.seed} (rerun with CHAOS_SEED={self.seed})"
            + ("  ·  soak" if self.soak else ""),
            f"runs: {self.runs}",
            "faults injected: "
            + (", ".join(f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"),
            f"writes acknowledged: {self.writes_acknowledged}   writes lost: {self.writes_lost}",
            "longest unavailability (no acknowledged write) per run kind:",
        ]
        out += [f"  {k:<44} {v:7.3f} s" for k, v in sorted(self.unavailability.items())]
        out.append(
            f"histories checked: {self.histories_checked} "
            f"({self.operations_checked} operations, "
            f"{self.indeterminate_writes} indeterminate writes)   anomalies: {self.anomalies}"
        )
        out += [f"  anomaly: {d}" for d in self.anomaly_details[:10]]
        if self.cluster_ids_seen:
            out.append("cluster ids seen at the end per run kind (1 = one cluster):")
            out += [f"  {k:<44} {v:7d}" for k, v in sorted(self.cluster_ids_seen.items())]
        out.append(f"unsafe steps: {self.unsafe_steps}")
        out += [f"  unsafe: {d}" for d in self.unsafe_details[:10]]
        return out


STATS = ChaosStats()
