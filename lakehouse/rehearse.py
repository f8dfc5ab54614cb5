"""`lakehouse rehearse glue`: the production lake build (dbt-glue) rehearsed offline.

On the current LAKEHOUSE_HOME (Bronze as landed):
1. the local lake is built from the same Bronze if it does not hold every landed batch yet
   (the existing pipeline: `dbt build --target lake`);
2. the Glue stand-in (lakehouse/glue_standin) starts in its own process on loopback, with its
   own metastore and lake under `$LAKEHOUSE_HOME/_glue_rehearsal/`;
3. `dbt build --target prod_lake` runs through the real dbt-glue adapter, with fake credentials
   and AWS_ENDPOINT_URL_GLUE / _STS / _LAKEFORMATION pointing at the stand-in;
4. every Gold table (rows, key set, sum of every numeric column) and the Silver reconciliation
   (per batch: Bronze rows, valid, rejected, purchase amount) are compared with the local lake.

Nothing reaches AWS: the endpoints are set by this module to the stand-in it started, and
`require_standin` refuses any endpoint that is not a loopback stand-in before dbt runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from lakehouse import pipeline
from lakehouse.engines import engine_environment, prepare_duckdb_extensions
from lakehouse.settings import Paths, paths, profiles_dir, project_dir

GLUE_TARGET = "prod_lake"
REHEARSAL_DIR = "_glue_rehearsal"
STANDIN_START_TIMEOUT = 180.0
# The key of each Gold table (its unique, not-null column in models/gold/_gold__models.yml).
GOLD_KEYS = {"fct_sales": "sale_id", "dim_customers": "customer_id", "dim_products": "product_id"}
ENDPOINT_VARIABLES = (
    "AWS_ENDPOINT_URL_GLUE",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_LAKEFORMATION",
)
FAKE_ACCOUNT = "000000000000"


class RehearsalRefused(RuntimeError):
    """The rehearsal would not run: no Bronze, or an endpoint that is not the stand-in."""


class RehearsalFailed(RuntimeError):
    """dbt-glue failed on the stand-in (dbt printed which node and why)."""


def rehearsal_folder(lake: Paths) -> Path:
    return lake.home / REHEARSAL_DIR


# -- the stand-in process ----------------------------------------------------------------------
@dataclass
class StandInProcess:
    process: subprocess.Popen[str]
    url: str
    log_file: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_standin(folder: Path, statement_timeout: float | None = None) -> StandInProcess:
    """Start `python -m lakehouse.glue_standin` on a free loopback port and wait for its URL."""
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / "standin.log"
    command = [sys.executable, "-m", "lakehouse.glue_standin", "--folder", str(folder)]
    if statement_timeout:
        command += ["--statement-timeout", str(statement_timeout)]
    env = {**os.environ, **engine_environment()}
    env.setdefault("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    with log_file.open("w") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + STANDIN_START_TIMEOUT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("GLUE_STANDIN_URL="):
            url = line.strip().split("=", 1)[1]
            return StandInProcess(process, url, log_file)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RehearsalFailed(f"the Glue stand-in did not start; see {log_file}")


def require_standin(url: str) -> None:
    """Refuse anything but a stand-in on loopback: the rehearsal must never call AWS."""
    host = urllib.parse.urlparse(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise RehearsalRefused(
            f"{url} is not on loopback: the rehearsal only talks to the stand-in"
        )
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            if answer.headers.get("X-Lakehouse-Glue-Standin") != "1":
                raise RehearsalRefused(f"{url} answers, but is not the Glue stand-in")
    except OSError as error:
        raise RehearsalRefused(f"no Glue stand-in at {url}: {error}") from error


def glue_environment(lake: Paths, url: str) -> dict[str, str]:
    """What `dbt --target prod_lake` reads (profiles/profiles.yml), all pointing at the stand-in."""
    folder = rehearsal_folder(lake)
    env = {
        **engine_environment(lake),
        "AWS_ACCESS_KEY_ID": "standin-fake-key",
        "AWS_SECRET_ACCESS_KEY": "standin-fake-secret",  # pragma: allowlist secret
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAKEHOUSE_GLUE_ROLE_ARN": f"arn:aws:iam::{FAKE_ACCOUNT}:role/glue-standin",
        "LAKEHOUSE_S3_LAKE_URI": (folder / "lake").as_uri(),
        # the profile passes it to Glue as --custom-logGroup-prefix; the stand-in logs locally
        "LAKEHOUSE_GLUE_LOG_GROUP_PREFIX": "/aws-glue/sessions/lakehouse-rehearsal",
        # Bronze as landed in this home (the default of var bronze_location).
        "LAKEHOUSE_BRONZE_URI": str(lake.bronze),
        "DBT_TARGET_PATH": str(folder / "target"),
        "DBT_LOG_PATH": str(folder / "logs"),
    }
    for name in ENDPOINT_VARIABLES:
        env[name] = url
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "LAKEHOUSE_SCHEMA_PREFIX"):
        env[name] = ""
    return env


def run_glue_build(lake: Paths, url: str, extra_args: list[str] | None = None) -> None:
    """`dbt build --target prod_lake` through dbt-glue, in a child process, on the stand-in."""
    env = glue_environment(lake, url)
    for name in ENDPOINT_VARIABLES:
        require_standin(env[name])
    child_env = {k: v for k, v in {**os.environ, **env}.items() if v != ""}
    dbt = Path(sys.executable).parent / "dbt"
    command = [
        str(dbt),
        "build",
        "--target",
        GLUE_TARGET,
        "--project-dir",
        str(project_dir()),
        "--profiles-dir",
        str(profiles_dir()),
        *(extra_args or []),
    ]
    result = subprocess.run(command, env=child_env, check=False)
    if result.returncode != 0:
        raise RehearsalFailed(f"`dbt build --target {GLUE_TARGET}` failed on the Glue stand-in")


# -- what each lake holds ----------------------------------------------------------------------
def glue_client(url: str) -> Any:
    import boto3

    require_standin(url)
    return boto3.client(
        "glue",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="standin-fake-key",
        aws_secret_access_key="standin-fake-secret",  # pragma: allowlist secret
    )


def glue_query(url: str, sql: str) -> list[dict[str, Any]]:
    """Run one Spark SQL query in a fresh stand-in session, through the Glue sessions API."""
    client = glue_client(url)
    session_id = f"rehearsal-check-{os.getpid()}-{time.monotonic_ns()}"
    client.create_session(
        Id=session_id,
        Role=f"arn:aws:iam::{FAKE_ACCOUNT}:role/glue-standin",
        Command={"Name": "glueetl", "PythonVersion": "3"},
    )
    try:
        code = (
            "import json\n"
            f"rows = [r.asDict() for r in spark.sql({sql!r}).collect()]\n"
            "print(json.dumps(rows, default=str))"
        )
        statement_id = client.run_statement(SessionId=session_id, Code=code)["Id"]
        while True:
            statement = client.get_statement(SessionId=session_id, Id=statement_id)["Statement"]
            if statement["State"] in ("AVAILABLE", "ERROR", "CANCELLED"):
                break
        output = statement.get("Output", {})
        if output.get("Status") != "ok":
            error = f"{output.get('ErrorName')}: {output.get('ErrorValue')}"
            raise RehearsalFailed(f"query on the stand-in failed: {error}")
        rows: list[dict[str, Any]] = json.loads(output["Data"]["TextPlain"].splitlines()[0])
        return rows
    finally:
        client.delete_session(Id=session_id)


def glue_gold_locations(url: str) -> dict[str, str]:
    """Each Gold table's current Iceberg metadata file, from the stand-in's Data Catalog."""
    client = glue_client(url)
    tables = client.get_tables(DatabaseName="gold")["TableList"]
    return {
        t["Name"]: t["Parameters"]["metadata_location"]
        for t in tables
        if "metadata_location" in t.get("Parameters", {})
    }


def local_gold_locations(lake: Paths) -> dict[str, str]:
    """Each Gold table's current state, from the manifest the local lake build publishes."""
    import duckdb

    manifest = lake.warehouse / "_gold_manifest"
    rows = duckdb.sql(
        f"select table_name, location from read_parquet('{manifest}/*.parquet')"
    ).fetchall()
    return {str(name): str(location) for name, location in rows}


