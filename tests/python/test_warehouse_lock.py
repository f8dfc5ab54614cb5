"""A warehouse build waits for other processes to close the DuckDB file (an analyst's read-only
session, a BI tool's poll) instead of failing: DuckDB lets a process write a file only when no
other process has it open."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb

from lakehouse.engines import wait_until_writable

READER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def make_warehouse(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    con.execute("create table t as select 1 as x")
    con.close()
    return path


def hold_open(path: Path, seconds: float) -> subprocess.Popen[str]:
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
    return reader


def test_waits_for_a_reader_in_another_process_to_close(tmp_path: Path) -> None:
    path = make_warehouse(tmp_path)
    reader = hold_open(path, 1.5)
    try:
        # while the reader holds it, this process cannot write: what failed the watch's build
        try:
            duckdb.connect(str(path)).close()
            raise AssertionError("a second process could open the warehouse read-write")
        except duckdb.IOException as error:
            assert "lock" in str(error)
        started = time.monotonic()
        assert wait_until_writable(path, timeout_s=30)
        waited = time.monotonic() - started
    finally:
        reader.wait(timeout=30)
    assert waited >= 0.5
    con = duckdb.connect(str(path))  # and now it can
    assert con.execute("select x from t").fetchall() == [(1,)]
    con.close()


def test_gives_up_after_the_timeout_and_leaves_the_error_to_the_build(tmp_path: Path) -> None:
    path = make_warehouse(tmp_path)
    reader = hold_open(path, 20)
    try:
        started = time.monotonic()
        assert not wait_until_writable(path, timeout_s=1)
        assert 1 <= time.monotonic() - started < 10
    finally:
        reader.kill()
        reader.wait()


def test_a_missing_warehouse_is_writable_at_once(tmp_path: Path) -> None:
    assert wait_until_writable(tmp_path / "first-build.duckdb", timeout_s=0)
