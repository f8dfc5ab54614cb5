"""`lakehouse watch` (issue #14) driven as a user drives it: the real command as a subprocess,
real files moved into a folder and put in an S3 prefix on a moto server, the real engines.

One scenario, run once (each lake build costs 40-60 s), observed by several tests:

1. watch 1 starts on a folder holding parts A and B of the real fixture, a bad file and a
   half-written ``C.csv.part``: one cycle lands A and B, refuses the bad file and builds; the
   warehouse build fails, because the test holds the DuckDB file open read-only as an analyst
   might. Once the test lets go, the next cycle builds the warehouse alone. While the watch is
   idle, the test opens the warehouse read-only again.
2. C is completed and renamed ``C.csv``, D is moved in; watch 1 is SIGKILLed in the middle of the
   build that follows.
3. watch 2 starts on the same lake, watching an S3 prefix that holds E, a copy of A and a bad
   object. It lands E, recognises the copy of A, refuses the bad object, builds C, D and E in one
   build, gets SIGTERM in the middle of it, finishes it and exits 0.

A-E are the 2,000-row real fixture cut in five, so every layer must end with exactly the
fixture's rows and purchase sum (computed with the csv module), each batch once. What needs no
Spark (a restart remembers what it saw, a failed build is retried) is tested at the end with a
stand-in build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lakehouse import watch
from lakehouse.cli import ExitCode
from lakehouse.pipeline import StageTimings
from lakehouse.settings import Paths
from lakehouse.watch import FolderSource, Watcher
from tests.python.ingestion_fixtures import MotoS3, moto_s3_fixture  # noqa: F401 - moto_s3
from tests.python.lakehouse_story import count_rows, csv_facts, ledger_entries, open_warehouse
from tests.python.support import LAKEHOUSE, PROJECT_DIR, REAL_FIXTURE, lakehouse_env, run_lakehouse

PARTS = "ABCDE"
MID_BUILD = "OK created sql incremental model silver.slv_sales_validated"
BUILT = re.compile(r"^cycle \d+: .*built: ")
BAD_CSV = "User_ID,Product_ID\n1000001,P00069042\n"
BAD_S3 = "not,the,header\n1,2,3\n"


LOCK_WAIT_S = 2


class Watch:
    """A `lakehouse watch` subprocess whose output is read as it comes."""

    def __init__(self, home: Path, *args: str) -> None:
        env = lakehouse_env(
            home,
            {
                # dbt's artifacts go to the worker's target root (conftest.py), where the unit
                # tests that passed on this code are recorded: the watch's first build skips them
                "DBT_LOG_PATH": str(home / "_dbt_logs"),
                "PYTHONUNBUFFERED": "1",
                # a build waits this long for a reader to close the warehouse, then fails
                "LAKEHOUSE_WAREHOUSE_LOCK_WAIT_S": str(LOCK_WAIT_S),
            },
        )
        self.process = subprocess.Popen(
            [str(LAKEHOUSE), "watch", *args, "--interval", "1"],
            env=env,
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str | re.Pattern[str], since: int = 0, timeout: float = 600) -> int:
        """The index of the first line from `since` on that matches; fails if the process ends
        or the time runs out first."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index in range(since, len(self.lines)):
                if regex.search(self.lines[index]):
                    return index
            if self.process.poll() is not None:
                self._reader.join(5)
                if not any(regex.search(line) for line in self.lines[since:]):
                    break
            time.sleep(0.2)
        raise AssertionError(f"no line matching {regex.pattern!r}:\n{self.output[-6000:]}")

    def stop(self, signum: int, timeout: float = 600) -> int:
        self.process.send_signal(signum)
        returncode = self.process.wait(timeout)
        self._reader.join(10)
        return returncode


@dataclass
class Scenario:
    home: Path
    parts: dict[str, Path]
    incoming: Path
    first: Watch
    second: Watch
    killed_returncode: int
    second_returncode: int
    readonly_purchases: int | None
    readonly_error: str
    ledger_after_first_cycle: list[dict[str, Any]]


