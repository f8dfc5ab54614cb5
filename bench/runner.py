"""The benchmark run: every scale in its own fresh lake home, stage after stage, then the
incremental scenario at the largest scale, the DuckDB baseline, and `lakehouse run` at the
default size. Produces one JSON-able dict per run.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import REPO_DIR, checks, machine, snapshot, stages, watch_latency
from bench.stages import Home, StageFailed, StageResult
from bench.targets import evaluate
from lakehouse.settings import DEFAULT_ROWS

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
REAL_FILE = REPO_DIR.parent / "shared" / "data" / "walmart" / "walmart_head_29116rows.csv"
FIXTURE_FILE = REPO_DIR / "tests" / "fixtures" / "walmart_head_2000rows.csv"
GENERATED_ROWS = {"550k": DEFAULT_ROWS, "5.5m": 5_500_680}
SCALE_NAMES = ("real", *GENERATED_ROWS)
SEED = 42
INCREMENTAL_SEED = 43
INCREMENTAL_SHARE = 0.01
FULL_INGEST_DATE = "2026-01-01"
INCREMENTAL_INGEST_DATE = "2026-01-02"
# arrival-to-mart latency of `lakehouse watch` (issue #14): micro-batches of 1% on the history
WATCH_SCALE = "550k"
WATCH_BATCHES = 10
WATCH_BATCHES_QUICK = 1
WATCH_SHARE = 0.01


@dataclass(frozen=True)
class Options:
    scales: tuple[str, ...]
    quick: bool
    work_dir: Path
    keep_work: bool
    demo: bool
    max_quiet_wait_s: float = 0.0
    patches: tuple[Path, ...] = ()
    """Unified diffs applied to the copy of the code before measuring (recorded in the JSON)."""


def real_input() -> tuple[Path, str]:
    """The real rows if this machine has them, else the 2,000-row fixture (and say so)."""
    if REAL_FILE.is_file():
        return REAL_FILE, "real Walmart rows (head of the real file)"
    log.warning("%s not found: using the 2,000-row fixture for the `real` scale", REAL_FILE)
    return FIXTURE_FILE, "2,000-row fixture (the 29,116-row real file was not found)"


def count_rows(csv_file: Path) -> int:
    with csv_file.open("rb") as handle:
        return sum(1 for _ in handle) - 1


def scale_rows(name: str) -> int:
    return GENERATED_ROWS.get(name) or count_rows(real_input()[0])


def run_scale(
    name: str, options: Options, run_dir: Path, src: Path, incremental: bool
) -> dict[str, Any]:
    """Every stage of one scale in a fresh home; failures are recorded, not raised."""
    home = Home(run_dir / name, src)
    if home.root.exists():
        shutil.rmtree(home.root)
    home.inputs.mkdir(parents=True)
    entry: dict[str, Any] = {"name": name, "stages": []}
    done: list[StageResult] = entry["stages"]
    try:
        _full_build(name, options, home, entry, done)
        if name == WATCH_SCALE or options.quick:
            batches = WATCH_BATCHES_QUICK if options.quick else WATCH_BATCHES
            entry["watch"] = watch_latency.measure(
                home, _input_file(name, home), batches, WATCH_SHARE
            )
        if incremental and not options.quick:
            entry["incremental"] = _incremental(home, entry["rows"], _stage(done, "build"))
    except StageFailed as error:
        log.error("%s", error)
        entry["error"] = str(error)
    finally:
        entry["stages"] = [s.as_dict() for s in done]
        pipeline = [s for s in entry["stages"] if s["name"] != "duckdb baseline"]
        pipeline += (entry.get("incremental") or {}).get("stages", [])
        entry["pipeline_peak_rss_mb"] = max((s["peak_rss_mb"] for s in pipeline), default=None)
        failed = "error" in entry or any(
            "error" in (entry.get(part) or {}) for part in ("incremental", "watch")
        )
        if not options.keep_work and not failed:
            for folder in (home.lake, home.inputs, home.root / "baseline"):
                shutil.rmtree(folder, ignore_errors=True)
    return entry


def _input_file(name: str, home: Home) -> Path:
    """The file a scale's history was landed from (see _full_build)."""
    return real_input()[0] if name == "real" else home.inputs / "walmart_sales.csv"


def _stage(done: list[StageResult], name: str) -> StageResult:
    return next(s for s in done if s.name == name)


def _full_build(
    name: str, options: Options, home: Home, entry: dict[str, Any], done: list[StageResult]
) -> None:
    source = _input_file(name, home)
    if name == "real":
        label = real_input()[1]
        rows = count_rows(source)
    else:
        rows, label = GENERATED_ROWS[name], f"generated (seed {SEED})"
        done.append(stages.generate(home, rows, SEED, source))
    entry.update({"rows": rows, "input": {"file": source.name, "bytes": source.stat().st_size}})
    entry["input"]["source"] = label
    done.append(stages.ingest(home, source, rows, FULL_INGEST_DATE))
    # what a user runs: the first build (lake + warehouse, every test), then the same again
    # with nothing new, then the dev loop on one model
    done.append(stages.build(home, "build", rows=rows))
    if not options.quick:
        done.append(stages.build(home, "build, nothing new"))
        done.append(
            stages.dbt(
                home,
                "dbt run dim_customers",
                "run",
                "--select",
                "dim_customers",
                "--target",
                "lake",
            )
        )
        # the same in `lakehouse shell`, twice: the second is the warm dev loop
        done.append(
            stages.shell(
                home, "shell: dbt run dim_customers", "run --select dim_customers --target lake"
            )
        )
        # the lake models alone, from all of Bronze (no tests): the heavy lifting
        done.append(
            stages.dbt(home, "lake build", "run", "--full-refresh", "--target", "lake", rows=rows)
        )
    done.append(stages.report(home))
    baseline = stages.duckdb_baseline(home, rows)
    done.append(baseline)
    comparison = checks.compare(home.lake, baseline.details, home.root / "baseline" / "gold")
    lake_build = _stage(done, "lake build" if not options.quick else "build")
    entry["baseline"] = {
        "seconds": baseline.seconds,
        "in_process_s": baseline.details["in_process_s"],
        "lake_build_s": lake_build.seconds,
        "lake_build_over_baseline": round(lake_build.seconds / baseline.seconds, 1),
        **comparison,
    }
    if not comparison["same_work"]:
        log.error("the baseline and the lake disagree: %s", comparison)


