"""`lakehouse watch`: land every new CSV that appears in a folder or an S3 prefix, then build the
lake and the warehouse incrementally, in one long-running process.

One process for every cycle: dbt runs in-process (`lakehouse.pipeline`), so the Spark session
dbt-spark starts on the first lake build stays up, and later cycles skip the JVM start.

**Which files land.** The source's ``*.csv`` and ``*.csv.gz`` files, not in sub-folders, not
hidden (`ingestion.expand_sources`, as `lakehouse ingest <folder>` picks them): a file being
written under a dot-name or a ``.tmp``/``.part`` suffix is never a candidate. In a folder a
candidate lands only once it is *complete*: unchanged for at least `SETTLE_SECONDS`, either
because its modification time is that old when the watch first sees it (a file written earlier
and moved in with one rename: it lands at once, with no wait), or because its size and
modification time are the same in two looks that far apart. One written in place is taken only
after its writer paused for `SETTLE_SECONDS` (so write elsewhere and rename, or use a ``.part``
name while writing); a file that still changes while it is landed is not landed (the landing
checks it) and is tried again. S3 objects are atomic: every object is complete.

**What the watch remembers.** Source files stay where they are (they are the sender's). The watch
records each file it has dealt with, by name and identity (size and mtime; on S3 size and ETag),
in ``$LAKEHOUSE_HOME/_watch/seen.json``, after the landing decided: landed, already landed, or
refused. A file whose identity changes is a new file. The record is a shortcut, not the truth: the
Bronze ledger is (a batch id is the file's content hash), so a file landed just before a crash,
and not recorded yet, is recognised as already landed on the next start and lands once.

**Bad files.** A file the landing refuses is kept, with its reason, where `lakehouse ingest` keeps
it (``$LAKEHOUSE_HOME/bronze/_rejected/walmart_sales/<date>/<batch>/`` with a ``reason.json``),
reported, and not tried again until it changes; the watch goes on.

**Builds.** Several files found in one look are landed, then built in one `pipeline.build()`
(which builds only what is new: `lakehouse.build_state`). A failed build is reported and tried
again on the next cycle that lands something, or after a back-off (the interval, doubling up to
`MAX_RETRY_WAIT_S`) when nothing arrives. It loses nothing: the batches are in the ledger, and a
build records its success only after it succeeded. After each build the warehouse's DuckDB file is
closed: between cycles other processes can open it (an analyst's ``duckdb -readonly``), and a
warehouse build that starts while one has it open waits for it to close (up to
`engines.WAREHOUSE_LOCK_WAIT_S`) rather than failing the cycle.

**Stopping.** A first SIGINT/SIGTERM (`Watcher.request_stop`) lets the step in progress finish (the
file being landed, the build running) and starts nothing new: landed batches not built yet are
built by the next start. A second one abandons at once, which is as safe as a kill: a batch is
committed by its ledger entry, written last, and an Iceberg table by one atomic commit.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ingestion.destinations import LocalDestination, S3Client, make_s3_client, s3_error
from ingestion.errors import IngestionError, RejectedFileError, SourceError
from ingestion.landing import SOURCE_SUFFIXES, LandingResult, expand_sources, land_file
from lakehouse import pipeline
from lakehouse.settings import Paths

log = logging.getLogger(__name__)

SETTLE_SECONDS = 1.0
MAX_RETRY_WAIT_S = 300.0

Say = Callable[[str], None]


class WatchRefused(RuntimeError):
    """The source cannot be watched (no such folder, a bucket that cannot be listed)."""


# --------------------------------------------------------------------------- sources


class Source(Protocol):
    """Where files arrive: a name for people, the candidates now, and a local copy of one."""

    uri: str

    def needs_second_look(self, identity: str) -> bool:
        """Whether a candidate seen with `identity` for the first time may still be being
        written, and so must look the same again `SETTLE_SECONDS` later to be complete."""
        ...

    def scan(self) -> dict[str, str]:
        """Candidate file name -> identity (changes whenever the file does)."""
        ...

    def local_copy(self, name: str) -> contextlib.AbstractContextManager[Path]:
        """The file as a local path for the landing, for the time of the `with` block."""
        ...


class FolderSource:
    """A local folder; its files are landed from where they are."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.expanduser().resolve()
        self.uri = str(self.folder)

    def needs_second_look(self, identity: str) -> bool:
        # any write moves the modification time: one that old means no write for that long
        modified_ns = int(identity.rpartition(":")[2])
        return time.time_ns() - modified_ns < SETTLE_SECONDS * 1e9

    def scan(self) -> dict[str, str]:
        if not self.folder.is_dir():
            raise WatchRefused(f"{self.folder}: no such folder")
        try:
            files = expand_sources([self.folder])
        except SourceError:  # a folder with no CSV in it (yet)
            return {}
        found = {}
        for path in files:
            try:
                stat = path.stat()
            except FileNotFoundError:  # moved away meanwhile
                continue
            found[path.name] = f"{stat.st_size}:{stat.st_mtime_ns}"
        return found

    @contextlib.contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        yield self.folder / name


