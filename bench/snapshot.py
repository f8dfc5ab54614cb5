"""A copy of the project's working tree, taken when a benchmark starts.

Other people edit and commit in the same tree while a benchmark runs (an hour at 5.5 M rows); a
model or macro changing between two stages would make the stages measure different code, or
break the run half-way. Every command of a run therefore runs a copy: its `ingestion` package
comes first on PYTHONPATH, so `lakehouse` and `REPO_DIR` (and with it the dbt project) resolve
to the copy. The environment (.venv) is shared.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

from bench import REPO_DIR

# top-level folders that are environments, outputs or caches, not the project
SKIPPED_TOP = {
    ".venv",
    ".git",
    "lake",
    "reports",
    "target",
    "logs",
    "dbt_packages",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".hypothesis",
}
SKIPPED_ANYWHERE = {"__pycache__"}
SKIPPED_BENCH = {"work", "results"}


def _ignore(folder: str, names: list[str]) -> set[str]:
    here = Path(folder).resolve()
    skipped = {n for n in names if n in SKIPPED_ANYWHERE or n.endswith(".egg-info")}
    if here == REPO_DIR:
        skipped |= {n for n in names if n in SKIPPED_TOP}
    if here == REPO_DIR / "bench":
        skipped |= {n for n in names if n in SKIPPED_BENCH}
    return skipped


def take(target: Path) -> Path:
    """Copy the working tree (tracked and untracked files, no outputs) to `target`."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(REPO_DIR, target, ignore=_ignore, symlinks=True)
    return target


def fingerprint(tree: Path) -> str:
    """A short hash of every file of the copy, to tell two runs' code apart."""
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(tree)).encode())
        digest.update(path.read_bytes())
    return "sha256:" + digest.hexdigest()[:16]


def apply_patch(tree: Path, diff: Path) -> dict[str, str]:
    """Apply a unified diff (paths as in `git diff`) to the copy; the run records it."""
    text = diff.read_text()
    subprocess.run(
        ["patch", "-p1", "--forward", "--batch", "-d", str(tree)],
        input=text,
        text=True,
        check=True,
        capture_output=True,
    )
    return {"file": diff.name, "diff": text}