def _split_fixture(folder: Path) -> dict[str, Path]:
    lines = REAL_FIXTURE.read_text().splitlines(keepends=True)
    header, rows = lines[0], lines[1:]
    size = -(-len(rows) // len(PARTS))
    parts = {}
    for number, name in enumerate(PARTS):
        parts[name] = folder / f"{name}.csv"
        parts[name].write_text(header + "".join(rows[number * size : (number + 1) * size]))
    return parts


def _read_only_purchases(home: Path) -> tuple[int | None, str]:
    try:
        con = open_warehouse(home)
        try:
            row = con.execute("select sum(purchases) from marts.mart_daily_sales").fetchone()
            return (int(row[0]) if row else None), ""
        finally:
            con.close()
    except duckdb.Error as error:
        return None, str(error)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory, moto_s3: MotoS3) -> Scenario:
    home = tmp_path_factory.mktemp("watch-lake")
    parts = _split_fixture(tmp_path_factory.mktemp("watch-parts"))
    incoming = tmp_path_factory.mktemp("watch-incoming")
    for name in "AB":
        shutil.copyfile(parts[name], incoming / f".{name}.csv")
        os.replace(incoming / f".{name}.csv", incoming / f"{name}.csv")  # one rename each
    (incoming / "bad.csv").write_text(BAD_CSV)
    c_bytes = parts["C"].read_bytes()
    (incoming / "C.csv.part").write_bytes(c_bytes[: len(c_bytes) // 2])  # being written

    # 1. one cycle lands A and B and refuses the bad file; its warehouse build waits LOCK_WAIT_S
    # for an analyst's read-only connection, fails, and is retried once it is closed; then idle
    duckdb.connect(str(home / "warehouse.duckdb")).close()
    analyst = duckdb.connect(str(home / "warehouse.duckdb"), read_only=True)
    first = Watch(home, "--from", str(incoming))
    try:
        try:
            first.wait_for(r"^build failed")
        finally:
            analyst.close()
        built = first.wait_for(BUILT)
        ledger_after_first_cycle = ledger_entries(home)
        readonly_purchases, readonly_error = _read_only_purchases(home)
        # 2. C is complete and renamed, D arrives; kill the watch in the middle of their build
        (incoming / "C.csv.part").write_bytes(c_bytes)
        os.replace(incoming / "C.csv.part", incoming / "C.csv")
        shutil.copyfile(parts["D"], incoming / ".D.csv")
        os.replace(incoming / ".D.csv", incoming / "D.csv")
        first.wait_for(re.escape(MID_BUILD), since=built + 1)
    finally:
        killed = first.stop(signal.SIGKILL)

    # 3. restart on an S3 prefix: E, another copy of A, a bad object, one in a sub-folder
    s3 = moto_s3.client()
    bucket = moto_s3.new_bucket()
    s3.put_object(Bucket=bucket, Key="drop/E.csv", Body=parts["E"].read_bytes())
    s3.put_object(Bucket=bucket, Key="drop/A_copy.csv", Body=parts["A"].read_bytes())
    s3.put_object(Bucket=bucket, Key="drop/bad_s3.csv", Body=BAD_S3.encode())
    s3.put_object(Bucket=bucket, Key="drop/elsewhere/G.csv", Body=parts["A"].read_bytes())
    second = Watch(home, "--from", f"s3://{bucket}/drop", "--endpoint-url", moto_s3.endpoint)
    try:
        second.wait_for(re.escape(MID_BUILD))
    finally:
        second_returncode = second.stop(signal.SIGTERM)

    return Scenario(
        home,
        parts,
        incoming,
        first,
        second,
        killed,
        second_returncode,
        readonly_purchases,
        readonly_error,
        ledger_after_first_cycle,
    )


def _cycle_line(run: Watch, pattern: re.Pattern[str] = BUILT) -> str:
    found = [line for line in run.lines if pattern.search(line)]
    assert found, run.output[-6000:]
    return found[0]


def _kept(home: Path, name: str) -> tuple[Path, dict[str, Any]]:
    kept = list((home / "bronze" / "_rejected").rglob(name))
    assert len(kept) == 1, kept
    return kept[0], json.loads((kept[0].parent / "reason.json").read_text())


@pytest.mark.spark
def test_files_found_together_land_in_one_cycle_and_a_bad_file_is_kept_with_its_reason(
    scenario: Scenario,
) -> None:
    first = _cycle_line(scenario.first, re.compile("^cycle 1: "))
    assert first.startswith("cycle 1: landed 2 file(s)"), first
    assert "A.csv" in first and "B.csv" in first
    assert "refused" in first and "bad.csv" in first
    kept, reason = _kept(scenario.home, "bad.csv")
    assert kept.read_text() == BAD_CSV
    assert reason["file"] == "bad.csv" and reason["line"] == 1
    kept, reason = _kept(scenario.home, "bad_s3.csv")
    assert kept.read_text() == BAD_S3 and reason["file"] == "bad_s3.csv"
    # the sender's files stay where they were
    assert sorted(p.name for p in scenario.incoming.iterdir()) == [
        "A.csv",
        "B.csv",
        "C.csv",
        "D.csv",
        "bad.csv",
    ]


@pytest.mark.spark
def test_a_build_that_fails_is_retried_and_redoes_only_what_failed(scenario: Scenario) -> None:
    failed = _cycle_line(scenario.first, re.compile("^cycle 1: "))
    assert "; failed: lake build: full build" in failed, failed
    retried = _cycle_line(scenario.first)
    assert not retried.startswith("cycle 1: ") and "landed" not in retried, retried
    assert "lake build: up to date" in retried and "warehouse build: full build" in retried
    assert len(ledger_entries(scenario.home)) == len(PARTS)  # and nothing landed twice


@pytest.mark.spark
def test_the_warehouse_opens_read_only_while_the_watch_is_idle(scenario: Scenario) -> None:
    assert scenario.readonly_error == ""
    expected = count_rows(scenario.parts["A"]) + count_rows(scenario.parts["B"])
    assert scenario.readonly_purchases == expected


@pytest.mark.spark
def test_a_half_written_file_lands_only_once_complete(scenario: Scenario) -> None:
    assert sorted(e["source_name"] for e in scenario.ledger_after_first_cycle) == [
        "A.csv",
        "B.csv",
    ]
    by_name = {e["source_name"]: e for e in ledger_entries(scenario.home)}
    assert by_name["C.csv"]["rows"] == count_rows(scenario.parts["C"])


@pytest.mark.spark
def test_a_restart_after_a_kill_mid_build_builds_what_was_left_and_lands_the_rest(
    scenario: Scenario,
) -> None:
    assert scenario.killed_returncode == -signal.SIGKILL
    second = _cycle_line(scenario.second)
    assert second.startswith("cycle 1: landed 1 file(s)") and "E.csv" in second, second
    assert "already landed: A_copy.csv" in second
    assert "refused" in second and "bad_s3.csv" in second
    assert "lake build: new data" in second
    assert "G.csv" not in scenario.second.output  # not directly under the prefix


@pytest.mark.spark
def test_sigterm_mid_build_finishes_the_build_and_exits_0(scenario: Scenario) -> None:
    output = scenario.second.output
    assert "SIGTERM: stopping after the step in progress" in output
    assert output.index("SIGTERM") < output.index(_cycle_line(scenario.second))
    assert scenario.second.lines[-1] == "stopped"
    assert scenario.second_returncode == 0


@pytest.mark.spark
def test_every_layer_holds_each_batch_exactly_once(scenario: Scenario) -> None:
    ledger = ledger_entries(scenario.home)
    assert sorted(e["source_name"] for e in ledger) == [f"{name}.csv" for name in PARTS]
    for entry in ledger:
        assert entry["rows"] == count_rows(scenario.parts[entry["source_name"][0]])
    # Silver: every batch once, Bronze rows = valid + rejected rows
    summary = json.loads((scenario.home / "_runs" / "lake_summary.json").read_text())
    silver = {b["batch_id"]: b for b in summary["silver_batches"]}
    assert len(silver) == len(summary["silver_batches"]) == len(PARTS)
    for entry in ledger:
        batch = silver[entry["batch_id"]]
        assert batch["bronze_rows"] == entry["rows"]
        assert batch["valid_rows"] + batch["rejected_rows"] == entry["rows"]
    # Gold and the marts: exactly the fixture's rows and purchase sum
    expected = csv_facts(REAL_FIXTURE)
    assert sum(b["valid_rows"] for b in summary["silver_batches"]) == expected.rows
    con = open_warehouse(scenario.home)
    try:
        gold = con.execute(
            "select count(*), count(distinct sale_id), sum(purchase_amount) from gold.fct_sales"
        ).fetchone()
        marts = con.execute(
            "select sum(purchases), sum(total_revenue) from marts.mart_daily_sales"
        ).fetchone()
        # the audit: every batch counted once per target, whatever was killed and retried
        counted = con.execute(
            "select target, batch_id, count(*) from audit.run_batches group by all"
        ).fetchall()
        quality = con.execute(
            "select batch_id, landed_rows, valid_rows + rejected_rows from audit.batch_quality"
        ).fetchall()
    finally:
        con.close()
    assert gold is not None and marts is not None
    assert (gold[0], gold[1], int(gold[2])) == (expected.rows, expected.rows, expected.purchase_sum)
    assert (int(marts[0]), int(marts[1])) == (expected.rows, expected.purchase_sum)
    batches = {e["batch_id"] for e in ledger}
    assert sorted(counted) == sorted(
        (target, batch, 1) for target in ("lake", "warehouse") for batch in batches
    )
    assert {batch: (landed, total) for batch, landed, total in quality} == {
        e["batch_id"]: (e["rows"], e["rows"]) for e in ledger
    }


# --------------------------------------------------------------------------- no Spark


class StandInBuild:
    """In place of `pipeline.build`: counts calls, fails the calls it is told to."""

    def __init__(self, failures: int = 0) -> None:
        self.calls = 0
        self.failures = failures

    def __call__(self, timings: StageTimings) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("the build failed")


@pytest.fixture
def quick_settle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch, "SETTLE_SECONDS", 0.05)


def _small_csv(path: Path, first_row: int, rows: int = 10) -> Path:
    lines = REAL_FIXTURE.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "".join(lines[1 + first_row : 1 + first_row + rows]))
    return path


