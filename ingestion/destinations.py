"""Where Bronze lands: a local folder or an S3 prefix, behind one small interface.

The landing code (`ingestion.landing`) decides what lands; a `Destination` only stores objects
under keys relative to the Bronze root (``walmart_sales/ingest_date=.../part-00000.csv.gz``) and
promises two things the landing relies on:

- **No partial object is ever visible under a final key.** Big objects are *staged* first
  (`Destination.stage`): locally a hidden temp file in the same folder, fsynced, then
  ``os.replace``; on S3 a local spool file sent as one PutObject or as a multipart upload that is
  aborted on failure.
- **Checksums are verified.** Every S3 upload carries its SHA-256 (S3 rejects a body that does
  not match) and what S3 reports afterwards is compared with our own digest; a mismatch deletes the
  object and raises `ChecksumMismatchError`.

`write(..., exclusive=True)` creates a key only if it does not exist (a hard link locally,
``If-None-Match: *`` on S3): the ledger entry that commits a batch is written that way, so two
processes landing the same file end with one batch.

Errors surface as `DestinationError` with a message that says what to fix (missing bucket, access
denied, rejected credentials); credentials never appear in messages or logs.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol, TypeAlias

from ingestion.errors import ChecksumMismatchError, DestinationError
from ingestion.gzip_parts import BytesLike

logger = logging.getLogger(__name__)

S3Client: TypeAlias = Any
"""A boto3 S3 client (``boto3.client("s3")``); see `make_s3_client`."""

#: Objects bigger than this go up as a multipart upload.
MULTIPART_THRESHOLD = 16 * 2**20
#: Size of each part of a multipart upload (S3's minimum is 5 MiB, except the last part).
MULTIPART_CHUNKSIZE = 8 * 2**20
_COPY_CHUNK = 8 * 2**20
_CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AuthorizationHeaderMalformed",
        "InvalidClientTokenId",
    }
)
_CHECKSUM_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})


@dataclass(frozen=True)
class StoredObject:
    """An object that is now in place under its final key."""

    key: str
    bytes: int
    sha256: str


class StagedObject(Protocol):
    """An object being written; invisible under `key` until `commit`."""

    key: str

    def write(self, data: BytesLike) -> None: ...

    def commit(self) -> StoredObject:
        """Publish atomically under `key` (verifying checksums); returns size and SHA-256."""
        ...

    def discard(self) -> None:
        """Drop what was written; a no-op after `commit`."""
        ...


class Destination(Protocol):
    """A Bronze root holding objects under keys (``walmart_sales/.../part-00000.csv.gz``)."""

    def location(self, key: str = "") -> str:
        """Where `key` is, for people: a path or an ``s3://`` URI."""
        ...

    def read(self, key: str) -> bytes | None:
        """The object's bytes, or None when there is no such key."""
        ...

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        """Store a small object atomically; with `exclusive`, only if the key does not exist.

        Returns False when `exclusive` and the key already existed (nothing was written).
        """
        ...

    def stage(self, key: str) -> StagedObject:
        """Start writing a (possibly large) object; see `StagedObject`."""
        ...

    def list(self, prefix: str) -> list[str]:
        """Keys that start with `prefix` (temp files excluded), sorted."""
        ...

    def delete(self, keys: Iterable[str]) -> None:
        """Remove these keys; missing keys are fine."""
        ...


# --------------------------------------------------------------------------- local folder


