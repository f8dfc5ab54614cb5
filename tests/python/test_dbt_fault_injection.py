"""Every dbt data test is shown to fail (issue #15): one throw-away lake (the real 2,000-row
fixture plus a generated day with bad rows), built once; then, round by round, the faults of
`dbt_faults.py` are planted in the built relations, `dbt test` runs the faulted relations' tests
and each must fail by name; then the faults are undone (the intact relation renamed back).

dbt runs in this process as `lakehouse dbt` runs it (`pipeline.run_dbt`), so one Spark session
serves the build and every round. The build itself is checked too: every enabled test of each
engine was executed (run_results.json against the manifest)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from lakehouse import pipeline
from lakehouse.audit import listed_property
from lakehouse.generator import write_dataset
from lakehouse.settings import Paths, ledger_entries
from tests.python.dbt_faults import (
    LAKE_ROUNDS,
    LEDGER_FAULTS,
    WAREHOUSE_ROUNDS,
    Round,
    faulty_view_sql,
    is_combined,
)
from tests.python.lakehouse_story import (
    CONFLICTS_ENV,
    demographic_conflicts,
    dimension_totals,
    valid_records,
)
from tests.python.support import PROJECT_DIR, REAL_FIXTURE, run_lakehouse

pytestmark = pytest.mark.spark

DAY1, DAY2 = "2026-01-01", "2026-01-02"


@dataclass
class Lake:
    home: Path
    target_dirs: dict[str, Path]
    # the files landed, each with the lines of its injected bad rows
    inputs: list[tuple[Path, frozenset[int]]]

    def run_tests(
        self, engine: str, tests: list[str], extra: list[str] | None = None
    ) -> dict[str, str]:
        """Run `dbt test --select <tests>` on `engine`; the status of each test, by name."""
        target_dir = self.home / "target-faults"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DBT_TARGET_PATH", str(target_dir))
            with contextlib.suppress(pipeline.DbtFailed):
                pipeline.run_dbt(["test", "--select", *tests, *(extra or [])], target=engine)
        return {name: r["status"] for name, r in self.last_results().items() if name in tests}

    def last_results(self) -> dict[str, dict[str, Any]]:
        """The run result of each test the last `run_tests` ran, by test name."""
        target_dir = self.home / "target-faults"
        results = json.loads((target_dir / "run_results.json").read_text())["results"]
        manifest = json.loads((target_dir / "manifest.json").read_text())["nodes"]
        return {manifest[r["unique_id"]]["name"]: r for r in results}

    def failed_checks(self, engine: str, tests: set[str]) -> dict[str, set[str]]:
        """The checks the failing rows of each of `tests` name (`failed_check`, comma-separated),
        by running the SQL the last `run_tests` compiled for it, while the faults are planted."""
        found: dict[str, set[str]] = {}
        for name, result in self.last_results().items():
            if name not in tests:
                continue
            sql = f"select distinct failed_check from ({result['compiled_code']}) failing"
            if engine == "lake":
                spark = pipeline._spark_session()
                assert spark is not None
                rows = [row[0] for row in spark.sql(sql).collect()]
            else:
                con = _connect_warehouse(self.home)
                try:
                    rows = [row[0] for row in con.execute(sql).fetchall()]
                finally:
                    con.close()
            found[name] = {part for row in rows for part in row.split(", ")}
        return found


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    home = tmp_path_factory.mktemp("fault-lake")
    day2 = write_dataset(
        tmp_path_factory.mktemp("fault-data") / "day2.csv", rows=600, seed=5, bad_rows=0.05
    )
    bad_lines = frozenset(json.loads(day2.expected_file.read_text())["bad_lines"])
    inputs = [(REAL_FIXTURE, frozenset()), (day2.files[0], bad_lines)]
    for (csv, _), ingest_date in zip(inputs, (DAY1, DAY2), strict=True):
        run_lakehouse(home, "ingest", str(csv), "--ingest-date", ingest_date)
    conflicts = demographic_conflicts(*inputs)
    target_dirs = {engine: home / f"target-{engine}" for engine in ("lake", "warehouse")}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LAKEHOUSE_HOME", str(home))
        patch.setenv("LAKEHOUSE_REPORTS", str(home / "reports"))
        patch.setenv("DBT_PROJECT_DIR", str(PROJECT_DIR))
        patch.setenv(CONFLICTS_ENV, str(conflicts))
        for engine, target_dir in target_dirs.items():
            patch.setenv("DBT_TARGET_PATH", str(target_dir))
            pipeline.run_dbt(["build"], target=engine)
        patch.delenv("DBT_TARGET_PATH")
        yield Lake(home, target_dirs, inputs)
        spark = pipeline._spark_session()
        if spark is not None:
            spark.stop()


@pytest.mark.parametrize("engine", ["lake", "warehouse"])
def test_the_build_executes_every_enabled_test(lake: Lake, engine: str) -> None:
    manifest = json.loads((lake.target_dirs[engine] / "manifest.json").read_text())
    enabled = {
        uid
        for section in ("nodes", "unit_tests")
        for uid, node in manifest.get(section, {}).items()
        if node["resource_type"] in ("test", "unit_test")
    }
    results = json.loads((lake.target_dirs[engine] / "run_results.json").read_text())["results"]
    executed = {r["unique_id"]: r["status"] for r in results}
    assert sorted(enabled - executed.keys()) == []
    assert {uid: s for uid, s in executed.items() if s not in ("pass", "success", "warn")} == {}


def _assert_all_fail(statuses: dict[str, str], tests: list[str]) -> None:
    not_failing = {t: statuses.get(t, "not run") for t in tests if statuses.get(t) != "fail"}
    assert not_failing == {}


def _plant_ledger(home: Path) -> Iterator[None]:
    """LEDGER_FAULTS as JSON files in the Bronze ledger folder (what the source table reads)."""
    ledger = home / "bronze" / "_ledger" / "walmart_sales"
    first = json.loads(sorted(ledger.glob("*.json"))[0].read_text())
    specs: list[dict[str, object]] = []
    for _, spec in LEDGER_FAULTS:
        if spec not in specs:
            specs.append(spec)
    planted = [ledger / f"planted-{number}.json" for number in range(len(specs))]
    try:
        for path, spec in zip(planted, specs, strict=True):
            entry = dict(first)
            entry.update({k: v for k, v in spec.items() if k != "copy_of_first"})
            path.write_text(json.dumps(entry))
        yield
    finally:
        for path in planted:
            path.unlink(missing_ok=True)


def _spark_round(home: Path, round_: Round) -> Iterator[None]:
    spark = pipeline._spark_session()
    assert spark is not None
    done = []
    ledger = _plant_ledger(home) if round_.with_ledger else None
    try:
        if ledger is not None:
            next(ledger)
        for relation in round_.relations:
            kind = "view" if relation.is_view else "table"
            intact = f"{relation.name}__intact"
            spark.sql(f"alter {kind} {relation.name} rename to {intact}")
            done.append((relation, kind, intact))
            columns = spark.table(intact).columns
            spark.sql(
                f"create view {relation.name} as {faulty_view_sql(relation, intact, columns)}"
            )
        yield
    finally:
        for relation, kind, intact in reversed(done):
            spark.sql(f"drop view if exists {relation.name}")
            spark.sql(f"alter {kind} {intact} rename to {relation.name}")
        if ledger is not None:
            next(ledger, None)


def _connect_warehouse(home: Path) -> Any:
    # dbt-duckdb may still hold the file open in this process: then share its instance
    try:
        return duckdb.connect(
            str(home / "warehouse.duckdb"),
            config={"extension_directory": str(home / "_duckdb_extensions")},
        )
    except duckdb.ConnectionException:
        return duckdb.connect(str(home / "warehouse.duckdb"))


def _duckdb_round(home: Path, round_: Round) -> Iterator[None]:
    con = _connect_warehouse(home)
    try:
        for relation in round_.relations:
            intact = f"{relation.name}__intact"
            con.execute(f"alter table {relation.name} rename to {intact.split('.')[1]}")
            columns = [d[0] for d in con.execute(f"select * from {intact} limit 0").description]
            con.execute(
                f"create view {relation.name} as {faulty_view_sql(relation, intact, columns)}"
            )
    finally:
        con.close()
    try:
        yield
    finally:
        con = _connect_warehouse(home)
        try:
            for relation in round_.relations:
                intact = f"{relation.name}__intact"
                con.execute(f"drop view if exists {relation.name}")
                con.execute(f"alter table {intact} rename to {relation.name.split('.')[1]}")
        finally:
            con.close()


def _round_id(round_: Round) -> str:
    names = [r.name.split(".")[1] for r in round_.relations]
    return "+".join(names[:3] + (["ledger"] if round_.with_ledger else []))


@pytest.mark.parametrize("round_", LAKE_ROUNDS + WAREHOUSE_ROUNDS, ids=_round_id)
def test_each_planted_fault_fails_its_test(lake: Lake, round_: Round) -> None:
    faults = [fault for relation in round_.relations for fault in relation.faults]
    if round_.with_ledger:
        faults += [fault for fault, _ in LEDGER_FAULTS]
    # a combined test must be shown to fail on each of its checks, so each of its faults names one
    assert [f.test for f in faults if is_combined(f.test) and not f.check] == []
    tests = sorted({fault.test for fault in faults})
    planting = (
        _spark_round(lake.home, round_)
        if round_.engine == "lake"
        else _duckdb_round(lake.home, round_)
    )
    next(planting)
    try:
        statuses = lake.run_tests(round_.engine, tests)
        tripped = lake.failed_checks(round_.engine, {f.test for f in faults if f.check})
    finally:
        next(planting, None)
    _assert_all_fail(statuses, tests)
    missed = [
        (f.test, f.check) for f in faults if f.check and f.check not in tripped.get(f.test, ())
    ]
    assert missed == []
    # (undone: the next rounds read these relations intact; the build proved they pass)


def test_full_refresh_rebuilds_the_incremental_models_to_the_same_rows(lake: Lake) -> None:
    """`--full-refresh` (what `lakehouse build --full-refresh` passes to dbt) rebuilds Silver's and
    Gold's incremental tables from all of Bronze: a new table state, the same rows, and their
    tests pass."""
    spark = pipeline._spark_session()
    assert spark is not None
    facts = (
        "select count(*) as n, count(distinct sale_id) as ids, sum(purchase_amount) as amount "
        "from {}"
    )

    def state() -> tuple[object, ...]:
        return (
            spark.sql(facts.format("silver.slv_sales_validated")).first(),
            spark.sql(facts.format("gold.fct_sales")).first(),
            spark.sql(
                "select snapshot_id from gold.fct_sales.snapshots "
                "order by committed_at desc limit 1"
            ).first(),
        )

    before = state()
    # as after an incremental run that built one batch
    ledger = {str(entry["batch_id"]) for entry in ledger_entries(Paths(lake.home))}
    for table in ("silver.slv_sales_validated", "gold.fct_sales"):
        _record_last_built(spark, table, min(ledger))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBT_TARGET_PATH", str(lake.home / "target-full-refresh"))
        pipeline.run_dbt(
            ["build", "--full-refresh", "--select", "slv_sales_validated", "fct_sales"],
            target="lake",
        )
    after = state()
    assert after[:2] == before[:2]
    assert after[2] != before[2]  # rebuilt: a new table state, not a no-op incremental run
    # and it recorded every batch as built by this run, so the row-level tests that follow check
    # all of them (Iceberg keeps a replaced table's properties: the record of the last
    # incremental run used to survive the refresh, and the tests checked only that batch)
    for table in ("silver.slv_sales_validated", "gold.fct_sales"):
        properties = {
            str(r[0]): str(r[1]) for r in spark.sql(f"show tblproperties {table}").collect()
        }
        assert set(listed_property(properties, "lakehouse.last_built_batches")) == ledger, table
        assert set(listed_property(properties, "lakehouse.built_batches")) == ledger, table


# The comparisons between two models that both hold batches, and the tables whose record says
# which batches they built last (slv_sales reads slv_sales_validated's).
BATCH_COMPARISONS = (
    "row_counts_match_fct_sales_ref_slv_sales_",
    "sums_match_fct_sales_purchase_amount__purchase_amount__ref_slv_sales_",
    "sums_match_int_customer_batch_sales_spent_amount__purchase_amount__ref_fct_sales_",
    "sums_match_int_product_batch_sales_revenue_amount__purchase_amount__ref_fct_sales_",
)
RECORDING_TABLES = (
    "silver.slv_sales_validated",
    "gold.fct_sales",
    "gold.int_customer_batch_sales",
    "gold.int_product_batch_sales",
)


def test_comparisons_after_an_incremental_build_check_the_batches_built_last(
    lake: Lake,
) -> None:
    """After a build that built one batch, sums_match and row_counts_match between batch-keyed
    models compare that batch, batch by batch (macros/test_scope.sql): a fault in it fails
    them; a fault in an older batch, compared when it was built, is left to
    `test_all_batches`, which compares every batch."""
    spark = pipeline._spark_session()
    assert spark is not None
    batches = {str(e["ingest_date"]): str(e["batch_id"]) for e in ledger_entries(Paths(lake.home))}
    old, new = batches[DAY1], batches[DAY2]

    def last_built(tables: tuple[str, ...]) -> dict[str, str]:
        found = {}
        for table in tables:
            rows = spark.sql(f"show tblproperties {table}").collect()
            found[table] = {str(r[0]): str(r[1]) for r in rows}["lakehouse.last_built_batches"]
        return found

    recorded = last_built(RECORDING_TABLES)
    snapshot = spark.sql(
        "select snapshot_id from gold.fct_sales.snapshots order by committed_at desc limit 1"
    ).first()[0]

    planted = []

    def plant(batch: str) -> None:  # one amount up by 1, one row gone, in `batch`
        planted.append(batch)
        first_two = spark.sql(
            f"select sale_id from gold.fct_sales where batch_id = '{batch}' "
            "order by sale_id limit 2"
        ).collect()
        spark.sql(
            "update gold.fct_sales set purchase_amount = purchase_amount + 1 "
            f"where sale_id = '{first_two[0][0]}'"
        )
        spark.sql(f"delete from gold.fct_sales where sale_id = '{first_two[1][0]}'")

    def undo() -> None:
        if planted:
            spark.sql(
                f"call spark_catalog.system.rollback_to_snapshot('gold.fct_sales', {snapshot})"
            )
            planted.clear()

    try:
        for table in RECORDING_TABLES:  # as after an incremental run that built DAY2's batch
            _record_last_built(spark, table, new)
        plant(new)
        statuses = lake.run_tests("lake", list(BATCH_COMPARISONS))
        compiled = {name: lake.last_results()[name]["compiled_code"] for name in BATCH_COMPARISONS}
        undo()
        _assert_all_fail(statuses, list(BATCH_COMPARISONS))
        assert all(new in sql and old not in sql for sql in compiled.values()), compiled

        plant(old)
        scoped = lake.run_tests("lake", list(BATCH_COMPARISONS))
        every_batch = lake.run_tests(
            "lake", list(BATCH_COMPARISONS), ["--vars", '{"test_all_batches": true}']
        )
        undo()
        assert set(scoped.values()) == {"pass"}  # compared when DAY1 was built
        _assert_all_fail(every_batch, list(BATCH_COMPARISONS))
    finally:
        undo()
        for table, value in recorded.items():
            _record_last_built(spark, table, value)
    assert last_built(RECORDING_TABLES) == recorded


def _record_last_built(spark: Any, table: str, batches: str) -> None:
    spark.sql(
        f"alter table {table} set tblproperties ('lakehouse.last_built_batches' = '{batches}')"
    )


INCREMENTAL_MODELS = {
    "slv_sales_validated": "silver",
    "slv_batch_quality": "silver",
    "fct_sales": "gold",
    "int_customer_batch_sales": "gold/intermediate",
    "int_product_batch_sales": "gold/intermediate",
}
FIRST_PURCHASE_MODELS = {"int_customer_batch_sales", "int_product_batch_sales"}


def merged_batches(merge_sql: str) -> set[str]:
    """The batch ids a MERGE's ON clause keeps the target to (lower-cased SQL)."""
    found = re.search(r"dbt_internal_dest\.batch_id in \(([^)]*)\)", merge_sql)
    assert found, merge_sql
    return {literal.strip().strip("'") for literal in found.group(1).split(",")}


