"""Reconcile load of the federation operator: N federations of 5 members on the real
Karmada stack (issue 6, item 6).

The federation operator runs as a real process against the Karmada API server built by
hack/stack/build.sh. No member operators run: this measures the federation tier alone
(split, XlineCluster and PropagationPolicy per member, status aggregation). Reported:
time to place every federation, time from a spec edit to the edited XlineCluster on
Karmada (the tier's first step), and the operator's CPU and RSS idle and under edits.

    .venv/bin/python bench/federation_load.py [--federations 50] [--edits 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import print_header, print_table
from tests.e2e_kube.conftest import install_crds
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until

API = "xlinefed.io/v1alpha1"
CLUSTERS = (("member1", 2), ("member2", 2), ("member3", 1))
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def federation(name: str, namespace: str, version: str = "3.4.23") -> dict[str, object]:
    return {
        "apiVersion": API,
        "kind": "XlineFederation",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "version": version,
            "clusters": [{"id": c, "replicas": n} for c, n in CLUSTERS],
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--federations", type=int, default=50)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()
    print_header()
    state = Path(tempfile.mkdtemp(prefix="xf-bench-fed-"))
    stack = Stack.start([c for c, _ in CLUSTERS], state_dir=state)
    operator: subprocess.Popen[bytes] | None = None
    try:
        karmada = stack.karmada()
        install_crds(karmada)
        namespace = "bench"
        karmada.ensure({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        env = {
            **os.environ,
            "KUBECONFIG": str(stack.karmada_kubeconfig),
            "XLINEFED_LOG_LEVEL": "WARNING",
        }
        with (state / "federation-operator.log").open("wb") as log:
            operator = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "xlinefed.cli",
                    "federation-operator",
                    "--namespace",
                    namespace,
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_until(lambda: rss_mib(operator.pid) > 0, timeout=30, what="the operator")
        names = [f"f{i:03d}" for i in range(args.federations)]
        began = time.monotonic()
        cpu_before = cpu_seconds(operator.pid)
        for name in names:
            karmada.create(federation(name, namespace))
        want = len(names) * len(CLUSTERS)

        def placed() -> bool:
            return (
                len(karmada.list(API, "XlineCluster", namespace)) >= want
                and len(karmada.list("policy.karmada.io/v1alpha1", "PropagationPolicy", namespace))
                >= want
            )

        wait_until(placed, timeout=600, what=f"{want} XlineClusters and policies", interval=0.2)
        place_seconds = time.monotonic() - began
        place_cpu = cpu_seconds(operator.pid) - cpu_before
        # Idle: everything placed, nothing changes.
        idle_from, idle_cpu_from = time.monotonic(), cpu_seconds(operator.pid)
        time.sleep(args.idle_seconds)  # a measurement window, not synchronisation
        idle_cpu = (cpu_seconds(operator.pid) - idle_cpu_from) / (time.monotonic() - idle_from)
        idle_rss = rss_mib(operator.pid)
        # Edits: one federation at a time; latency to its first XlineCluster updated.
        latencies = []
        edit_cpu_from, edit_from = cpu_seconds(operator.pid), time.monotonic()
        for i in range(args.edits):
            name = names[i % len(names)]
            version = f"3.4.{24 + i}"
            started = time.monotonic()
            karmada.patch(
                API, "XlineFederation", name, {"spec": {"version": version}}, namespace=namespace
            )
            wait_until(
                lambda n=name, v=version: (
                    karmada.get(API, "XlineCluster", f"{n}-{CLUSTERS[0][0]}", namespace)["spec"][
                        "version"
                    ]
                    == v
                ),
                timeout=120,
                what=f"{name} split updated",
                interval=0.01,
            )
            latencies.append(time.monotonic() - started)
        edit_cpu = (cpu_seconds(operator.pid) - edit_cpu_from) / (time.monotonic() - edit_from)
        peak_rss = rss_mib(operator.pid)
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, round(0.95 * (len(latencies) - 1)))]
        print(
            f"\nfederation operator, {args.federations} federations x 5 members "
            f"({'+'.join(str(n) for _, n in CLUSTERS)} over {len(CLUSTERS)} member clusters)"
        )
        print_table(
            ["metric", "value"],
            [
                ["place all (XlineCluster + policy per member)", f"{place_seconds:.1f} s"],
                ["operator CPU while placing", f"{place_cpu:.1f} s"],
                ["edit -> first step, median", f"{statistics.median(latencies) * 1000:.0f} ms"],
                ["edit -> first step, p95", f"{p95 * 1000:.0f} ms"],
                ["operator CPU idle", f"{idle_cpu * 100:.1f} % of a core"],
                ["operator CPU during edits", f"{edit_cpu * 100:.1f} % of a core"],
                ["operator RSS idle / after edits", f"{idle_rss:.0f} / {peak_rss:.0f} MiB"],
            ],
        )
    finally:
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
