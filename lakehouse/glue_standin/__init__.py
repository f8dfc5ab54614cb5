"""A local stand-in for the AWS Glue APIs that dbt-glue calls, on loopback.

dbt-glue talks to Glue through boto3 only: Interactive Sessions (CreateSession, GetSession,
RunStatement, GetStatement, StopSession, DeleteSession), the Data Catalog (GetDatabases,
GetTables, GetTable, CreateDatabase, ...), STS GetCallerIdentity and Lake Formation grants.
boto3 honours AWS_ENDPOINT_URL_GLUE / _STS / _LAKEFORMATION, so pointing those at this server runs
the real adapter, unpatched, against a real local PySpark session (Iceberg, a `glue_catalog`
catalog) whose Hive metastore also answers the Data Catalog calls.

    sessions.py  Glue sessions and statements: Python code run in a per-session namespace
    catalog.py   Data Catalog answers from the metastore Spark writes to
    server.py    the HTTP front: the Glue JSON protocol, STS (query/XML), Lake Formation (REST)
    spark.py     the one local Spark (JVM) every Glue session shares, configured like Glue 5.0
"""

from lakehouse.glue_standin.server import StandIn, serve

__all__ = ["StandIn", "serve"]
