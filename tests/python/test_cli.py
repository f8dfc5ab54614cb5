"""The `lakehouse` CLI's paths that need no Spark (issue #15): `env`, `ingest` of a folder, the
exit codes the CLI documents (0 done, 1 build failed, 2 usage, 3 input refused), `shell`, and
`run`'s landing of generated data, driven as a user drives them (a subprocess in a temporary
LAKEHOUSE_HOME) except where the build must be replaced."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse import cli, pipeline
from lakehouse.cli import ExitCode
from lakehouse.settings import ledger_entries, paths
from tests.python.bronze_oracle import CSV_HEADER
from tests.python.support import LAKEHOUSE, REAL_FIXTURE, lakehouse_env, run_lakehouse

HEADER = CSV_HEADER + "\n"


def _said(result: subprocess.CompletedProcess[str]) -> str:
    """What the user read, with rich's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


def _ledger(home: Path) -> list[dict[str, object]]:
    folder = home / "bronze" / "_ledger" / "walmart_sales"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_env_prints_exports_a_shell_can_eval(tmp_path: Path) -> None:
    home = tmp_path / "lake"
    result = run_lakehouse(home, "env")
    exports = {}
    for line in result.stdout.splitlines():
        assert line.startswith("export "), line
        key, _, value = line.removeprefix("export ").partition("=")
        exports[key] = shlex.split(value)[0]
    assert exports["LAKEHOUSE_HOME"] == str(home)
    assert {"JAVA_HOME", "LAKEHOUSE_ICEBERG_JAR", "LAKEHOUSE_DUCKDB_EXTENSIONS"} <= exports.keys()
    assert Path(exports["LAKEHOUSE_ICEBERG_JAR"]).is_file()
    assert (Path(exports["JAVA_HOME"]) / "bin" / "java").exists()
    # what the docs promise: eval "$(lakehouse env)" then dbt sees the same wiring
    shell = subprocess.run(
        ["bash", "-c", 'eval "$1" && printf %s "$LAKEHOUSE_HOME"', "_", result.stdout],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert shell.stdout == str(home)


def test_ingest_of_a_folder_lands_every_csv_in_it(tmp_path: Path) -> None:
    home = tmp_path / "lake"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    lines = REAL_FIXTURE.read_text().splitlines(keepends=True)
    (incoming / "a.csv").write_text(lines[0] + "".join(lines[1:11]))
    (incoming / "b.csv").write_text(lines[0] + "".join(lines[11:31]))
    (incoming / ".hidden.csv").write_text(lines[0] + lines[1])
    (incoming / "notes.txt").write_text("not a sales file")
    result = run_lakehouse(home, "ingest", str(incoming), "--ingest-date", "2026-01-01")
    assert result.returncode == ExitCode.OK
    assert sorted((e["source_name"], e["rows"]) for e in _ledger(home)) == [
        ("a.csv", 10),
        ("b.csv", 20),
    ]
    again = run_lakehouse(home, "ingest", str(incoming), "--ingest-date", "2026-01-01")
    assert again.returncode == ExitCode.OK
    assert _said(again).count("already landed") == 2
    assert len(_ledger(home)) == 2


def test_ingest_refuses_a_bad_file_with_exit_3_and_lands_the_others(tmp_path: Path) -> None:
    home = tmp_path / "lake"
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    lines = REAL_FIXTURE.read_text().splitlines(keepends=True)
    (incoming / "good.csv").write_text(lines[0] + "".join(lines[1:6]))
    (incoming / "wrong_header.csv").write_text("a,b,c\n1,2,3\n")
    result = run_lakehouse(home, "ingest", str(incoming), check=False)
    assert result.returncode == ExitCode.REFUSED, result.stderr
    assert "refused" in _said(result)
    assert "wrong_header.csv" in _said(result)
    assert [e["source_name"] for e in _ledger(home)] == ["good.csv"]


def test_ingest_of_a_folder_without_csv_is_refused_with_exit_3(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_lakehouse(tmp_path / "lake", "ingest", str(empty), check=False)
    assert result.returncode == ExitCode.REFUSED
    assert "no .csv or .csv.gz file in this folder" in _said(result)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    home = tmp_path / "lake"
    missing = run_lakehouse(home, "ingest", str(tmp_path / "nope.csv"), check=False)
    assert missing.returncode == ExitCode.USAGE
    assert "does not exist" in _said(missing)
    assert run_lakehouse(home, "ingest", check=False).returncode == ExitCode.USAGE
    assert (
        run_lakehouse(home, "build", "--no-such-option", check=False).returncode == ExitCode.USAGE
    )
    assert run_lakehouse(
        home, "generate", "--rows", "0", "--out", "x.csv", check=False
    ).returncode == (ExitCode.USAGE)
    misspelt = run_lakehouse(home, "env", check=False, extra_env={"LAKEHOUSE_SPARK_JIT": "c2"})
    assert misspelt.returncode == ExitCode.USAGE
    assert "LAKEHOUSE_SPARK_JIT='c2': use one of auto, tiered, c1" in _said(misspelt)


def test_no_dbt_project_is_refused_with_exit_3(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(LAKEHOUSE), "build"],
        env=lakehouse_env(tmp_path / "lake", {"DBT_PROJECT_DIR": str(tmp_path)}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == ExitCode.REFUSED, result.stderr


@pytest.fixture(scope="module")
def warehouse_dbt_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dbt artifact folder for this module's warehouse commands: after the first, dbt parses
    the project partially (a whole parse costs seconds in each new process)."""
    return tmp_path_factory.mktemp("cli-dbt-target")


def test_a_failed_dbt_command_exits_1(tmp_path: Path, warehouse_dbt_target: Path) -> None:
    # DuckDB only (no Spark): dbt fails on a macro that does not exist
    result = run_lakehouse(
        tmp_path / "lake",
        "dbt",
        "run-operation",
        "no_such_macro",
        "--target",
        "warehouse",
        check=False,
        extra_env={"DBT_TARGET_PATH": str(warehouse_dbt_target)},
    )
    assert result.returncode == ExitCode.BUILD_FAILED, _said(result)
    assert "`dbt run-operation no_such_macro --target warehouse` failed" in _said(result)


def test_report_without_a_warehouse_exits_1(tmp_path: Path) -> None:
    result = run_lakehouse(tmp_path / "lake", "report", check=False)
    assert result.returncode == ExitCode.BUILD_FAILED, _said(result)


def _shell(tmp_path: Path, dbt_target: Path, *lines: str) -> subprocess.CompletedProcess[str]:
    """`lakehouse shell` fed the given lines on stdin, as a script would feed it."""
    return subprocess.run(
        [str(LAKEHOUSE), "shell"],
        input="".join(f"{line}\n" for line in lines),
        env=lakehouse_env(tmp_path / "lake", {"DBT_TARGET_PATH": str(dbt_target)}),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_shell_runs_each_line_as_a_dbt_command_and_goes_on_after_a_failure(
    tmp_path: Path, warehouse_dbt_target: Path
) -> None:
    # DuckDB only (no Spark): `ls` succeeds, a macro that does not exist fails
    result = _shell(
        tmp_path,
        warehouse_dbt_target,
        "ls --select mart_top_products --target warehouse --output name",
        "dbt run-operation no_such_macro --target warehouse",
        "",
        "ls --select mart_daily_sales --target warehouse --output name",
    )
    said = _said(result)
    assert result.returncode == ExitCode.OK, said
    assert "`dbt run-operation no_such_macro --target warehouse` failed on target warehouse" in said
    # all three commands ran, in order, in the one process
    assert (
        said.index("mart_top_products")
        < said.index("no_such_macro")
        < said.index("mart_daily_sales")
    )
    assert said.count(" took ") == 3


def test_shell_exits_1_when_its_last_command_failed_and_stops_at_exit(
    tmp_path: Path, warehouse_dbt_target: Path
) -> None:
    result = _shell(
        tmp_path,
        warehouse_dbt_target,
        "run-operation no_such_macro --target warehouse",
        "exit",
        "ls --select mart_top_products --target warehouse --output name",
    )
    assert result.returncode == ExitCode.BUILD_FAILED, _said(result)
    assert "mart_top_products" not in result.stdout


def test_run_on_an_empty_bronze_generates_and_lands_the_data_before_it_builds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`lakehouse run` (what `make demo` runs) on a new home: it generates `--rows` rows and lands
    them before the build, and on a second run lands nothing more. The build is replaced here by
    one that records the Bronze it was given; the real build under `lakehouse run` is the first
    build of the end-to-end story (tests/python/lakehouse_story.py)."""
    home = tmp_path / "lake"
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    monkeypatch.setenv("LAKEHOUSE_REPORTS", str(tmp_path / "reports"))
    bronze_at_build: list[int] = []

    def build(timings: object = None) -> None:
        bronze_at_build.append(sum(int(e["rows"]) for e in ledger_entries(paths())))

    monkeypatch.setattr(pipeline, "build", build)
    monkeypatch.setattr(cli, "_report", lambda: tmp_path / "reports" / "insights.html")
    runner = CliRunner()

    first = runner.invoke(cli.main, ["run", "--rows", "500", "--seed", "3"])
    assert first.exit_code == ExitCode.OK, first.output
    assert "generating and landing the default dataset (500 rows)" in " ".join(first.output.split())
    assert bronze_at_build == [500]
    (entry,) = ledger_entries(paths())
    assert entry["rows"] == 500

    again = runner.invoke(cli.main, ["run", "--rows", "500", "--seed", "3"])
    assert again.exit_code == ExitCode.OK, again.output
    assert "generating" not in again.output
    assert bronze_at_build == [500, 500]
    assert len(ledger_entries(paths())) == 1
