"""Run dbt, or sqlfluff with its dbt templater, with no engine behind them (the static gates).

    python scripts/offline_dbt.py dbt compile --target prod_lake
    python scripts/offline_dbt.py sqlfluff lint models tests/dbt
    python scripts/offline_dbt.py sqlfluff fix models/marts/mart_top_products.sql

No engine: compiling a model renders its Jinja with `execute` true, and some of ours ask the
engine questions at compile time (`incremental_batch_filter` runs `select distinct batch_id ...`,
`is_incremental()` looks the table up); sqlfluff's dbt templater also fills dbt's relation cache
before the first file, which lists every schema. On the lake target each of those starts a Spark
session (JVM, metastore); on the prod targets they need AWS credentials. So every adapter
registered here answers as an empty engine on a first build would: no relation exists, every
query returns no rows (incremental models compile their first-build SQL, `where false` for the
batch filter). Opening a real connection raises instead, so a gate can never start Spark, DuckDB
on a lake file, Glue or Redshift. Builds never import this module.

One target per run: the dbt templater compiles the project once per run, with the target of the
configuration it starts from, so a nested `.sqlfluff` that says `target = warehouse` is ignored
when the run starts at the project root. `sqlfluff` here splits the files by the nearest
`.sqlfluff` that names a dbt target and runs sqlfluff once per target (models/marts/.sqlfluff:
warehouse; everything else: the root's lake).

The profile's environment is set to obviously fake values (account 123456789012, bucket
example-bucket, /nonexistent paths) and AWS credentials are removed, so the gates need no secret
and no local lake.
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parent.parent
TARGETS = ("lake", "warehouse", "prod_lake", "prod_warehouse")
# Where the gates' dbt writes: apart from target/ so a gate never races a real build's artefacts.
GATES_DIR = PROJECT_DIR / "target" / "gates"
SKIP_DIRS = {".git", ".venv", "target", "dbt_packages", "lake", "logs", "reports", "node_modules"}

FAKE_ENV = {
    "LAKEHOUSE_HOME": "/nonexistent/lakehouse-home",
    "LAKEHOUSE_ICEBERG_JAR": "/nonexistent/iceberg-spark-runtime.jar",
    "LAKEHOUSE_DUCKDB_EXTENSIONS": "/nonexistent/duckdb-extensions",
    "LAKEHOUSE_GLUE_ROLE_ARN": "arn:aws:iam::123456789012:role/example-glue-role",
    "LAKEHOUSE_GLUE_LOG_GROUP_PREFIX": "/aws-glue/sessions/lakehouse-example",
    "LAKEHOUSE_S3_LAKE_URI": "s3://example-bucket/lake",
    "LAKEHOUSE_BRONZE_URI": "s3://example-bucket/bronze",
    "LAKEHOUSE_SPECTRUM_ROLE_ARN": "arn:aws:iam::123456789012:role/example-spectrum-role",
    "LAKEHOUSE_REDSHIFT_HOST": "example.123456789012.eu-west-1.redshift-serverless.amazonaws.com",
    "LAKEHOUSE_REDSHIFT_WORKGROUP": "example-workgroup",
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    # Nowhere to find credentials: anything that tried AWS would fail, not use someone's keys.
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
}
# Variables that would point dbt at another profile, target or target dir.
UNSET = (
    "LAKEHOUSE_TARGET",
    "LAKEHOUSE_SCHEMA_PREFIX",
    "DBT_PROFILES_DIR",
    "DBT_PROJECT_DIR",
    "DBT_TARGET_PATH",
    "DBT_TARGET",
    "DBT_ENGINE_TARGET_PATH",
    "DBT_ENGINE_TARGET",
)


class EngineRequested(RuntimeError):
    """Something tried to open a real connection during a static gate."""


def fake_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the gates run dbt with: the caller's minus anything that picks a target
    or a credential (every AWS_* variable), plus the fake profile values."""
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if key not in UNSET and not key.startswith("AWS_")
    }
    env.update(FAKE_ENV)
    return env


# --- dbt with an empty engine ------------------------------------------------------------------


def _empty_execute(
    sql: str, auto_begin: bool = False, fetch: bool = False, limit: int | None = None
) -> tuple[Any, Any]:
    from dbt.adapters.contracts.connection import AdapterResponse
    from dbt_common.clients.agate_helper import empty_table

    return AdapterResponse(_message="offline: no engine"), empty_table()  # type: ignore[no-untyped-call]


def _refuse_open(connection: Any) -> Any:
    raise EngineRequested(
        f"a static gate tried to open a {connection.type} connection ({connection.name}); "
        "the gates run with no engine (scripts/offline_dbt.py)"
    )


def make_offline(adapter: Any) -> None:
    """Turn one registered adapter into an empty engine that cannot connect."""
    adapter.execute = _empty_execute
    adapter.get_relation = lambda *args, **kwargs: None
    adapter.list_relations_without_caching = lambda schema_relation: []
    adapter.get_columns_in_relation = lambda relation: []
    adapter.connections.open = _refuse_open


