"""The benchmark's measuring tools: the code copy every run uses, the process-tree meter and the
watch latency's micro-batches and percentiles, dbt's node timings as the figures name them.
Light: no Spark, no dbt; a git repository in a temporary folder and a few short processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from bench import memory, snapshot, stages, watch_latency


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with a commit, an uncommitted edit, an untracked and an ignored file."""
    root = tmp_path / "repo"
    (root / "models").mkdir(parents=True)
    (root / "models" / "a.sql").write_text("select 1\n")
    (root / ".gitignore").write_text("target/\n")
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "one")
    (root / "models" / "a.sql").write_text("select 2\n")  # uncommitted
    (root / "models" / "b.sql").write_text("select 3\n")  # untracked
    (root / "target").mkdir()
    (root / "target" / "manifest.json").write_text("{}")  # ignored output
    monkeypatch.setattr(snapshot, "REPO_DIR", root)
    return root


def test_snapshot_is_the_working_tree_as_it_is(repo: Path, tmp_path: Path) -> None:
    copy = snapshot.take(tmp_path / "copy")
    assert (copy / "models" / "a.sql").read_text() == "select 2\n"
    assert (copy / "models" / "b.sql").read_text() == "select 3\n"
    assert not (copy / "target").exists() and not (copy / ".git").exists()
    # the real index is untouched: b.sql is still untracked, a.sql still unstaged
    status = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True
    ).stdout
    assert " M models/a.sql" in status and "?? models/b.sql" in status
    # the fingerprint is the tree's id, the same for the tree and its copy
    assert snapshot.fingerprint(copy) == "git-tree:" + snapshot.tree_id(repo)[:16]
    (repo / "models" / "a.sql").write_text("select 4\n")
    assert snapshot.fingerprint(copy) != "git-tree:" + snapshot.tree_id(repo)[:16]


def test_meter_sees_a_grandchild(tmp_path: Path) -> None:
    """The peak counts a process the command's child starts (as pyspark starts the JVM)."""
    hold = f"{sys.executable} -c 'x = bytearray(150 * 2**20); import time; time.sleep(1)'"
    measured = memory.run_measured(
        ["sh", "-c", f"{hold}; true"], os.environ, tmp_path, tmp_path / "log.txt"
    )
    assert measured.returncode == 0
    assert measured.peak_rss_bytes >= 150 * 2**20
    assert measured.max_processes >= 2
    assert measured.seconds >= 1 and measured.cpu_seconds > 0
    assert len(memory.loadavg()) == 3


def test_a_vfork_child_is_counted_once_with_its_parent() -> None:
    """The JVM spawns `chmod` through a vfork child that shares its address space until it
    execs: seen by a sample, it carries the JVM's whole RSS and must not double the peak. A
    child that runs another program, or a fork with its own address space, is counted."""
    gib = 2**30
    jvm = memory.Sampled(pid=10, ppid=1, exe="/jdk/bin/java", rss=3 * gib, vms=9 * gib)
    vfork_child = memory.Sampled(11, 10, "/jdk/bin/java", 3 * gib + 4096, 9 * gib)
    chmod = memory.Sampled(12, 10, "/usr/bin/chmod", 2**20, 8 * 2**20)
    python = memory.Sampled(1, 0, "/usr/bin/python3.11", 200 * 2**20, gib)
    fork_worker = memory.Sampled(13, 1, "/usr/bin/python3.11", 150 * 2**20, gib + 2**20)
    assert memory.tree_rss([python, jvm, vfork_child]) == python.rss + jvm.rss
    assert memory.tree_rss([python, jvm, chmod, fork_worker]) == (
        python.rss + jvm.rss + chmod.rss + fork_worker.rss
    )
    # the child of a process the sample did not see (it ended meanwhile) is counted
    assert memory.tree_rss([vfork_child]) == vfork_child.rss


def test_meter_reports_a_failure(tmp_path: Path) -> None:
    measured = memory.run_measured(["sh", "-c", "exit 3"], os.environ, tmp_path, tmp_path / "l")
    assert measured.returncode == 3