class S3Source:
    """Objects directly under ``s3://bucket/prefix/``; each is copied to a local spool file (with
    the object's own name, which the ledger and a rejected copy keep) and landed from there."""

    def __init__(self, uri: str, client: S3Client, spool: Path) -> None:
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        if not bucket:
            raise WatchRefused(f"{uri}: no bucket name")
        prefix = prefix.strip("/")
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.uri = f"s3://{bucket}/{self.prefix}"
        self.client = client
        self.spool = spool

    def needs_second_look(self, identity: str) -> bool:
        return False  # objects are atomic

    def scan(self) -> dict[str, str]:
        found: dict[str, str] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, Delimiter="/"
            )
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(self.prefix) :]
                    if not name.startswith(".") and name.lower().endswith(SOURCE_SUFFIXES):
                        found[name] = f"{item['Size']}:{item['ETag'].strip(chr(34))}"
        except Exception as error:
            raise WatchRefused(str(s3_error(error, self.uri, self.bucket, "list"))) from None
        return found

    @contextlib.contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        self.spool.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.spool) as folder:
            path = Path(folder) / name
            try:
                self.client.download_file(self.bucket, self.prefix + name, str(path))
            except Exception as error:
                location = self.uri + name
                failure = s3_error(error, location, self.bucket, "read")
                raise SourceError(location, failure.problem) from None
            yield path


def spool_folder(lake: Paths) -> Path:
    """Where S3 objects are copied to be landed (one temporary folder per object)."""
    return lake.home / "_watch" / "spool"


def source_from_uri(uri: str, lake: Paths, endpoint_url: str | None = None) -> Source:
    if uri.startswith("s3://"):
        return S3Source(uri, make_s3_client(endpoint_url), spool_folder(lake))
    if "://" in uri:
        raise WatchRefused(f"{uri}: watch a folder or s3://bucket/prefix")
    return FolderSource(Path(uri))


@contextlib.contextmanager
def watching(lake: Paths) -> Iterator[None]:
    """Hold `lake`'s watch lock: one watch per lake (a second one would build into the same
    Spark metastore at the same time). Raises WatchRefused when another process holds it."""
    lock_file = lake.home / "_watch" / "watch.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise WatchRefused(
                f"another `lakehouse watch` (pid {handle.read().strip() or '?'}) is watching "
                f"{lake.home}"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        shutil.rmtree(spool_folder(lake), ignore_errors=True)  # copies a killed watch left
        yield


# --------------------------------------------------------------------------- what was seen


class SeenFiles:
    """The files of one source the watch has dealt with: name -> identity and outcome, in
    ``$LAKEHOUSE_HOME/_watch/seen.json`` (written atomically after each file)."""

    def __init__(self, path: Path, source_uri: str) -> None:
        self.path = path
        self.source_uri = source_uri
        everything = json.loads(path.read_text()) if path.is_file() else {}
        self._all: dict[str, dict[str, dict[str, Any]]] = everything
        self.files = self._all.setdefault(source_uri, {})

    def knows(self, name: str, identity: str) -> bool:
        return self.files.get(name, {}).get("identity") == identity

    def record(self, name: str, identity: str, outcome: str, **details: Any) -> None:
        at = datetime.now(UTC).isoformat(timespec="seconds")
        self.files[name] = {"identity": identity, "outcome": outcome, "at": at, **details}
        self._save()

    def forget_missing(self, present: dict[str, str]) -> None:
        """Forget files that left the source (a file that comes back is looked at again)."""
        gone = [name for name in self.files if name not in present]
        for name in gone:
            del self.files[name]
        if gone:
            self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(self._all, indent=2, sort_keys=True))
        temporary.replace(self.path)


# --------------------------------------------------------------------------- the loop


@dataclass
class Cycle:
    """What one look at the source did."""

    number: int
    landed: list[LandingResult] = field(default_factory=list)
    already_landed: list[LandingResult] = field(default_factory=list)
    refused: list[IngestionError] = field(default_factory=list)
    retry: list[IngestionError] = field(default_factory=list)
    build: str = ""
    """'' (no build), 'built', 'failed' or 'left for the next start' (stop requested first)."""
    timings: pipeline.StageTimings | None = None

    @property
    def did_something(self) -> bool:
        return bool(self.landed or self.already_landed or self.refused or self.retry or self.build)


Build = Callable[[pipeline.StageTimings], object]


def _incremental_build(timings: pipeline.StageTimings) -> object:
    return pipeline.build(timings=timings)


