"""Arrival-to-mart latency of `lakehouse watch` (issue #14): on top of a scale's built history,
micro-batches are moved into a watched folder one after another, and each is timed from the
moment its file appears (one rename) to the moment its rows are visible in
`marts.mart_daily_sales`, read the way an analyst reads it: the DuckDB file opened read-only,
between the watch's cycles. The probe looks every `POLL_S` seconds but opens the file only when
it (or its write-ahead log) changed since the last look: rows can only become visible through a
write, and opening DuckDB four times a second cost the 2-core machine's build about a fifth of
its speed (lake build 17-19 s a cycle with the probe against 14-16 s without, same batches).

Each micro-batch is a slice of the scale's own input file (`share` of its rows): a new batch to
the ledger (its own content hash), whose rows are all valid and whose customers agree with the
history's demographics, so every row must reach the mart.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.memory import wait_for_quiet
from bench.stages import LAKEHOUSE, QUIET, Home, _short, stage_log

log = logging.getLogger(__name__)

POLL_S = 0.25
INTERVAL_S = 1.0
START_TIMEOUT_S = 1800.0
BATCH_TIMEOUT_S = 600.0
STAGE_NAME = "watch latency"
_CYCLE_TIMES = re.compile(r"lake build ([\d.]+)s, warehouse build ([\d.]+)s")


class WatchFailed(RuntimeError):
    """The watch died or a batch did not reach the mart in time; the log says why."""


def slices(source: Path, folder: Path, batches: int, share: float) -> list[tuple[Path, int]]:
    """`batches` files of `share` of the source's rows each (consecutive slices): (file, rows)."""
    folder.mkdir(parents=True, exist_ok=True)
    with source.open("rb") as handle:
        header = handle.readline()
        rows = handle.readlines()
    size = max(1, round(len(rows) * share))
    made = []
    for number in range(batches):
        chunk = rows[(number * size) % len(rows) :][:size]
        path = folder / f"micro_batch_{number:03d}.csv"
        path.write_bytes(header + b"".join(chunk))
        made.append((path, len(chunk)))
    return made


def mart_purchases(duckdb_file: Path) -> int | None:
    """Rows the daily-sales mart counts, or None while the warehouse is being written."""
    try:
        con = duckdb.connect(str(duckdb_file), read_only=True)
    except duckdb.Error:  # the watch's build holds the file
        return None
    try:
        row = con.execute(
            "select coalesce(sum(purchases), 0) from marts.mart_daily_sales"
        ).fetchone()
        return int(row[0]) if row else 0
    except duckdb.Error:
        return None
    finally:
        con.close()


def percentile(values: list[float], share: float) -> float:
    """The `share` quantile, interpolated between the closest ranks (numpy's default)."""
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[round(share * 100) - 1]


