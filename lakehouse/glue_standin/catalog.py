"""The Data Catalog API answered from the metastore Spark writes to.

dbt-glue lists relations through the Data Catalog (GetDatabases, GetTables), decides how to
treat a relation from GetTable (`TableType`, `Parameters.table_type` == ICEBERG,
`Parameters["spark.sql.sources.provider"]`: note it reads `Parameters` without a default, so a
table without `Parameters` breaks it) and creates schemas with CreateDatabase. On Glue the
Data Catalog *is* the sessions' Hive metastore; here the embedded metastore is read through
Spark's external catalog (the Hive client, no Spark session state, no caches).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Protocol

from lakehouse.glue_standin.sessions import GlueError

# Spark's CatalogTableType -> Glue's TableType
_TABLE_TYPES = {"EXTERNAL": "EXTERNAL_TABLE", "MANAGED": "MANAGED_TABLE", "VIEW": "VIRTUAL_VIEW"}
CATALOG_ID = "000000000000"


class Metastore(Protocol):
    def databases(self) -> list[dict[str, Any]]: ...
    def tables(self, database: str) -> list[dict[str, Any]]: ...
    def table(self, database: str, name: str) -> dict[str, Any]: ...
    def create_database(self, name: str, location: str | None, description: str) -> None: ...
    def delete_database(self, name: str) -> None: ...
    def delete_table(self, database: str, name: str) -> None: ...


def _not_found(what: str) -> GlueError:
    return GlueError("EntityNotFoundException", f"{what} not found.")


class SparkMetastore:
    """The Hive metastore of the stand-in's Spark, through `sharedState.externalCatalog`."""

    def __init__(self, spark: Any) -> None:
        self._spark = spark
        self._jvm = spark._jvm
        self._external = spark._jsparkSession.sharedState().externalCatalog()

    def _list(self, seq: Any) -> list[Any]:
        return list(self._jvm.scala.collection.JavaConverters.seqAsJavaList(seq))

    def _dict(self, scala_map: Any) -> dict[str, str]:
        java = self._jvm.scala.collection.JavaConverters.mapAsJavaMap(scala_map)
        return {str(k): str(v) for k, v in dict(java).items()}

    def databases(self) -> list[dict[str, Any]]:
        answer = []
        for name in self._list(self._external.listDatabases()):
            database = self._external.getDatabase(name)
            answer.append(
                {
                    "Name": str(name),
                    "Description": str(database.description() or ""),
                    "LocationUri": str(database.locationUri().toString()),
                    "Parameters": self._dict(database.properties()),
                    "CatalogId": CATALOG_ID,
                }
            )
        return answer

    def _require_database(self, database: str) -> None:
        if not self._external.databaseExists(database):
            raise _not_found(f"Database {database}")

    def tables(self, database: str) -> list[dict[str, Any]]:
        self._require_database(database)
        return [
            self.table(database, str(name))
            for name in self._list(self._external.listTables(database))
        ]

    def table(self, database: str, name: str) -> dict[str, Any]:
        self._require_database(database)
        if not self._external.tableExists(database, name):
            raise _not_found(f"Table {name}")
        table = self._external.getTable(database, name)
        parameters = self._dict(table.properties())
        provider = table.provider()
        if provider.isDefined():
            parameters.setdefault("spark.sql.sources.provider", str(provider.get()))
        location = table.storage().locationUri()
        columns = [
            {"Name": str(field.name()), "Type": str(field.dataType().catalogString())}
            for field in self._list(table.schema().toSeq())
        ]
        partition_names = {str(n) for n in self._list(table.partitionColumnNames())}
        answer = {
            "Name": name,
            "DatabaseName": database,
            "TableType": _TABLE_TYPES.get(str(table.tableType().name()), "EXTERNAL_TABLE"),
            "Parameters": parameters,
            "StorageDescriptor": {
                "Columns": [c for c in columns if c["Name"] not in partition_names],
                "Location": str(location.get().toString()) if location.isDefined() else "",
            },
            "PartitionKeys": [c for c in columns if c["Name"] in partition_names],
            "CreateTime": dt.datetime.fromtimestamp(table.createTime() / 1000, dt.UTC),
            "CatalogId": CATALOG_ID,
        }
        view_text = table.viewText()
        if view_text.isDefined():
            answer["ViewOriginalText"] = answer["ViewExpandedText"] = str(view_text.get())
        return answer

    def create_database(self, name: str, location: str | None, description: str) -> None:
        if self._external.databaseExists(name):
            raise GlueError("AlreadyExistsException", f"Database {name} already exists.")
        clause = f" location '{location}'" if location else ""
        comment = description.replace("'", "")
        self._spark.sql(f"create database `{name}` comment '{comment}'{clause}")

    def delete_database(self, name: str) -> None:
        self._require_database(name)
        self._external.dropDatabase(name, False, True)

    def delete_table(self, database: str, name: str) -> None:
        self.table(database, name)
        self._external.dropTable(database, name, False, False)


class MemoryMetastore:
    """A metastore in a dict: the protocol tests' stand-in for Spark's."""

    def __init__(self) -> None:
        self._databases: dict[str, dict[str, Any]] = {}
        self._tables: dict[str, dict[str, dict[str, Any]]] = {}

    def databases(self) -> list[dict[str, Any]]:
        return list(self._databases.values())

    def tables(self, database: str) -> list[dict[str, Any]]:
        if database not in self._databases:
            raise _not_found(f"Database {database}")
        return list(self._tables[database].values())

    def table(self, database: str, name: str) -> dict[str, Any]:
        if name not in self._tables.get(database, {}):
            raise _not_found(f"Table {name}")
        return self._tables[database][name]

    def create_database(self, name: str, location: str | None, description: str) -> None:
        if name in self._databases:
            raise GlueError("AlreadyExistsException", f"Database {name} already exists.")
        self._databases[name] = {
            "Name": name,
            "Description": description,
            "LocationUri": location or "",
            "Parameters": {},
            "CatalogId": CATALOG_ID,
        }
        self._tables[name] = {}

    def put_table(self, database: str, name: str, parameters: dict[str, str]) -> None:
        self._tables[database][name] = {
            "Name": name,
            "DatabaseName": database,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": parameters,
            "StorageDescriptor": {"Columns": [], "Location": ""},
            "PartitionKeys": [],
            "CatalogId": CATALOG_ID,
        }

    def delete_database(self, name: str) -> None:
        if name not in self._databases:
            raise _not_found(f"Database {name}")
        del self._databases[name], self._tables[name]

    def delete_table(self, database: str, name: str) -> None:
        self.table(database, name)
        del self._tables[database][name]
