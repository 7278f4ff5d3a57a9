"""Auth on Kubernetes, end to end: the real kube-apiserver, real etcd pods through the
hostlet, the member operator as a real process, certificates and the root password from
Secrets.

With spec.tls.rootPasswordSecretRef the operator turns auth on once the cluster formed:
the application certificate (CN `client`) reads and writes its keys but cannot put,
delete, read or hold a lease on the reserved /xlinefed/ keys; a certificate of the same
CA with another CN is refused; root's password works; and the operator, whose certificate
is CN `operator`, still changes the membership (a scale-out) with auth on.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import uuid
from pathlib import Path

import pytest

from tests.e2e_kube import conftest
from tests.e2e_kube.conftest import API, MemberOperator, consensus_view, xline_cluster
from tests.support.auth_checks import assert_kept_out_of_the_reserved_keys
from tests.support.stack._client import KubeClient
from tests.support.stack._stack import Stack
from tests.support.wait import wait_until
from xlinefed import certificates
from xlinefed.consensus import errors
from xlinefed.consensus.client import ClientTLS, ConsensusClient
from xlinefed.topology import member_name

pytestmark = [pytest.mark.stack, pytest.mark.slow]

NAME = "afed"
NAMESPACE = f"xf-auth-{uuid.uuid4().hex[:6]}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def endpoints(n: int) -> list[str]:
    return [
        f"https://{member_name(NAME, 'member1', i)}.member1.{NAME}.{NAMESPACE}"
        f".svc.clusterset.local:2379"
        for i in range(n)
    ]


def tls_secret(name: str, leaf: certificates.Issued, ca: certificates.Issued) -> dict:
    return conftest.tls_secret(name, NAMESPACE, leaf, ca)


def status_of(member1: KubeClient) -> dict:
    return conftest.cluster_status(member1, NAME, NAMESPACE)


def reached(member1: KubeClient, replicas: int) -> bool:
    return conftest.cluster_reached(member1, NAME, NAMESPACE, replicas)


@pytest.fixture(scope="module")
def member1(stack: Stack) -> KubeClient:
    return conftest.member_in(stack, NAMESPACE)


def test_auth_keeps_applications_out_of_the_reserved_prefix(
    stack: Stack, member1: KubeClient, tmp_path: Path
) -> None:
    ca = certificates.new_authority("afed-ca", now=_now(), days=3650)
    wildcard = [f"*.member1.{NAME}.{NAMESPACE}.svc.clusterset.local"]
    peer = certificates.issue(ca, "member", names=wildcard, now=_now(), days=9)
    member1.apply(tls_secret("peer-certs", peer, ca))
    operator_cert = certificates.issue(ca, "operator", now=_now(), days=9)
    member1.apply(tls_secret("operator-certs", operator_cert, ca))
    member1.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "root-password", "namespace": NAMESPACE},
            "data": {"password": base64.b64encode(b"break-glass").decode()},
        }
    )
    app = certificates.issue(ca, "client", now=_now(), days=9)
    app_tls = ClientTLS(ca=ca.cert, cert=app.cert, key=app.key)
    nobody = certificates.issue(ca, "nobody", now=_now(), days=9)
    nobody_tls = ClientTLS(ca=ca.cert, cert=nobody.cert, key=nobody.key)
    tls_spec = {
        "peerSecretRef": "peer-certs",
        "operatorSecretRef": "operator-certs",
        "rootPasswordSecretRef": "root-password",
    }

    operator = MemberOperator(stack, "member1", NAMESPACE, tmp_path / "operator.log")
    operator.start()
    try:
        member1.create(xline_cluster(NAME, NAMESPACE, 1, tls=tls_spec))

        def auth_on() -> bool:
            return reached(member1, 1) and (status_of(member1).get("security") or {}).get("auth")

        try:
            wait_until(auth_on, timeout=180, what="one member over mTLS with auth on")
        except AssertionError as error:
            raise AssertionError(
                f"{error}\nstatus: {status_of(member1)}\noperator log:\n{operator.tail()}"
            ) from None
        assert not any("auth is off" in w for w in status_of(member1).get("warnings", []))

        async def as_application() -> None:
            async with ConsensusClient(endpoints(1), timeout=5.0, tls=app_tls) as client:
                await client.put("/app/key", "value")
                found = await client.get("/app/key")
                assert found is not None and found.value == b"value"
                await assert_kept_out_of_the_reserved_keys(client)

        async def as_nobody() -> None:
            async with ConsensusClient(endpoints(1), timeout=5.0, tls=nobody_tls) as client:
                with pytest.raises(errors.ConsensusError):
                    await client.put("/app/key", "not mine", deadline=0)

        asyncio.run(as_application())
        asyncio.run(as_nobody())

        # The operator changes the membership with auth on.
        member1.patch(
            API,
            "XlineCluster",
            f"{NAME}-member1",
            {"spec": {"replicas": 3, "clusters": [{"id": "member1", "replicas": 3}]}},
            NAMESPACE,
        )
        try:
            wait_until(lambda: reached(member1, 3), timeout=240, what="scaled to 3 with auth on")
        except AssertionError as error:
            raise AssertionError(
                f"{error}\nstatus: {status_of(member1)}\noperator log:\n{operator.tail()}"
            ) from None
        voters, learners, leaders, _ = consensus_view(endpoints(3), tls=app_tls)
        assert len(voters) == 3 and not learners and len(leaders) == 1
    finally:
        conftest.delete_cluster(member1, NAME, NAMESPACE)
        operator.stop()