def install() -> None:
    """Apply the fake environment and make every adapter registered from now on offline."""
    env = fake_environment()
    os.environ.clear()
    os.environ.update(env)

    from dbt.adapters import factory

    container: Any = factory.AdapterContainer
    if getattr(container, "_lakehouse_offline", False):
        return
    original = container.register_adapter

    def register_adapter(self: Any, config: Any, *args: Any, **kwargs: Any) -> None:
        original(self, config, *args, **kwargs)
        make_offline(self.adapters[config.credentials.type])

    container.register_adapter = register_adapter
    container._lakehouse_offline = True


def run_dbt(args: list[str]) -> int:
    """One dbt command, offline, with this project's profile; artefacts under target/gates/."""
    from dbt.cli.main import dbtRunner

    install()
    target = args[args.index("--target") + 1] if "--target" in args else "default"
    command = [*args, "--project-dir", str(PROJECT_DIR)]
    command += ["--profiles-dir", str(PROJECT_DIR / "profiles")]
    if "--target-path" not in args:
        command += ["--target-path", str(GATES_DIR / target)]
    if "--log-path" not in args:
        command += ["--log-path", str(GATES_DIR / "logs" / target)]
    result = dbtRunner().invoke(command)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        print(f"dbt {' '.join(args)}: {result.exception}", file=sys.stderr)
    return 0 if result.success else 1


# --- sqlfluff, one run per dbt target ----------------------------------------------------------


def target_config(path: Path) -> Path:
    """The nearest .sqlfluff above `path` (inside the project) that names a dbt target."""
    folder = path if path.is_dir() else path.parent
    for candidate in [folder, *folder.parents]:
        config_file = candidate / ".sqlfluff"
        if config_file.is_file():
            parser = configparser.ConfigParser()
            parser.read(config_file)
            if parser.has_option("sqlfluff:templater:dbt", "target"):
                return config_file
        if candidate == PROJECT_DIR:
            break
    return PROJECT_DIR / ".sqlfluff"


def sql_files(paths: Iterable[Path]) -> list[Path]:
    """The .sql files under the given paths, minus what .sqlfluffignore excludes."""
    import pathspec

    ignore_file = PROJECT_DIR / ".sqlfluffignore"
    ignored = pathspec.PathSpec.from_lines(
        "gitwildmatch", ignore_file.read_text().splitlines() if ignore_file.is_file() else []
    )
    found: list[Path] = []
    for path in paths:
        candidates = [path] if path.is_file() else []
        for root, dirs, names in os.walk(path):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            candidates += [Path(root) / name for name in sorted(names) if name.endswith(".sql")]
        for candidate in candidates:
            relative = candidate.resolve().relative_to(PROJECT_DIR)
            if not ignored.match_file(relative.as_posix()):
                found.append(relative)
    return found


def run_sqlfluff(args: list[str], origin: Path) -> int:
    """sqlfluff <command> [options] [paths]: one sqlfluff run per dbt target. Paths are
    relative to `origin` (the caller's working directory)."""
    if not args or args[0].startswith("-"):
        return _sqlfluff_in_process(args)
    command, rest = args[0], args[1:]
    paths = [origin / a for a in rest if not a.startswith("-") and (origin / a).exists()]
    options = [a for a in rest if a.startswith("-") or not (origin / a).exists()]
    groups: dict[Path, list[Path]] = {}
    for file in sql_files(paths or [PROJECT_DIR]):
        groups.setdefault(target_config(PROJECT_DIR / file), []).append(file)
    if not groups:
        print("sqlfluff: no SQL files to check", file=sys.stderr)
        return 0
    worst = 0
    for config_file, files in sorted(groups.items()):
        extra = [] if config_file == PROJECT_DIR / ".sqlfluff" else ["--config", str(config_file)]
        child = [sys.executable, str(Path(__file__).resolve()), "_sqlfluff", command, *extra]
        child += [*options, *map(str, files)]
        worst = max(worst, subprocess.run(child, check=False, cwd=PROJECT_DIR).returncode)
    return worst


def _sqlfluff_in_process(args: list[str]) -> int:
    from sqlfluff.cli.commands import cli

    install()
    config_file = Path(args[args.index("--config") + 1]) if "--config" in args else None
    parser = configparser.ConfigParser()
    parser.read(config_file or PROJECT_DIR / ".sqlfluff")
    target = parser.get("sqlfluff:templater:dbt", "target", fallback="default")
    os.environ["DBT_TARGET_PATH"] = str(GATES_DIR / f"sqlfluff_{target}")
    try:
        cli.main(args=args, prog_name="sqlfluff", standalone_mode=True)
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("dbt", "sqlfluff", "_sqlfluff"):
        print(__doc__, file=sys.stderr)
        return 2
    origin = Path.cwd()
    os.chdir(PROJECT_DIR)
    if argv[0] == "dbt":
        return run_dbt(argv[1:])
    if argv[0] == "sqlfluff":
        return run_sqlfluff(argv[1:], origin)
    return _sqlfluff_in_process(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
