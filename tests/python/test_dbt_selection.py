"""Which dbt tests each engine runs (issue #15), checked without starting Spark: `dbt ls` parses
the project for a target and lists what its default selector (selectors.yml) picks.

- Every declared test (data test or unit test) is enabled on exactly one engine: the lake
  (Spark/Glue) or the warehouse (DuckDB/Redshift).
- On each engine the default selection is every enabled test, cross-layer mart tests included.
- `--select <model>` on one engine never lists a test of the other engine.

`test_dbt_fault_injection.py` checks the same thing on a real build, from run_results.json."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest

from tests.python.dbt_faults import DOCS_PAGE, all_faults, render_docs
from tests.python.support import run_lakehouse

TEST_TYPES = ("test", "unit_test")


def _ls(home: Path, target: str, *select: str) -> set[str]:
    args = ["dbt", "ls", "--target", target, "-q", "--output", "json", "--output-keys", "unique_id"]
    for resource_type in TEST_TYPES:
        args += ["--resource-type", resource_type]
    if select:
        args += ["--select", *select]
    out = run_lakehouse(home, *args, extra_env={"DBT_TARGET_PATH": str(home / target)}).stdout
    return {json.loads(line)["unique_id"] for line in out.splitlines() if line.startswith("{")}


@cache
def _listing(home: Path, target: str) -> tuple[set[str], set[str], set[str]]:
    """(selected by default, enabled tests, disabled tests) on `target`."""
    selected = _ls(home, target)
    manifest = json.loads((home / target / "manifest.json").read_text())
    enabled = {
        uid
        for section in ("nodes", "unit_tests")
        for uid, node in manifest.get(section, {}).items()
        if node["resource_type"] in TEST_TYPES
    }
    disabled = {
        uid
        for uid, nodes in manifest.get("disabled", {}).items()
        if nodes[0]["resource_type"] in TEST_TYPES
    }
    return selected, enabled, disabled


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dbt-ls")


@pytest.mark.parametrize("target", ["lake", "warehouse"])
def test_default_selection_is_every_enabled_test(home: Path, target: str) -> None:
    selected, enabled, _ = _listing(home, target)
    assert enabled, f"no test enabled on {target}"
    assert selected == enabled, (
        f"enabled on {target} but not selected: {sorted(enabled - selected)}; "
        f"selected but not enabled: {sorted(selected - enabled)}"
    )


def test_every_declared_test_is_enabled_on_exactly_one_engine(home: Path) -> None:
    _, lake_enabled, lake_disabled = _listing(home, "lake")
    _, warehouse_enabled, warehouse_disabled = _listing(home, "warehouse")
    declared = lake_enabled | lake_disabled
    assert declared == warehouse_enabled | warehouse_disabled
    assert lake_enabled | warehouse_enabled == declared, sorted(
        declared - lake_enabled - warehouse_enabled
    )
    assert not lake_enabled & warehouse_enabled, sorted(lake_enabled & warehouse_enabled)


def test_cross_layer_mart_tests_run_on_the_warehouse(home: Path) -> None:
    _, warehouse_enabled, _ = _listing(home, "warehouse")
    nodes = json.loads((home / "warehouse" / "manifest.json").read_text())["nodes"]
    cross = {
        uid
        for uid in warehouse_enabled
        if uid in nodes
        and {"model.lakehouse.fct_sales", "model.lakehouse.dim_customers"}
        & set(nodes[uid]["depends_on"]["nodes"])
    }
    # every mart's sums_match against fct_sales (7), and the customers of mart_daily_sales
    # (new) and mart_city_age_markets against dim_customers; under `cautious` no build ran any
    assert len(cross) == 9, sorted(cross)


@pytest.mark.parametrize(
    ("target", "model"),
    [
        ("lake", "dim_customers"),  # 3 mart tests compare with it: they must stay off Spark
        ("lake", "fct_sales"),  # 8 mart tests compare with it
        ("warehouse", "mart_daily_sales"),
        ("warehouse", "dim_customers"),  # only the mart tests that read it, none of Gold's own
    ],
)
def test_selecting_a_model_never_pulls_a_test_of_the_other_engine(
    home: Path, target: str, model: str
) -> None:
    selected = _ls(home, target, model)
    assert selected, f"{model} has no test on {target}"
    _, enabled, _ = _listing(home, target)
    # the engines' enabled sets are disjoint (test above), so this is "none of the other's"
    assert selected <= enabled, sorted(selected - enabled)


@pytest.mark.parametrize("target", ["lake", "warehouse"])
def test_every_enabled_data_test_has_a_planted_fault(home: Path, target: str) -> None:
    """Each test of the build is in the fault catalogue that test_dbt_fault_injection plants."""
    nodes = json.loads((home / target / "manifest.json").read_text())["nodes"]
    _, enabled, _ = _listing(home, target)
    data_tests = {nodes[uid]["name"] for uid in enabled if uid in nodes}
    catalogued = {fault.test for engine, _, fault in all_faults() if engine == target}
    assert sorted(data_tests - catalogued) == [], "tests without a planted fault"
    assert sorted(catalogued - data_tests) == [], "faults for tests that do not exist"


def test_the_docs_page_lists_the_fault_catalogue() -> None:
    assert DOCS_PAGE.read_text() == render_docs(), (
        "docs/dbt-tests.md is stale: python -m tests.python.dbt_faults"
    )
