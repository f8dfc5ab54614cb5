"""Fixtures and helpers for the ingestion tests: a real S3 endpoint on loopback, destinations of
both kinds, and readers that inspect what landed WITHOUT going through the code under test
(the file system and boto3 directly), so a bug in a Destination cannot hide itself.

Import the fixture functions into a test module (``from tests.python.ingestion_fixtures import
target_fixture``: the fixture is then available as ``target``); conftest.py is shared with the
rest of the project and stays out of this.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from ingestion.destinations import (
    Destination,
    LocalDestination,
    S3Destination,
    StagedObject,
    StoredObject,
    make_s3_client,
)
from tests.python.bronze_oracle import BRONZE_HEADER, CANONICAL

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURE = PROJECT_DIR / "tests" / "fixtures" / "walmart_head_2000rows.csv"
FIXTURE_ROWS = 2000
# All 29,116 real rows, only where the sibling shared/ folder exists (never on a user's clone).
SHARED_ROWS = PROJECT_DIR.parent / "shared" / "data" / "walmart" / "walmart_head_29116rows.csv"
REGION = "us-east-1"
FAKE_KEY_ID = "fake-key-id-ingestion-test"
FAKE_SECRET = "fake/secret/ingestion/never-printed-0123456789"


# --------------------------------------------------------------------------- S3 on loopback


@dataclass
class MotoS3:
    endpoint: str
    server: Any  # moto.server.ThreadedMotoServer (imported lazily: child processes skip it)

    def client(self) -> Any:
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=REGION)

    def new_bucket(self) -> str:
        name = f"bronze-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="moto_s3", scope="module")
def moto_s3_fixture() -> Iterator[MotoS3]:
    """A moto S3 server on 127.0.0.1 (a real HTTP endpoint), with fake credentials in the env."""
    from moto.server import ThreadedMotoServer

    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", FAKE_KEY_ID)
        env.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_PROFILE", raising=False)
        env.delenv("AWS_SESSION_TOKEN", raising=False)
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.delenv("AWS_ENDPOINT_URL_S3", raising=False)
        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield MotoS3(f"http://127.0.0.1:{port}", server)
        finally:
            server.stop()


@pytest.fixture(name="small_s3_parts")
def small_s3_parts_fixture(monkeypatch: pytest.MonkeyPatch) -> int:
    """Let moto accept multipart chunks below S3's 5 MiB minimum, so tests stay small."""
    import moto.s3.models

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)
    return 1024


# --------------------------------------------------------------------------- destinations


@dataclass
class Target:
    """A destination under test plus raw access to what it holds."""

    kind: str
    destination: Destination
    root: Path | None = None  # local
    s3: Any = None  # boto3 client, S3
    bucket: str = ""
    prefix: str = ""
    endpoint: str = ""

    def spec(self) -> dict[str, str]:
        """How another process can open the same destination (see `open_destination`)."""
        if self.kind == "local":
            return {"kind": "local", "root": str(self.root)}
        return {"kind": "s3", "endpoint": self.endpoint, "bucket": self.bucket,
                "prefix": self.prefix}  # fmt: skip

    def objects(self) -> dict[str, bytes]:
        """Every stored object by key (relative to the Bronze root), hidden temp files included."""
        if self.kind == "local":
            assert self.root is not None
            if not self.root.exists():
                return {}
            return {
                path.relative_to(self.root).as_posix(): path.read_bytes()
                for path in self.root.rglob("*")
                if path.is_file()
            }
        found = {}
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                assert key.startswith(self.prefix), key
                body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                found[key[len(self.prefix) :]] = body
        return found

    def open_multipart_uploads(self) -> list[str]:
        if self.kind != "s3":
            return []
        response = self.s3.list_multipart_uploads(Bucket=self.bucket)
        return [upload["Key"] for upload in response.get("Uploads", [])]


def local_target(tmp_path: Path) -> Target:
    root = tmp_path / "lake" / "bronze"
    return Target("local", LocalDestination(root), root=root)


def s3_target(moto_s3: MotoS3, **options: int) -> Target:
    bucket = moto_s3.new_bucket()
    client = make_s3_client(moto_s3.endpoint, REGION)
    prefix = "lake/bronze/"
    destination = S3Destination(client, bucket, "lake/bronze", **options)
    return Target(
        "s3", destination, s3=moto_s3.client(), bucket=bucket, prefix=prefix,
        endpoint=moto_s3.endpoint,
    )  # fmt: skip