def _watcher(tmp_path: Path, build: StandInBuild, said: list[str]) -> Watcher:
    return Watcher(
        FolderSource(tmp_path / "in"), Paths(tmp_path / "lake"), 0.05, said.append, build
    )


def test_a_file_that_is_still_growing_is_not_ready(tmp_path: Path) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    watcher = _watcher(tmp_path, StandInBuild(), [])
    growing = incoming / "growing.csv"
    growing.write_text("User_ID\n")
    (incoming / "later.csv.part").write_text("User_ID\n")
    (incoming / "later.csv.tmp").write_text("User_ID\n")
    (incoming / ".hidden.csv").write_text("User_ID\n")
    appender = threading.Timer(0.5, lambda: growing.write_text("User_ID\n1\n"))
    appender.start()
    assert watcher.ready() == {}  # it changed during the second it was watched
    appender.join()
    assert list(watcher.ready()) == ["growing.csv"]  # unchanged since the last look: at once


def test_a_file_moved_in_after_it_was_written_is_ready_at_once(tmp_path: Path) -> None:
    """Unchanged for SETTLE_SECONDS already (its mtime says so): no second look, no wait."""
    incoming = tmp_path / "in"
    incoming.mkdir()
    watcher = _watcher(tmp_path, StandInBuild(), [])
    written = _small_csv(tmp_path / "written_earlier.csv", 0)
    earlier = time.time() - 2 * watch.SETTLE_SECONDS
    os.utime(written, (earlier, earlier))
    os.replace(written, incoming / written.name)
    fresh = _small_csv(incoming / "just_written.csv", 10)
    started = time.monotonic()
    assert list(watcher.ready()) == ["just_written.csv", "written_earlier.csv"]
    assert time.monotonic() - started >= watch.SETTLE_SECONDS  # the fresh one was looked at twice
    fresh.unlink()
    watcher = _watcher(tmp_path, StandInBuild(), [])
    started = time.monotonic()
    assert list(watcher.ready()) == ["written_earlier.csv"]
    assert time.monotonic() - started < watch.SETTLE_SECONDS


