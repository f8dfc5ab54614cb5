"""The `lakehouse` application around the dbt project: the command line, the pipeline that
drives dbt on the local engines (Spark + Iceberg, DuckDB), their wiring and settings, the
insights report, and the synthetic data generator.

The landing code is the separate `ingestion` package, which imports nothing from here.
"""