def test_meter_feeds_the_command_its_input_file(tmp_path: Path) -> None:
    """How the bench drives `lakehouse shell`: its commands come on stdin."""
    commands = tmp_path / "commands"
    commands.write_text("first\nsecond\n")
    log_file = tmp_path / "log"
    measured = memory.run_measured(
        ["sh", "-c", "while read line; do echo got $line; done"],
        os.environ,
        tmp_path,
        log_file,
        stdin_file=commands,
    )
    assert measured.returncode == 0
    assert log_file.read_text() == "got first\ngot second\n"


def test_micro_batches_are_new_slices_of_the_history(tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    history.write_text("h\n" + "".join(f"{n}\n" for n in range(1000)))
    made = watch_latency.slices(history, tmp_path / "batches", batches=3, share=0.01)
    assert [rows for _, rows in made] == [10, 10, 10]
    contents = [path.read_text() for path, _ in made]
    assert contents[1] == "h\n" + "".join(f"{n}\n" for n in range(10, 20))
    assert len(set(contents)) == 3  # each its own batch (content hash)


def test_latency_percentiles_interpolate_like_numpy() -> None:
    latencies = [3.1, 5.2, 4.4, 9.9, 6.0, 5.5, 4.8, 7.7, 5.1, 12.0]
    assert watch_latency.percentile(latencies, 0.5) == pytest.approx(5.35)
    assert watch_latency.percentile(latencies, 0.95) == pytest.approx(11.055)
    assert watch_latency.percentile([4.0], 0.95) == 4.0


def test_the_latency_probe_sees_every_write_to_the_warehouse(tmp_path: Path) -> None:
    """The probe opens DuckDB only when the file or its WAL changed: a committed write must
    change that signature, and a read-only look must not (or the probe would miss rows, or
    open the file on every poll)."""
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    con.execute("create schema marts")
    con.execute("create table marts.mart_daily_sales (purchases bigint)")
    con.execute("insert into marts.mart_daily_sales values (3)")
    con.close()
    before = watch_latency.file_signature(warehouse)
    assert watch_latency.mart_purchases(warehouse) == 3
    assert watch_latency.file_signature(warehouse) == before

    con = duckdb.connect(str(warehouse))
    con.execute("insert into marts.mart_daily_sales values (4)")
    con.close()
    assert watch_latency.file_signature(warehouse) != before
    assert watch_latency.mart_purchases(warehouse) == 7


def test_node_timings_name_tests_by_their_test_name(tmp_path: Path) -> None:
    """A generic test's unique_id ends in a hash; the benchmark's figures name the test itself."""

    def result(unique_id: str, start: str, end: str) -> dict[str, object]:
        timing = {"name": "execute", "started_at": start, "completed_at": end}
        return {"unique_id": unique_id, "status": "success", "timing": [timing]}

    run_results = tmp_path / "run_results.json"
    run_results.write_text(
        json.dumps(
            {
                "elapsed_time": 9.0,
                "results": [
                    result(
                        "model.lakehouse.fct_sales", "2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z"
                    ),
                    result(
                        "test.lakehouse.primary_key_fct_sales_sale_id.50071e1ab4",
                        "2026-01-01T00:00:03Z",
                        "2026-01-01T00:00:04.500000Z",
                    ),
                    result(
                        "unit_test.lakehouse.fct_sales.fct_sales_keeps_valid_rows",
                        "2026-01-01T00:00:00Z",
                        "2026-01-01T00:00:00.500000Z",
                    ),
                ],
            }
        )
    )
    started = datetime(2026, 1, 1, tzinfo=UTC).timestamp()

    timings = stages.dbt_timings(run_results, started)

    assert [node["node"] for node in timings["nodes"]] == ["model:fct_sales"]
    assert [node["node"] for node in timings["slowest_tests"]] == [
        "test:primary_key_fct_sales_sale_id",
        "unit_test:fct_sales_keeps_valid_rows",
    ]
    assert timings["tests_total_s"] == 2.0
    assert timings["first_node_offset_s"] == 0.0
