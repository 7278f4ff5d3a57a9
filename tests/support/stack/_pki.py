"""Certificates and keys for the test stack, generated fresh for every start.

One stack CA signs every serving certificate (all servers listen on 127.0.0.1, so one
serving certificate with the loopback address and the few in-cluster service names the
aggregator and webhooks check is enough) and the client certificates. A separate
front-proxy CA signs the aggregator's client certificate, as kube-apiserver requires.
Each cluster gets its own service-account key pair, so tokens of one member are not valid
in another.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVING_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "karmada-aggregated-apiserver.karmada-system.svc",
    "karmada-webhook.karmada-system.svc",
)

_VALIDITY = datetime.timedelta(days=30)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its key on disk (PEM)."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """All credentials of one stack; paths are absolute."""

    ca: KeyPair
    front_proxy_ca: KeyPair
    front_proxy_client: KeyPair
    serving: KeyPair
    admin: KeyPair

    def service_account_key(self, cluster: str) -> KeyPair:
        """The service-account signing key (`key`) and public key (`cert`) of a cluster."""
        root = self.ca.cert.parent
        return KeyPair(cert=root / f"sa-{cluster}.pub", key=root / f"sa-{cluster}.key")


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _ca(path: Path, common_name: str) -> tuple[KeyPair, ec.EllipticCurvePrivateKey, x509.Name]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    pair = KeyPair(cert=path / f"{common_name}.crt", key=path / f"{common_name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pair.key, key)
    return pair, key, name


def _leaf(
    path: Path,
    file_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    subject: x509.Name,
    *,
    server: bool,
) -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name) for name in SERVING_DNS_NAMES]
                + [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    pair = KeyPair(cert=path / f"{file_name}.crt", key=path / f"{file_name}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(pair.key, key)
    return pair


def generate(path: Path, clusters: list[str]) -> Pki:
    """Write a fresh PKI for a stack whose clusters are `clusters` into `path`."""
    path.mkdir(parents=True, exist_ok=True)
    ca, ca_key, ca_name = _ca(path, "stack-ca")
    front_proxy_ca, fp_key, fp_name = _ca(path, "front-proxy-ca")
    pki = Pki(
        ca=ca,
        front_proxy_ca=front_proxy_ca,
        front_proxy_client=_leaf(
            path, "front-proxy-client", fp_key, fp_name, _name("front-proxy-client"), server=False
        ),
        serving=_leaf(path, "serving", ca_key, ca_name, _name("xlinefed-stack"), server=True),
        admin=_leaf(path, "admin", ca_key, ca_name, _name("admin", "system:masters"), server=False),
    )
    for cluster in clusters:
        pair = pki.service_account_key(cluster)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        _write_key(pair.key, key)
        pair.cert.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return pki


def load(path: Path) -> Pki:
    """The PKI `generate` wrote into `path` earlier."""

    def pair(name: str) -> KeyPair:
        return KeyPair(cert=path / f"{name}.crt", key=path / f"{name}.key")

    return Pki(
        ca=pair("stack-ca"),
        front_proxy_ca=pair("front-proxy-ca"),
        front_proxy_client=pair("front-proxy-client"),
        serving=pair("serving"),
        admin=pair("admin"),
    )
