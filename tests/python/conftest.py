"""Shared fixtures: the real-row fixture, and a lakehouse built by the real pipeline (Spark,
Iceberg, DuckDB) in a temporary LAKEHOUSE_HOME, driven through the `lakehouse` CLI as a user
would drive it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_DIR / "tests" / "fixtures"
REAL_FIXTURE = FIXTURES / "walmart_head_2000rows.csv"
# The full 29,116 real rows, where the sibling shared/ folder exists (not in a user's clone).
SHARED_REAL_ROWS = PROJECT_DIR.parent / "shared" / "data" / "walmart" / "walmart_head_29116rows.csv"
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


def lakehouse_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["LAKEHOUSE_HOME"] = str(home)
    env["LAKEHOUSE_REPORTS"] = str(home / "reports")
    return env


def run_lakehouse(home: Path, *args: str, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """Run the `lakehouse` CLI against one lake folder; on failure show what the user saw."""
    result = subprocess.run(
        [str(LAKEHOUSE), *args],
        env=lakehouse_env(home),
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"lakehouse {' '.join(args)} exited {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


@pytest.fixture(scope="session")
def real_rows_csv() -> Path:
    """The real rows to build from: all 29,116 where shared/ is beside the project, else the
    committed 2,000-row fixture."""
    return SHARED_REAL_ROWS if SHARED_REAL_ROWS.exists() else REAL_FIXTURE


@pytest.fixture(scope="session")
def built_lake(tmp_path_factory: pytest.TempPathFactory, real_rows_csv: Path) -> Path:
    """A lake with the real rows landed on 2026-01-01 and built on both local targets."""
    home = tmp_path_factory.mktemp("lake")
    run_lakehouse(home, "ingest", str(real_rows_csv), "--ingest-date", "2026-01-01")
    run_lakehouse(home, "build")
    return home


@pytest.fixture(scope="session")
def warehouse_duckdb(built_lake: Path) -> Path:
    """The DuckDB warehouse file of the built lake, marts included."""
    return built_lake / "warehouse.duckdb"