def measure(home: Home, source: Path, batches: int, share: float) -> dict[str, Any]:
    """Start `lakehouse watch` on an empty folder of `home`, wait for its first cycle (the
    history is already built), then drop the micro-batches one by one and time each.

    One more batch goes first, timed apart as `cold_start_s`: the watch starts Spark on the
    first build it runs, once per process, and the latency of a watch that runs for days is the
    one of its warm cycles."""
    staging = home.inputs / "watch_staging"
    incoming = home.inputs / "watch_incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    files = slices(source, staging, batches + 1, share)
    log_file = stage_log(home, STAGE_NAME)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    wait_for_quiet(QUIET.max_wait_s)
    result: dict[str, Any] = {
        "batches": batches,
        "rows_per_batch": files[1][1],
        "interval_s": INTERVAL_S,
        "poll_s": POLL_S,
        "log": _short(str(log_file)),
        "latencies_s": [],
    }
    argv = [LAKEHOUSE, "watch", "--from", str(incoming), "--interval", str(INTERVAL_S)]
    with log_file.open("w") as output:
        process = subprocess.Popen(
            argv, env=home.env(), cwd=home.root, stdout=output, stderr=subprocess.STDOUT
        )
        try:
            _wait_for_first_cycle(process, log_file)
            expected = mart_purchases(home.lake / "warehouse.duckdb")
            if expected is None:
                raise WatchFailed("the warehouse could not be read after the first cycle")
            for path, rows in files:
                expected += rows
                started = time.perf_counter()
                os.replace(path, incoming / path.name)
                _wait_for_rows(process, home.lake / "warehouse.duckdb", expected, log_file)
                latency = time.perf_counter() - started
                if "cold_start_s" not in result:
                    result["cold_start_s"] = round(latency, 2)
                else:
                    result["latencies_s"].append(round(latency, 2))
                log.info("%s: %s visible after %.1f s", STAGE_NAME, path.name, latency)
        except WatchFailed as error:
            result["error"] = str(error)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                result["exit_status"] = process.wait(timeout=600)
            except subprocess.TimeoutExpired:
                process.kill()
                result["exit_status"] = process.wait()
    printed = log_file.read_text(errors="replace")
    result["build_failures"] = printed.count("build failed")
    result["cycles"] = [
        {"lake_build_s": float(lake), "warehouse_build_s": float(warehouse)}
        for lake, warehouse in _CYCLE_TIMES.findall(printed)
    ]
    latencies = result["latencies_s"]
    if latencies:
        result["p50_s"] = round(percentile(latencies, 0.5), 2)
        result["p95_s"] = round(percentile(latencies, 0.95), 2)
        result["max_s"] = max(latencies)
    return result


def _wait_for_first_cycle(process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if re.search(r"^cycle 1: ", log_file.read_text(errors="replace"), re.M):
            return
        if process.poll() is not None:
            raise WatchFailed(f"`lakehouse watch` exited {process.returncode}; see {log_file}")
        time.sleep(POLL_S)
    raise WatchFailed(f"no first cycle in {START_TIMEOUT_S:.0f} s; see {log_file}")


def file_signature(duckdb_file: Path) -> tuple[tuple[int, int] | None, ...]:
    """(mtime, size) of the DuckDB file and of its write-ahead log (None when absent)."""
    signature = []
    for path in (duckdb_file, duckdb_file.with_name(duckdb_file.name + ".wal")):
        try:
            stat = path.stat()
        except FileNotFoundError:
            signature.append(None)
        else:
            signature.append((stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


def _wait_for_rows(
    process: subprocess.Popen[bytes], duckdb_file: Path, expected: int, log_file: Path
) -> None:
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    looked_at = None
    while time.monotonic() < deadline:
        signature = file_signature(duckdb_file)
        # a read that found the file busy (None) is tried again on the next look
        seen = mart_purchases(duckdb_file) if signature != looked_at else None
        if seen is not None:
            looked_at = signature
        if seen is not None and seen >= expected:
            if seen > expected:
                raise WatchFailed(f"the mart counts {seen} purchases, {expected} expected")
            return
        if process.poll() is not None:
            raise WatchFailed(f"`lakehouse watch` exited {process.returncode}; see {log_file}")
        time.sleep(POLL_S)
    raise WatchFailed(f"a batch did not reach the mart in {BATCH_TIMEOUT_S:.0f} s; see {log_file}")


def summary(watch: dict[str, Any]) -> str:
    """One sentence for the docs and the console."""
    if not watch.get("latencies_s"):
        return f"arrival-to-mart: not measured ({watch.get('error', 'no batch')})"
    text = (
        f"arrival-to-mart (`lakehouse watch --interval {watch['interval_s']:g}`): "
        f"{len(watch['latencies_s'])} micro-batches of {watch['rows_per_batch']:,} rows, "
        f"p50 {watch['p50_s']:.1f} s, p95 {watch['p95_s']:.1f} s, max {watch['max_s']:.1f} s "
        f"(the batch before them, which started Spark: {watch['cold_start_s']:.1f} s)"
    )
    if watch.get("build_failures"):
        text += f"; {watch['build_failures']} build(s) failed and were retried"
    if watch.get("error"):
        text += f"; FAILED: {watch['error']}"
    return text
