"""Mutual TLS on Kubernetes, end to end: real kube-apiserver, real etcd pods via the
hostlet (which syncs Secret volumes into running pods as a kubelet does), the member
operator as a real process, certificates from kubernetes.io/tls Secrets with ca.crt.

One XlineCluster walks through: it forms over https with client-certificate auth; a
client without a certificate, or with one of another CA, is refused; the certificates
rotate under a writer (no member restarts, no acknowledged write lost); a Secret that
loses its key or names other hosts is refused in status and an Event while the members
go on serving; and once the operator's first certificate has expired, a scale-out still
works, because the operator dials with the rotated one.
"""

from __future__ import annotations

import datetime
import socket
import ssl
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_kube import conftest
from tests.e2e_kube.conftest import API, MemberOperator, consensus_view, xline_cluster
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from tests.support.writer import SequencedWriter
from xlinefed import certificates
from xlinefed.consensus.client import ClientTLS
from xlinefed.topology import member_name

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NAME = "tfed"
#: Fresh per session: Events of an earlier run in a reused stack must not answer for this one.
NAMESPACE = f"xf-tls-{uuid.uuid4().hex[:6]}"
#: The operator's first certificate lives this long, so the test can see it expire.
SHORT_LIFE = datetime.timedelta(seconds=200)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def host(i: int) -> str:
    return f"{member_name(NAME, 'member1', i)}.member1.{NAME}.{NAMESPACE}.svc.clusterset.local"


def endpoints(n: int) -> list[str]:
    return [f"https://{host(i)}:2379" for i in range(n)]


def tls_secret(name: str, leaf: certificates.Issued, ca: certificates.Issued) -> dict[str, Any]:
    return conftest.tls_secret(name, NAMESPACE, leaf, ca)


def leaf(
    ca: certificates.Issued, names: list[str], *, life: datetime.timedelta | None = None
) -> certificates.Issued:
    if life is None:
        return certificates.issue(ca, "member", names=names, now=_now(), days=90)
    # `issue` counts whole days from `now`: start it so that it ends `life` from now.
    start = _now() - datetime.timedelta(days=1) + life
    return certificates.issue(ca, "operator", names=names, now=start, days=1)


def served_certificate(i: int, ca: certificates.Issued, client: certificates.Issued) -> bytes:
    """The DER certificate member i serves on its client port right now."""
    with tempfile.TemporaryDirectory() as tmp:
        cert, key = Path(tmp) / "c.crt", Path(tmp) / "c.key"
        cert.write_bytes(client.cert)
        key.write_bytes(client.key)
        context = ssl.create_default_context(cadata=ca.cert.decode())
        context.load_cert_chain(cert, key)
        with (
            socket.create_connection((host(i), 2379), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=host(i)) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return der


def der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode())


def etcdctl_get(endpoint: str, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "etcdctl",
            f"--endpoints={endpoint}",
            "--dial-timeout=3s",
            "--command-timeout=5s",
            *flags,
            *("get", "/writer/", "--prefix", "--keys-only", "--limit=1"),
        ],
        capture_output=True,
        text=True,
        env={"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"},
        timeout=30,
    )


def status_of(member1: KubeClient) -> dict[str, Any]:
    return conftest.cluster_status(member1, NAME, NAMESPACE)


def reached(member1: KubeClient, replicas: int) -> bool:
    return conftest.cluster_reached(member1, NAME, NAMESPACE, replicas)


def refused_with(member1: KubeClient, text: str) -> bool:
    return any(
        c["type"] == "Degraded" and c["reason"] == "CertificatesInvalid" and text in c["message"]
        for c in status_of(member1).get("conditions", [])
    )


def pod_uids(member1: KubeClient) -> dict[str, str]:
    return {
        p["metadata"]["name"]: p["metadata"]["uid"] for p in member1.list("v1", "Pod", NAMESPACE)
    }


@pytest.fixture(scope="module")
def member1(stack: Stack) -> KubeClient:
    return conftest.member_in(stack, NAMESPACE)


