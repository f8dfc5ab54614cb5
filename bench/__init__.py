"""Benchmarks of the local lakehouse (issue #7): `python -m bench`, see bench/__main__.py."""

from pathlib import Path

# The repository the benchmark belongs to (and, by default, the dbt project it measures).
REPO_DIR = Path(__file__).resolve().parent.parent