class LocalDestination:
    """Bronze in a local folder (the default: ``$LAKEHOUSE_HOME/bronze``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalDestination({str(self.root)!r})"

    def location(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)

    def read(self, key: str) -> bytes | None:
        path = self.root / key
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _os_error(path, "read", error) from None

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        staged = _LocalStaged(self, key)
        try:
            staged.write(data)
            if not exclusive:
                staged.commit()
                return True
            return staged.commit_exclusive()
        finally:
            staged.discard()

    def stage(self, key: str) -> StagedObject:
        return _LocalStaged(self, key)

    def list(self, prefix: str) -> list[str]:
        base = self.root / prefix
        folder = base if prefix.endswith("/") or not prefix else base.parent
        if not folder.is_dir():
            return []
        keys = []
        for path in folder.rglob("*"):
            if path.name.startswith(".") or not path.is_file():
                continue
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                keys.append(key)
        return sorted(keys)

    def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            path = self.root / key
            try:
                path.unlink(missing_ok=True)
            except OSError as error:
                raise _os_error(path, "delete", error) from None
            self.prune(path.parent)

    def prune(self, folder: Path) -> None:
        """Remove empty folders from `folder` upwards, keeping the root and its direct children
        (``walmart_sales/``, ``_ledger/``, ...: Spark tables point at them)."""
        root = self.root.resolve()
        folder = folder.resolve()
        while folder.parent != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                return
            folder = folder.parent


class _LocalStaged:
    """A hidden temp file beside the final path; `commit` fsyncs it and renames it into place."""

    def __init__(self, destination: LocalDestination, key: str) -> None:
        self.key = key
        self.destination = destination
        self.path = destination.root / key
        self.temp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        self._sha = hashlib.sha256()
        self._size = 0
        self._done = False
        self._file = self._open()

    def _open(self) -> IO[bytes]:
        for attempt in range(3):
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                return open(self.temp, "xb")
            except FileNotFoundError:
                # Another lander pruned the empty folder between our mkdir and open: again.
                if attempt == 2:
                    raise
            except OSError as error:
                raise _os_error(self.path, "write", error) from None
        raise AssertionError("unreachable")

    def write(self, data: BytesLike) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            raise _os_error(self.path, "write", error) from None
        self._sha.update(data)
        self._size += memoryview(data).nbytes

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def commit(self) -> StoredObject:
        try:
            self._flush()
            os.replace(self.temp, self.path)
            _fsync_folder(self.path.parent)
        except OSError as error:
            raise _os_error(self.path, "write", error) from None
        self._done = True
        return StoredObject(self.key, self._size, self._sha.hexdigest())

    def commit_exclusive(self) -> bool:
        """Publish only if the final path does not exist (atomically, with a hard link)."""
        try:
            self._flush()
            try:
                os.link(self.temp, self.path)
            except FileExistsError:
                return False
            except OSError:
                # No hard links here (some network file systems): exclusive create instead.
                try:
                    with open(self.path, "xb") as file:
                        file.write(self.temp.read_bytes())
                        file.flush()
                        os.fsync(file.fileno())
                except FileExistsError:
                    return False
            _fsync_folder(self.path.parent)
            self._done = True
            return True
        except OSError as error:
            raise _os_error(self.path, "write", error) from None

    def discard(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.temp.unlink(missing_ok=True)
        if not self._done:
            self.destination.prune(self.path.parent)
        self._done = True


def _fsync_folder(folder: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _os_error(path: Path, action: str, error: OSError) -> DestinationError:
    reason = error.strerror or type(error).__name__
    return DestinationError(str(path), f"cannot {action} ({reason})")


# --------------------------------------------------------------------------- S3


def make_s3_client(endpoint_url: str | None = None, region_name: str | None = None) -> S3Client:
    """A boto3 S3 client with patient retries (adaptive mode, 10 attempts).

    Credentials come from the usual chain (env, profile, instance role); `endpoint_url` (or
    ``AWS_ENDPOINT_URL``) points at an S3-compatible server, with path-style addressing.
    """
    import boto3
    from botocore.config import Config

    custom_endpoint = (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or (os.environ.get("AWS_ENDPOINT_URL"))
    )
    config = Config(
        retries={"mode": "adaptive", "max_attempts": 10},
        connect_timeout=10,
        read_timeout=120,
        s3={"addressing_style": "path"} if custom_endpoint else {},
    )
    session = boto3.session.Session()
    return session.client("s3", endpoint_url=endpoint_url, region_name=region_name, config=config)


class S3Destination:
    """Bronze under ``s3://<bucket>/<prefix>``; keys are appended to `prefix`.

    `prefix` is the Bronze root inside the bucket (``"bronze"`` or ``"lake/bronze"``; a trailing
    slash is added). Objects larger than `multipart_threshold` go up as multipart uploads.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        *,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunksize: int = MULTIPART_CHUNKSIZE,
    ) -> None:
        if not bucket:
            raise DestinationError("s3://", "no bucket name")
        self.client = client
        self.bucket = bucket
        prefix = prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    def __repr__(self) -> str:
        return f"S3Destination({self.location()!r})"

    def location(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self.prefix}{key}"

    def read(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return bytes(response["Body"].read())
        except Exception as error:
            if _error_code(error) in {"NoSuchKey", "404"}:
                return None
            raise self._error(error, key, "read") from None

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        digest = hashlib.sha256(data).digest()
        extra = {"IfNoneMatch": "*"} if exclusive else {}
        for attempt in range(5):
            try:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=data,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_b64(digest),
                    **extra,
                )
                break
            except Exception as error:
                code = _error_code(error)
                if exclusive and code in {"PreconditionFailed", "412"}:
                    return False
                if exclusive and code == "ConditionalRequestConflict" and attempt < 4:
                    time.sleep(0.2 * (attempt + 1))  # another conditional write is in flight
                    continue
                raise self._error(error, key, "write") from None
        self._check_checksum(key, response.get("ChecksumSHA256"), _b64(digest))
        return True

    def stage(self, key: str) -> StagedObject:
        return _S3Staged(self, key)

    def list(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                keys.extend(item["Key"][len(self.prefix) :] for item in page.get("Contents", []))
        except Exception as error:
            raise self._error(error, prefix, "list") from None
        return sorted(keys)

    def delete(self, keys: Iterable[str]) -> None:
        batch = [{"Key": self.prefix + key} for key in keys]
        for start in range(0, len(batch), 1000):
            chunk = batch[start : start + 1000]
            try:
                response = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )
            except Exception as error:
                raise self._error(error, chunk[0]["Key"], "delete") from None
            failures = response.get("Errors", [])
            if failures:
                first = failures[0]
                raise DestinationError(
                    self.location(first["Key"][len(self.prefix) :]),
                    f"cannot delete ({first.get('Code', 'error')}); {len(failures)} key(s) left",
                )

    # -- uploads

    def upload(self, key: str, spool: IO[bytes], size: int, sha256: bytes) -> None:
        """Send a spooled object: one PutObject, or a multipart upload aborted on failure."""
        spool.seek(0)
        if size <= self.multipart_threshold:
            body = spool.read()
            expected = _b64(sha256)
            try:
                response = self.client.put_object(
                    Bucket=self.bucket,
                    Key=self.prefix + key,
                    Body=body,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=expected,
                )
            except Exception as error:
                raise self._error(error, key, "upload") from None
            self._check_checksum(key, response.get("ChecksumSHA256"), expected)
        else:
            expected = self._multipart(key, spool, sha256)
        self._verify_stored(key, expected, size)

    def _multipart(self, key: str, spool: IO[bytes], sha256: bytes) -> str:
        """Multipart upload with a SHA-256 per part; returns the composite checksum S3 keeps."""
        full_key = self.prefix + key
        try:
            upload_id = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=full_key, ChecksumAlgorithm="SHA256"
            )["UploadId"]
        except Exception as error:
            raise self._error(error, key, "upload") from None
        try:
            parts: list[dict[str, Any]] = []
            digests: list[bytes] = []
            whole = hashlib.sha256()
            while chunk := spool.read(self.multipart_chunksize):
                digest = hashlib.sha256(chunk).digest()
                whole.update(chunk)
                digests.append(digest)
                number = len(digests)
                response = self.client.upload_part(
                    Bucket=self.bucket,
                    Key=full_key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=chunk,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_b64(digest),
                )
                self._check_checksum(key, response.get("ChecksumSHA256"), _b64(digest))
                parts.append(
                    {"ETag": response["ETag"], "PartNumber": number, "ChecksumSHA256": _b64(digest)}
                )
            if whole.digest() != sha256:
                raise ChecksumMismatchError(
                    self.location(key), "the spool file changed before it was uploaded"
                )
            composite = f"{_b64(hashlib.sha256(b''.join(digests)).digest())}-{len(digests)}"
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
            )
            self._check_checksum(key, response.get("ChecksumSHA256"), composite)
            return composite
        except BaseException as error:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=full_key, UploadId=upload_id
                )
            if isinstance(error, Exception) and not isinstance(error, DestinationError):
                raise self._error(error, key, "upload") from None
            raise

    def _verify_stored(self, key: str, expected: str, size: int) -> None:
        """Compare what S3 says it stored with what we sent; delete it if they differ."""
        try:
            head = self.client.head_object(
                Bucket=self.bucket, Key=self.prefix + key, ChecksumMode="ENABLED"
            )
        except Exception as error:
            raise self._error(error, key, "verify") from None
        stored = head.get("ChecksumSHA256")
        if head.get("ContentLength") != size or not _same_checksum(stored, expected):
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
            raise ChecksumMismatchError(
                self.location(key),
                f"S3 stored {head.get('ContentLength')} bytes with SHA-256 {stored}, "
                f"we sent {size} bytes with SHA-256 {expected}; the object was deleted",
            )
        if stored is None:
            logger.warning("%s: the endpoint reports no SHA-256; not verified", self.location(key))

    def _check_checksum(self, key: str, reported: str | None, expected: str) -> None:
        if not _same_checksum(reported, expected):
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=self.bucket, Key=self.prefix + key)
            raise ChecksumMismatchError(
                self.location(key),
                f"S3 reports SHA-256 {reported}, we sent {expected}; the object was deleted",
            )

    def _error(self, error: Exception, key: str, action: str) -> DestinationError:
        return s3_error(error, self.location(key), self.bucket, action)


