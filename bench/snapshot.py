"""A copy of the project's working tree, taken when a benchmark starts.

Other people edit and commit in the same tree while a benchmark runs (an hour at 5.5 M rows); a
model or macro changing between two stages would make the stages measure different code, or
break the run half-way. Every command of a run therefore runs a copy: its `ingestion` package
comes first on PYTHONPATH, so `lakehouse` and `REPO_DIR` (and with it the dbt project) resolve
to the copy. The environment (.venv) is shared.

git takes the copy: the working tree as it is, uncommitted and untracked files included, minus
what `.gitignore` ignores (environments, outputs, caches), is written as a git tree object
through a throw-away index (the real index and the stash stay untouched), then `git archive`
extracts that tree. The tree's id is the code's fingerprint.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench import REPO_DIR


def _git(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd or REPO_DIR, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def tree_id(tree: Path | None = None) -> str:
    """The git tree id of the files under `tree` that .gitignore does not ignore, as they are on
    disk. Written through a throw-away index, so neither the real index nor the stash changes;
    a folder outside any repository (the copy) gets a throw-away repository as well."""
    tree = tree or REPO_DIR
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        if tree != REPO_DIR:
            env["GIT_DIR"], env["GIT_WORK_TREE"] = str(Path(scratch) / "git"), str(tree)
            _git("init", "--quiet", "--bare", env["GIT_DIR"])
        _git("add", "--all", "--", ".", cwd=tree, env=env)
        return _git("write-tree", cwd=tree, env=env)


def take(target: Path) -> Path:
    """Extract the working tree (tracked and untracked files, no outputs) to `target`."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", tree_id()],
        cwd=REPO_DIR,
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(target, filter="tar")
    return target


def fingerprint(tree: Path) -> str:
    """A short git tree id of the copy (patches included), to tell two runs' code apart."""
    return "git-tree:" + tree_id(tree)[:16]


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
