"""One benchmark stage = one command of the project, run as a subprocess in a given lake home,
timed from the outside and measured (bench.memory). dbt stages also keep dbt's own per-node
timings (run_results.json), so a slow build can be explained model by model.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import REPO_DIR
from bench.memory import run_measured, wait_for_quiet

log = logging.getLogger(__name__)

VENV_BIN = Path(sys.executable).parent
LAKEHOUSE = str(VENV_BIN / "lakehouse")
PYTHON = sys.executable
MB = 1_000_000
STAGE_TIMEOUT_S = 3 * 3600


@dataclass
class Quiet:
    """Before each stage, wait up to `max_wait_s` for the machine to be idle (other people run
    test suites on it); 0 measures straight away."""

    max_wait_s: float = 0.0


QUIET = Quiet()


class StageFailed(RuntimeError):
    """A command of the project ended with an error; the log says why. Carries what it cost."""

    def __init__(self, message: str, result: StageResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class StageResult:
    """What one stage cost. Rates are per second of wall time."""

    name: str
    command: list[str]
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float
    max_processes: int
    loadavg_start: list[float]
    loadavg_end: list[float]
    others_cpu_share: float
    """Share of the machine's CPUs other processes kept busy during the stage (0 = quiet)."""
    waited_for_quiet_s: float
    log: str
    rows: int | None = None
    bytes: int | None = None
    rows_per_s: float | None = None
    mb_per_s: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Home:
    """A fresh lake folder and where the stages of one scale keep their side files."""

    root: Path
    """The scale's work folder: inputs, logs, the lake home, the baseline's output."""
    src: Path = REPO_DIR
    """The copy of the project the commands run (see bench.snapshot)."""

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def inputs(self) -> Path:
        return self.root / "input"

    @property
    def dbt_target(self) -> Path:
        """The root of dbt's per-target artifact folders (lakehouse.pipeline.target_path)."""
        return self.lake / "_dbt_target"

    @property
    def dbt_log(self) -> Path:
        return self.lake / "_dbt_logs" / "dbt.log"

    def env(self) -> dict[str, str]:
        """The environment every command of this scale runs with.

        dbt's target and log folders go under the lake home: other people use the project's own
        target/ at the same time, and run_results.json is read back after each dbt stage.
        """
        env = dict(os.environ)
        env.update(
            {
                "LAKEHOUSE_HOME": str(self.lake),
                "LAKEHOUSE_REPORTS": str(self.root / "reports"),
                "LAKEHOUSE_DBT_TARGET_ROOT": str(self.dbt_target),
                "DBT_LOG_PATH": str(self.dbt_log.parent),
                "DBT_PROJECT_DIR": str(self.src),
                # the project's code (ingestion, bench) and so its dbt project come from `src`:
                # PYTHONPATH comes before the editable install's finder
                "PYTHONPATH": os.pathsep.join(
                    p for p in (str(self.src), os.environ.get("PYTHONPATH")) if p
                ),
                "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
                # rich wraps at the terminal width; a wide one keeps summary lines parseable
                "COLUMNS": "200",
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env


def run_stage(
    name: str,
    argv: list[str],
    home: Home,
    rows: int | None = None,
    size_bytes: int | None = None,
    stdin_file: Path | None = None,
) -> StageResult:
    """Run one command in `home`, measured; raise StageFailed (with the log's tail) on error."""
    log_file = stage_log(home, name)
    waited = wait_for_quiet(QUIET.max_wait_s)
    log.info("%s: %s", name, " ".join(_short(arg) for arg in argv))
    measured = run_measured(
        argv, home.env(), home.root, log_file, timeout_s=STAGE_TIMEOUT_S, stdin_file=stdin_file
    )
    seconds = measured.seconds
    result = StageResult(
        name=name,
        command=[_short(arg) for arg in argv],
        seconds=round(seconds, 2),
        peak_rss_mb=round(measured.peak_rss_bytes / MB, 1),
        cpu_seconds=round(measured.cpu_seconds, 1),
        max_processes=measured.max_processes,
        loadavg_start=list(measured.loadavg_start),
        loadavg_end=list(measured.loadavg_end),
        others_cpu_share=round(measured.others_cpu_share, 2),
        waited_for_quiet_s=round(waited, 1),
        log=_short(str(log_file)),
        rows=rows,
        bytes=size_bytes,
        rows_per_s=round(rows / seconds) if rows else None,
        mb_per_s=round(size_bytes / MB / seconds, 1) if size_bytes else None,
    )
    if measured.returncode != 0:
        lines = log_file.read_text(errors="replace").splitlines()
        result.details["root_cause"] = _short(root_cause(lines))
        tail = lines[-30:]
        message = f"{name} failed (exit {measured.returncode}); see {result.log}:\n"
        raise StageFailed(message + "\n".join(_short(line) for line in tail), result)
    log.info(
        "%s: %.1f s, peak %.0f MB, load %.1f -> %.1f, others' CPU %.0f%%",
        name,
        result.seconds,
        result.peak_rss_mb,
        measured.loadavg_start[0],
        measured.loadavg_end[0],
        100 * result.others_cpu_share,
    )
    if argv[:2] == [LAKEHOUSE, "dbt"]:
        target = argv[argv.index("--target") + 1] if "--target" in argv else "lake"
        result.details["dbt"] = _dbt_details(home, target, measured.started_at, seconds)
    if argv[:2] == [LAKEHOUSE, "build"]:
        # what each engine decided (full build / new data / up to date), as the CLI printed it
        printed = stage_log(home, name).read_text(errors="replace")
        result.details["plan"] = re.findall(r"^(?:lake|warehouse) build: .*$", printed, re.M)
        # the lake's part, node by node (the warehouse builds after its last node); none when
        # the build found the lake up to date and ran no dbt there
        lake_results = home.dbt_target / "lake" / "run_results.json"
        if lake_results.exists() and lake_results.stat().st_mtime >= measured.started_at:
            result.details["dbt"] = _dbt_details(home, "lake", measured.started_at, seconds)
    return result


def _dbt_details(home: Home, target: str, started_at: float, seconds: float) -> dict[str, Any]:
    dbt = dbt_timings(home.dbt_target / target / "run_results.json", started_at)
    dbt["after_last_node_s"] = round(seconds - dbt.pop("_last_completed_offset_s", seconds), 2)
    dbt["start_up"] = dbt_start_up(home.dbt_log, started_at, seconds)
    return dbt


def root_cause(lines: list[str]) -> str:
    """The line of a failed command's log most likely to say why: the deepest `Caused by:` of the
    first Java stack trace, else the last line naming an error or exception."""
    causes: list[str] = []
    for line in lines:
        if line.startswith("Caused by:"):
            causes.append(line)
        elif causes and not line.startswith(("\t", " ", "Caused by:")):
            break
    if causes:
        return causes[-1].strip()
    named = [ln.strip() for ln in lines if re.search(r"(Error|Exception)\b", ln)]
    return named[-1] if named else (lines[-1].strip() if lines else "")


def stage_log(home: Home, name: str) -> Path:
    return home.logs / f"{_slug(name)}.log"


# Prefixes shortened in what the results record: the venv, the project, and (set by the runner)
# the run's work folder as `$RUN`. Besides reading the same on any machine, a long path of
# letters, digits and slashes reads as a secret to detect-secrets; `$` breaks that.
SHORTENED: list[tuple[str, str]] = [
    (str(VENV_BIN) + "/", ".venv/bin/"),
    (str(REPO_DIR) + "/", ""),
]


def shorten_under(folder: Path, label: str) -> None:
    SHORTENED.insert(0, (str(folder) + "/", label + "/"))


def _short(arg: str) -> str:
    for prefix, label in SHORTENED:
        if prefix in arg:
            arg = arg.replace(prefix, label)
    return arg


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def dbt_timings(run_results: Path, started_at: float) -> dict[str, Any]:
    """dbt's view of a stage: its own elapsed time and each node's compile/execute split.

    Offsets are seconds from the start of the process, so `first_node_offset_s` is what the
    stage spent before dbt ran anything (Python and dbt start, parsing, Spark start, the
    relation cache). A hook's work shows as its compile time: the project's hooks run their
    statements while rendering.
    """
    if not run_results.exists():
        return {}
    results = json.loads(run_results.read_text())
    nodes: list[dict[str, Any]] = []
    for result in results["results"]:
        phases = {t["name"]: t for t in result.get("timing", []) if t.get("started_at")}
        if not phases:
            continue
        start = min(_epoch(t["started_at"]) for t in phases.values())
        end = max(_epoch(t["completed_at"]) for t in phases.values())
        # kind.project.name[.hash] (a generic test's hash) or unit_test.project.model.name
        kind, _, name, *rest = result["unique_id"].split(".")
        nodes.append(
            {
                "node": f"{kind}:{rest[-1] if kind == 'unit_test' else name}",
                "status": result["status"],
                "start_offset_s": round(start - started_at, 2),
                "seconds": round(end - start, 2),
                **{
                    f"{phase}_s": round(_epoch(t["completed_at"]) - _epoch(t["started_at"]), 2)
                    for phase, t in phases.items()
                },
            }
        )
    nodes.sort(key=lambda n: n["start_offset_s"])
    summary: dict[str, Any] = {"elapsed_s": round(results.get("elapsed_time", 0.0), 2)}
    if nodes:
        summary["first_node_offset_s"] = nodes[0]["start_offset_s"]
        summary["_last_completed_offset_s"] = max(n["start_offset_s"] + n["seconds"] for n in nodes)
        summary["node_count"] = len(nodes)
    slowest = sorted(nodes, key=lambda n: -n["seconds"])
    # models and hooks all; tests only the slowest, there are dozens
    summary["nodes"] = [n for n in nodes if not n["node"].startswith(("test", "unit_test"))]
    tests = [n for n in slowest if n["node"].startswith(("test", "unit_test"))]
    if tests:
        summary["tests"] = len(tests)
        summary["tests_total_s"] = round(sum(n["seconds"] for n in tests), 2)
        summary["slowest_tests"] = tests[:8]
    return summary


_LOG_LINE = re.compile(r"^\S*?(\d\d):(\d\d):(\d\d\.\d+) \[\w+\s*\] \[[^]]+\]: (.*)$")


def dbt_start_up(dbt_log: Path, started_at: float, seconds: float) -> dict[str, float]:
    """What a dbt command did before its first node, from its debug log (dbt.log).

    Offsets in seconds from the process start: `dbt_started_s` (Python and dbt imported),
    `parsed_s` (project parsed, manifest written), `first_sql_done_s` (the first statement done:
    on the lake this opens the Spark session, so it holds the JVM start), and
    `first_sql_s`, that statement's own duration.
    """
    if not dbt_log.exists():
        return {}
    # the log accumulates over commands: keep the lines written while this one ran
    day = datetime.fromtimestamp(started_at).replace(hour=0, minute=0, second=0, microsecond=0)
    found: dict[str, float] = {}
    for raw in dbt_log.read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(raw)
        if not match:
            continue
        hours, minutes, secs, message = match.groups()
        offset = day.timestamp() + int(hours) * 3600 + int(minutes) * 60 + float(secs) - started_at
        offset += 86400 if offset < -60 else 0  # the command crossed midnight
        if not (-1 <= offset <= seconds + 1):
            continue
        if "Running with dbt=" in message:
            found.setdefault("dbt_started_s", offset)
        elif "dbt_started_s" not in found:  # a line of the previous command
            continue
        elif message.startswith("Found "):
            found.setdefault("parsed_s", offset)
        elif message.startswith("SQL status:") and "first_sql_done_s" not in found:
            found["first_sql_done_s"] = offset
            took = re.search(r"in ([\d.]+) seconds", message)
            if took:
                found["first_sql_s"] = float(took.group(1))
    return {key: round(value, 2) for key, value in found.items()}


def generate(home: Home, rows: int, seed: int, out: Path, name: str = "generate") -> StageResult:
    result = run_stage(
        name,
        [LAKEHOUSE, "generate", "--rows", str(rows), "--seed", str(seed), "--out", str(out)],
        home,
        rows=rows,
    )
    result.bytes = out.stat().st_size
    result.mb_per_s = round(result.bytes / MB / result.seconds, 1)
    result.details["output_file"] = out.name
    # the generator's own in-process rate, without Python start and imports
    reported = re.search(r"in ([\d.]+)s \(([\d,]+) rows/s\)", stage_log(home, name).read_text())
    if reported:
        result.details["in_process_s"] = float(reported.group(1))
        result.details["in_process_rows_per_s"] = int(reported.group(2).replace(",", ""))
    return result


def ingest(
    home: Home, source: Path, rows: int, ingest_date: str, name: str = "ingest"
) -> StageResult:
    return run_stage(
        name,
        [LAKEHOUSE, "ingest", str(source), "--ingest-date", ingest_date],
        home,
        rows=rows,
        size_bytes=source.stat().st_size,
    )


def dbt(home: Home, name: str, *args: str, rows: int | None = None) -> StageResult:
    return run_stage(name, [LAKEHOUSE, "dbt", *args], home, rows=rows)


def shell(home: Home, name: str, line: str, times: int = 2) -> StageResult:
    """`lakehouse shell` fed the same dbt command `times` times: the first pays the engine's
    start, the later ones are the warm edit-run loop. details: each command's seconds as the
    shell printed them (`... took 8.1s`)."""
    commands = home.root / f"{_slug(name)}.stdin"
    commands.write_text(f"{line}\n" * times + "exit\n")
    result = run_stage(name, [LAKEHOUSE, "shell"], home, stdin_file=commands)
    printed = stage_log(home, name).read_text(errors="replace")
    took = [float(s) for s in re.findall(r"` took ([0-9.]+)s", printed)]
    result.details.update(
        {"command": line, "commands_s": took, "warm_s": took[-1] if took else None}
    )
    return result


def build(home: Home, name: str, rows: int | None = None) -> StageResult:
    """`lakehouse build`: the lake, then the warehouse, with every test (what a user runs)."""
    return run_stage(name, [LAKEHOUSE, "build"], home, rows=rows)


def report(home: Home) -> StageResult:
    return run_stage("report", [LAKEHOUSE, "report"], home)


def spark_startup(home: Home, name: str = "spark start") -> StageResult:
    split = home.root / "spark_startup.json"
    result = run_stage(
        name,
        [PYTHON, "-m", "bench.spark_startup", "--home", str(home.lake), "--out", str(split)],
        home,
    )
    result.details.update(json.loads(split.read_text()))
    return result


def duckdb_baseline(home: Home, rows: int) -> StageResult:
    from bench.duckdb_baseline import SUMMARY_FILE

    out = home.root / "baseline"
    result = run_stage(
        "duckdb baseline",
        [PYTHON, "-m", "bench.duckdb_baseline", "--home", str(home.lake), "--out", str(out)],
        home,
        rows=rows,
    )
    result.details.update(json.loads((out / SUMMARY_FILE).read_text()))
    return result


def lakehouse_run(home: Home, rows: int) -> StageResult:
    """The whole `lakehouse run` (what `make demo` runs after setup) in a fresh home."""
    result = run_stage("lakehouse run", [LAKEHOUSE, "run", "--rows", str(rows)], home, rows=rows)
    done = re.search(r"Done in ([\d.]+)s \(([^)]*)\)", stage_log(home, result.name).read_text())
    if done:
        result.details["reported_total_s"] = float(done.group(1))
        result.details["reported_stages_s"] = {
            part.rsplit(" ", 1)[0]: float(part.rsplit(" ", 1)[1].rstrip("s"))
            for part in done.group(2).split(", ")
        }
    return result
