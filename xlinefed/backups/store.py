"""The one boundary to boto3: an S3-compatible bucket, as the backups use it.

boto3 (the AWS SDK) because it speaks to every S3-compatible server, reads credentials the
usual way (AWS_* variables, shared credentials files, instance roles) and retries
throttling itself. Uploads are multipart with one part being read while the previous one
is sent: memory stays at two parts whatever the snapshot's size. The checksum of a stream
is known only at its end, so an upload is committed by copying the object onto itself with
the full metadata; an object without `xlinefed-sha256` is an upload that never committed,
which restore refuses and retention clears away.

boto3 is synchronous; calls run in worker threads (`asyncio.to_thread`). Its errors are
translated here into `StoreError` with what to do about them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

try:  # an optional extra: `pip install 'xlinefed[backup]'`
    import boto3
    import botocore.config
    import botocore.exceptions
    import botocore.session
except ImportError:  # pragma: no cover - exercised only without the extra
    boto3 = None

#: Size of each uploaded part, bytes (S3: at least 5 MiB but for the last).
PART_SIZE = 16 * 1024 * 1024


class StoreError(RuntimeError):
    """The object store refused or did not answer; the message says what to check."""


class ChecksumMismatch(StoreError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: datetime
    metadata: Mapping[str, str]


@dataclass(frozen=True)
class Uploaded:
    key: str
    size: int
    sha256: str


def _explain(error: Exception, what: str, endpoint: str | None) -> StoreError:
    where = endpoint or "the default AWS endpoint"
    if isinstance(error, botocore.exceptions.EndpointConnectionError | ConnectionError):
        return StoreError(
            f"{what}: cannot reach the object store at {where} ({error}); check that it "
            "runs and spec.backup.destination.endpoint (or AWS_ENDPOINT_URL)"
        )
    if isinstance(error, botocore.exceptions.NoCredentialsError):
        return StoreError(
            f"{what}: no credentials; set spec.backup.destination.credentialsFile or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(error, botocore.exceptions.ClientError):
        code = error.response.get("Error", {}).get("Code", "?")
        hint = {
            "NoSuchBucket": "create the bucket first",
            "NoSuchKey": "check the URI (list the prefix to see what exists)",
            "404": "check the URI (list the prefix to see what exists)",
            "AccessDenied": "check the credentials and the bucket's policy",
            "InvalidAccessKeyId": "check the access key",
            "SignatureDoesNotMatch": "check the secret key",
        }.get(code, "see the object store's log")
        return StoreError(f"{what}: the object store refused ({code}: {error}); {hint}")
    return StoreError(f"{what}: {type(error).__name__}: {error}")


class ObjectStore:
    """One bucket of an S3-compatible store."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None = None,
        region: str | None = None,
        credentials_file: str | None = None,
        access_keys: tuple[str, str] | None = None,
        part_size: int = PART_SIZE,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        max_attempts: int = 3,
    ) -> None:
        if boto3 is None:
            raise StoreError(
                "backups need boto3: install xlinefed with its backup extra "
                "(pip install 'xlinefed[backup]')"
            )
        self.bucket = bucket
        self.endpoint = endpoint
        self.part_size = part_size
        core = botocore.session.Session()
        if credentials_file:
            if not Path(credentials_file).is_file():
                raise StoreError(
                    f"credentials file {credentials_file} does not exist; write an AWS "
                    "shared-credentials file there ([default] aws_access_key_id = ...)"
                )
            core.set_config_variable("credentials_file", credentials_file)
        keys = (
            {"aws_access_key_id": access_keys[0], "aws_secret_access_key": access_keys[1]}
            if access_keys
            else {}
        )
        session = boto3.Session(botocore_session=core, region_name=region or "us-east-1", **keys)
        self._client = session.client(
            "s3",
            endpoint_url=endpoint,
            config=botocore.config.Config(
                # S3-compatible servers serve buckets by path, not by virtual host.
                s3={"addressing_style": "path"},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                retries={"max_attempts": max_attempts, "mode": "standard"},
                # Our own sha256 guards the content; the stores differ in which of the
                # SDK's newer default checksums they accept.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    async def _call(self, what: str, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, **kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            raise _explain(error, what, self.endpoint) from None

    # ---- writing

    async def upload_stream(
        self,
        key: str,
        chunks: AsyncIterator[bytes],
        metadata: Mapping[str, str],
        *,
        on_progress: Callable[[int], None] = lambda _: None,
    ) -> Uploaded:
        """Upload what `chunks` yields as `key` by multipart upload and commit it with
        `metadata` plus its size and sha256 (`META_SIZE`, `META_SHA256` of the policy).
        On any failure the upload is aborted: nothing partial stays behind, and other
        objects are untouched."""
        from xlinefed.backups.policy import META_SHA256, META_SIZE

        what = f"upload of s3://{self.bucket}/{key}"
        created = await self._call(
            what,
            self._client.create_multipart_upload,
            Bucket=self.bucket,
            Key=key,
            Metadata=dict(metadata),
            ContentType="application/octet-stream",
        )
        upload_id = created["UploadId"]
        digest = hashlib.sha256()
        size = 0
        parts: list[dict[str, Any]] = []
        sending: asyncio.Task[Any] | None = None

        async def send(number: int, body: bytes) -> None:
            answer = await self._call(
                what,
                self._client.upload_part,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
            parts.append({"PartNumber": number, "ETag": answer["ETag"]})

        try:
            buffer = bytearray()
            number = 0

            async def flush(final: bool) -> None:
                nonlocal sending, number, buffer
                if not buffer and not (final and number == 0):
                    return
                if sending is not None:
                    await sending  # at most one part in flight, one being filled
                number += 1
                body, buffer = bytes(buffer), bytearray()
                sending = asyncio.create_task(send(number, body))

            async for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                buffer += chunk
                if len(buffer) >= self.part_size:
                    await flush(final=False)
                    on_progress(size)
            await flush(final=True)
            if sending is not None:
                await sending
            on_progress(size)
            parts.sort(key=lambda p: p["PartNumber"])
            await self._call(
                what,
                self._client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
        except BaseException:
            if sending is not None and not sending.done():
                sending.cancel()
            # The store may be down: then it has nothing committed under this key anyway.
            with contextlib.suppress(StoreError):
                await self._call(
                    what,
                    self._client.abort_multipart_upload,
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                )
            raise
        sha256 = digest.hexdigest()
        # The commit: the same object, now with its checksum. Until this lands the object
        # has no xlinefed-sha256 and counts as no backup.
        await self._call(
            what,
            self._client.copy_object,
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            Metadata={**metadata, META_SHA256: sha256, META_SIZE: str(size)},
            MetadataDirective="REPLACE",
            ContentType="application/octet-stream",
        )
        return Uploaded(key, size, sha256)

    async def upload_file(self, key: str, path: Path) -> None:
        """boto3's managed upload of a whole file (the benchmark's hand-made baseline)."""
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_chunksize=self.part_size, max_concurrency=2)
        await self._call(
            f"upload of {path}",
            self._client.upload_file,
            Filename=str(path),
            Bucket=self.bucket,
            Key=key,
            Config=config,
        )

    async def delete(self, key: str) -> None:
        await self._call(
            f"delete of s3://{self.bucket}/{key}",
            self._client.delete_object,
            Bucket=self.bucket,
            Key=key,
        )

    # ---- reading

    async def head(self, key: str) -> ObjectInfo:
        answer = await self._call(
            f"s3://{self.bucket}/{key}", self._client.head_object, Bucket=self.bucket, Key=key
        )
        return ObjectInfo(
            key, answer["ContentLength"], answer["LastModified"], answer.get("Metadata", {})
        )

    async def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object under `prefix`, with its metadata (one HEAD per object)."""
        what = f"listing of s3://{self.bucket}/{prefix}"
        keys: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = await self._call(what, self._client.list_objects_v2, **kwargs)
            keys.extend(item["Key"] for item in page.get("Contents", []))
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        return [await self.head(key) for key in sorted(keys)]

    async def download(
        self,
        key: str,
        path: Path,
        *,
        on_progress: Callable[[int], None] = lambda _: None,
    ) -> tuple[int, str]:
        """Stream `key` into `path` (written as `path.partial`, renamed at the end);
        returns (size, sha256) of what arrived."""
        what = f"download of s3://{self.bucket}/{key}"
        answer = await self._call(what, self._client.get_object, Bucket=self.bucket, Key=key)
        body = answer["Body"]
        digest = hashlib.sha256()
        size = 0
        partial = path.with_name(path.name + ".partial")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with partial.open("wb") as out:
                while True:
                    try:
                        chunk = await asyncio.to_thread(body.read, 1024 * 1024)
                    except (botocore.exceptions.BotoCoreError, OSError) as error:
                        raise _explain(error, what, self.endpoint) from None
                    if not chunk:
                        break
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                    on_progress(size)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
            body.close()
        return size, digest.hexdigest()

    # ---- tests and tools

    async def create_bucket(self) -> None:
        await self._call(
            f"create bucket {self.bucket}", self._client.create_bucket, Bucket=self.bucket
        )

    async def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str]) -> None:
        await self._call(
            f"put s3://{self.bucket}/{key}",
            self._client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            Metadata=dict(metadata),
        )