def _duckdb() -> Any:
    import duckdb

    extensions = prepare_duckdb_extensions(paths().duckdb_extensions)
    return duckdb.connect(config={"extension_directory": str(extensions)})


@dataclass
class Comparison:
    lines: list[tuple[str, str, str, str]] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def check(self, what: str, local: Any, glue: Any) -> None:
        same = _same(local, glue)
        self.lines.append((what, _show(local), _show(glue), "ok" if same else "DIFFERENT"))
        if not same:
            self.differences.append(f"{what}: local {local!r} vs glue {glue!r}")


def _same(local: Any, glue: Any) -> bool:
    if isinstance(local, float) or isinstance(glue, float):
        a, b = float(local or 0), float(glue or 0)
        return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
    return bool(local == glue)


def _show(value: Any) -> str:
    if isinstance(value, (int, Decimal)):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.6f}"
    text = str(value)
    return text if len(text) <= 48 else text[:45] + "..."


def compare_gold(local: dict[str, str], glue: dict[str, str], result: Comparison) -> None:
    con = _duckdb()
    result.check("gold tables", sorted(local), sorted(glue))
    for table in sorted(set(local) & set(glue)):
        a = f"iceberg_scan('{local[table]}')"
        b = f"iceberg_scan('{glue[table]}')"
        columns = con.execute(f"describe select * from {a}").fetchall()
        glue_columns = con.execute(f"describe select * from {b}").fetchall()
        result.check(
            f"{table}: columns",
            [(c[0], c[1]) for c in columns],
            [(c[0], c[1]) for c in glue_columns],
        )
        numeric = [
            c[0]
            for c in columns
            if c[1].split("(")[0]
            in ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "DECIMAL", "DOUBLE", "FLOAT")
        ]
        aggregates = ", ".join(["count(*)", *[f'sum("{c}")' for c in numeric]])
        local_row: tuple[Any, ...] = con.execute(f"select {aggregates} from {a}").fetchone()
        glue_row: tuple[Any, ...] = con.execute(f"select {aggregates} from {b}").fetchone()
        result.check(f"{table}: rows", local_row[0], glue_row[0])
        for index, column in enumerate(numeric, start=1):
            result.check(f"{table}: sum({column})", local_row[index], glue_row[index])
        key = GOLD_KEYS.get(table, columns[0][0])
        only_local = con.execute(
            f'select count(*) from (select "{key}" from {a} except select "{key}" from {b})'
        ).fetchone()
        only_glue = con.execute(
            f'select count(*) from (select "{key}" from {b} except select "{key}" from {a})'
        ).fetchone()
        result.check(
            f"{table}: keys ({key}) only on one side",
            0,
            (only_local[0] if only_local else 0) + (only_glue[0] if only_glue else 0),
        )
    con.close()