def open_destination(spec: dict[str, str]) -> Destination:
    """The destination `Target.spec` describes (used by the tests' child processes)."""
    if spec["kind"] == "local":
        return LocalDestination(Path(spec["root"]))
    client = make_s3_client(spec["endpoint"], REGION)
    return S3Destination(client, spec["bucket"], spec["prefix"])


@pytest.fixture(name="target", params=["local", "s3"])
def target_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    """Each test using this runs against a temp folder and against S3 on loopback."""
    if request.param == "local":
        return local_target(tmp_path)
    return s3_target(request.getfixturevalue("moto_s3"))


class Hooked:
    """A Destination that delegates to a real one and calls hooks at chosen moments.

    `before_commit(key)` runs before a staged object is published, `before_write(key)` before a
    small object is written: raise in them to simulate a crash, block in them to line processes up.
    """

    def __init__(
        self,
        inner: Destination,
        before_commit: Callable[[str], None] = lambda key: None,
        before_write: Callable[[str], None] = lambda key: None,
    ) -> None:
        self.inner = inner
        self.before_commit = before_commit
        self.before_write = before_write

    def location(self, key: str = "") -> str:
        return self.inner.location(key)

    def read(self, key: str) -> bytes | None:
        return self.inner.read(key)

    def write(self, key: str, data: bytes, *, exclusive: bool = False) -> bool:
        self.before_write(key)
        return self.inner.write(key, data, exclusive=exclusive)

    def stage(self, key: str) -> StagedObject:
        return _HookedStaged(self.inner.stage(key), self.before_commit)

    def list(self, prefix: str) -> list[str]:
        return self.inner.list(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.inner.delete(keys)


class _HookedStaged:
    def __init__(self, inner: StagedObject, hook: Callable[[str], None]) -> None:
        self.inner = inner
        self.key = inner.key
        self.hook = hook

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.inner.write(data)

    def commit(self) -> StoredObject:
        self.hook(self.key)
        return self.inner.commit()

    def discard(self) -> None:
        self.inner.discard()


# --------------------------------------------------------------------------- reading what landed


@dataclass(frozen=True)
class Landed:
    parts: dict[str, bytes]  # key -> decompressed CSV
    manifest: dict[str, Any]
    ledger: dict[str, Any] | None
    ledger_text: str | None

    def rows(self) -> list[list[str]]:
        """Every data row of every part, parsed as CSV, in part order."""
        out: list[list[str]] = []
        for key in sorted(self.parts):
            reader = csv.reader(io.StringIO(self.parts[key].decode("utf-8"), newline=""))
            header = next(reader)
            assert header == BRONZE_HEADER.split(","), header
            out.extend(reader)
        return out


def landed(objects: dict[str, bytes], batch_id: str) -> Landed:
    """The parts, manifest and ledger entry of one batch, straight from the stored bytes."""
    folder = [k for k in objects if f"/batch_id={batch_id}/" in k]
    parts = {
        k: gzip.decompress(objects[k]) for k in folder if k.rsplit("/", 1)[1].startswith("part-")
    }
    manifests = [k for k in folder if k.endswith("/_manifest.json")]
    assert len(manifests) == 1, folder
    ledger_key = f"_ledger/walmart_sales/{batch_id}.json"
    text = objects[ledger_key].decode() if ledger_key in objects else None
    return Landed(
        parts=parts,
        manifest=json.loads(objects[manifests[0]]),
        ledger=json.loads(text) if text else None,
        ledger_text=text,
    )


def source_rows(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of each data row of a plain CSV, by the csv module (independent
    of the code under test). Blank lines are skipped; line numbers are physical lines."""
    text = path.read_bytes().decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text, newline=""))
    next(reader)
    return [(reader.line_num, record) for record in reader if record]


def write_csv(path: Path, header: list[str], rows: list[list[str]], newline: str = "\n") -> Path:
    path.write_bytes(
        (newline.join([",".join(header), *(",".join(r) for r in rows)]) + newline).encode()
    )
    return path


def fixture_table() -> tuple[list[str], list[list[str]]]:
    lines = FIXTURE.read_text(encoding="utf-8").splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:]]


__all__ = [
    "BRONZE_HEADER",
    "CANONICAL",
    "FAKE_KEY_ID",
    "FAKE_SECRET",
    "FIXTURE",
    "FIXTURE_ROWS",
    "REGION",
    "SHARED_ROWS",
    "Hooked",
    "Landed",
    "MotoS3",
    "Target",
    "fixture_table",
    "landed",
    "local_target",
    "moto_s3_fixture",
    "open_destination",
    "s3_target",
    "small_s3_parts_fixture",
    "source_rows",
    "target_fixture",
    "write_csv",
]
