"""Shared fixtures: the real-row fixture, and a lakehouse built by the real pipeline (Spark,
Iceberg, DuckDB) in a temporary LAKEHOUSE_HOME, driven through the `lakehouse` CLI as a user
would drive it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.python.lakehouse_story import Story, story  # noqa: F401  (registers the fixture)
from tests.python.support import REAL_FIXTURE, SHARED_REAL_ROWS


@pytest.fixture(scope="session")
def real_rows_csv() -> Path:
    """The real rows to build from: all 29,116 where shared/ is beside the project, else the
    committed 2,000-row fixture."""
    return SHARED_REAL_ROWS if SHARED_REAL_ROWS.exists() else REAL_FIXTURE


@pytest.fixture(scope="session")
def warehouse_duckdb(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the DuckDB warehouse the end-to-end story built (three days, marts included)."""
    built: Story = request.getfixturevalue("story")
    copy = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    shutil.copyfile(built.home / "warehouse.duckdb", copy)
    return copy


# Fixtures that build a lake (start Spark). A test using one, even indirectly (the report tests
# read the story's warehouse), is marked `spark`, so `-m "not spark"` is a fast inner loop.
SPARK_FIXTURES = frozenset({"story", "warehouse_duckdb"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SPARK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.spark)
