"""The certificates of a local federation with TLS on, under its state directory.

```
<root>/<federation>/pki/
  ca.crt  ca.key            the federation's own CA (10 years); the key is 0600
  <member>.crt <member>.key one per member: serves its peer and client listener, and
                            is what it presents when it dials its peers
  operator.crt operator.key the controller's client certificate
  client.crt client.key     what `xlinefed local env` points etcdctl and applications at
  root-password             the store's root user's, for a person breaking glass (0600)
  renew-requested           `xlinefed local renew-certificates` asks the controller here
```
Only the controller writes certificates (one writer: a certificate and its key are never
from two issuances). A member reads its files again at every new connection (etcd has
done so since 3.2), so a renewal needs no restart: the controller replaces the key, then
the certificate, and the next handshake uses them.
"""

from __future__ import annotations

import datetime
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from xlinefed import certificates
from xlinefed.api.engines import profile
from xlinefed.api.models import TLSSpec, XlineFederation
from xlinefed.consensus.auth import APPLICATION_USER, OPERATOR_USER
from xlinefed.consensus.client import ClientTLS
from xlinefed.launch import TLSFiles
from xlinefed.logs import get_logger
from xlinefed.platforms.local.state import FederationDir, write_atomic

log = get_logger(__name__)

CA_DAYS = 3650
#: Client certificates the controller keeps: its own and the one for applications.
#: Their names are their CNs, which the store takes as its users (`consensus.auth`).
OPERATOR = OPERATOR_USER
CLIENT = APPLICATION_USER
#: Names every member certificate covers: members listen on loopback.
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def tls_spec(directory: FederationDir, federation: XlineFederation) -> TLSSpec | None:
    """The TLS settings when TLS is on, else None. On unless the spec turns it off
    (`spec.tls.enabled: false`) or omits it for an engine whose default is off
    (`EngineProfile.tls_by_default`), except for a federation that formed before local mode
    had TLS: its members run in plain text and the member list holds http peer URLs, so
    it stays so (its status warns)."""
    if federation.spec.tls is None and not profile(federation.spec.engine).tls_by_default:
        return None
    tls = federation.spec.tls or TLSSpec()
    if not tls.enabled:
        return None
    if not (directory.path / "pki" / "ca.crt").exists() and directory.read_facts().formed:
        return None
    return tls


def _write_secret(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)


class LocalPKI:
    def __init__(self, directory: FederationDir, tls: TLSSpec) -> None:
        self.dir = directory
        self.tls = tls
        self.path = directory.path / "pki"

    @property
    def renew_request_path(self) -> Path:
        return self.path / "renew-requested"

    def files(self, name: str) -> TLSFiles:
        return TLSFiles(
            ca=str(self.path / "ca.crt"),
            cert=str(self.path / f"{name}.crt"),
            key=str(self.path / f"{name}.key"),
        )

    @property
    def root_password_path(self) -> Path:
        return self.path / "root-password"

    def root_password(self) -> str:
        """The store's root password (for a person breaking glass), made once, 0600."""
        path = self.root_password_path
        if not path.exists():
            _write_secret(path, secrets.token_urlsafe(24).encode())
        return path.read_text()

    def client_tls(self, name: str = OPERATOR) -> ClientTLS:
        files = self.files(name)
        return ClientTLS(
            Path(files.ca).read_bytes(), Path(files.cert).read_bytes(), Path(files.key).read_bytes()
        )

    def _authority(self, now: datetime.datetime) -> certificates.Issued:
        cert, key = self.path / "ca.crt", self.path / "ca.key"
        if cert.exists() and key.exists():
            return certificates.Issued(cert.read_bytes(), key.read_bytes())
        issued = certificates.new_authority(f"xlinefed {self.dir.name} CA", now=now, days=CA_DAYS)
        _write_secret(key, issued.key)
        write_atomic(cert, issued.cert.decode())
        log.info("federation CA created", federation=self.dir.name, path=str(cert))
        return issued

    def _requested_at(self) -> datetime.datetime | None:
        try:
            return datetime.datetime.fromisoformat(self.renew_request_path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def request_renewal(self, now: datetime.datetime) -> None:
        write_atomic(self.renew_request_path, now.isoformat())

    def _reason(self, name: str, names: Iterable[str], now: datetime.datetime) -> str | None:
        """Why `name`'s certificate must be issued, or None when it is good."""
        files = self.files(name)
        try:
            facts = certificates.check_pair(
                Path(files.cert).read_bytes(),
                Path(files.key).read_bytes(),
                Path(files.ca).read_bytes(),
                now=now,
            )
        except FileNotFoundError:
            return "missing"
        except certificates.CertificateError as error:
            return str(error)
        if facts.renewal_due(now):
            return "due for renewal"
        if missing := facts.missing(list(names)):
            return f"does not cover {', '.join(missing)}"
        requested = self._requested_at()
        if requested is not None and facts.not_before + certificates.BACKDATE < requested:
            return "renewal requested"
        return None

    def ensure(self, name: str, *, now: datetime.datetime, server: bool) -> TLSFiles:
        """`name`'s certificate, issued when missing, due, not covering its names or
        older than a renewal request."""
        authority = self._authority(now)
        names = [*LOOPBACK_NAMES, name] if server else []
        reason = self._reason(name, names, now)
        files = self.files(name)
        if reason is not None:
            issued = certificates.issue(
                authority,
                name,
                names=names,
                now=now,
                days=self.tls.certificate_validity_days,
                server=server,
            )
            # Key first: a handshake between the two replaces fails once and is retried;
            # the other order would leave a new certificate beside the old key as long.
            _write_secret(Path(files.key), issued.key)
            write_atomic(Path(files.cert), issued.cert.decode())
            serial = certificates.read(issued.cert).serial
            log.info("certificate issued", name=name, reason=reason, serial=f"{serial:x}")
        return files

    def ensure_all(self, members: Iterable[str], *, now: datetime.datetime) -> ClientTLS:
        """Every certificate of the federation good (the members' and both clients');
        returns the controller's client credentials."""
        for member in members:
            self.ensure(member, now=now, server=True)
        for client in (OPERATOR, CLIENT):
            self.ensure(client, now=now, server=False)
        return self.client_tls(OPERATOR)