def test_a_restart_remembers_what_it_saw_and_the_ledger_what_landed(
    tmp_path: Path, quick_settle: None
) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    _small_csv(incoming / "a.csv", 0)
    (incoming / "bad.csv").write_text(BAD_CSV)
    build, said = StandInBuild(), []
    first = _watcher(tmp_path, build, said).cycle()
    assert [r.source_name for r in first.landed] == ["a.csv"]
    assert [e.file.rsplit("/", 1)[-1] for e in first.refused] == ["bad.csv"]
    assert (first.build, build.calls) == ("built", 1)

    again = _watcher(tmp_path, build, said)  # a restart: builds first, lands nothing seen
    cycle = again.cycle()
    assert (cycle.landed, cycle.already_landed, cycle.refused) == ([], [], [])
    assert (cycle.build, build.calls) == ("built", 2)
    assert again.cycle().build == ""  # idle: nothing to build

    shutil.copyfile(incoming / "a.csv", incoming / "a_again.csv")
    (tmp_path / "lake" / "_watch" / "seen.json").unlink()  # as if killed before recording
    cycle = _watcher(tmp_path, build, said).cycle()
    assert sorted(r.source_name for r in cycle.already_landed) == ["a.csv", "a_again.csv"]
    assert cycle.landed == [] and len(ledger_entries(tmp_path / "lake")) == 1
    assert [e.file.rsplit("/", 1)[-1] for e in cycle.refused] == ["bad.csv"]  # refused again


