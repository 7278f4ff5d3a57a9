"""A small synchronous Kubernetes REST client for the test stack (stdlib only).

Why not kubernetes_asyncio: the launcher, the hostlet and the stack tests are plain
blocking code (process supervision, probes, `wait_until` polling). A blocking client on
`http.client` + `ssl` with client-certificate auth keeps them free of an event loop and of
extra dependencies, keeps one keep-alive connection per thread, and makes every request
visible in one place. Operator code keeps using kubernetes_asyncio against the same
kubeconfig files.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]


class ApiError(Exception):
    """A non-2xx answer from the API server."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.body = body
        try:
            self.reason = json.loads(body).get("reason", "")
        except ValueError:
            self.reason = ""
        super().__init__(f"{method} {path}: HTTP {status}: {body[:500]}")

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409


@dataclass(frozen=True)
class Credentials:
    """Where and how to reach one API server (client certificate or bearer token)."""

    server: str
    ca: Path
    cert: Path | None = None
    key: Path | None = None
    token: str | None = None


def write_kubeconfig(path: Path, name: str, creds: Credentials) -> None:
    """Write a kubeconfig (file references, absolute paths) usable by kubectl and clients."""
    user: Obj = {}
    if creds.cert and creds.key:
        user = {"client-certificate": str(creds.cert), "client-key": str(creds.key)}
    if creds.token:
        user["token"] = creds.token
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": creds.server, "certificate-authority": str(creds.ca)},
            }
        ],
        "users": [{"name": f"{name}-admin", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def read_kubeconfig(path: Path) -> Credentials:
    """The current context's credentials from a kubeconfig with file references."""
    config = yaml.safe_load(path.read_text())
    context_name = config["current-context"]
    context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
    cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
    user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
    return Credentials(
        server=cluster["server"],
        ca=Path(cluster["certificate-authority"]),
        cert=Path(user["client-certificate"]) if "client-certificate" in user else None,
        key=Path(user["client-key"]) if "client-key" in user else None,
        token=user.get("token"),
    )


def split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class KubeClient:
    """Blocking JSON client for one API server; safe to share between threads."""

    def __init__(self, creds: Credentials, *, timeout: float = 30.0) -> None:
        self.creds = creds
        self.timeout = timeout
        url = urllib.parse.urlsplit(creds.server)
        self._host = url.hostname or "127.0.0.1"
        self._port = url.port or 443
        self._context = ssl.create_default_context(cafile=str(creds.ca))
        if creds.cert and creds.key:
            self._context.load_cert_chain(str(creds.cert), str(creds.key))
        self._local = threading.local()
        self._resources: dict[tuple[str, str], tuple[str, bool]] = {}
        self._resources_lock = threading.Lock()

    @classmethod
    def from_kubeconfig(cls, path: Path | str, **kwargs: Any) -> KubeClient:
        return cls(read_kubeconfig(Path(path)), **kwargs)

    # -- transport ---------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPSConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPSConnection(
                self._host, self._port, context=self._context, timeout=self.timeout
            )
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
        self._local.connection = None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: dict[str, Any] | None = None,
        content_type: str = "application/json",
        raw: bool = False,
    ) -> Any:
        """Send one request; return the decoded JSON (or text when `raw`)."""
        if params:
            query = {k: str(v).lower() if isinstance(v, bool) else v for k, v in params.items()}
            path = f"{path}?{urllib.parse.urlencode(query)}"
        headers = {"Accept": "application/json"}
        if self.creds.token:
            headers["Authorization"] = f"Bearer {self.creds.token}"
        payload: bytes | None = None
        if body is not None:
            payload = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers["Content-Type"] = content_type
        for attempt in (1, 2):
            connection = self._connection()
            try:
                connection.request(method, path, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, ConnectionError, OSError):
                self._drop_connection()
                if attempt == 2:
                    raise
        text = data.decode(errors="replace")
        if response.status >= 300:
            raise ApiError(method, path, response.status, text)
        if raw:
            return text
        return json.loads(text) if text else None

    def close(self) -> None:
        self._drop_connection()

    def watch(
        self, path: str, resource_version: str, *, timeout_seconds: int = 30
    ) -> Iterator[Obj]:
        """Watch events of the collection at `path` from `resource_version`.

        Runs on its own connection (a watch keeps it busy) and ends when the server closes
        the stream after `timeout_seconds`. A 410 Gone arrives as an ERROR event.
        """
        query = urllib.parse.urlencode(
            {
                "watch": "true",
                "resourceVersion": resource_version,
                "timeoutSeconds": timeout_seconds,
                "allowWatchBookmarks": "true",
            }
        )
        connection = http.client.HTTPSConnection(
            self._host, self._port, context=self._context, timeout=timeout_seconds + 10
        )
        headers = {"Accept": "application/json"}
        if self.creds.token:
            headers["Authorization"] = f"Bearer {self.creds.token}"
        try:
            connection.request("GET", f"{path}?{query}", headers=headers)
            response = connection.getresponse()
            if response.status >= 300:
                raise ApiError("GET", path, response.status, response.read().decode())
            while True:
                line = response.readline()
                if not line:
                    return
                if line.strip():
                    yield json.loads(line)
        finally:
            connection.close()

    # -- resources ---------------------------------------------------------------------

    def resource(self, api_version: str, kind: str) -> tuple[str, bool]:
        """(plural, namespaced) of a kind, from discovery (cached; refreshed on a miss)."""
        key = (api_version, kind)
        with self._resources_lock:
            if key in self._resources:
                return self._resources[key]
        group, version = split_api_version(api_version)
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        listing = self.request("GET", base)
        found: tuple[str, bool] | None = None
        with self._resources_lock:
            for item in listing.get("resources", []):
                if "/" in item["name"]:
                    continue
                entry = (item["name"], bool(item["namespaced"]))
                self._resources[(api_version, item["kind"])] = entry
                if item["kind"] == kind:
                    found = entry
        if found is None:
            raise LookupError(f"{kind} not served under {base}")
        return found

    def path(
        self, api_version: str, kind: str, name: str | None = None, namespace: str | None = None
    ) -> str:
        """The REST path of a collection (no `name`) or of one object."""
        plural, namespaced = self.resource(api_version, kind)
        group, version = split_api_version(api_version)
        base = f"/apis/{group}/{version}" if group else f"/api/{version}"
        if namespaced and namespace:
            base = f"{base}/namespaces/{namespace}"
        base = f"{base}/{plural}"
        return f"{base}/{name}" if name else base

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> Obj:
        return self.request("GET", self.path(api_version, kind, name, namespace))

    def get_or_none(
        self, api_version: str, kind: str, name: str, namespace: str | None = None
    ) -> Obj | None:
        try:
            return self.get(api_version, kind, name, namespace)
        except ApiError as error:
            if error.not_found:
                return None
            raise

    def list(
        self,
        api_version: str,
        kind: str,
        namespace: str | None = None,
        **params: Any,
    ) -> list[Obj]:
        answer = self.request("GET", self.path(api_version, kind, None, namespace), params=params)
        return answer.get("items", [])

    def create(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        path = self.path(obj["apiVersion"], obj["kind"], None, meta.get("namespace"))
        return self.request("POST", path, obj)

    def ensure(self, obj: Obj) -> Obj:
        """Create `obj` unless an object of that name exists; return what is stored."""
        try:
            return self.create(obj)
        except ApiError as error:
            if not error.conflict:
                raise
            meta = obj["metadata"]
            return self.get(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))

    def apply(self, obj: Obj, *, manager: str = "xlinefed-stack") -> Obj:
        """Server-side apply (force) of a full object."""
        meta = obj["metadata"]
        path = self.path(obj["apiVersion"], obj["kind"], meta["name"], meta.get("namespace"))
        return self.request(
            "PATCH",
            path,
            obj,
            params={"fieldManager": manager, "force": True},
            content_type="application/apply-patch+yaml",
        )

    def patch(
        self,
        api_version: str,
        kind: str,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        patch_type: str = "merge",
    ) -> Obj:
        path = self.path(api_version, kind, name, namespace)
        if subresource:
            path = f"{path}/{subresource}"
        content_type = {
            "merge": "application/merge-patch+json",
            "strategic": "application/strategic-merge-patch+json",
            "json": "application/json-patch+json",
        }[patch_type]
        return self.request("PATCH", path, patch, content_type=content_type)

    def delete(
        self,
        api_version: str,
        kind: str,
        name: str,
        namespace: str | None = None,
        *,
        grace_period: int | None = None,
        uid: str | None = None,
        missing_ok: bool = True,
    ) -> Obj | None:
        options: Obj = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if grace_period is not None:
            options["gracePeriodSeconds"] = grace_period
        if uid:
            options["preconditions"] = {"uid": uid}
        try:
            return self.request("DELETE", self.path(api_version, kind, name, namespace), options)
        except ApiError as error:
            if missing_ok and error.not_found:
                return None
            raise


def api_enabled(karmada: KubeClient, cluster: str, group_version: str, kind: str) -> bool:
    """Karmada's view of whether `cluster` serves `kind`: its scheduler places nothing of
    a kind the Cluster's status does not list yet (it refreshes that status periodically),
    so tests that install a CRD wait for this before propagating objects of it."""
    status = karmada.get("cluster.karmada.io/v1alpha1", "Cluster", cluster).get("status", {})
    return any(
        entry.get("groupVersion") == group_version
        and any(r.get("kind") == kind for r in entry.get("resources", []))
        for entry in status.get("apiEnablements", [])
    )
