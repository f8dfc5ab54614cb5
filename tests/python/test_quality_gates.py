"""The static quality gates catch what they exist to catch.

Each gate is run the way `make check` runs it, on a copy of the project in which one violation of
its kind was planted, and must fail naming it; on the project as it is, it must pass. No engine
starts: dbt and sqlfluff run through scripts/offline_dbt.py, which refuses any connection.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

PROJECT_DIR = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# What the SQL and dbt gates read; the rest of the project is not needed for them.
PROJECT_PARTS = [
    "dbt_project.yml",
    "selectors.yml",
    "pyproject.toml",
    ".sqlfluff",
    ".sqlfluffignore",
    ".secrets.baseline",
    "profiles",
    "models",
    "macros",
    "seeds",
    "tests/dbt",
    "scripts",
]


def copy_project(destination: Path) -> Path:
    for part in PROJECT_PARTS:
        source = PROJECT_DIR / part
        if source.is_dir():
            shutil.copytree(
                source, destination / part, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            (destination / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / part)
    return destination


def plant(project: Path, path: str, text: str) -> None:
    file = project / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(textwrap.dedent(text).lstrip())


def run(project: Path, *command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A gate's command, in `project`, output (stdout + stderr) in .stdout."""
    return subprocess.run(
        list(command),
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def offline(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(project, sys.executable, str(project / "scripts" / "offline_dbt.py"), *args)


def check_project(project: Path, *targets: str) -> subprocess.CompletedProcess[str]:
    manifests = [str(project / "target" / "gates" / target / "manifest.json") for target in targets]
    return run(project, sys.executable, str(project / "scripts" / "check_project.py"), *manifests)


@pytest.fixture(scope="module")
def pool() -> Iterator[ThreadPoolExecutor]:
    """The slow gates (a dbt parse each) of this module start early and run side by side."""
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


# --- SQL lint: sqlfluff with the dbt templater, one run per target -----------------------------


@pytest.fixture(scope="module")
def sqlfluff_run(
    tmp_path_factory: pytest.TempPathFactory, pool: ThreadPoolExecutor
) -> Future[subprocess.CompletedProcess[str]]:
    """Uppercase keywords planted in a mart (warehouse target, DuckDB) and in fct_sales (lake
    target, Spark SQL; its batch filter queries the engine at compile time), linted together
    with a clean mart: one sqlfluff run per target."""
    project = copy_project(tmp_path_factory.mktemp("sqlfluff"))
    for path in ("models/marts/mart_top_products.sql", "models/gold/fct_sales.sql"):
        sql = (project / path).read_text()
        assert "select * from final" in sql
        (project / path).write_text(sql.replace("select * from final", "SELECT * FROM final"))
    # and a mart whose compile-time query cannot be answered: a lint failure, not a skipped file
    plant(
        project,
        "models/marts/mart_planted_broken.sql",
        """
        {% if execute %}{% set n = run_query('select 1').columns[0].values()[0] %}{% endif %}
        select product_id from {{ ref('dim_products') }}
        """,
    )
    return pool.submit(
        offline,
        project,
        "sqlfluff",
        "lint",
        "models/marts/mart_top_products.sql",
        "models/marts/mart_daily_sales.sql",
        "models/marts/mart_planted_broken.sql",
        "models/gold/fct_sales.sql",
    )


def test_sqlfluff_names_an_uppercase_keyword_on_each_engine(
    sqlfluff_run: Future[subprocess.CompletedProcess[str]],
) -> None:
    result = sqlfluff_run.result()
    assert result.returncode == 1, result.stdout
    for path in ("models/marts/mart_top_products.sql", "models/gold/fct_sales.sql"):
        report = result.stdout.split(f"== [{path}] FAIL", 1)
        assert len(report) == 2, f"{path} not reported:\n{result.stdout}"
        assert "CP01" in report[1].split("== [", 1)[0], result.stdout


def test_sqlfluff_fails_on_a_model_that_does_not_compile(
    sqlfluff_run: Future[subprocess.CompletedProcess[str]],
) -> None:
    report = sqlfluff_run.result().stdout.split("== [models/marts/mart_planted_broken.sql] FAIL")
    assert len(report) == 2 and "TMP" in report[1].split("== [", 1)[0], report


def test_sqlfluff_passes_a_clean_file_and_starts_no_engine(
    sqlfluff_run: Future[subprocess.CompletedProcess[str]],
) -> None:
    result = sqlfluff_run.result()
    assert "mart_daily_sales.sql] FAIL" not in result.stdout, result.stdout
    # fct_sales was templated (not skipped for a compile error) without a Spark session
    assert "Skipped file" not in result.stdout, result.stdout
    assert "SparkContext" not in result.stdout and "EngineRequested" not in result.stdout


# --- dbt parse/compile and the project structure --------------------------------------------

PLANTED_MODELS = {
    "models/marts/mart_planted_reads_silver.sql": """
        select sale_id, batch_id from {{ ref('slv_sales') }}
    """,
    "models/gold/dim_planted_no_contract.sql": """
        {{ config(contract={'enforced': false}) }}
        select customer_id from {{ ref('slv_sales') }}
    """,
    "models/silver/slv_planted_undocumented.sql": """
        select sale_id from {{ ref('slv_sales') }}
    """,
    "models/silver/slv_planted_hard_coded.sql": """
        with sales as (select * from silver.slv_sales)
        select sale_id from sales
    """,
    "models/marts/mart_planted_reads_source.sql": """
        select batch_id from {{ source('walmart', 'walmart_sales_batches') }}
    """,
    "models/marts/top_products_without_prefix.sql": """
        select product_id from {{ ref('dim_products') }}
    """,
    "models/marts/mart_planted_excused.sql": """
        select product_id from {{ ref('dim_products') }}
    """,
    "models/marts/mart_planted_root.sql": """
        select 1 as planted_id
    """,
    "models/silver/slv_planted_unexplained.sql": """
        select batch_id from {{ ref('slv_sales') }}
    """,
    "models/silver/planted_without_prefix.sql": """
        select sale_id from {{ ref('slv_sales') }}
    """,
    "models/gold/slv_planted_in_gold.sql": """
        select sale_id from {{ ref('slv_sales') }}
    """,
    "models/silver/staging/stg_walmart__planted_outside.sql": """
        select batch_id from {{ source('walmart', 'walmart_sales_batches') }}
    """,
}
PLANTED_YAML = """
    version: 2

    models:
      - name: mart_planted_reads_silver
        description: A mart that skips Gold.
        columns:
          - name: sale_id
            description: Documented; batch_id is selected but not documented.
            data_tests: [unique, not_null]
      - name: dim_planted_no_contract
        description: A Gold model without a contract.
        columns:
          - name: customer_id
            description: Customer.
            data_tests: [unique, not_null]
      - name: slv_planted_hard_coded
        description: Reads Silver by name.
        columns:
          - name: sale_id
            description: Sale.
            data_tests: [unique, not_null]
      - name: mart_planted_reads_source
        description: Not a staging model, reads a source.
        columns:
          - name: batch_id
            description: Batch.
            data_tests: [unique, not_null]
      - name: top_products_without_prefix
        description: A mart without the mart_ prefix, and an exception its key test made stale.
        config:
          meta:
            gate_exceptions:
              primary_key: "Was untested once."
        columns:
          - name: product_id
            description: Product.
            data_tests: [unique, not_null]

      - name: mart_planted_excused
        description: No test at all, with written reasons (here and in the exceptions file).
        config:
          meta:
            gate_exceptions:
              primary_key: "Many rows per product by design; the grain is tested elsewhere."
        columns:
          - name: product_id
            description: Product.
      - name: slv_planted_unexplained
        description: No key test, with an exception but no reason.
        config:
          meta:
            gate_exceptions:
              primary_key: ""
        columns:
          - name: batch_id
            description: Batch.

    sources:
      - name: planted
        description: A source without freshness.
        tables:
          - name: events
            description: Events nobody stages.
"""
# entries added to the copy's scripts/check_project_exceptions.yml
PLANTED_EXCEPTIONS = """
  - rule: fct_test_coverage
    resources: [mart_planted_excused]
    reason: A planted model, excused with a reason.
  - rule: fct_model_naming_conventions
    resources: [no_such_model]
    reason: Excuses nothing.
  - rule: fct_source_fanout
    resources: [walmart.walmart_sales_batches]
"""


@pytest.fixture(scope="module")
def compiled_projects(
    tmp_path_factory: pytest.TempPathFactory, pool: ThreadPoolExecutor
) -> dict[str, tuple[Path, Future[subprocess.CompletedProcess[str]]]]:
    """The project as it is, compiled on prod_lake (dbt-glue) and prod_warehouse (its marts' tests
    are enabled on warehouse targets only) with no AWS credentials, and a copy with the planted
    violations, compiled on the local lake target; every model of both."""
    clean = copy_project(tmp_path_factory.mktemp("clean"))
    planted = copy_project(tmp_path_factory.mktemp("planted"))
    for path, sql in PLANTED_MODELS.items():
        plant(planted, path, sql)
    plant(planted, "models/_planted__models.yml", PLANTED_YAML)
    exceptions = planted / "scripts" / "check_project_exceptions.yml"
    exceptions.write_text(exceptions.read_text() + PLANTED_EXCEPTIONS)
    select = ["--select", "path:models"]
    return {
        "clean": (
            clean,
            pool.submit(offline, clean, "dbt", "compile", "--target", "prod_lake", *select),
        ),
        "planted": (
            planted,
            pool.submit(offline, planted, "dbt", "compile", "--target", "lake", *select),
        ),
        "clean_warehouse": (
            clean,
            pool.submit(
                offline,
                clean,
                "dbt",
                "compile",
                "--target",
                "prod_warehouse",
                "--select",
                "path:models/marts",
            ),
        ),
    }


@pytest.fixture(scope="module")
def planted_report(
    compiled_projects: dict[str, tuple[Path, Future[subprocess.CompletedProcess[str]]]],
) -> str:
    project, compiling = compiled_projects["planted"]
    compiled = compiling.result()
    assert compiled.returncode == 0, compiled.stdout[-4000:]
    result = check_project(project, "lake")
    assert result.returncode == 1, result.stdout
    return result.stdout


def test_dbt_compiles_prod_lake_with_no_credentials_and_no_engine(
    compiled_projects: dict[str, tuple[Path, Future[subprocess.CompletedProcess[str]]]],
) -> None:
    project, compiling = compiled_projects["clean"]
    result = compiling.result()
    assert result.returncode == 0, result.stdout[-4000:]
    fct_sales = project / "target/gates/prod_lake/compiled/lakehouse/models/gold/fct_sales.sql"
    # the compile-time batch query got the empty engine's answer: a first build reads nothing new
    assert "where false" in fct_sales.read_text()


def test_project_structure_passes_on_the_project(
    compiled_projects: dict[str, tuple[Path, Future[subprocess.CompletedProcess[str]]]],
) -> None:
    project, compiling = compiled_projects["clean"]
    assert compiling.result().returncode == 0
    warehouse = compiled_projects["clean_warehouse"][1].result()
    assert warehouse.returncode == 0, warehouse.stdout[-4000:]
    # as `make check` runs it: every engine's manifest (each runs the tests it can read)
    result = check_project(project, "prod_lake", "prod_warehouse")
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    ("rule", "resource", "message"),
    [
        ("project_layers", "mart_planted_reads_silver", "depends on silver model slv_sales"),
        (
            "project_columns_documented",
            "mart_planted_reads_silver",
            "column batch_id is selected but not documented",
        ),
        ("fct_public_models_without_contract", "dim_planted_no_contract", "must be enforced"),
        ("fct_undocumented_models", "slv_planted_undocumented", "the model has no description"),
        ("fct_missing_primary_key_tests", "slv_planted_undocumented", "no primary-key test"),
        ("fct_test_coverage", "slv_planted_undocumented", "the model has no test"),
        ("fct_hard_coded_references", "slv_planted_hard_coded", "reads `silver.slv_sales`"),
        (
            "fct_marts_or_intermediate_dependent_on_source",
            "mart_planted_reads_source",
            "only a staging model reads a source",
        ),
        ("fct_source_fanout", "source walmart.walmart_sales_batches", "read by 3 models"),
        ("fct_root_models", "mart_planted_root", "reads no ref(), source() or seed"),
        ("fct_test_directories", "mart_planted_reads_silver", "in models/_planted__models.yml"),
        ("fct_model_naming_conventions", "top_products_without_prefix", "starts with mart_"),
        # a type of the project's own (model_types: silver, folder silver/, prefix slv_)
        ("fct_model_naming_conventions", "planted_without_prefix", "type silver starts with slv_"),
        ("fct_model_directories", "slv_planted_in_gold", "not in a marts folder (gold/)"),
        (
            "fct_model_directories",
            "stg_walmart__planted_outside",
            "in a folder named for its source: staging/walmart/",
        ),
        ("fct_source_directories", "source planted.events", "a folder named for it"),
        ("fct_sources_without_freshness", "source planted.events", "needs loaded_at_field"),
        ("fct_unused_sources", "source planted.events", "no staging model reads it"),
        ("fct_missing_primary_key_tests", "slv_planted_unexplained", "no primary-key test"),
        ("exceptions", "slv_planted_unexplained", "gate_exceptions.primary_key needs a reason"),
        ("exceptions", "top_products_without_prefix", "primary_key excuses nothing"),
        ("exceptions", "scripts/check_project_exceptions.yml", "no_such_model: excuses nothing"),
        ("exceptions", "scripts/check_project_exceptions.yml", "fct_source_fanout: needs a reason"),
    ],
)
def test_project_structure_names_a_planted_violation(
    planted_report: str, rule: str, resource: str, message: str
) -> None:
    lines = [line for line in planted_report.splitlines() if line.startswith(f"{rule}: {resource}")]
    assert any(message in line for line in lines), planted_report


def test_project_structure_accepts_an_exception_with_a_reason(planted_report: str) -> None:
    assert "mart_planted_excused" not in planted_report


def test_dbt_parse_fails_on_a_ref_to_a_missing_model(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    plant(project, "models/marts/mart_planted.sql", "select * from {{ ref('no_such_model') }}\n")
    result = offline(project, "dbt", "parse", "--target", "prod_warehouse")
    assert result.returncode == 1
    assert "no_such_model" in result.stdout


# --- Python: ruff, ruff format, mypy (strict) -----------------------------------------------


@pytest.fixture
def python_project(tmp_path: Path) -> Path:
    shutil.copy2(PROJECT_DIR / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("ingestion", "lakehouse"):  # the packages pyproject's mypy `files` names
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    return tmp_path


def test_ruff_names_an_unused_import(python_project: Path) -> None:
    plant(python_project, "ingestion/planted.py", "import os\n")
    result = run(python_project, str(BIN / "ruff"), "check", "--no-cache", "ingestion")
    assert result.returncode == 1
    assert "ingestion/planted.py" in result.stdout and "F401" in result.stdout


def test_ruff_format_names_an_unformatted_file(python_project: Path) -> None:
    plant(python_project, "ingestion/planted.py", "x = {  'a':1 }\n")
    result = run(python_project, str(BIN / "ruff"), "format", "--check", "--no-cache", "ingestion")
    assert result.returncode == 1
    assert "ingestion/planted.py" in result.stdout


def test_mypy_strict_names_an_untyped_function(python_project: Path) -> None:
    plant(python_project, "ingestion/planted.py", "def double(x):\n    return 2 * x\n")
    result = run(python_project, str(BIN / "mypy"), "--no-incremental")
    assert result.returncode == 1
    assert "ingestion/planted.py:1" in result.stdout and "no-untyped-def" in result.stdout


# --- secrets, YAML, pre-commit ---------------------------------------------------------------


def gates(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run(project, sys.executable, str(project / "scripts" / "gates.py"), *args)


def test_secrets_names_a_new_aws_secret_key(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    # AWS's documented example key, assembled here so that this file holds no secret itself
    fake_key = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYEXAMPLEKEY"
    plant(project, "scripts/planted_settings.py", f'aws_secret_access_key = "{fake_key}"\n')
    result = gates(project, "secrets", "scripts/planted_settings.py", "profiles/profiles.yml")
    assert result.returncode == 1
    assert "scripts/planted_settings.py:1: AWS Access Key" in result.stdout
    assert "profiles.yml" not in result.stdout


def test_secrets_passes_the_baselined_test_fakes() -> None:
    baselined = [
        name
        for name in yaml.safe_load((PROJECT_DIR / ".secrets.baseline").read_text())["results"]
        if (PROJECT_DIR / name).is_file()
    ]
    assert baselined
    result = gates(PROJECT_DIR, "secrets", *baselined, "profiles/profiles.yml")
    assert result.returncode == 0, result.stdout


def test_yaml_names_a_duplicate_key_and_reads_cloudformation_tags(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    plant(project, "models/_planted.yml", "version: 2\nmodels: []\nmodels: []\n")
    plant(project, "infra/planted.yaml", "Resources:\n  Bucket:\n    Name: !Ref Name\n")
    result = gates(project, "yaml", "models/_planted.yml", "infra/planted.yaml")
    assert result.returncode == 1
    assert "models/_planted.yml" in result.stdout and "duplicate key 'models'" in result.stdout
    assert "infra/planted.yaml" not in result.stdout


def test_pre_commit_hooks_are_local_and_the_config_is_valid() -> None:
    config = yaml.safe_load((PROJECT_DIR / ".pre-commit-config.yaml").read_text())
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}
    assert all(repo["repo"] == "local" for repo in config["repos"])
    assert all(hook["language"] == "system" for hook in hooks.values())
    assert {"ruff", "ruff-format", "sqlfluff-lint", "detect-secrets", "check-yaml"} <= set(hooks)
    result = run(PROJECT_DIR, str(BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml")
    assert result.returncode == 0, result.stdout


def test_ci_runs_make_test_then_uploads_the_docs_site() -> None:
    workflow = yaml.safe_load((PROJECT_DIR / ".github/workflows/ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    runs = [step.get("run", "").strip() for step in steps]
    assert runs.index("make test") < runs.index("make docs")
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    for name in ("index.html", "manifest.json", "catalog.json"):
        assert f"target/lake/{name}" in upload["with"]["path"]
    assert (PROJECT_DIR / ".ci/run").read_text().strip().endswith("make test")
