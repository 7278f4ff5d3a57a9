"""The federation operator serves Prometheus metrics, as the member operator does: a real
process on the real Karmada API server, behind its Lease, scraped over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_kube.conftest import LEASE_ENV, install_crds
from tests.support.etcd_cluster import free_port
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until

pytestmark = pytest.mark.stack

API = "xlinefed.io/v1alpha1"


def scrape(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            return str(answer.read().decode())
    except OSError:
        return None


def sample(text: str, name: str, labels: str = "") -> float | None:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(rf"^{pattern}$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


@pytest.fixture
def operator(stack: Stack, karmada: KubeClient, tmp_path: Path) -> Iterator[tuple[str, int]]:
    install_crds(karmada)
    namespace = f"fedmetrics-{uuid.uuid4().hex[:6]}"
    karmada.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    port = free_port()
    env = {
        **os.environ,
        "KUBECONFIG": str(stack.karmada_kubeconfig),
        "XLINEFED_FEDERATION_RESYNC": "2",
        **LEASE_ENV,
        "XLINEFED_LEASE_IDENTITY": "metrics-test",
    }
    argv = ["federation-operator", "--namespace", namespace, "--metrics-port", str(port)]
    log = tmp_path / "federation.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "xlinefed.cli", *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield namespace, port
        # Gone before the operator stops: its finalizer would hold the namespace.
        for item in karmada.list(API, "XlineFederation", namespace):
            karmada.delete(API, "XlineFederation", item["metadata"]["name"], namespace)
        wait_until(
            lambda: not karmada.list(API, "XlineFederation", namespace),
            timeout=60,
            what="the federation deleted (its finalizer run)",
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        karmada.delete("v1", "Namespace", namespace)


def test_the_federation_operator_serves_metrics(
    karmada: KubeClient, operator: tuple[str, int]
) -> None:
    namespace, port = operator
    # Served before the election (a standby is scraped too), then 1 once it leads.
    text = wait_until(
        lambda: (t := scrape(port)) and sample(t, "xlinefed_operator_leader") == 1.0 and t,
        timeout=60,
        what="the federation operator leading, as its metrics say",
    )
    assert "xlinefed_federation_passes_total" in text
    karmada.create(
        {
            "apiVersion": API,
            "kind": "XlineFederation",
            "metadata": {"name": "metered", "namespace": namespace},
            "spec": {
                "engine": "etcd",
                "version": "3.4.23",
                "clusters": [{"id": "member1", "replicas": 1}, {"id": "member2", "replicas": 1}],
            },
        }
    )
    resource = f'resource="{namespace}/metered"'

    def placed() -> str | None:
        # The cluster gauge is set inside a pass, before that pass is counted: wait for a
        # pass that placed both clusters to have finished (seen racing in CI otherwise).
        text = scrape(port)
        if text is None or sample(text, "xlinefed_federation_clusters", resource) != 2.0:
            return None
        ok = sample(text, "xlinefed_federation_passes_total", 'outcome="ok"')
        return text if ok is not None and ok >= 1 else None

    text = wait_until(placed, timeout=60, what="both clusters placed, as the metrics say")
    # Two XlineClusters and their two policies, at least, and the last pass did not fail.
    written = sample(text, "xlinefed_federation_objects_written_total")
    assert written is not None and written >= 4
    assert sample(text, "xlinefed_last_reconcile_error", resource) == 0.0
    assert karmada.get(API, "XlineCluster", "metered-member1", namespace)["spec"]["replicas"] == 1

    # A spec the schema takes but the model refuses (auth on Kubernetes is etcd-only) is
    # counted as an invalid pass, never as ok, and marks the resource's last pass failed.
    karmada.create(
        {
            "apiVersion": API,
            "kind": "XlineFederation",
            "metadata": {"name": "refused", "namespace": namespace},
            "spec": {
                "engine": "xline",
                "version": "0.7.0",
                "tls": {"peerSecretRef": "peer", "rootPasswordSecretRef": "root"},
                "clusters": [{"id": "member1", "replicas": 3}],
            },
        }
    )
    refused = f'resource="{namespace}/refused"'

    def counted_invalid() -> str | None:
        text = scrape(port)
        if text is None or sample(text, "xlinefed_last_reconcile_error", refused) != 1.0:
            return None
        invalid = sample(text, "xlinefed_federation_passes_total", 'outcome="invalid"')
        return text if invalid is not None and invalid >= 1 else None

    wait_until(counted_invalid, timeout=60, what="the refused spec counted as an invalid pass")
    assert karmada.get_or_none(API, "XlineCluster", "refused-member1", namespace) is None