def test_a_failed_build_is_retried_and_nothing_lands_twice(
    tmp_path: Path, quick_settle: None
) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    _small_csv(incoming / "a.csv", 0)
    build, said = StandInBuild(failures=2), []
    watcher = _watcher(tmp_path, build, said)
    assert watcher.cycle().build == "failed"
    assert watcher.last_build_failed and "build failed (the build failed)" in said[-1]
    assert watcher.cycle().build == ""  # backing off: nothing new, not due yet
    _small_csv(incoming / "b.csv", 10)
    assert watcher.cycle().build == "failed"  # a file landed: tried again at once
    time.sleep(watcher.interval * 2**2)
    assert watcher.cycle().build == "built"  # after the back-off
    assert not watcher.last_build_failed and build.calls == 3
    assert sorted(e["source_name"] for e in ledger_entries(tmp_path / "lake")) == [
        "a.csv",
        "b.csv",
    ]


def test_a_second_watch_of_the_same_lake_is_refused(tmp_path: Path) -> None:
    lake = Paths(tmp_path / "lake")
    # flock is per open file: a second open in this process conflicts as another process would
    with (
        watch.watching(lake),
        pytest.raises(watch.WatchRefused, match=f"pid {os.getpid()}"),
        watch.watching(lake),
    ):
        pass


def test_exit_codes_follow_the_cli(tmp_path: Path) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "bad.csv").write_text(BAD_CSV)
    home = tmp_path / "lake"
    missing = run_lakehouse(home, "watch", "--from", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == ExitCode.USAGE, missing.stderr
    # one look, a refused file and nothing to build (Bronze is empty): no engine starts
    once = run_lakehouse(
        home, "watch", "--from", str(incoming), "--max-cycles", "1", check=False, timeout=120
    )
    assert once.returncode == ExitCode.REFUSED, once.stderr
    assert "refused" in once.stderr and "bad.csv" in once.stderr
    assert not (home / "bronze" / "_ledger").exists()
