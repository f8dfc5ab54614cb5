"""Every setting of the project in one place, read from the environment.

`LAKEHOUSE_HOME` (default `./lake`) decides where every local artefact lives: Bronze files, the
Iceberg warehouse, the Spark metastore, the DuckDB file. Two homes are two independent lakes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_ROWS = 550_068
SOURCE_TABLE = "walmart_sales"


@dataclass(frozen=True)
class Paths:
    """Where the local lake keeps each layer and engine artefact."""

    home: Path

    @property
    def bronze(self) -> Path:
        return self.home / "bronze"

    @property
    def bronze_table(self) -> Path:
        return self.bronze / SOURCE_TABLE

    @property
    def ledger(self) -> Path:
        return self.bronze / "_ledger" / SOURCE_TABLE

    @property
    def warehouse(self) -> Path:
        """Spark's warehouse dir: Silver and Gold tables."""
        return self.home / "warehouse"

    @property
    def duckdb_file(self) -> Path:
        return self.home / "warehouse.duckdb"

    @property
    def duckdb_extensions(self) -> Path:
        return self.home / "_duckdb_extensions"

    @property
    def lake_summary(self) -> Path:
        """What the last local lake build left in Silver and Gold (written by the pipeline)."""
        return self.home / "_runs" / "lake_summary.json"

    @property
    def incoming(self) -> Path:
        """Where `lakehouse run` writes the generated default dataset before landing it."""
        return self.home / "incoming"


def lakehouse_home() -> Path:
    """The lake folder, absolute, from LAKEHOUSE_HOME (default ./lake)."""
    return Path(os.environ.get("LAKEHOUSE_HOME", "lake")).expanduser().resolve()


def paths() -> Paths:
    return Paths(lakehouse_home())


def reports_dir() -> Path:
    return Path(os.environ.get("LAKEHOUSE_REPORTS", "reports")).expanduser().resolve()
