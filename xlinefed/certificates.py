"""X.509 certificates of a federation: its own CA, one certificate per member, one per client.

The `cryptography` library issues and reads them (it is the maintained binding to
OpenSSL that Python's own `ssl` lacks an issuing API for). The time is always passed in,
so every decision here (is it due for renewal, does it cover these names) is a pure
function of the certificate and the clock the caller read.

One member certificate serves both its peer and its client listener and is also the
certificate it presents when it dials its peers: etcd's peers authenticate each other as
clients, so it carries both the serverAuth and the clientAuth usage. Keys are ECDSA P-256:
etcd, Xline (rustls) and gRPC's BoringSSL all accept them, and they are cheap to make.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: A certificate is renewed once this share of its validity has passed (cert-manager's
#: default is the same two thirds), so a member that misses a renewal pass or two still
#: holds a valid one.
RENEW_AFTER = 2 / 3

#: Clock skew between the issuer and a peer that checks the certificate: it is valid
#: from a few minutes before it was made.
BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, PEM."""

    cert: bytes
    key: bytes


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def new_authority(common_name: str, *, now: datetime.datetime, days: int) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
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
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _alternative_names(names: Sequence[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def issue(
    authority: Issued,
    common_name: str,
    *,
    names: Sequence[str] = (),
    now: datetime.datetime,
    days: int,
    server: bool = True,
) -> Issued:
    """A leaf certificate signed by `authority`: `names` (DNS names and IP addresses) as
    its subject alternative names; `server` adds the serverAuth usage to clientAuth.
    Never valid beyond the authority itself."""
    ca_cert = x509.load_pem_x509_certificate(authority.cert)
    ca_key = serialization.load_pem_private_key(authority.key, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ValueError("the CA key is not an ECDSA key")
    key = ec.generate_private_key(ec.SECP256R1())
    usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
    if server:
        usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(_alternative_names(names)), critical=False
        )
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


@dataclass(frozen=True)
class CertificateFacts:
    """What a certificate says, read once."""

    common_name: str
    names: frozenset[str]
    not_before: datetime.datetime
    not_after: datetime.datetime
    serial: int

    def renewal_due(self, now: datetime.datetime) -> bool:
        lifetime = self.not_after - self.not_before
        return now >= self.not_before + lifetime * RENEW_AFTER

    def missing(self, names: Sequence[str]) -> list[str]:
        """Which of `names` the certificate does not cover. A wildcard `*.b.c` covers
        exactly one more label (`a.b.c`, not `b.c` nor `x.a.b.c`), as TLS clients match it;
        we never issue one, but a cert-manager Certificate for a cluster usually is one."""
        return [n for n in names if not self._covers(_canonical(n))]

    def _covers(self, name: str) -> bool:
        if name in self.names:
            return True
        first, dot, rest = name.partition(".")
        return bool(first and dot and f"*.{rest}" in self.names)


def _canonical(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name.lower()


class CertificateError(ValueError):
    """A certificate or key that cannot be used, with the reason."""


def read(cert_pem: bytes) -> CertificateFacts:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate: {error}") from error
    names: set[str] = set()
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names.update(n.lower() for n in san.get_values_for_type(x509.DNSName))
        names.update(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertificateFacts(
        common_name=str(common[0].value) if common else "",
        names=frozenset(names),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
    )


def _issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def fingerprint(pem: bytes) -> str:
    """sha256 of the certificates in a PEM bundle (DER, in order), hex: equal for the same
    CA bundle however its text is wrapped."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise CertificateError(f"not a PEM certificate: {error}") from error
    digest = hashlib.sha256()
    for cert in certs:
        digest.update(cert.public_bytes(serialization.Encoding.DER))
    return digest.hexdigest()


def check_pair(
    cert_pem: bytes, key_pem: bytes, ca_pem: bytes, *, now: datetime.datetime
) -> CertificateFacts:
    """The facts of a certificate that its key matches, that `ca_pem` signed and that is
    valid at `now`; otherwise `CertificateError` saying which of those fails."""
    facts = read(cert_pem)
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"not a usable PEM private key: {error}") from error
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ours = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    if public != ours:
        raise CertificateError("the private key does not belong to the certificate")
    try:
        # A bundle during a CA rotation: the old CA and the new one.
        authorities = x509.load_pem_x509_certificates(ca_pem)
    except ValueError as error:
        raise CertificateError(f"the CA is not a PEM certificate: {error}") from error
    if not any(_issued_by(cert, ca) for ca in authorities):
        subjects = ", ".join(ca.subject.rfc4514_string() for ca in authorities)
        raise CertificateError(f"the certificate is not signed by the CA {subjects}")
    if not facts.not_before <= now <= facts.not_after:
        raise CertificateError(
            f"the certificate is valid from {facts.not_before:%Y-%m-%dT%H:%M:%SZ} to "
            f"{facts.not_after:%Y-%m-%dT%H:%M:%SZ}, not now"
        )
    return facts
