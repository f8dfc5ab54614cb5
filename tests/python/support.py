"""What the tests share: where things are, and how to run the `lakehouse` CLI as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]
FIXTURES = PROJECT_DIR / "tests" / "fixtures"
REAL_FIXTURE = FIXTURES / "walmart_head_2000rows.csv"
# The full 29,116 real rows, where the sibling shared/ folder exists (not in a user's clone).
SHARED_REAL_ROWS = PROJECT_DIR.parent / "shared" / "data" / "walmart" / "walmart_head_29116rows.csv"
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"


def lakehouse_env(home: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["LAKEHOUSE_HOME"] = str(home)
    env["LAKEHOUSE_REPORTS"] = str(home / "reports")
    env.update(extra_env or {})
    return env


def run_lakehouse(
    home: Path,
    *args: str,
    check: bool = True,
    timeout: float = 900,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the `lakehouse` CLI against one lake folder; on failure show what the user saw."""
    result = subprocess.run(
        [str(LAKEHOUSE), *args],
        env=lakehouse_env(home, extra_env),
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
