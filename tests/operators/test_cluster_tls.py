"""A member cluster's certificates on Kubernetes: what the pods mount and serve, and the
check of the Secrets before anything starts or is dialled (real certificates, no I/O)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from xlinefed import certificates
from xlinefed.api.loading import parse
from xlinefed.api.models import XlineCluster
from xlinefed.planner.steps import StartMode
from xlinefed.platforms.kubernetes import manifests, tls
from xlinefed.topology import desired_members

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)
WILDCARD = "*.c1.f.ns.svc.clusterset.local"


def _cluster(**tls_spec: Any) -> XlineCluster:
    spec: dict[str, Any] = {
        "engine": "etcd",
        "version": "3.5.17",
        "federation": "f",
        "clusterId": "c1",
        "replicas": 2,
        "clusters": [{"id": "c1", "replicas": 2}, {"id": "c2", "replicas": 1}],
    }
    if tls_spec:
        spec["tls"] = tls_spec
    return parse(
        XlineCluster,
        {
            "apiVersion": "xlinefed.io/v1alpha1",
            "kind": "XlineCluster",
            "metadata": {"name": "f-c1", "namespace": "ns", "uid": "u"},
            "spec": spec,
        },
    )


def _pod(resource: XlineCluster) -> dict[str, Any]:
    member = desired_members(resource)[0]
    return manifests.pod(
        resource, member, StartMode.NEW, [(member.name, member.peer_url)], "rev", "token"
    )


def _secret(ca: certificates.Issued, names: list[str], **drop: bool) -> dict[str, bytes]:
    leaf = certificates.issue(ca, "member", names=names, now=NOW, days=90)
    data = {"tls.crt": leaf.cert, "tls.key": leaf.key, "ca.crt": ca.cert}
    return {k: v for k, v in data.items() if not drop.get(k.replace(".", "_"))}


def test_a_pod_with_tls_mounts_its_secrets_and_serves_https_only() -> None:
    pod = _pod(_cluster(peerSecretRef="peer", clientSecretRef="served"))
    container = pod["spec"]["containers"][0]
    argv = [*container["command"], *container["args"]]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    # The operator's checked copies, never the user's Secrets.
    assert volumes["tls-peer"]["secret"]["secretName"] == "f-c1-tls-peer"
    assert volumes["tls-client"]["secret"]["secretName"] == "f-c1-tls-client"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/xlinefed/tls/peer", "/etc/xlinefed/tls/client"} <= mounts
    assert "--listen-client-urls=https://0.0.0.0:2379" in argv
    assert "--listen-peer-urls=https://0.0.0.0:2380" in argv
    assert any(a.startswith("--advertise-client-urls=https://") for a in argv)
    assert "--cert-file=/etc/xlinefed/tls/client/tls.crt" in argv
    assert "--peer-cert-file=/etc/xlinefed/tls/peer/tls.crt" in argv
    assert "--client-cert-auth=true" in argv and "--peer-client-cert-auth=true" in argv
    # The kubelet has no client certificate: readiness on the plain health listener.
    assert container["readinessProbe"]["httpGet"] == {"path": "/health", "port": 2381}
    assert "--listen-metrics-urls=http://0.0.0.0:2381" in argv


def test_one_secret_serves_both_links_and_without_tls_nothing_is_mounted() -> None:
    pod = _pod(_cluster(peerSecretRef="peer"))
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["data", "tls-peer"]
    args = pod["spec"]["containers"][0]["args"]
    assert "--cert-file=/etc/xlinefed/tls/peer/tls.crt" in args
    plain = _pod(_cluster())
    assert [v["name"] for v in plain["spec"]["volumes"]] == ["data"]
    assert not any("https" in a or "cert" in a for a in plain["spec"]["containers"][0]["args"])
    assert plain["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] == 2379


def test_good_secrets_give_the_operator_its_certificate_and_the_ca_fingerprint() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    resource = _cluster(peerSecretRef="peer", operatorSecretRef="op")
    operator = _secret(ca, [])
    found = tls.check(resource, {"peer": _secret(ca, [WILDCARD]), "op": operator}, NOW)
    assert found is not None
    assert found.operator.cert == operator["tls.crt"] and found.operator.ca == ca.cert
    assert found.ca_fingerprint == certificates.fingerprint(ca.cert)
    assert tls.check(_cluster(), {}, NOW) is None


@pytest.mark.parametrize(
    ("secrets", "says"),
    [
        ({}, "Secret peer: not found in namespace ns"),
        ({"peer": "no-key"}, "Secret peer: has no tls.key"),
        ({"peer": "other-cluster"}, "does not cover f-c1-0.c1.f.ns.svc.clusterset.local"),
        ({"peer": "stranger"}, "Secret peer: the certificate is not signed by the CA"),
        ({"peer": "expired"}, "not now"),
    ],
    ids=["missing", "no key", "wrong names", "other CA", "expired"],
)
def test_bad_secrets_are_refused_naming_the_secret_and_the_fault(
    secrets: dict[str, str], says: str
) -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    stranger = certificates.new_authority("stranger", now=NOW, days=3650)
    made = {
        "no-key": _secret(ca, [WILDCARD], tls_key=True),
        "other-cluster": _secret(ca, ["*.c2.f.ns.svc.clusterset.local"]),
        "stranger": {**_secret(stranger, [WILDCARD]), "ca.crt": ca.cert},
        "expired": _secret(ca, [WILDCARD]),
    }
    later = NOW + datetime.timedelta(days=91) if secrets.get("peer") == "expired" else NOW
    data = {name: made[kind] for name, kind in secrets.items()}
    with pytest.raises(tls.CertificatesInvalid, match=says):
        tls.check(_cluster(peerSecretRef="peer"), data, later)


def test_an_operator_certificate_the_members_would_refuse_is_caught() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    other = certificates.new_authority("other-ca", now=NOW, days=3650)
    resource = _cluster(peerSecretRef="peer", operatorSecretRef="op")
    with pytest.raises(tls.CertificatesInvalid, match="Secret op: members would refuse it"):
        tls.check(resource, {"peer": _secret(ca, [WILDCARD]), "op": _secret(other, [])}, NOW)


def test_the_copies_hold_only_the_checked_contents_and_belong_to_the_cluster() -> None:
    ca = certificates.new_authority("fed-ca", now=NOW, days=3650)
    resource = _cluster(peerSecretRef="peer")
    peer = {**_secret(ca, [WILDCARD]), "extra": b"not copied"}
    found = tls.check(resource, {"peer": peer}, NOW)
    assert found is not None and list(found.served) == ["peer"]
    copy = manifests.tls_copy(resource, "peer", found.served["peer"])
    assert copy["type"] == "kubernetes.io/tls" and set(copy["data"]) == set(manifests.TLS_KEYS)
    assert copy["metadata"]["ownerReferences"][0]["kind"] == "XlineCluster"


# --- auth ----------------------------------------------------------------------------------


def _auth_secrets(ca: certificates.Issued, operator_cn: str = "operator") -> dict[str, Any]:
    operator = certificates.issue(ca, operator_cn, names=[], now=NOW, days=90)
    return {
        "peer": _secret(ca, [WILDCARD]),
        "ops": {"tls.crt": operator.cert, "tls.key": operator.key, "ca.crt": ca.cert},
        "root": {"password": b"s3cret"},
    }


def test_auth_reads_the_root_password_and_needs_the_operator_cn() -> None:
    ca = certificates.new_authority("ca", now=NOW, days=365)
    resource = _cluster(peerSecretRef="peer", operatorSecretRef="ops", rootPasswordSecretRef="root")
    found = tls.check(resource, _auth_secrets(ca), NOW)
    assert found is not None and found.root_password == "s3cret"
    # Without rootPasswordSecretRef nothing asks for a password or a CN.
    plain = tls.check(
        _cluster(peerSecretRef="peer", operatorSecretRef="ops"), _auth_secrets(ca, "x"), NOW
    )
    assert plain is not None and plain.root_password is None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"root": None}, "Secret root: not found in namespace ns (spec.tls.rootPasswordSecretRef)"),
        ({"root": {"other": b"x"}}, "Secret root: has no password"),
        (
            {"operator_cn": "member"},
            "Secret ops: with auth on the operators' certificate must have CN operator "
            "(it has member)",
        ),
    ],
)
def test_auth_refuses_a_missing_password_or_another_cn(
    change: dict[str, Any], expected: str
) -> None:
    ca = certificates.new_authority("ca", now=NOW, days=365)
    secrets = _auth_secrets(ca, change.get("operator_cn", "operator"))
    if "root" in change:
        secrets["root"] = change["root"]
    resource = _cluster(peerSecretRef="peer", operatorSecretRef="ops", rootPasswordSecretRef="root")
    with pytest.raises(tls.CertificatesInvalid) as refused:
        tls.check(resource, secrets, NOW)
    assert expected in str(refused.value)
