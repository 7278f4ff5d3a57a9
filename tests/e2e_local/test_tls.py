"""A local federation with mutual TLS (`spec.tls.enabled: true`), on real parts: real etcd
members started by the real CLI and controller, checked with the real etcdctl and raw TLS
handshakes.

- auth is on: the application's certificate may not write, delete, read or lease the
  membership lock or anything under /xlinefed/;
- every member serves https only and demands a client certificate (etcdctl with the
  exports `xlinefed local env` prints works; without the certificate it is refused);
- `xlinefed local renew-certificates` under a writer: every member serves a new
  certificate, no acknowledged write is lost, and the federation still changes (a scale
  out after the renewal converges with the renewed certificates).
"""

from __future__ import annotations

import asyncio
import os
import shlex
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from tests.e2e_local.conftest import CliFederation
from tests.support.auth_checks import assert_kept_out_of_the_reserved_keys
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed.consensus.client import ConsensusClient
from xlinefed.platforms.local.pki import CLIENT, LocalPKI
from xlinefed.platforms.local.state import FederationDir

pytestmark = pytest.mark.slow

NAME = "sec"


def spec(replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "xlinefed.io/v1alpha1",
        "kind": "XlineFederation",
        "metadata": {"name": NAME},
        "spec": {
            "engine": "etcd",
            "version": "3.4.23",
            "tls": {"enabled": True},
            "clusters": [
                {"id": "a", "replicas": replicas},
                {"id": "b", "replicas": 1},
                {"id": "c", "replicas": 1},
            ],
        },
    }


def _env(federation: CliFederation) -> dict[str, str]:
    out = federation.cli("local", "env", NAME).stdout
    variables: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        variables[key] = shlex.split(value)[0]
    return variables


def _etcdctl(variables: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    return subprocess.run(
        ["etcdctl", "--command-timeout=5s", *args],
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=30,
    )


def _served_serial(endpoint: str, pki: LocalPKI) -> int:
    """The serial of the certificate a member presents in a fresh TLS handshake (with
    the application's client certificate, which the member demands)."""
    files = pki.files(CLIENT)
    context = ssl.create_default_context(cafile=files.ca)
    context.load_cert_chain(files.cert, files.key)
    host, port = endpoint.removeprefix("https://").split(":")
    with (
        socket.create_connection((host, int(port)), timeout=3) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def _application_cannot_touch_the_operator_keys(federation: CliFederation) -> None:
    """The application's certificate names a user that may write anywhere but under
    /xlinefed/: not the membership lock, not its step, not a lease on the lock."""
    assert federation.dir.read_facts().auth_enabled
    async with ConsensusClient(
        federation.endpoints(), tls=federation.client_tls(), timeout=3.0
    ) as app:
        await app.put("/app/allowed", "yes")
        await app.put("/xlinefed-adjacent/allowed", "yes")
        await assert_kept_out_of_the_reserved_keys(app)


def test_members_speak_only_mutual_tls_and_renew_without_a_lost_write(tmp_path: Path) -> None:
    root = tmp_path / "state"
    federation = CliFederation(root, NAME)
    try:
        federation.up(spec(), tmp_path)
        endpoints = federation.endpoints()
        assert len(endpoints) == 3 and all(e.startswith("https://") for e in endpoints)
        for member in federation.desired_names():
            argv = federation.dir.read_process(member).record.argv  # type: ignore[union-attr]
            assert "--client-cert-auth=true" in argv and "--peer-client-cert-auth=true" in argv
        assert federation.status()["security"] == {"tls": True, "auth": True}
        assert not any(w.startswith("plain text:") for w in federation.status()["warnings"])
        assert "security: mutual TLS, auth on" in federation.cli("local", "status", NAME).stdout
        key_mode = (root / NAME / "pki" / "ca.key").stat().st_mode & 0o777
        assert key_mode == 0o600

        variables = _env(federation)
        assert {"ETCDCTL_CACERT", "ETCDCTL_CERT", "ETCDCTL_KEY"} <= variables.keys()
        put = _etcdctl(variables, "put", "/app/hello", "world")
        assert put.returncode == 0, put.stderr
        got = _etcdctl(variables, "get", "--print-value-only", "/app/hello")
        assert got.stdout.strip() == "world", got.stderr
        anonymous = {k: v for k, v in variables.items() if k not in ("ETCDCTL_CERT", "ETCDCTL_KEY")}
        refused = _etcdctl(anonymous, "put", "/app/hello", "stranger")
        assert refused.returncode != 0
        plain = {
            **anonymous,
            "ETCDCTL_ENDPOINTS": variables["ETCDCTL_ENDPOINTS"].replace("https://", "http://"),
        }
        del plain["ETCDCTL_CACERT"]
        assert _etcdctl(plain, "put", "/app/hello", "plain").returncode != 0
        assert _etcdctl(variables, "get", "--print-value-only", "/app/hello").stdout.strip() == (
            "world"
        )

        asyncio.run(_application_cannot_touch_the_operator_keys(federation))

        pki = LocalPKI(FederationDir(root, NAME), federation.dir.read_spec().spec.tls)  # type: ignore[arg-type]
        before = {e: _served_serial(e, pki) for e in endpoints}
        writer = SequencedWriter(
            federation.endpoints, prefix="/tls-writer/", tls=federation.client_tls()
        )
        with writer:
            wait_until(lambda: len(writer.acknowledged) >= 20, timeout=30, what="writes before")
            federation.cli("local", "renew-certificates", NAME)
            wait_until(
                lambda: all(_served_serial(e, pki) != before[e] for e in endpoints),
                timeout=60,
                what="every member serving a renewed certificate",
            )
            count = len(writer.acknowledged)
            wait_until(
                lambda: len(writer.acknowledged) >= count + 20, timeout=30, what="writes after"
            )
        report = writer.verify(federation.endpoints())
        federation.record("certificate renewal", report)
        print(f"renewal under a writer: {report}")
        assert report.lost == [] and report.acknowledged >= 40
        # The controller dials with its renewed certificate: a change still converges.
        federation.up(spec(replicas=2), tmp_path)
        voters, learners, _ = federation.consensus_view()
        assert len(voters) == 4 and not learners
    finally:
        federation.cli("local", "down", NAME, "--purge", check=False)