def compare_silver(lake: Paths, url: str, result: Comparison) -> None:
    """slv_batch_quality on both engines: per batch, the ledger's rows, Bronze's, Silver's verdict
    and its rejections rule by rule."""
    summary = json.loads(lake.lake_summary.read_text())
    local = {b["batch_id"]: b for b in summary["silver_batches"]}
    glue = {
        b["batch_id"]: b
        for b in glue_query(
            url,
            pipeline.BATCH_QUALITY_SQL.format(
                # the relations as the Glue build named them (its own manifest)
                **pipeline.manifest_relation_names(
                    Path(glue_environment(lake, url)["DBT_TARGET_PATH"])
                ),
            ),
        )
    }
    result.check("silver batches", sorted(local), sorted(glue))
    measures = ("ledger_rows", "bronze_rows", "valid_rows", "rejected_rows")
    for batch_id in sorted(set(local) & set(glue)):
        for measure in (*measures, "valid_purchase_amount"):
            result.check(
                f"silver batch {batch_id}: {measure}",
                _number(local[batch_id][measure]),
                _number(glue[batch_id][measure]),
            )
        result.check(
            f"silver batch {batch_id}: rejected_by_reason",
            local[batch_id]["rejected_by_reason"],
            glue[batch_id]["rejected_by_reason"],
        )


def _number(value: Any) -> Any:
    return Decimal(str(value)) if value is not None else None


# -- incremental behaviour on Glue -------------------------------------------------------------
@dataclass(frozen=True)
class GlueHistory:
    """What the rehearsal lake held before a build: batches in Gold, snapshots per Gold table."""

    batches: frozenset[str]
    snapshots: dict[str, int]


