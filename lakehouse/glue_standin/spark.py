"""The local Spark behind every stand-in Glue session, configured as close to Glue 5.0 as we can.

Glue 5.0 runs Spark 3.5.4 with the Glue Data Catalog as the session's Hive metastore
(`--enable-glue-datacatalog`) and Iceberg (`--datalake-formats iceberg`). Here: PySpark 3.5 with
the project's Iceberg 1.10.2 runtime, an embedded Derby metastore under the stand-in's folder
(answering the Data Catalog API too, catalog.py), `spark_catalog` Iceberg's session catalog over
that metastore, and `glue_catalog` an Iceberg SparkCatalog over the same metastore and warehouse.

One JVM serves every Glue session (embedded Derby allows one JVM per metastore); each Glue session
gets `newSession()`: its own SQL conf, temporary views and catalog instances (so catalog caches are
per session, as on Glue), the same tables.

A session's `--conf` (the profile's `conf`) is applied to its Spark session, except the settings
that would reach AWS (GlueCatalog, S3FileIO, s3:// warehouses) or that a running JVM cannot change:
those are replaced by their local equivalents above and listed in the stand-in's log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Catalog properties that say where and how a catalog stores: the stand-in's own values win.
_LOCAL_CATALOG_PROPERTIES = {"catalog-impl", "io-impl", "warehouse", "type", "uri", "glue.id"}
_STATIC_PREFIXES = ("spark.sql.extensions", "spark.jars", "spark.driver", "spark.executor")


def build_spark(folder: Path, cores: str = "2", memory: str = "2g") -> Any:
    """Start the shared Spark session (the JVM) for a stand-in rooted at `folder`."""
    from pyspark.sql import SparkSession

    from lakehouse.engines import iceberg_jar
    from lakehouse.jvm import driver_java_options, java_home

    os.environ.setdefault("JAVA_HOME", str(java_home()))
    folder.mkdir(parents=True, exist_ok=True)
    warehouse = folder / "warehouse"
    derby = folder / "_derby"
    derby.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName("glue-standin")
        .config("spark.driver.memory", memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.jars", str(iceberg_jar()))
        .config(
            "spark.sql.extensions",
            "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions",
        )
        .config("spark.sql.catalog.spark_catalog", "org.apache.iceberg.spark.SparkSessionCatalog")
        .config("spark.sql.catalog.spark_catalog.type", "hive")
        .config("spark.sql.catalog.glue_catalog", "org.apache.iceberg.spark.SparkCatalog")
        .config("spark.sql.catalog.glue_catalog.type", "hive")
        .config("spark.sql.catalog.glue_catalog.warehouse", warehouse.as_uri())
        # Without it every Iceberg commit retries a lock on the embedded Derby forever.
        .config("spark.hadoop.iceberg.engine.hive.lock-enabled", "false")
        .config("spark.sql.warehouse.dir", str(warehouse))
        .config(
            "spark.hadoop.javax.jdo.option.ConnectionURL",
            f"jdbc:derby:;databaseName={folder / '_metastore'};create=true",
        )
        # as the lake target does: not one `<session id>_resources` folder per session in /tmp
        .config("spark.hadoop.hive.downloaded.resources.dir", str(folder / "_hive_resources"))
        .config(
            "spark.driver.extraJavaOptions",
            # the lake's class-data sharing archive (same jars) and JIT mode (the rehearsal
            # runs on the same Bronze: `lakehouse env` chose it), and the user's own flags
            f"-Dderby.system.home={derby} -Dderby.stream.error.file={derby / 'derby.log'} "
            f"{driver_java_options()} {os.environ.get('LAKEHOUSE_SPARK_JIT_OPTIONS', '')} "
            f"{os.environ.get('LAKEHOUSE_SPARK_JAVA_OPTIONS', '')}",
        )
        .config("spark.sql.shuffle.partitions", os.environ.get("LAKEHOUSE_SHUFFLE_PARTITIONS", "4"))
        # Glue 5.0 sessions run in UTC.
        .config("spark.sql.session.timeZone", "UTC")
        .enableHiveSupport()
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("LAKEHOUSE_SPARK_LOG_LEVEL", "ERROR"))
    return spark


def local_conf(conf: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split a session's `--conf` into what is applied and what is replaced locally."""
    applied: dict[str, str] = {}
    replaced: dict[str, str] = {}
    for key, value in conf.items():
        parts = key.split(".")
        is_catalog_setting = key.startswith("spark.sql.catalog.")
        reaches_aws = any(
            marker in value for marker in ("GlueCatalog", "S3FileIO", "s3://", "s3a://")
        )
        if (
            key.startswith(_STATIC_PREFIXES)
            or reaches_aws
            or (is_catalog_setting and len(parts) == 4)  # the catalog's class itself
            or (is_catalog_setting and parts[-1] in _LOCAL_CATALOG_PROPERTIES)
        ):
            replaced[key] = value
        else:
            applied[key] = value
    return applied, replaced


def session_factory(base: Any) -> Any:
    """A function making one Spark session per Glue session, with that session's `--conf`."""

    def new_session(conf: dict[str, str]) -> Any:
        spark = base.newSession()
        applied, replaced = local_conf(conf)
        for key, value in applied.items():
            spark.conf.set(key, value)
        if replaced:
            log.info(
                "replaced by the stand-in's local equivalents: %s", ", ".join(sorted(replaced))
            )
        return spark

    return new_session