def test_merges_only_insert_until_a_batch_lands_before_one_held(lake: Lake, tmp_path: Path) -> None:
    """A batch landing after those held: every incremental lake model's merge only inserts the
    keys it lacks (macros/merge_only_when_new.sql), no pass to find rows to update. A batch under
    an older date than one held (a backfill): the first-purchase models re-read every batch and
    merge with updates, since "first" moved; the others still only insert. After both, the
    dimensions equal what the landed files hold, counted with the csv module.
    Runs last in this module: it lands two batches in the shared lake."""
    later = write_dataset(tmp_path / "later.csv", rows=400, seed=21)
    backfill = write_dataset(tmp_path / "backfill.csv", rows=400, seed=22)
    inputs = [*lake.inputs, (later.files[0], frozenset()), (backfill.files[0], frozenset())]
    target_dir = lake.home / "target-merges"

    def batches() -> set[str]:
        return {str(entry["batch_id"]) for entry in ledger_entries(Paths(lake.home))}

    def build(csv: Path, ingest_date: str) -> dict[str, str]:
        """Land `csv` under `ingest_date`, run the lake's models (the merges are what is under
        test; the module's other tests run the data tests); the merge each model ran."""
        run_lakehouse(lake.home, "ingest", str(csv), "--ingest-date", ingest_date)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("DBT_TARGET_PATH", str(target_dir))
            pipeline.run_dbt(["run"], target="lake")
        run = target_dir / "run" / "lakehouse" / "models"
        return {
            model: " ".join((run / folder / f"{model}.sql").read_text().lower().split())
            for model, folder in INCREMENTAL_MODELS.items()
        }

    held = batches()
    in_order = build(later.files[0], "2026-01-03")
    (later_batch,) = batches() - held
    for model, sql in in_order.items():
        assert "merge into" in sql and "when not matched then insert" in sql, (model, sql)
        assert "when matched" not in sql, (model, sql)
        # the target is read for the new batch's files only (merge_partition_predicates)
        assert merged_batches(sql) == {later_batch}, (model, sql)

    held = batches()
    out_of_order = build(backfill.files[0], "2025-12-31")
    (backfill_batch,) = batches() - held
    for model, sql in out_of_order.items():
        assert ("when matched then update" in sql) == (model in FIRST_PURCHASE_MODELS), (model, sql)
        # a first-purchase model re-read every batch, so its merge may touch any of them
        expected = batches() if model in FIRST_PURCHASE_MODELS else {backfill_batch}
        assert merged_batches(sql) == expected, (model, sql)

    spark = pipeline._spark_session()
    assert spark is not None
    customers = {
        int(row[0]): (int(row[1]), int(row[2]), int(row[3]))
        for row in spark.sql(
            "select customer_id, distinct_products, purchase_count, total_spent "
            "from gold.dim_customers"
        ).collect()
    }
    products = {
        str(row[0]): int(row[1])
        for row in spark.sql(
            "select product_id, distinct_customers from gold.dim_products"
        ).collect()
    }
    records = [record for path, bad in inputs for record in valid_records(path, bad)]
    assert (customers, products) == dimension_totals(records)
