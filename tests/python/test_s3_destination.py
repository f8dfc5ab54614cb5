"""The S3 side of the landing against a real S3 HTTP endpoint on loopback (moto server):
multipart uploads, checksums verified end to end, aborted uploads, and the messages a user sees
for a missing bucket, refused credentials and denied access (never showing the credentials)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto.settings
import pytest

from ingestion.destinations import (
    LocalDestination,
    S3Destination,
    destination_from_uri,
    make_s3_client,
)
from ingestion.errors import ChecksumMismatchError, DestinationError
from ingestion.landing import land_file
from tests.python.ingestion_fixtures import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    FIXTURE,
    REGION,
    MotoS3,
    Target,
    landed,
    moto_s3_fixture,  # noqa: F401 - the moto_s3 fixture
    s3_target,
    small_s3_parts_fixture,  # noqa: F401 - the small_s3_parts fixture
    source_rows,
)

DAY = dt.date(2026, 11, 25)
CHUNK = 4096


def b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def composite_sha256(data: bytes, chunk: int) -> str:
    """S3's checksum of a multipart object: SHA-256 of the parts' SHA-256s, then -<parts>."""
    digests = [hashlib.sha256(data[i : i + chunk]).digest() for i in range(0, len(data), chunk)]
    return f"{base64.b64encode(hashlib.sha256(b''.join(digests)).digest()).decode()}-{len(digests)}"


@pytest.fixture
def multipart_target(moto_s3: MotoS3, small_s3_parts: int) -> Target:
    """Every object above 8 KiB goes up in 4 KiB parts."""
    return s3_target(moto_s3, multipart_threshold=2 * CHUNK, multipart_chunksize=CHUNK)


def test_large_parts_go_up_as_verified_multipart_uploads(multipart_target: Target) -> None:
    target = multipart_target
    result = land_file(FIXTURE, target.destination, ingest_date=DAY)
    objects = target.objects()
    batch = landed(objects, result.batch_id)
    assert batch.rows() == [[*f, str(n)] for n, f in source_rows(FIXTURE)]
    key = next(iter(batch.parts))
    stored = objects[key]
    assert len(stored) > 2 * CHUNK  # so it was a multipart upload ...
    head = target.s3.head_object(
        Bucket=target.bucket, Key=target.prefix + key, ChecksumMode="ENABLED"
    )
    # ... whose checksum, as S3 computed it from the parts it received, is the one of our bytes
    # (AWS appends "-<parts>"; moto leaves it out of HEAD)
    assert head["ChecksumSHA256"].split("-")[0] == composite_sha256(stored, CHUNK).split("-")[0]
    assert head["ChecksumSHA256"] != b64_sha256(stored)  # a checksum of checksums, not of bytes
    assert batch.manifest["parts"][0]["sha256"] == hashlib.sha256(stored).hexdigest()
    assert target.open_multipart_uploads() == []


def test_small_objects_go_up_in_one_put_with_their_sha256(moto_s3: MotoS3) -> None:
    target = s3_target(moto_s3)
    result = land_file(FIXTURE, target.destination, ingest_date=DAY)
    key = f"walmart_sales/ingest_date={DAY}/batch_id={result.batch_id}/part-00000.csv.gz"
    head = target.s3.head_object(
        Bucket=target.bucket, Key=target.prefix + key, ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"] == b64_sha256(target.objects()[key])


@pytest.fixture
def corrupting(multipart_target: Target) -> Iterator[Target]:
    """Flip one byte of the second part of every multipart upload, after it was checksummed
    and signed: what a bad NIC or proxy would do."""
    client = multipart_target.destination.client  # type: ignore[attr-defined]

    def flip(request: Any, **_: Any) -> None:
        if "partNumber=2" in request.url:
            body = bytearray(
                request.body if isinstance(request.body, bytes) else request.body.read()
            )
            body[len(body) // 2] ^= 0xFF
            request.body = bytes(body)

    client.meta.events.register("before-send.s3.UploadPart", flip)
    yield multipart_target
    client.meta.events.unregister("before-send.s3.UploadPart", flip)


def test_an_upload_corrupted_in_flight_is_detected_and_nothing_commits(
    corrupting: Target,
) -> None:
    target = corrupting
    with pytest.raises(ChecksumMismatchError) as caught:
        land_file(FIXTURE, target.destination, ingest_date=DAY)
    assert "SHA-256" in str(caught.value) and "deleted" in str(caught.value)
    objects = target.objects()
    assert not [k for k in objects if k.startswith("_ledger/") or "/part-" in k], sorted(objects)
    assert target.open_multipart_uploads() == []


def test_a_crash_mid_multipart_upload_aborts_it_and_a_rerun_completes(
    multipart_target: Target,
) -> None:
    target = multipart_target
    client = target.destination.client  # type: ignore[attr-defined]

    def crash(request: Any, **_: Any) -> None:
        if "partNumber=3" in request.url:
            raise ConnectionResetError("injected: connection lost mid-upload")

    client.meta.events.register("before-send.s3.UploadPart", crash)
    try:
        with pytest.raises(DestinationError):
            land_file(FIXTURE, target.destination, ingest_date=DAY)
    finally:
        client.meta.events.unregister("before-send.s3.UploadPart", crash)
    # no partial object under a final key, no multipart upload left open, no ledger entry
    objects = target.objects()
    assert not [k for k in objects if "/part-" in k or k.startswith("_ledger/")], sorted(objects)
    assert target.open_multipart_uploads() == []
    # and a re-run lands every row exactly once
    result = land_file(FIXTURE, target.destination, ingest_date=DAY)
    rows = landed(target.objects(), result.batch_id).rows()
    assert rows == [[*f, str(n)] for n, f in source_rows(FIXTURE)]


def test_a_missing_bucket_is_named(moto_s3: MotoS3) -> None:
    destination = S3Destination(
        make_s3_client(moto_s3.endpoint, REGION), "no-such-bucket", "bronze"
    )
    with pytest.raises(DestinationError) as caught:
        land_file(FIXTURE, destination, ingest_date=DAY)
    assert "the bucket 'no-such-bucket' does not exist" in str(caught.value)
    assert str(caught.value).startswith("s3://no-such-bucket/bronze/")


@pytest.fixture
def authenticating(moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch) -> MotoS3:
    """From now on the moto server checks signatures and IAM policies like AWS."""
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    return moto_s3


def test_refused_credentials_say_so_without_showing_them(
    moto_s3: MotoS3,
    authenticating: MotoS3,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bucket = "creds-test"
    destination = S3Destination(make_s3_client(moto_s3.endpoint, REGION), bucket, "bronze")
    with (
        caplog.at_level(logging.DEBUG, logger="ingestion"),
        pytest.raises(DestinationError) as caught,
    ):
        land_file(FIXTURE, destination, ingest_date=DAY)
    message = str(caught.value)
    assert "S3 rejected the credentials (InvalidAccessKeyId)" in message
    assert "AWS_ACCESS_KEY_ID" in message  # says what to check ...
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ingestion"))
    for secret in (FAKE_KEY_ID, FAKE_SECRET):  # ... never what it is
        assert secret not in message and secret not in ours


def test_denied_access_names_the_missing_permission(
    moto_s3: MotoS3,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given a user who may read the bucket but not write to it
    bucket = moto_s3.new_bucket()
    iam = boto3.client("iam", endpoint_url=moto_s3.endpoint, region_name=REGION)
    iam.create_user(UserName="reader")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
        ],
    }
    iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="reader")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    destination = S3Destination(make_s3_client(moto_s3.endpoint, REGION), bucket, "bronze")
    # when it lands a file, then it is told access is denied and which permissions are needed
    with pytest.raises(DestinationError) as caught:
        land_file(FIXTURE, destination, ingest_date=DAY)
    message = str(caught.value)
    assert "access denied" in message and "s3:PutObject" in message
    assert key["SecretAccessKey"] not in message and key["AccessKeyId"] not in message


def test_no_credentials_at_all_is_explained(
    moto_s3: MotoS3,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    destination = S3Destination(make_s3_client(moto_s3.endpoint, REGION), "any-bucket", "bronze")
    with pytest.raises(DestinationError, match="no usable AWS credentials"):
        land_file(FIXTURE, destination, ingest_date=DAY)


def test_the_client_retries_patiently() -> None:
    client = make_s3_client("http://127.0.0.1:9", REGION)
    # botocore counts max_attempts as retries: 10 retries after the first attempt
    assert client.meta.config.retries == {"mode": "adaptive", "total_max_attempts": 11}
    assert client.meta.config.s3 == {"addressing_style": "path"}


def test_destination_uris(tmp_path: Path) -> None:
    with pytest.raises(DestinationError, match="no destination"):
        destination_from_uri("")
    local = destination_from_uri(str(tmp_path / "lake"))
    assert isinstance(local, LocalDestination) and local.root == tmp_path / "lake" / "bronze"
    assert destination_from_uri(f"file://{tmp_path}/x").location() == str(tmp_path / "x" / "bronze")
    bucket_only = destination_from_uri("s3://my-bucket", "http://127.0.0.1:9")
    assert bucket_only.location("k") == "s3://my-bucket/bronze/k"
    prefixed = destination_from_uri("s3://my-bucket/team/lake/", "http://127.0.0.1:9")
    assert prefixed.location("k") == "s3://my-bucket/team/lake/bronze/k"
    with pytest.raises(DestinationError, match="unsupported destination"):
        destination_from_uri("gs://bucket/x")
