"""The certificates of one member cluster: the Secrets `spec.tls` names, read through the
API and checked before a member is started with them or dialled with them.

Each Secret has the `kubernetes.io/tls` shape plus `ca.crt` (what cert-manager writes).
A Secret that is missing, lacks a key, holds a key that does not match its certificate,
a certificate its CA did not sign, one that has expired or one that does not cover a
member's name stops the pass before any step: the members that run keep running with the
files they have (pods mount the operator's checked copies, `publish`, never the Secret
itself), and the status and an Event say what is wrong (`CertificatesInvalid`).
"""

from __future__ import annotations

import base64
import datetime
from collections.abc import Mapping
from dataclasses import dataclass

from kubernetes_asyncio import client

from xlinefed.api.models import XlineCluster
from xlinefed.certificates import CertificateError, check_pair, fingerprint
from xlinefed.certificates import read as read_certificate
from xlinefed.consensus.auth import OPERATOR_USER
from xlinefed.consensus.client import ClientTLS
from xlinefed.platforms.kubernetes import manifests
from xlinefed.platforms.kubernetes.objects import (
    MEMBER_MANAGER,
    ObjectNotFound,
    apply_if_changed,
    read_object,
    translated,
)
from xlinefed.topology import desired_members

#: The key of the Secret spec.tls.rootPasswordSecretRef names.
PASSWORD_KEY = "password"


class CertificatesInvalid(Exception):
    """The Secrets cannot be used; the message names each Secret and what is wrong."""


@dataclass(frozen=True)
class ClusterTLS:
    #: What the operators present and trust when they dial this cluster's members.
    operator: ClientTLS
    #: sha256 of the CA bundle the members trust (their peer Secret's ca.crt).
    ca_fingerprint: str
    #: The first of the certificates in use to expire.
    expires: datetime.datetime
    #: link -> the checked contents the pods mount (`manifests.served_links`).
    served: Mapping[str, SecretData]
    #: root's password when spec.tls.rootPasswordSecretRef asks for auth, else None.
    root_password: str | None = None


SecretData = Mapping[str, bytes]


def _names(resource: XlineCluster) -> list[str]:
    """The names this cluster's members are dialled by, which their certificates must cover."""
    cluster = resource.spec.cluster_id
    return [m.host for m in desired_members(resource) if m.cluster == cluster]


def check(
    resource: XlineCluster, secrets: Mapping[str, SecretData | None], now: datetime.datetime
) -> ClusterTLS | None:
    """Pure: the cluster's TLS from the Secrets' data by name (None: not found), or
    `CertificatesInvalid` listing every problem. None when TLS is off."""
    links = manifests.tls_secrets(resource)
    operator_secret = manifests.operator_secret(resource)
    if not links or operator_secret is None:
        return None
    problems: list[str] = []
    expiries: list[datetime.datetime] = []
    names = _names(resource)
    checked: dict[str, SecretData] = {}
    for secret in dict.fromkeys([links["peer"], links["client"], operator_secret]):
        data = secrets.get(secret)
        if data is None:
            problems.append(f"Secret {secret}: not found in namespace {resource.namespace}")
            continue
        if missing := [k for k in manifests.TLS_KEYS if not data.get(k)]:
            problems.append(
                f"Secret {secret}: has no {', '.join(missing)} (a kubernetes.io/tls Secret "
                "with ca.crt, as cert-manager writes it)"
            )
            continue
        try:
            facts = check_pair(data["tls.crt"], data["tls.key"], data["ca.crt"], now=now)
        except CertificateError as error:
            problems.append(f"Secret {secret}: {error}")
            continue
        if secret in (links["peer"], links["client"]) and (uncovered := facts.missing(names)):
            problems.append(
                f"Secret {secret}: the certificate does not cover {', '.join(uncovered)} "
                f"(it names {', '.join(sorted(facts.names)) or 'nothing'})"
            )
            continue
        checked[secret] = data
        expiries.append(facts.not_after)
    if not problems and operator_secret != links["client"]:
        # The members check the operator's certificate against their client CA.
        operator, served = checked[operator_secret], checked[links["client"]]
        try:
            check_pair(operator["tls.crt"], operator["tls.key"], served["ca.crt"], now=now)
        except CertificateError as error:
            problems.append(f"Secret {operator_secret}: members would refuse it: {error}")
    root_password = None
    if (password_secret := _password_secret(resource)) is not None:
        data = secrets.get(password_secret)
        if data is None:
            problems.append(
                f"Secret {password_secret}: not found in namespace {resource.namespace} "
                "(spec.tls.rootPasswordSecretRef)"
            )
        elif not data.get(PASSWORD_KEY):
            problems.append(
                f"Secret {password_secret}: has no {PASSWORD_KEY} "
                "(spec.tls.rootPasswordSecretRef; kubectl create secret generic "
                f"{password_secret} --from-literal={PASSWORD_KEY}=...)"
            )
        else:
            root_password = data[PASSWORD_KEY].decode()
        if operator_secret in checked:
            common_name = read_certificate(checked[operator_secret]["tls.crt"]).common_name
            if common_name != OPERATOR_USER:
                # With auth on the store takes the CN as the user: any other name would
                # lock the operators out of their own store.
                problems.append(
                    f"Secret {operator_secret}: with auth on the operators' certificate must "
                    f"have CN {OPERATOR_USER} (it has {common_name or 'none'}); issue it "
                    f"with commonName: {OPERATOR_USER}"
                )
    if problems:
        raise CertificatesInvalid("; ".join(problems))
    operator = checked[operator_secret]
    return ClusterTLS(
        operator=ClientTLS(
            ca=operator["ca.crt"], cert=operator["tls.crt"], key=operator["tls.key"]
        ),
        ca_fingerprint=fingerprint(checked[links["peer"]]["ca.crt"]),
        expires=min(expiries),
        served={link: checked[links[link]] for link in manifests.served_links(resource)},
        root_password=root_password,
    )


def _password_secret(resource: XlineCluster) -> str | None:
    tls = resource.spec.tls
    if tls is None or not tls.root_password_secret_ref:
        return None
    return tls.root_password_secret_ref


async def _read_secret(api: client.ApiClient, namespace: str, name: str) -> SecretData | None:
    try:
        with translated(f"reading Secret {namespace}/{name}"):
            secret = await client.CoreV1Api(api).read_namespaced_secret(name, namespace)
    except ObjectNotFound:
        return None
    return {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}


async def read(
    api: client.ApiClient, resource: XlineCluster, now: datetime.datetime
) -> ClusterTLS | None:
    """The cluster's TLS as its Secrets hold it now (see `check`)."""
    links = manifests.tls_secrets(resource)
    operator_secret = manifests.operator_secret(resource)
    if not links or operator_secret is None:
        return None
    names = dict.fromkeys([links["peer"], links["client"], operator_secret])
    if (password_secret := _password_secret(resource)) is not None:
        names[password_secret] = None
    secrets = {name: await _read_secret(api, resource.namespace, name) for name in names}
    return check(resource, secrets, now)


async def publish(api: client.ApiClient, resource: XlineCluster, found: ClusterTLS) -> int:
    """Write the checked certificates into the copies the pods mount (`manifests.tls_copy`);
    how many copies changed. A rotation reaches running members through these."""
    written = 0
    for link, data in found.served.items():
        body = manifests.tls_copy(resource, link, data)
        current = await read_object(
            api, "v1", "Secret", resource.namespace, body["metadata"]["name"]
        )
        written += await apply_if_changed(api, body, current, manager=MEMBER_MANAGER)
    return written
