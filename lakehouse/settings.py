"""Every setting of the project in one place, read from the environment.

`LAKEHOUSE_HOME` (default `./lake`) decides where every local artefact lives: Bronze files, the
Iceberg warehouse, the Spark metastore, the DuckDB file. Two homes are two independent lakes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingestion.schema import SOURCE_TABLE

DEFAULT_ROWS = 550_068


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


class ProjectNotFound(RuntimeError):
    """The folder the command runs on holds no dbt project."""


def project_dir() -> Path:
    """The dbt project the command acts on, as dbt itself finds it: `--project-dir` (which the
    CLI exports as DBT_PROJECT_DIR), else $DBT_PROJECT_DIR, else the current directory."""
    folder = Path(os.environ.get("DBT_PROJECT_DIR") or ".").expanduser().resolve()
    if not (folder / "dbt_project.yml").is_file():
        raise ProjectNotFound(
            f"no dbt_project.yml in {folder}: run from the project folder, "
            "or pass --project-dir / set DBT_PROJECT_DIR"
        )
    return folder


def profiles_dir() -> Path:
    """dbt's profiles folder: $DBT_PROFILES_DIR, else the project's committed `profiles/`."""
    configured = os.environ.get("DBT_PROFILES_DIR")
    return Path(configured).expanduser().resolve() if configured else project_dir() / "profiles"


def lakehouse_home() -> Path:
    """The lake folder, absolute, from LAKEHOUSE_HOME (default ./lake)."""
    return Path(os.environ.get("LAKEHOUSE_HOME", "lake")).expanduser().resolve()


def paths() -> Paths:
    return Paths(lakehouse_home())


def reports_dir() -> Path:
    return Path(os.environ.get("LAKEHOUSE_REPORTS", "reports")).expanduser().resolve()


def ledger_entries(lake: Paths) -> list[dict[str, Any]]:
    """The committed batches of a lake's Bronze layer (its ledger entries), in no order."""
    if not lake.ledger.is_dir():
        return []
    return [json.loads(p.read_text()) for p in lake.ledger.glob("*.json")]
