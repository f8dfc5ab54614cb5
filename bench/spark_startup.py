"""Spark session start-up on its own: `python -m bench.spark_startup --home DIR --out FILE`.

Starts a SparkSession exactly as dbt-spark's `method: session` does (Hive support enabled, then
every `server_side_parameters` entry of the `lake` target of profiles/profiles.yml, rendered with
the environment `lakehouse.engines.engine_environment()` gives), runs one catalog query (which
creates the Derby metastore, as the first statement of a lake build does), and stops.

This is preferred over timing `lakehouse dbt debug --target lake`: that adds dbt's own start-up
(imports, project parsing) and does not show how much of a lake build is the JVM alone. The
harness times the whole process from the outside; this script also writes the in-process split
(imports, session, metastore, stop) as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from bench import REPO_DIR
from lakehouse.jvm import start_lake_session
from lakehouse.settings import Paths


def measure(home: Path) -> dict[str, Any]:
    started = time.perf_counter()
    from lakehouse.engines import engine_environment

    os.environ.update(engine_environment(Paths(home)))
    import pyspark.sql  # noqa: F401  (the import is part of what a session start costs)

    imported = time.perf_counter()
    spark = start_lake_session(REPO_DIR / "profiles" / "profiles.yml")
    session = time.perf_counter()
    spark.sql("show databases").collect()
    catalog = time.perf_counter()
    spark.stop()
    stopped = time.perf_counter()
    return {
        "imports_s": round(imported - started, 3),
        "session_s": round(session - imported, 3),
        "metastore_s": round(catalog - session, 3),
        "stop_s": round(stopped - catalog, 3),
        "in_process_s": round(stopped - started, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a fresh LAKEHOUSE_HOME")
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the split")
    args = parser.parse_args()
    args.out.write_text(json.dumps(measure(args.home.resolve()), indent=2))


if __name__ == "__main__":
    main()