def glue_history(url: str) -> GlueHistory:
    try:
        locations = glue_gold_locations(url)
    except Exception:  # no gold database yet: a first build
        return GlueHistory(frozenset(), {})
    con = _duckdb()
    try:
        snapshots = {
            table: int(
                con.execute(f"select count(*) from iceberg_snapshots('{path}')").fetchone()[0]
            )
            for table, path in locations.items()
        }
        batches: frozenset[str] = frozenset()
        if "fct_sales" in locations:
            rows = con.execute(
                f"select distinct batch_id from iceberg_scan('{locations['fct_sales']}')"
            ).fetchall()
            batches = frozenset(str(r[0]) for r in rows)
    finally:
        con.close()
    return GlueHistory(batches, snapshots)


def incremental_gold_models(lake: Paths) -> list[str]:
    """Gold models materialised incrementally, from the manifest of the Glue build."""
    manifest_file = rehearsal_folder(lake) / "target" / "manifest.json"
    nodes = json.loads(manifest_file.read_text())["nodes"].values()
    return sorted(
        n["alias"]
        for n in nodes
        if n["resource_type"] == "model"
        and n["fqn"][1] == "gold"
        and n["config"].get("materialized") == "incremental"
    )


def check_incremental_behaviour(
    lake: Paths, url: str, before: GlueHistory, result: Comparison
) -> None:
    """What the local lake guarantees, checked on Glue: an incremental Gold table gains exactly
    one snapshot when new batches arrived and none when nothing is new (a no-op build leaves its
    metadata untouched), and no `_tmp` table is left in the catalog."""
    after = glue_history(url)
    new_batches = {e["batch_id"] for e in pipeline.bronze_ledger(lake)} - before.batches
    for table in incremental_gold_models(lake):
        if table not in before.snapshots:
            continue  # first build: created, nothing to compare
        added = after.snapshots.get(table, 0) - before.snapshots[table]
        result.check(
            f"{table}: snapshots added ({len(new_batches)} new batch(es))",
            1 if new_batches else 0,
            added,
        )
    client = glue_client(url)
    leftovers = sorted(
        f"{database}.{t['Name']}"
        for database in ("silver", "gold")
        for t in client.get_tables(DatabaseName=database)["TableList"]
        if t["Name"].endswith("_tmp")
    )
    result.check("_tmp tables left in the catalog", [], leftovers)


# -- the whole rehearsal -----------------------------------------------------------------------
def local_lake_is_current(lake: Paths) -> bool:
    """The local lake's last build holds every batch of the Bronze ledger."""
    if not lake.lake_summary.exists() or not (lake.warehouse / "_gold_manifest").is_dir():
        return False
    built = {b["batch_id"] for b in json.loads(lake.lake_summary.read_text())["silver_batches"]}
    return built == {e["batch_id"] for e in pipeline.bronze_ledger(lake)}


def ensure_local_lake(lake: Paths) -> bool:
    """Build the local lake from the same Bronze if needed; True when it was built now."""
    if local_lake_is_current(lake):
        return False
    # the lake as `lakehouse build` builds it: only the new batches when it holds some already
    pipeline.build(warehouse_target=None)
    return True


def rehearse_glue(
    lake: Paths | None = None,
    statement_timeout: float | None = None,
    log: Any = print,
) -> Comparison:
    lake = lake or paths()
    if pipeline.bronze_is_empty(lake):
        raise RehearsalRefused(
            f"Bronze is empty in {lake.home}: land files first (`lakehouse ingest ...`)"
        )
    started = time.perf_counter()
    if ensure_local_lake(lake):
        log(f"local lake built from the same Bronze ({time.perf_counter() - started:.0f}s)")
    standin = start_standin(rehearsal_folder(lake), statement_timeout)
    try:
        log(f"Glue stand-in at {standin.url} (log: {standin.log_file})")
        before = glue_history(standin.url)
        stage = time.perf_counter()
        run_glue_build(lake, standin.url)
        log(f"dbt build --target {GLUE_TARGET} on the stand-in: {time.perf_counter() - stage:.0f}s")
        result = Comparison()
        compare_gold(local_gold_locations(lake), glue_gold_locations(standin.url), result)
        compare_silver(lake, standin.url, result)
        check_incremental_behaviour(lake, standin.url, before, result)
        return result
    finally:
        standin.stop()