class Watcher:
    """Land what arrives in `source` into the local Bronze of `lake`, then build; see the module
    docstring. `say` gets one line per event, for people."""

    def __init__(
        self,
        source: Source,
        lake: Paths,
        interval: float,
        say: Say,
        build: Build = _incremental_build,
    ) -> None:
        self.source = source
        self.lake = lake
        self.interval = interval
        self.say = say
        self.build = build
        self.destination = LocalDestination(lake.bronze)
        self.seen = SeenFiles(lake.home / "_watch" / "seen.json", source.uri)
        self.stopping = threading.Event()
        self.cycles = 0
        self.refused_any = False
        self.last_build_failed = False
        # a start may follow a landing whose build never ran (or was killed): build first
        self._build_pending = True
        self._failures = 0
        self._retry_at = 0.0
        self._looked: dict[str, str] = {}

    def request_stop(self) -> None:
        self.stopping.set()

    def run(self, max_cycles: int | None = None) -> None:
        """Cycle every `interval` seconds until a stop is requested or `max_cycles` ran."""
        while not self.stopping.is_set():
            cycle = self.cycle()
            if cycle.did_something:
                self.say(describe(cycle))
            if max_cycles is not None and self.cycles >= max_cycles:
                return
            self.stopping.wait(self._next_wait())

    def _next_wait(self) -> float:
        if self._build_pending and self._failures:
            return max(0.0, min(self.interval, self._retry_at - time.monotonic()))
        return self.interval

    def ready(self) -> dict[str, str]:
        """New complete candidates (name -> identity), by name."""
        now = self.source.scan()
        self.seen.forget_missing(now)
        new = {
            name: identity for name, identity in now.items() if not self.seen.knows(name, identity)
        }
        if any(
            self._looked.get(n) != i and self.source.needs_second_look(i) for n, i in new.items()
        ):
            self.stopping.wait(SETTLE_SECONDS)
            now = self.source.scan()
        ready = {name: identity for name, identity in new.items() if now.get(name) == identity}
        self._looked = {name: now[name] for name in new if name in now}
        return dict(sorted(ready.items()))

    def cycle(self) -> Cycle:
        self.cycles += 1
        cycle = Cycle(self.cycles)
        try:
            ready = self.ready()
        except WatchRefused as error:  # the source went away for a while: try again later
            self.say(f"cannot look at {self.source.uri}: {error}")
            ready = {}
        for name, identity in ready.items():
            if self.stopping.is_set():
                break
            self._land(name, identity, cycle)
        due = bool(cycle.landed) or time.monotonic() >= self._retry_at
        if self._build_pending and due and not pipeline.bronze_is_empty(self.lake):
            if self.stopping.is_set():
                cycle.build = "left for the next start"
            else:
                self._build(cycle)
        return cycle

    def _land(self, name: str, identity: str, cycle: Cycle) -> None:
        try:
            with self.source.local_copy(name) as path:
                result = land_file(path, self.destination)
        except RejectedFileError as error:
            self.refused_any = True
            cycle.refused.append(error)
            self.seen.record(name, identity, "refused", reason=str(error), kept=error.rejected_at)
            return
        except IngestionError as error:  # changed while landing, unreadable, destination failed
            cycle.retry.append(error)
            return
        if result.status == "landed":
            cycle.landed.append(result)
            self._build_pending = True
        else:
            cycle.already_landed.append(result)
        self.seen.record(name, identity, result.status, batch_id=result.batch_id)

    def _build(self, cycle: Cycle) -> None:
        cycle.timings = pipeline.StageTimings()
        try:
            self.build(cycle.timings)
        except Exception as error:  # reported; the watch goes on and tries again
            self._failures += 1
            wait = min(self.interval * 2**self._failures, MAX_RETRY_WAIT_S)
            self._retry_at = time.monotonic() + wait
            self.last_build_failed = True
            cycle.build = "failed"
            log.debug("build failed", exc_info=True)
            self.say(f"build failed ({error}); trying again in {wait:.0f}s or when a file lands")
        else:
            self._build_pending = False
            self._failures = 0
            self.last_build_failed = False
            cycle.build = "built"
        finally:
            pipeline.release_warehouse()


def describe(cycle: Cycle) -> str:
    """One line per cycle, for the log."""
    parts = []
    if cycle.landed:
        rows = sum(r.rows for r in cycle.landed)
        names = ", ".join(f"{r.source_name} ({r.batch_id})" for r in cycle.landed)
        parts.append(f"landed {len(cycle.landed)} file(s), {rows:,} rows: {names}")
    if cycle.already_landed:
        names = ", ".join(f"{r.source_name} ({r.batch_id})" for r in cycle.already_landed)
        parts.append(f"already landed: {names}")
    for error in cycle.refused:
        kept = getattr(error, "rejected_at", None)
        parts.append(f"refused {error}" + (f" (kept at {kept})" if kept else ""))
    for error in cycle.retry:
        parts.append(f"not landed, will try again: {error}")
    if cycle.timings is not None:
        notes = "; ".join(cycle.timings.notes)
        spent = ", ".join(f"{name} {secs:.1f}s" for name, secs in cycle.timings.seconds.items())
        parts.append(f"{cycle.build}: {notes}" + (f" ({spent})" if spent else ""))
    elif cycle.build:
        parts.append(f"build {cycle.build}")
    return f"cycle {cycle.number}: " + "; ".join(parts)
