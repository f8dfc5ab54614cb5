"""Land a CSV file the user sent in Bronze, once, completely or not at all.

One code path decides what lands, whatever the destination (`ingestion.destinations`):

1. Hash the file as sent: ``batch_id`` is the first 16 hex digits of its SHA-256. If the ledger
   already lists the batch, nothing lands (status ``already_landed``).
2. Read it once, in blocks: check the structure (`ingestion.validation`), put the columns in
   canonical order and add each row's line number (`ingestion.bronze_csv`), and gzip the rows into
   parts of at most `part_bytes` of CSV on every core (`ingestion.gzip_parts`). Parts are *staged*
   (invisible) until the whole file has passed. A file that fails is copied under ``_rejected/``
   with a ``reason.json`` and nothing else lands.
3. Commit: publish the parts, then ``_manifest.json`` beside them, then (last, exclusively) the
   ledger entry ``_ledger/walmart_sales/<batch_id>.json``. Silver builds only batches in the ledger,
   so a crash before that leaves nothing a build reads as committed.

Crash recovery: before the parts are published, ``_inflight/walmart_sales/<batch_id>.json``
records the ingest date they go to. A re-run of the same file lands on that date (unless an
ingest date is given explicitly: then the earlier parts are deleted), overwriting the published
parts with identical bytes and deleting stale ones, so the batch never has rows in two places.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ingestion.bronze_csv import (
    BRONZE_HEADER,
    CorruptInputError,
    EncodedBlock,
    SourceReader,
    encode_block,
)
from ingestion.destinations import Destination, StagedObject, StoredObject, copy_file
from ingestion.errors import (
    DestinationError,
    IngestionError,
    NotCsvError,
    RejectedFileError,
    SourceError,
)
from ingestion.gzip_parts import GzipMember, ParallelGzip
from ingestion.schema import EXPECTED_COLUMNS, SOURCE_LINE_COLUMN, SOURCE_TABLE
from ingestion.validation import Header, check_header, header_only

logger = logging.getLogger(__name__)

DEFAULT_PART_BYTES = 16 * 2**20
LEDGER_PREFIX = f"_ledger/{SOURCE_TABLE}/"
INFLIGHT_PREFIX = f"_inflight/{SOURCE_TABLE}/"
REJECTED_PREFIX = f"_rejected/{SOURCE_TABLE}/"
SOURCE_SUFFIXES = (".csv", ".csv.gz")

Progress = Callable[[int], None]
Status = Literal["landed", "already_landed"]


@dataclass(frozen=True)
class LandingResult:
    """What happened to one file."""

    batch_id: str
    status: Status
    ingest_date: date
    rows: int
    parts: int
    source_name: str
    bytes: int = 0
    column_order_rewritten: bool = False
    location: str = ""
    """The batch folder (path or s3:// URI)."""


def land_file(
    source: Path,
    destination: Destination,
    ingest_date: date | None = None,
    part_bytes: int = DEFAULT_PART_BYTES,
    progress: Progress | None = None,
    *,
    compress_level: int = 1,
    workers: int | None = None,
) -> LandingResult:
    """Land one CSV (or gzip CSV) file in Bronze; see the module docstring.

    `ingest_date` defaults to today (UTC). `part_bytes` bounds the uncompressed CSV per part (a
    single row longer than that gets a part of its own). `progress` is called with the number of
    bytes of the file read so far. Raises an `IngestionError` subclass when the file cannot land.
    """
    if part_bytes < 1024:
        raise ValueError("part_bytes must be at least 1024")
    source = Path(source)
    display = str(source)
    before = _stat(source, display)
    source_sha256 = _sha256(source, display)
    batch_id = source_sha256[:16]
    ledger_key = f"{LEDGER_PREFIX}{batch_id}.json"
    inflight_key = f"{INFLIGHT_PREFIX}{batch_id}.json"

    committed = _read_json(destination, ledger_key)
    if committed is not None:
        if progress:
            progress(before.st_size)
        return _already_landed(committed, source, destination)

    inflight = _read_json(destination, inflight_key)
    landing_date = ingest_date or datetime.now(UTC).date()
    stale_prefix = None
    if inflight is not None and inflight.get("ingest_date") != landing_date.isoformat():
        earlier = str(inflight.get("ingest_date"))
        if ingest_date is None:
            landing_date = date.fromisoformat(earlier)
            logger.info("%s: resuming batch %s started on %s", display, batch_id, earlier)
        else:
            stale_prefix = _batch_prefix(earlier, batch_id)
            logger.warning(
                "%s: batch %s was partly landed on %s; moving it to %s",
                display,
                batch_id,
                earlier,
                landing_date,
            )
    batch_prefix = _batch_prefix(landing_date.isoformat(), batch_id)

    try:
        built = _build_parts(
            source,
            display,
            destination,
            batch_prefix,
            part_bytes,
            compress_level,
            workers or os.cpu_count() or 2,
            progress,
        )
    except RejectedFileError as error:
        _keep_rejected(destination, source, source_sha256, before.st_size, landing_date, error)
        raise
    try:
        if _changed(source, before):
            raise SourceError(
                display, "the file changed while it was being landed; land it again when complete"
            )
        return _commit(
            source,
            destination,
            built,
            batch_id,
            source_sha256,
            before.st_size,
            landing_date,
            stale_prefix,
            progress,
        )
    finally:
        for part in built.parts:
            part.staged.discard()


def land_paths(
    sources: Iterable[Path],
    destination: Destination,
    ingest_date: date | None = None,
    part_bytes: int = DEFAULT_PART_BYTES,
    progress: Progress | None = None,
    *,
    on_error: Callable[[Path, IngestionError], None] | None = None,
    compress_level: int = 1,
    workers: int | None = None,
) -> list[LandingResult]:
    """Land files and folders (each folder's ``*.csv`` and ``*.csv.gz``, sorted by name).

    Every file is its own batch. `progress` gets the bytes read so far over all files (their total
    is the sum of `expand_sources` sizes). Without `on_error` the first failure is raised (files
    before it stay landed); with it, failures are reported there and the other files still land.
    """
    results: list[LandingResult] = []
    done = 0
    for path in expand_sources(sources):
        size = path.stat().st_size

        def report(position: int, offset: int = done) -> None:
            if progress:
                progress(offset + position)

        try:
            results.append(
                land_file(
                    path,
                    destination,
                    ingest_date,
                    part_bytes,
                    report,
                    compress_level=compress_level,
                    workers=workers,
                )
            )
        except IngestionError as error:
            if on_error is None:
                raise
            on_error(path, error)
        done += size
        if progress:
            progress(done)
    return results


def expand_sources(sources: Iterable[Path]) -> list[Path]:
    """Files named directly (any name), plus each folder's ``*.csv``/``*.csv.gz`` (not hidden)."""
    files: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found = sorted(
                child
                for child in path.iterdir()
                if child.is_file()
                and not child.name.startswith(".")
                and child.name.lower().endswith(SOURCE_SUFFIXES)
            )
            if not found:
                raise SourceError(str(path), "no .csv or .csv.gz file in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise SourceError(str(path), "no such file or folder")
    return files


# --------------------------------------------------------------------------- building parts


@dataclass
class _Part:
    key: str
    staged: StagedObject
    member: GzipMember
    rows: int = 0
    first_line: int = 0
    last_line: int = 0
    csv_bytes: int = 0


@dataclass
class _Built:
    header: Header
    parts: list[_Part] = field(default_factory=list)
    rows: int = 0
    blank_lines: int = 0
    crlf: bool = False


def _build_parts(
    source: Path,
    display: str,
    destination: Destination,
    batch_prefix: str,
    part_bytes: int,
    level: int,
    workers: int,
    progress: Progress | None,
) -> _Built:
    """Validate and encode the whole file into staged (unpublished) gzip parts."""
    built: _Built | None = None
    parts: list[_Part] = []
    with (
        SourceReader(source, display) as reader,
        ThreadPoolExecutor(workers, thread_name_prefix="gzip") as pool,
    ):
        gzip = ParallelGzip(pool, level, max_pending=2 * workers)
        line = 2
        try:
            header_line = reader.header()
            header = check_header(display, header_line)
            built = _Built(header, parts, crlf=header_line.endswith(b"\r"))
            part: _Part | None = None
            for block in reader.blocks():
                encoded = encode_block(display, block, line, header.order)
                part = _add_rows(
                    encoded, line, part, parts, destination, batch_prefix, part_bytes, gzip
                )
                line += encoded.lines
                built.rows += encoded.rows
                built.blank_lines += encoded.blank
                if progress:
                    progress(reader.position)
            if part is not None:
                _close(part, gzip)
            gzip.wait()
            if built.rows == 0:
                raise header_only(display)
        except CorruptInputError as error:
            gzip.cancel()
            _discard(parts)
            raise NotCsvError(display, f"the gzip data is damaged ({error})", line=line) from None
        except BaseException:
            gzip.cancel()
            _discard(parts)
            raise
    assert built is not None  # set before any block is read; failures raised above
    for part in parts:
        part.csv_bytes = part.member.size
    return built


def _add_rows(
    encoded: EncodedBlock,
    first_line: int,
    part: _Part | None,
    parts: list[_Part],
    destination: Destination,
    batch_prefix: str,
    part_bytes: int,
    gzip: ParallelGzip,
) -> _Part | None:
    """Append a block's rows to the open part, opening new parts when one is full."""
    ends = encoded.ends
    row = 0
    while row < encoded.rows:
        if part is None:
            key = f"{batch_prefix}part-{len(parts):05d}.csv.gz"
            staged = destination.stage(key)
            part = _Part(key, staged, gzip.open(staged))
            parts.append(part)
            gzip.add(part.member, BRONZE_HEADER)
            part.csv_bytes = len(BRONZE_HEADER) + 1  # the header and the final newline
        budget = part_bytes - part.csv_bytes
        stop = int(np.searchsorted(ends, ends[row] + budget, side="right")) - 1
        if stop <= row:
            if part.rows:
                _close(part, gzip)
                part = None
                continue
            stop = row + 1  # a single row longer than a part: it gets a part of its own
        start_byte, stop_byte = int(ends[row]), int(ends[stop])
        gzip.add(part.member, encoded.data[start_byte:stop_byte])
        if not part.rows:
            part.first_line = _line_of_row(encoded, first_line, row)
        part.last_line = _line_of_row(encoded, first_line, stop - 1)
        part.rows += stop - row
        part.csv_bytes += stop_byte - start_byte
        row = stop
        if row < encoded.rows:
            _close(part, gzip)
            part = None
    return part


def _line_of_row(encoded: EncodedBlock, first_line: int, row: int) -> int:
    """The source line of a row: the digits after the row's last comma."""
    data = encoded.data[int(encoded.ends[row]) : int(encoded.ends[row + 1])]
    text = bytes(data)
    return int(text[text.rindex(b",") + 1 :]) if text else first_line


def _close(part: _Part, gzip: ParallelGzip) -> None:
    gzip.add(part.member, b"\n")
    gzip.close(part.member)


def _discard(parts: Sequence[_Part]) -> None:
    for part in parts:
        try:
            part.staged.discard()
        except Exception:  # cleaning up after a failure must not hide it
            logger.exception("could not discard %s", part.key)


# --------------------------------------------------------------------------- committing


def _commit(
    source: Path,
    destination: Destination,
    built: _Built,
    batch_id: str,
    source_sha256: str,
    size: int,
    landing_date: date,
    stale_prefix: str | None,
    progress: Progress | None,
) -> LandingResult:
    """Publish parts, then the manifest, then the ledger entry (exclusively)."""
    day = landing_date.isoformat()
    batch_prefix = _batch_prefix(day, batch_id)
    manifest_key = f"{batch_prefix}_manifest.json"
    ledger_key = f"{LEDGER_PREFIX}{batch_id}.json"
    inflight_key = f"{INFLIGHT_PREFIX}{batch_id}.json"

    if stale_prefix is not None:
        destination.delete(destination.list(stale_prefix))
    destination.write(inflight_key, _json_line({"batch_id": batch_id, "ingest_date": day}))
    with ThreadPoolExecutor(min(4, len(built.parts)), thread_name_prefix="publish") as pool:
        stored = list(pool.map(lambda part: part.staged.commit(), built.parts))
    ours = {part.key for part in built.parts} | {manifest_key}
    destination.delete(key for key in destination.list(batch_prefix) if key not in ours)

    ingested_at = _utc_timestamp()
    manifest = _manifest(source, built, stored, batch_id, source_sha256, size, day, ingested_at)
    destination.write(manifest_key, json.dumps(manifest, indent=2).encode() + b"\n")
    ledger = {
        "batch_id": batch_id,
        "ingest_date": day,
        "source_name": source.name,
        "source_sha256": source_sha256,
        "rows": built.rows,
        "bytes": size,
        "parts": len(built.parts),
        "ingested_at": ingested_at,
    }
    if not destination.write(ledger_key, _json_line(ledger), exclusive=True):
        return _lost_race(source, destination, manifest, manifest_key, batch_prefix, ledger_key)
    destination.delete([inflight_key])
    if progress:
        progress(size)
    logger.info(
        "landed %s as batch %s on %s: %d rows in %d part(s) at %s",
        source.name,
        batch_id,
        day,
        built.rows,
        len(built.parts),
        destination.location(batch_prefix),
    )
    return LandingResult(
        batch_id=batch_id,
        status="landed",
        ingest_date=landing_date,
        rows=built.rows,
        parts=len(built.parts),
        source_name=source.name,
        bytes=size,
        column_order_rewritten=built.header.rewritten,
        location=destination.location(batch_prefix),
    )


def _lost_race(
    source: Path,
    destination: Destination,
    manifest: dict[str, Any],
    manifest_key: str,
    batch_prefix: str,
    ledger_key: str,
) -> LandingResult:
    """Another process committed the same batch first: keep its entry, tidy up after ours."""
    winner = _read_json(destination, ledger_key)
    if winner is None:
        raise DestinationError(destination.location(ledger_key), "ledger entry vanished")
    if winner["ingest_date"] == manifest["ingest_date"]:
        # Same folder, same part bytes: only the manifest's timestamp may be ours; use theirs.
        manifest["ingested_at"] = winner["ingested_at"]
        destination.write(manifest_key, json.dumps(manifest, indent=2).encode() + b"\n")
    else:
        destination.delete(destination.list(batch_prefix))
    logger.info("%s was landed meanwhile by another process", source.name)
    return _already_landed(winner, source, destination)


def _manifest(
    source: Path,
    built: _Built,
    stored: list[StoredObject],
    batch_id: str,
    source_sha256: str,
    size: int,
    day: str,
    ingested_at: str,
) -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "source_name": source.name,
        "source_sha256": source_sha256,
        "rows": built.rows,
        "bytes": size,
        "header": built.header.text,
        "column_order_rewritten": built.header.rewritten,
        "columns": [*EXPECTED_COLUMNS, SOURCE_LINE_COLUMN],
        "utf8_bom": built.header.bom,
        "line_endings": "CRLF" if built.crlf else "LF",
        "blank_lines_skipped": built.blank_lines,
        "parts": [
            {
                "key": obj.key,
                "rows": part.rows,
                "bytes": obj.bytes,
                "sha256": obj.sha256,
                "csv_bytes": part.csv_bytes,
                "first_line": part.first_line,
                "last_line": part.last_line,
            }
            for part, obj in zip(built.parts, stored, strict=True)
        ],
        "ingest_date": day,
        "ingested_at": ingested_at,
    }


def _keep_rejected(
    destination: Destination,
    source: Path,
    source_sha256: str,
    size: int,
    landing_date: date,
    error: RejectedFileError,
) -> None:
    """Copy the file as sent under ``_rejected/`` with a ``reason.json`` beside it."""
    folder = f"{REJECTED_PREFIX}{landing_date.isoformat()}/{source_sha256[:16]}/"
    reason = {
        "file": source.name,
        "line": error.line,
        "problem": error.problem,
        "detected_at": _utc_timestamp(),
        "error": type(error).__name__,
        "message": str(error),
        "source_sha256": source_sha256,
        "bytes": size,
    }
    try:
        copy_file(destination, folder + source.name, source)
        destination.write(folder + "reason.json", json.dumps(reason, indent=2).encode() + b"\n")
    except (IngestionError, OSError) as failure:
        logger.error("could not keep a copy of rejected %s: %s", source, failure)
        error.add_note(f"(the rejected file could not be copied: {failure})")
        return
    error.rejected_at = destination.location(folder + source.name)
    logger.warning("rejected %s (kept at %s): %s", source, error.rejected_at, error)


# --------------------------------------------------------------------------- helpers


def _already_landed(
    ledger: dict[str, Any], source: Path, destination: Destination
) -> LandingResult:
    batch_id = str(ledger["batch_id"])
    day = str(ledger["ingest_date"])
    logger.info(
        "%s already landed as batch %s on %s (as %s)",
        source.name,
        batch_id,
        day,
        ledger.get("source_name"),
    )
    return LandingResult(
        batch_id=batch_id,
        status="already_landed",
        ingest_date=date.fromisoformat(day),
        rows=int(ledger["rows"]),
        parts=int(ledger["parts"]),
        source_name=source.name,
        bytes=int(ledger["bytes"]),
        location=destination.location(_batch_prefix(day, batch_id)),
    )


def _batch_prefix(day: str, batch_id: str) -> str:
    return f"{SOURCE_TABLE}/ingest_date={day}/batch_id={batch_id}/"


def _read_json(destination: Destination, key: str) -> dict[str, Any] | None:
    data = destination.read(key)
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        raise DestinationError(destination.location(key), "not valid JSON") from None
    if not isinstance(value, dict):
        raise DestinationError(destination.location(key), "not a JSON object")
    return value


def _json_line(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def _utc_timestamp() -> str:
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%dT%H:%M:%S}.{now.microsecond // 1000:03d}Z"


def _stat(source: Path, display: str) -> os.stat_result:
    try:
        result = source.stat()
    except FileNotFoundError:
        raise SourceError(display, "no such file") from None
    except OSError as error:
        raise SourceError(display, f"cannot read the file ({error.strerror})") from None
    if not source.is_file():
        raise SourceError(display, "not a regular file")
    return result


def _sha256(source: Path, display: str) -> str:
    try:
        with open(source, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError as error:
        raise SourceError(display, f"cannot read the file ({error.strerror})") from None


def _changed(source: Path, before: os.stat_result) -> bool:
    after = source.stat()
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


__all__ = [
    "DEFAULT_PART_BYTES",
    "LandingResult",
    "expand_sources",
    "land_file",
    "land_paths",
]