class _S3Staged:
    """A local spool file (in the temp folder) sent to S3 on `commit`."""

    def __init__(self, destination: S3Destination, key: str) -> None:
        self.key = key
        self.destination = destination
        self._spool: IO[bytes] = tempfile.TemporaryFile(prefix="bronze-")  # noqa: SIM115
        self._sha = hashlib.sha256()
        self._size = 0
        self._done = False

    def write(self, data: BytesLike) -> None:
        self._spool.write(data)
        self._sha.update(data)
        self._size += memoryview(data).nbytes

    def commit(self) -> StoredObject:
        try:
            self._spool.flush()
            self.destination.upload(self.key, self._spool, self._size, self._sha.digest())
        finally:
            self.discard()
        return StoredObject(self.key, self._size, self._sha.hexdigest())

    def discard(self) -> None:
        if not self._done:
            self._spool.close()
        self._done = True


def s3_error(error: Exception, location: str, bucket: str, action: str) -> DestinationError:
    """A `DestinationError` that says what to fix; never includes credentials."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(error, DestinationError):
        return error
    if isinstance(error, NoCredentialsError | PartialCredentialsError):
        return DestinationError(
            location,
            "no usable AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run where an IAM role is attached",
        )
    if isinstance(error, EndpointConnectionError):
        return DestinationError(location, f"cannot reach the S3 endpoint ({error})")
    if isinstance(error, ClientError):
        code = _error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return DestinationError(location, f"the bucket {bucket!r} does not exist")
        if code in _CREDENTIAL_CODES:
            return DestinationError(
                location,
                f"S3 rejected the credentials ({code}): check AWS_PROFILE or "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or refresh the session token",
            )
        if code in _CHECKSUM_CODES:
            return ChecksumMismatchError(
                location, f"S3 refused the upload: checksum mismatch ({code})"
            )
        if code in {"AccessDenied", "AllAccessDisabled", "403"} or status == 403:
            return DestinationError(
                location,
                f"access denied: the credentials in use may not {action} here; the IAM policy "
                f"needs s3:GetObject, s3:PutObject, s3:DeleteObject and s3:ListBucket on "
                f"bucket {bucket!r}",
            )
        return DestinationError(location, f"S3 refused to {action}: {code} (HTTP {status})")
    if isinstance(error, BotoCoreError):
        return DestinationError(location, f"S3 client error during {action}: {error}")
    return DestinationError(location, f"{action} failed: {type(error).__name__}: {error}")


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _same_checksum(reported: str | None, expected: str) -> bool:
    """Whether S3's checksum matches ours; None (not reported) counts as a match.

    A multipart object's checksum is a checksum of the parts' checksums, which AWS reports as
    ``<base64>-<parts>``; some servers leave out the ``-<parts>``, so only the digest is compared.
    """
    if reported is None:
        return True
    return reported.split("-")[0] == expected.split("-")[0]


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


# --------------------------------------------------------------------------- URIs


def destination_from_uri(uri: str, endpoint_url: str | None = None) -> Destination:
    """The destination a user names; the URI is a *lake root*, Bronze is its ``bronze`` folder.

    - a path or ``file://`` URI: ``<path>/bronze`` (the application passes ``$LAKEHOUSE_HOME``).
    - ``s3://bucket``: keys under ``bronze/``; ``s3://bucket/some/prefix``: keys under
      ``some/prefix/bronze/`` (the dbt sources read ``s3://<bucket>/<prefix>bronze``).
    """
    if not uri:
        raise DestinationError("", "no destination: name a folder or s3://bucket/prefix")
    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://") :].partition("/")
        prefix = prefix.strip("/")
        root = f"{prefix}/bronze" if prefix else "bronze"
        return S3Destination(make_s3_client(endpoint_url), bucket, root)
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        raise DestinationError(uri, "unsupported destination: use a folder or s3://bucket/prefix")
    return LocalDestination(Path(uri).expanduser().resolve() / "bronze")


def copy_file(destination: Destination, key: str, source: Path) -> StoredObject:
    """Copy a local file to `key` through a staged object (atomic, verified)."""
    staged = destination.stage(key)
    try:
        with open(source, "rb") as file:
            while chunk := file.read(_COPY_CHUNK):
                staged.write(chunk)
        return staged.commit()
    finally:
        staged.discard()


__all__ = [
    "MULTIPART_CHUNKSIZE",
    "MULTIPART_THRESHOLD",
    "Destination",
    "LocalDestination",
    "S3Client",
    "S3Destination",
    "StagedObject",
    "StoredObject",
    "copy_file",
    "destination_from_uri",
    "make_s3_client",
    "s3_error",
]
