"""A real S3-compatible server for tests: versitygw (posix backend) on 127.0.0.1.

```
server = ObjectStoreServer(tmp_path / "s3")
server.start()                  # builds it if needed (hack/objectstore/build.sh, cached)
server.endpoint                 # http://127.0.0.1:<port>
server.create_bucket("backups")
server.env()                    # AWS_* variables for boto3 and the CLI
server.stop(); server.start()   # the same port and directory: the store "goes down"
```

The binary comes from hack/objectstore/build.sh (≈1 min cold, well under a second warm),
so the tests never skip for want of it. Stopped by PID (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

from tests.support.etcd_cluster import free_port
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
ACCESS_KEY = "xlinefed-test"
SECRET_KEY = "xlinefed-test-secret"


def objectstore_binary() -> str:
    built = subprocess.run(
        ["bash", str(ROOT / "hack" / "objectstore" / "build.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise RuntimeError(f"hack/objectstore/build.sh failed:\n{built.stderr[-3000:]}")
    return built.stdout.strip().splitlines()[-1]


class ObjectStoreServer:
    def __init__(self, base: Path, port: int | None = None) -> None:
        self.base = base
        self.root = base / "data"
        self.log_path = base / "versitygw.log"
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _answers(self) -> bool:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            return sock.connect_ex(("127.0.0.1", self.port)) == 0

    def start(self) -> None:
        binary = objectstore_binary()
        self.root.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    "--access",
                    ACCESS_KEY,
                    "--secret",
                    SECRET_KEY,
                    "--port",
                    f"127.0.0.1:{self.port}",
                    "--quiet",
                    "posix",
                    str(self.root),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"versitygw exited:\n{self.log_tail()}")
            return self._answers()

        wait_until(up, timeout=20, what=f"versitygw on port {self.port}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        wait_until(lambda: not self._answers(), timeout=10, what="versitygw to stop listening")

    def create_bucket(self, bucket: str) -> None:
        # A bucket of the posix backend is a top-level directory; creating it through
        # the S3 API keeps the server's own bookkeeping (owner, ACL) right.
        import boto3
        import botocore.config

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=botocore.config.Config(s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=bucket)

    def env(self) -> dict[str, str]:
        """The AWS_* variables that point boto3 (and so xlinefed) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def credentials_file(self, path: Path) -> Path:
        path.write_text(
            f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
        )
        return path
