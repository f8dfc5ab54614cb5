"""Shared fixtures: the real-row fixture, and a lakehouse built by the real pipeline (Spark,
Iceberg, DuckDB) in a temporary LAKEHOUSE_HOME, driven through the `lakehouse` CLI as a user
would drive it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.python.lakehouse_story import Story, story  # noqa: F401  (registers the fixture)
from tests.python.support import PROJECT_DIR, REAL_FIXTURE, SHARED_REAL_ROWS


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


# The suite runs on two pytest-xdist workers (pyproject.toml: `-n 2`). A lake fixture is built
# once per worker that asks for it, so every test of a module runs on one worker, and the modules
# of the story (whose tests share the session-scoped `story` lake) on one worker together: the
# module, or "story", is the unit of work (`GroupScheduling`). The units that take longest start
# first, one per worker, so that neither worker is left with a long unit alone at the end
# (measured: the Glue rehearsal, then the story, then the faults).
STORY_MODULES = frozenset({"test_pipeline_e2e", "test_report", "test_audit_story"})
LONGEST_FIRST = ("test_rehearse_glue", "story", "test_dbt_fault_injection", "test_watch")


def group_of(nodeid: str) -> str:
    module = Path(nodeid.split("::", 1)[0]).stem
    return "story" if module in STORY_MODULES else module


def pytest_configure(config: pytest.Config) -> None:
    # dbt's artifacts and partial-parse state, one folder per worker: two workers running dbt
    # at once in the project's own target/ would overwrite each other's manifest.
    # Set in each worker (not in the controller, whose environment the workers inherit: then
    # both workers shared one folder, and a build recorded the other worker's run_results).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    root = PROJECT_DIR / "target" / f"pytest-{worker or 'main'}"
    if worker:
        os.environ["LAKEHOUSE_DBT_TARGET_ROOT"] = str(root)
    elif not getattr(config.option, "numprocesses", None):
        os.environ.setdefault("LAKEHOUSE_DBT_TARGET_ROOT", str(root))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's load-scope scheduling with our units. (Its `loadgroup` mode cannot be used: it
    renames items' node ids, which pytest 9 no longer reads.)"""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SPARK_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.spark)
            if group_of(item.nodeid) != "story":
                raise pytest.UsageError(
                    f"{item.nodeid} uses the story's lake: add its module to STORY_MODULES in "
                    "tests/python/conftest.py (or the lake is built twice)"
                )

    def rank(item: pytest.Item) -> int:
        group = group_of(item.nodeid)
        return LONGEST_FIRST.index(group) if group in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: the collection order within a rank