def _incremental(home: Home, rows: int, full_build: StageResult) -> dict[str, Any]:
    """One new daily batch of 1% of the rows, landed with the next date, then `lakehouse build`
    (lake and warehouse, every test), compared with the first full build."""
    new_rows = max(1, round(rows * INCREMENTAL_SHARE))
    source = home.inputs / "walmart_sales_next_day.csv"
    entry: dict[str, Any] = {"new_rows": new_rows, "ingest_date": INCREMENTAL_INGEST_DATE}
    done: list[StageResult] = []
    try:
        done.append(
            stages.generate(home, new_rows, INCREMENTAL_SEED, source, "incremental generate")
        )
        done.append(
            stages.ingest(home, source, new_rows, INCREMENTAL_INGEST_DATE, "incremental ingest")
        )
        build = stages.build(home, "incremental build", rows=new_rows)
        done.append(build)
        entry.update(
            {
                "build_s": build.seconds,
                "full_build_s": full_build.seconds,
                "ratio_to_full": round(build.seconds / full_build.seconds, 3),
            }
        )
    except StageFailed as error:  # the full build's figures stand on their own
        log.error("%s", error)
        entry["error"] = str(error)
    entry["stages"] = [s.as_dict() for s in done]
    return entry


def _spark_startup(run_dir: Path, src: Path) -> dict[str, Any]:
    """Spark start in a fresh home (the Derby metastore is created), then again in the same home
    (the metastore exists, as on every lake build after the first)."""
    home = Home(run_dir / "spark_start", src)
    home.root.mkdir(parents=True, exist_ok=True)
    try:
        fresh = stages.spark_startup(home, "spark start (new metastore)")
        again = stages.spark_startup(home, "spark start (existing metastore)")
        return {**fresh.as_dict(), "existing_metastore": again.as_dict()}
    except StageFailed as error:
        log.error("%s", error)
        return {"error": str(error)}
    finally:
        shutil.rmtree(home.lake, ignore_errors=True)


def _demo(run_dir: Path, src: Path, keep_work: bool) -> dict[str, Any]:
    home = Home(run_dir / "demo", src)
    home.root.mkdir(parents=True, exist_ok=True)
    try:
        return stages.lakehouse_run(home, DEFAULT_ROWS).as_dict()
    except StageFailed as error:  # keep what it cost: it may fail after doing all its work
        log.error("%s", error)
        return {**error.result.as_dict(), "error": str(error)}
    finally:
        if not keep_work:
            shutil.rmtree(home.lake, ignore_errors=True)


def _checkpoint(run_dir: Path, result: dict[str, Any]) -> None:
    """What is measured so far, in case a later stage brings the run down."""
    (run_dir / "partial.json").write_text(json.dumps(result, indent=2))


def run_id(scales: tuple[str, ...], quick: bool, now: datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}_{'+'.join(scales)}" + ("_quick" if quick else "")


def run(options: Options, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    stages.QUIET.max_wait_s = options.max_quiet_wait_s
    scales = tuple(sorted(options.scales, key=SCALE_NAMES.index))
    identifier = run_id(scales, options.quick, now)
    run_dir = options.work_dir / identifier
    run_dir.mkdir(parents=True, exist_ok=True)
    stages.shorten_under(run_dir, "$RUN")
    log.info("benchmark %s in %s", identifier, run_dir)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": identifier,
        "started_at": now.isoformat(timespec="seconds"),
        "quick": options.quick,
        "scales_requested": list(scales),
        "run_dir": f"$RUN = {run_dir}",
        "max_quiet_wait_s": options.max_quiet_wait_s,
        "machine": machine.describe(),
    }
    src = snapshot.take(run_dir / "src")
    result["code"] = {
        "snapshot": "the working tree as of started_at (bench/snapshot.py)",
        "patches": [snapshot.apply_patch(src, diff) for diff in options.patches],
        "fingerprint": snapshot.fingerprint(src),
    }
    if not options.quick:
        result["spark_startup"] = _spark_startup(run_dir, src)
    largest = max(scales, key=scale_rows)
    result["scales"] = []
    for scale in scales:
        result["scales"].append(run_scale(scale, options, run_dir, src, scale == largest))
        _checkpoint(run_dir, result)
    if options.demo:
        result["demo"] = _demo(run_dir, src, options.keep_work)
    result["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["targets"] = evaluate(result["scales"], result.get("demo"))
    return result