def test_mutual_tls_from_secrets_rotation_and_bad_secrets(
    stack: Stack, member1: KubeClient, tmp_path: Path
) -> None:
    ca = certificates.new_authority("tfed-ca", now=_now(), days=3650)
    wildcard = [f"*.member1.{NAME}.{NAMESPACE}.svc.clusterset.local"]
    first_peer = leaf(ca, wildcard)
    short_operator = leaf(ca, [], life=SHORT_LIFE)
    operator_expires = certificates.read(short_operator.cert).not_after
    member1.apply(tls_secret("peer-certs", first_peer, ca))
    member1.apply(tls_secret("operator-certs", short_operator, ca))
    app = certificates.issue(ca, "app", now=_now(), days=9)
    app_tls = ClientTLS(ca=ca.cert, cert=app.cert, key=app.key)

    operator = MemberOperator(stack, "member1", NAMESPACE, tmp_path / "operator.log")
    operator.start()
    try:
        member1.create(
            xline_cluster(
                NAME,
                NAMESPACE,
                3,
                tls={"peerSecretRef": "peer-certs", "operatorSecretRef": "operator-certs"},
            )
        )
        try:
            wait_until(lambda: reached(member1, 3), timeout=180, what="3 members over mTLS")
        except AssertionError as error:
            raise AssertionError(
                f"{error}\nstatus: {status_of(member1)}\noperator log:\n{operator.tail()}"
            ) from None
        status = status_of(member1)
        assert status["security"]["tls"] is True
        assert status["security"]["caFingerprint"] == certificates.fingerprint(ca.cert)
        assert not any(w.startswith("plain text:") for w in status.get("warnings", []))
        # No spec.tls.rootPasswordSecretRef: the status says auth is off, and how to fix it.
        assert any("auth is off" in w for w in status.get("warnings", [])), status
        assert all(e.startswith("https://") for e in status["endpoints"])
        voters, learners, leaders, _ = consensus_view(endpoints(3), tls=app_tls)
        assert len(voters) == 3 and not learners and len(leaders) == 1
        uids = pod_uids(member1)

        # Refused: no client certificate; a certificate of another CA.
        with tempfile.TemporaryDirectory() as tmp:
            files = write_files(Path(tmp), ca, app)
            stranger_ca = certificates.new_authority("stranger", now=_now(), days=9)
            stranger = certificates.issue(stranger_ca, "app", now=_now(), days=9)
            stranger_files = write_files(Path(tmp) / "s", ca, stranger)
            good = etcdctl_get(endpoints(3)[0], *files)
            assert good.returncode == 0, good.stderr
            bare = etcdctl_get(endpoints(3)[0], f"--cacert={files[0].split('=', 1)[1]}")
            assert bare.returncode != 0
            foreign = etcdctl_get(endpoints(3)[0], *stranger_files)
            assert foreign.returncode != 0

        with SequencedWriter(lambda: endpoints(3), tls=app_tls) as writer:
            wait_until(lambda: len(writer.acknowledged) >= 10, timeout=30, what="first writes")

            # Rotation: a new member certificate (same CA) and a long-lived operator one.
            second_peer = leaf(ca, wildcard)
            member1.apply(tls_secret("peer-certs", second_peer, ca))
            member1.apply(tls_secret("operator-certs", leaf(ca, []), ca))
            wait_until(
                lambda: all(
                    served_certificate(i, ca, app) == der(second_peer.cert) for i in range(3)
                ),
                timeout=60,
                what="every member serving the rotated certificate",
            )
            wait_until(
                lambda: (
                    status_of(member1)["security"]["certificatesExpire"]
                    != operator_expires.strftime("%Y-%m-%dT%H:%M:%SZ")
                ),
                timeout=60,
                what="the status reporting the rotated certificates",
            )
            assert pod_uids(member1) == uids, "a rotation restarts no member"

            # A Secret that lost its CA (the API server itself refuses a kubernetes.io/tls
            # Secret without tls.key), then one for other hosts: refused, members serve on.
            broken = tls_secret("peer-certs", second_peer, ca)
            del broken["data"]["ca.crt"]
            member1.apply(broken)
            wait_until(
                lambda: refused_with(member1, "Secret peer-certs: has no ca.crt"),
                timeout=60,
                what="CertificatesInvalid for the missing key",
            )
            events = [
                e
                for e in member1.list("v1", "Event", NAMESPACE)
                if e["reason"] == "CertificatesInvalid"
            ]
            assert any("has no ca.crt" in e["message"] for e in events), events
            elsewhere = leaf(ca, [f"*.member2.{NAME}.{NAMESPACE}.svc.clusterset.local"])
            member1.apply(tls_secret("peer-certs", elsewhere, ca))
            wait_until(
                lambda: refused_with(member1, "does not cover"),
                timeout=60,
                what="CertificatesInvalid for the wrong names",
            )
            acked = len(writer.acknowledged)
            wait_until(
                lambda: len(writer.acknowledged) >= acked + 20,
                timeout=30,
                what="writes going on while the Secret is bad",
            )
            assert all(served_certificate(i, ca, app) == der(second_peer.cert) for i in range(3))
            assert pod_uids(member1) == uids

            member1.apply(tls_secret("peer-certs", second_peer, ca))
            wait_until(
                lambda: reached(member1, 3) and not refused_with(member1, ""),
                timeout=60,
                what="the refusal cleared once the Secret is good again",
            )

            # The operator's first certificate expires; a scale-out needs new connections.
            wait_until(
                lambda: _now() > operator_expires + datetime.timedelta(seconds=5),
                timeout=SHORT_LIFE.total_seconds() + 60,
                what="the operator's first certificate expired",
            )
            member1.patch(
                API,
                "XlineCluster",
                f"{NAME}-member1",
                {"spec": {"replicas": 4, "clusters": [{"id": "member1", "replicas": 4}]}},
                namespace=NAMESPACE,
            )
            try:
                wait_until(lambda: reached(member1, 4), timeout=180, what="4 members")
            except AssertionError as error:
                raise AssertionError(f"{error}\noperator log:\n{operator.tail()}") from None
        report = writer.verify(endpoints(4))
        print(
            f"tls rotation under a writer: {report.acknowledged} acknowledged, "
            f"{len(report.lost)} lost, {report.failed} failed, "
            f"longest gap {report.longest_gap:.2f}s"
        )
        assert report.acknowledged > 0 and report.lost == []
        voters, learners, _, _ = consensus_view(endpoints(4), tls=app_tls)
        assert len(voters) == 4 and not learners
        assert {k: v for k, v in pod_uids(member1).items() if k in uids} == uids
    finally:
        # Its members stop with it (the operator's finalizer), not at the end of the session.
        member1.delete(API, "XlineCluster", f"{NAME}-member1", NAMESPACE)
        try:
            wait_until(
                lambda: (
                    member1.get_or_none(API, "XlineCluster", f"{NAME}-member1", NAMESPACE) is None
                ),
                timeout=90,
                what="the XlineCluster and its members gone",
            )
        finally:
            operator.stop()


def write_files(directory: Path, ca: certificates.Issued, client: certificates.Issued) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "ca.crt").write_bytes(ca.cert)
    (directory / "c.crt").write_bytes(client.cert)
    (directory / "c.key").write_bytes(client.key)
    return [
        f"--cacert={directory / 'ca.crt'}",
        f"--cert={directory / 'c.crt'}",
        f"--key={directory / 'c.key'}",
    ]
