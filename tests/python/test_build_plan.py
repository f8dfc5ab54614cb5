"""What `lakehouse build` asks dbt for, decided before any engine starts (lakehouse.build_state):
unit tests run once per version of the code in a checkout, data tests on every build.

dbt itself is replaced here by a recorder of its arguments: what these tests check is the
decision; that dbt honours `--exclude-resource-type` and the selectors is shown by every build
of the suite's lakes."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse import build_state, pipeline


@pytest.fixture
def dbt_calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[list[str]]]:
    """Builds in a checkout whose dbt artifacts live under tmp_path/target, dbt recorded."""
    calls: list[list[str]] = []

    def run_dbt(args: list[str], target: str | None = None, **_: Any) -> None:
        calls.append([*args, "--target", str(target)])

    monkeypatch.setenv("LAKEHOUSE_DBT_TARGET_ROOT", str(tmp_path / "target"))
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    monkeypatch.setattr(pipeline, "run_dbt", run_dbt)
    monkeypatch.setattr(pipeline, "write_lake_summary", lambda *_: None)
    monkeypatch.setattr(pipeline, "wait_until_writable", lambda *_: True)
    monkeypatch.setattr(pipeline, "recorded", lambda *_: contextlib.nullcontext())
    yield calls


def build_in(home: Path, monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(home))
    pipeline.build(**kwargs)


def excludes_unit_tests(call: list[str]) -> bool:
    return "--exclude-resource-type" in call and "unit_test" in call


def test_unit_tests_run_once_per_code_in_a_checkout(
    dbt_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    build_in(tmp_path / "first-home", monkeypatch)
    assert [excludes_unit_tests(c) for c in dbt_calls] == [False, False]  # lake, warehouse

    dbt_calls.clear()
    build_in(tmp_path / "second-home", monkeypatch)  # a whole build: no record in this home
    assert [c[:1] for c in dbt_calls] == [["build"], ["build"]]
    assert all(excludes_unit_tests(c) for c in dbt_calls)

    dbt_calls.clear()
    build_in(tmp_path / "third-home", monkeypatch, full_refresh=True)
    assert all("--full-refresh" in c and excludes_unit_tests(c) for c in dbt_calls)

    # other code (here: other vars, part of the code's fingerprint) runs them again
    dbt_calls.clear()
    parquet = {"lake_table_format": "parquet"}
    build_in(tmp_path / "fourth-home", monkeypatch, dbt_vars=parquet)
    assert [excludes_unit_tests(c) for c in dbt_calls] == [False, False]

    # and the checkout remembers both versions: neither runs them again
    dbt_calls.clear()
    build_in(tmp_path / "fifth-home", monkeypatch)
    build_in(tmp_path / "sixth-home", monkeypatch, dbt_vars=parquet)
    assert len(dbt_calls) == 4 and all(excludes_unit_tests(c) for c in dbt_calls)


def test_a_failed_build_records_no_unit_test_pass(
    dbt_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def failing(args: list[str], target: str | None = None, **_: Any) -> None:
        dbt_calls.append(args)
        raise pipeline.DbtFailed(f"`dbt build` failed on target {target}")

    monkeypatch.setattr(pipeline, "run_dbt", failing)
    with pytest.raises(pipeline.DbtFailed):
        build_in(tmp_path / "home", monkeypatch)
    assert not build_state.unit_tests_file(pipeline.target_path(pipeline.LAKE_TARGET)).exists()


def test_new_data_under_the_same_code_runs_the_new_data_selector(
    dbt_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    build_in(home, monkeypatch)
    (home / "bronze" / "_ledger" / "walmart_sales").mkdir(parents=True)
    (home / "bronze" / "_ledger" / "walmart_sales" / "b1.json").write_text(
        '{"batch_id": "b1", "rows": 7}'
    )
    lake = pipeline.paths()
    assert build_state.rows_to_build(lake) == 7  # what sizes the next JVM's JIT
    dbt_calls.clear()
    build_in(home, monkeypatch)
    assert dbt_calls[0][:3] == ["build", "--selector", "lake_new_batches"]
    assert build_state.rows_to_build(lake) == 0  # the build recorded the batch it built

    dbt_calls.clear()
    build_in(home, monkeypatch)  # nothing new: dbt is not called at all
    assert dbt_calls == []


def test_a_reader_that_wins_the_race_for_the_warehouse_costs_a_retry_not_the_build(
    dbt_calls: list[list[str]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """wait_until_writable found the DuckDB file free, then a reader opened it before dbt did:
    DuckDB refuses dbt's connection, and the build waits and tries once more. Any other
    failure, or the same one twice, fails the build as before."""
    conflict = RuntimeError(
        'IO Error: Could not set lock on file "warehouse.duckdb": Conflicting lock is held in '
        "python3.11 (PID 4242)"
    )
    outcomes: list[Exception | None] = [conflict, None]

    def warehouse_once_locked(args: list[str], target: str | None = None, **_: Any) -> None:
        dbt_calls.append([*args, "--target", str(target)])
        if target == pipeline.WAREHOUSE_TARGET and outcomes:
            outcome = outcomes.pop(0)
            if outcome is not None:
                raise pipeline.DbtFailed("`dbt build` failed on target warehouse") from outcome

    monkeypatch.setattr(pipeline, "run_dbt", warehouse_once_locked)
    build_in(tmp_path / "home", monkeypatch)
    assert [c[-1] for c in dbt_calls] == ["lake", "warehouse", "warehouse"]

    dbt_calls.clear()
    outcomes[:] = [conflict, conflict]
    with pytest.raises(pipeline.DbtFailed):
        build_in(tmp_path / "other-home", monkeypatch)
    assert [c[-1] for c in dbt_calls] == ["lake", "warehouse", "warehouse"]

    # still held when the wait gave up (an analyst's open connection): no second wait or try
    dbt_calls.clear()
    outcomes[:] = [conflict, None]
    monkeypatch.setattr(pipeline, "wait_until_writable", lambda *_: False)
    with pytest.raises(pipeline.DbtFailed):
        build_in(tmp_path / "held-home", monkeypatch)
    assert [c[-1] for c in dbt_calls] == ["lake", "warehouse"]

    dbt_calls.clear()
    outcomes[:] = [RuntimeError("Binder Error: a model is wrong")]
    with pytest.raises(pipeline.DbtFailed):
        build_in(tmp_path / "third-home", monkeypatch)
    assert [c[-1] for c in dbt_calls] == ["lake", "warehouse"]
