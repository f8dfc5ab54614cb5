"""docs/benchmarks.md from the results in bench/results/, and the table printed after a run.

`python -m bench.report_md` regenerates the page without running anything. For each scale the
page shows the latest run that measured it (each table says which run), so a 5.5 M run made
after a real + 550k run adds to the page instead of replacing it. Ratios are always taken within
one run.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench import REPO_DIR
from bench.targets import evaluate
from bench.watch_latency import summary as watch_summary

log = logging.getLogger(__name__)

RESULTS_DIR = REPO_DIR / "bench" / "results"
DOCS_FILE = REPO_DIR / "docs" / "benchmarks.md"
SCALE_TITLES = {"real": "real rows", "550k": "550,068 rows", "5.5m": "5,500,680 rows"}


def load_runs(results_dir: Path = RESULTS_DIR) -> list[dict[str, Any]]:
    """Every full (non-quick) run, oldest first (run ids start with a UTC timestamp)."""
    runs = [json.loads(p.read_text()) for p in sorted(results_dir.glob("*.json"))]
    return sorted((r for r in runs if not r.get("quick")), key=lambda r: r["run_id"])


def latest_per_scale(
    runs: Sequence[dict[str, Any]],
) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """scale name -> (run, scale entry) of the latest run that measured it without error."""
    found: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for run in runs:
        for scale in run.get("scales", []):
            if "error" not in scale or scale["name"] not in found:
                found[scale["name"]] = (run, scale)
    return dict(sorted(found.items(), key=lambda item: list(SCALE_TITLES).index(item[0])))


def _latest_with(runs: Sequence[dict[str, Any]], key: str) -> dict[str, Any] | None:
    """The latest run that measured `key` (a failed command counts if it was timed)."""
    for run in reversed(runs):
        if run.get(key) and "seconds" in run[key]:
            return run
    return None


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    right = ["---:" if i else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(right) + "|"]
    lines += ["| " + " | ".join("" if c is None else str(c) for c in row) + " |" for row in rows]
    return lines


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}"


def _load(stage: dict[str, Any]) -> str:
    return f"{stage['loadavg_start'][0]:.1f} → {stage['loadavg_end'][0]:.1f}"


STAGE_HEADERS = (
    "stage",
    "seconds",
    "rows",
    "rows/s",
    "MB/s",
    "peak MB",
    "CPU s",
    "others' CPU",
    "load (1 min)",
)


def stage_row(stage: dict[str, Any]) -> list[str]:
    return [
        stage["name"],
        _num(stage["seconds"], 1),
        _num(stage.get("rows")),
        _num(stage.get("rows_per_s")),
        _num(stage.get("mb_per_s"), 1),
        _num(stage["peak_rss_mb"]),
        _num(stage["cpu_seconds"], 1),
        f"{100 * stage['others_cpu_share']:.0f}%" if "others_cpu_share" in stage else "",
        _load(stage),
    ]


def _stage(scale: dict[str, Any], name: str) -> dict[str, Any] | None:
    stages = scale.get("stages", []) + (scale.get("incremental") or {}).get("stages", [])
    return next((s for s in stages if s["name"] == name), None)


def start_up_parts(dbt: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(part, starts at, seconds) of what a dbt command did before its first node."""
    first_node = float(dbt["first_node_offset_s"])
    up = dbt.get("start_up") or {}
    needed = ("dbt_started_s", "parsed_s", "first_sql_done_s", "first_sql_s")
    if not all(key in up for key in needed):
        return [("start-up before the first node", 0.0, first_node)]
    sql_start = up["first_sql_done_s"] - up["first_sql_s"]
    return [
        ("Python and dbt start (imports, adapter)", 0.0, up["dbt_started_s"]),
        ("dbt parse", up["dbt_started_s"], up["parsed_s"] - up["dbt_started_s"]),
        ("Spark session start (dbt's first statement)", sql_start, up["first_sql_s"]),
        (
            "schema listing, relation cache",
            up["first_sql_done_s"],
            first_node - up["first_sql_done_s"],
        ),
    ]


def _node_label(node: str) -> str:
    return node.replace("operation:lakehouse-", "hook ").replace("-0", "")


def lake_breakdown(stage: dict[str, Any]) -> list[str]:
    """Where a lake build's time went: dbt's start-up (from its log) and per-node timings."""
    dbt = stage.get("details", {}).get("dbt") or {}
    if not dbt.get("nodes"):
        return []
    rows = [
        [label, _num(start, 1), "", "", _num(seconds, 1)]
        for label, start, seconds in start_up_parts(dbt)
    ]
    for node in dbt["nodes"]:
        rows.append(
            [
                _node_label(node["node"]),
                _num(node["start_offset_s"], 1),
                _num(node.get("compile_s"), 1),
                _num(node.get("execute_s"), 1),
                _num(node["seconds"], 1),
            ]
        )
    after = "after the last node, to process exit"
    if stage.get("command", [])[1:2] == ["build"]:
        after = "after the lake's last node: the warehouse build, to process exit"
    rows.append([after, "", "", "", _num(dbt.get("after_last_node_s"), 1)])
    lines = table(("part", "starts at s", "compile s", "execute s", "seconds"), rows)
    if dbt.get("tests"):
        slowest = ", ".join(
            f"{_node_label(n['node']).split(':')[-1]} {n['seconds']:.1f} s"
            for n in dbt["slowest_tests"][:4]
        )
        lines += [
            "",
            f"Besides the models, {dbt['tests']} lake tests (data and unit) ran, "
            f"{dbt['tests_total_s']:.1f} s of thread time in all; the slowest: {slowest}.",
        ]
    return lines


def dominant_parts(stage: dict[str, Any], count: int = 4) -> str:
    """The largest parts of a lake build, in words."""
    dbt = stage.get("details", {}).get("dbt") or {}
    if not dbt.get("nodes"):
        return ""
    parts = [(label, seconds) for label, _, seconds in start_up_parts(dbt)]
    parts += [(_node_label(n["node"]).split(":")[-1], n["seconds"]) for n in dbt["nodes"]]
    parts.sort(key=lambda p: -p[1])
    shown = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in parts[:count])
    return (
        f"Largest parts of the {stage['seconds']:.1f} s {stage['name']} (2 dbt threads, so "
        f"models can overlap): {shown}."
    )


def _head(run: dict[str, Any]) -> str:
    """The commit a run started from, short, plus whether the tree differed from it."""
    git = run["machine"]["git"]
    branch, _, commit = git.get("head", "?@?").partition("@")
    changed = git.get("uncommitted_files", 0)
    return f"`{branch}@{commit[:12]}`" + (f" + {changed} uncommitted files" if changed else "")


def scale_section(run: dict[str, Any], scale: dict[str, Any]) -> list[str]:
    name = scale["name"]
    rows = scale.get("rows")
    title = SCALE_TITLES[name] if name != "real" else f"{_num(rows)} real rows"
    lines = [f"### {title} (`{name}`)", ""]
    source = scale.get("input", {})
    for patch in (run.get("code") or {}).get("patches", []):
        lines += [
            f"**Measured with a patch applied to the code** (`{patch['file']}`, in the run's "
            f"JSON under `code.patches`): see the note under Targets.",
            "",
        ]
    lines.append(
        f"Run `{run['run_id']}` (code: {_head(run)}); input {source.get('source', '?')}, "
        f"{_num(source.get('bytes', 0) / 1e6, 1)} MB of CSV."
    )
    if "error" in scale:
        lines += ["", f"**This scale failed:** `{scale['error'].splitlines()[0]}`"]
    lines += ["", *table(STAGE_HEADERS, [stage_row(s) for s in scale["stages"]])]
    lines += [
        "",
        f"Peak memory of the pipeline at this scale (largest stage): "
        f"{_num(scale.get('pipeline_peak_rss_mb'))} MB.",
    ]
    lake = _stage(scale, "lake build")
    if lake:
        lines += ["", "Where the lake build's time goes (dbt's per-node timings):", ""]
        lines += [*lake_breakdown(lake), "", dominant_parts(lake)]
    baseline = scale.get("baseline")
    if baseline:
        agree = "yes" if baseline.get("same_work") else "**no**"
        lines += [
            "",
            f"DuckDB baseline (same Silver + Gold in one process): "
            f"{baseline['seconds']:.1f} s as a process ({baseline['in_process_s']:.1f} s "
            f"in-process); lake build / baseline = "
            f"**{baseline['lake_build_over_baseline']} times**. "
            f"Same fct_sales rows and purchase sum, identical dimensions: {agree} "
            f"(lake {_num(baseline['lake']['fct_sales_rows'])} rows, "
            f"{_num(baseline['lake']['fct_sales_purchase_amount'])} purchase sum).",
        ]
    watch = scale.get("watch")
    if watch:
        lines += [
            "",
            f"{watch_summary(watch)[0].upper()}{watch_summary(watch)[1:]}. Each micro-batch (a "
            "slice of this scale's input, so a new batch of valid rows) is moved into a watched "
            "folder once the previous one is visible, and timed from its rename to its rows "
            "being counted by `marts.mart_daily_sales`, read from the DuckDB file opened "
            f"read-only every {watch['poll_s']:g} s. Latencies (s): "
            + ", ".join(f"{value:.1f}" for value in watch["latencies_s"])
            + ".",
        ]
    incremental = scale.get("incremental")
    if incremental:
        lines += [
            "",
            f"Incremental: one new daily batch of {_num(incremental['new_rows'])} rows (1%, "
            f"another seed), landed as {incremental['ingest_date']}, then `lakehouse build` "
            f"(lake and warehouse, every test).",
        ]
        if "ratio_to_full" in incremental:
            lines[-1] += (
                f" {incremental['build_s']:.1f} s against "
                f"{incremental['full_build_s']:.1f} s for the first full build = "
                f"**{100 * incremental['ratio_to_full']:.0f}%** of full."
            )
        if "error" in incremental:
            lines[-1] += f" **It failed:** `{incremental['error'].splitlines()[0]}`"
            detail = [ln.strip() for ln in incremental["error"].splitlines() if "rror" in ln]
            lines += ["", "```", *detail[-4:], "```"]
        lines += ["", *table(STAGE_HEADERS, [stage_row(s) for s in incremental["stages"]])]
        inc_lake = _stage(scale, "incremental build")
        if inc_lake:
            lines += ["", "Where the incremental lake build's time goes:", ""]
            lines += [*lake_breakdown(inc_lake), "", dominant_parts(inc_lake)]
    return [*lines, ""]


def _digits(unit: str) -> int:
    return 1 if unit in ("s", "MB/s", "% of full") else 0


def every_measurement(runs: Sequence[dict[str, Any]]) -> dict[str, list[str]]:
    """target -> what each run measured for it, oldest first (with its verdict)."""
    found: dict[str, list[str]] = {}
    for run in runs:
        scales = {s["name"]: s for s in run.get("scales", []) if "error" not in s}
        for target in evaluate(scales, run.get("demo")):
            if target["measured"] is not None:
                value = _num(target["measured"], _digits(target["unit"]))
                if target["target"] in ("generator", "local ingestion"):  # at the largest scale
                    value += f" ({target['scale']})"
                found.setdefault(target["target"], []).append(
                    f"{value}{'' if target['met'] else ' ✗'}"
                )
    return found


def targets_section(
    per_scale: dict[str, tuple[dict[str, Any], dict[str, Any]]],
    demo_run: dict[str, Any] | None,
    runs: Sequence[dict[str, Any]],
) -> list[str]:
    scales = {name: scale for name, (_, scale) in per_scale.items()}
    history = every_measurement(runs)
    rows = []
    for target in evaluate(scales, demo_run["demo"] if demo_run else None):
        if target["met"] is None:
            verdict, measured = "not measured", ""
        else:
            verdict = "**met**" if target["met"] else "**missed**"
            measured = (
                f"{_num(target['measured'], _digits(target['unit']))} {target['unit']} "
                f"({target['scale']})" + _target_note(target, scales)
            )
        every = " · ".join(history.get(target["target"], []))
        rows.append([target["target"], target["goal"], measured, verdict, every])
    headers = ("target (issue #7)", "goal", "measured (latest run)", "verdict", "every run")
    return table(headers, rows)


def _target_note(target: dict[str, Any], scales: dict[str, dict[str, Any]]) -> str:
    """The generator's own in-process rate, next to the command's."""
    if target["target"] != "generator" or not target["scale"]:
        return ""
    stage = _stage(scales[target["scale"]], "generate") or {}
    rate = stage.get("details", {}).get("in_process_rows_per_s")
    return f"; {_num(rate)} rows/s in-process, without Python start" if rate else ""


def runs_shown(
    per_scale: dict[str, tuple[dict[str, Any], dict[str, Any]]], demo_run: dict[str, Any] | None
) -> list[dict[str, Any]]:
    shown = {run["run_id"]: run for run, _ in per_scale.values()}
    if demo_run:
        shown[demo_run["run_id"]] = demo_run
    return [shown[key] for key in sorted(shown)]


def patches_section(runs: Sequence[dict[str, Any]]) -> list[str]:
    """The uncommitted fixes a run measured with, word for word."""
    lines: list[str] = []
    for run in runs:
        for patch in (run.get("code") or {}).get("patches", []):
            lines += [
                f"**Run `{run['run_id']}` measured the working tree with this patch applied** "
                f"(`{patch['file']}`, `python -m bench --patch`), because the code as it stood "
                "could not run that part of the benchmark:",
                "",
                "```diff",
                *patch["diff"].rstrip("\n").splitlines(),
                "```",
                "",
            ]
    return lines


def machine_section(run: dict[str, Any]) -> list[str]:
    m = run["machine"]
    v = m["versions"]
    git = m["git"]
    rows = [
        ["CPU", f"{m['cpu']['model']}, {m['cpu']['logical_cpus']} logical CPUs"],
        ["memory", f"{m['memory_gib']} GiB"],
        ["OS", m["os"]],
        ["Python / Java", f"{v['python']} / {v['java']}"],
        ["Spark (pyspark) / DuckDB", f"{v['pyspark']} / {v['duckdb']}"],
        [
            "dbt-core / dbt-spark / dbt-duckdb",
            f"{v['dbt-core']} / {v['dbt-spark']} / {v['dbt-duckdb']}",
        ],
        [
            "git HEAD when the run started",
            f"`{git['head'].split('@')[0]}@{git['head'].split('@')[1][:12]}` "
            f"({git['uncommitted_files']} files differed from it; the run measured a copy of "
            f"the working tree, {(run.get('code') or {}).get('fingerprint', '?')})",
        ],
    ]
    return table(("", f"run `{run['run_id']}`"), rows)


def render(runs: Sequence[dict[str, Any]]) -> str:
    per_scale = latest_per_scale(runs)
    demo_run = _latest_with(runs, "demo")
    spark_run = _latest_with(runs, "spark_startup")
    latest = runs[-1]
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by `python -m bench` (or `python -m bench.report_md`) from "
        "bench/results/*.json; edit bench/report_md.py, not this file. -->",
        "",
        "Wall time, rows/s, MB/s and peak memory of each stage of the local pipeline, measured by "
        "`make bench` (`python -m bench`). Every stage is one `lakehouse` command run as its own "
        "process in a fresh `LAKEHOUSE_HOME`, so each Spark stage pays its own JVM start, as a "
        "user's command would.",
        "",
        "**Read the figures as noisy.** The machine has 2 cores and other people ran test suites "
        "on it during these runs. Before each stage the harness waits (up to 90 s) for the "
        "CPUs to be idle, and next to each stage it records the 1-minute load average at its "
        "start and end and *others' CPU*: the share of the machine's CPU time that processes "
        "other than the stage's own used while it ran (0% = it had the machine to itself; 50% = "
        "a whole core was taken by someone else). Another busy process on the same 2 cores has "
        "been seen to double Spark timings. The meaningful figures are the *ratios measured "
        "within one run* (incremental / full, lake / DuckDB baseline), and stages with a high "
        "others' CPU are upper bounds of what a quiet machine gives.",
        "",
        "## Targets",
        "",
        "For each scale, the latest run that measured it; the last column lists what every run "
        "measured, oldest first (✗ = missed), since one run on a shared machine proves little. "
        "Rates are per second of the command's "
        "wall time, Python start included (the generator's in-process rate is in the scale "
        "tables' JSON as `in_process_rows_per_s`). Peak memory is the largest stage peak "
        "(stages run one after another); MB = 10^6 bytes.",
        "",
        *targets_section(per_scale, demo_run, runs),
        "",
        *patches_section(runs_shown(per_scale, demo_run)),
        "## Per scale",
        "",
        "Stages: `generate` (`lakehouse generate`, skipped for real rows), `ingest` (`lakehouse "
        "ingest`, MB/s of input CSV), `lake seed` (`lakehouse dbt seed --target lake`: the three "
        "lookup seeds; `dbt run` needs them), `lake build` (`lakehouse dbt run --target lake`: "
        "Silver and Gold models only, Spark start included), `lake tests`, `warehouse build` "
        "(`lakehouse dbt run --target warehouse`: the marts on DuckDB), `warehouse tests`, "
        "`report`, then the DuckDB baseline. Peak MB is the largest sum of VmRSS over the "
        "command's process tree (the Spark JVM included), sampled every 100 ms; a vfork child "
        "of the JVM (how it starts `chmod`), which shares the JVM's memory until it execs, is "
        "counted once (runs before 2026-11-30 17:30 counted it twice when a sample caught one, "
        "hence their 5.5 M peaks of 6-9 GB; bench/memory.py). CPU s is user + system time of "
        "the tree.",
        "",
    ]
    for run, scale in per_scale.values():
        lines += scale_section(run, scale)
    if spark_run:
        spark = spark_run["spark_startup"]
        runs_of_spark = [spark] + (
            [spark["existing_metastore"]] if "existing_metastore" in spark else []
        )
        lines += [
            "## Spark session start-up",
            "",
            "A process that starts a SparkSession exactly as dbt-spark does (Hive support, the "
            "`lake` target's `server_side_parameters` from profiles/profiles.yml rendered with "
            "`engine_environment()`), runs one catalog query (which opens, or first creates, the "
            "Derby metastore) and stops: `bench/spark_startup.py`. Chosen over timing "
            "`lakehouse dbt debug --target lake`, which adds dbt's own start-up and parsing and so "
            "does not isolate Spark. Run twice: in a fresh home (the metastore is created, as on "
            "the first lake command of a new lake) and again in the same home. "
            f"Run `{spark_run['run_id']}`.",
            "",
            *table(
                (
                    "start",
                    "seconds",
                    "peak MB",
                    "load (1 min)",
                    "imports s",
                    "session s",
                    "metastore s",
                    "stop s",
                ),
                [
                    [r["name"], _num(r["seconds"], 1), _num(r["peak_rss_mb"]), _load(r)]
                    + [
                        _num(r["details"].get(k), 1)
                        for k in ("imports_s", "session_s", "metastore_s", "stop_s")
                    ]
                    for r in runs_of_spark
                ],
            ),
            "",
        ]
    if demo_run:
        demo = demo_run["demo"]
        reported = ", ".join(
            f"{k} {v:.1f} s" for k, v in demo["details"].get("reported_stages_s", {}).items()
        )
        lines += [
            "## `lakehouse run` at the default size (what `make demo` runs after setup)",
            "",
            f"Fresh home, Bronze empty, so it generates and lands 550,068 rows, builds and tests "
            f"the lake and the warehouse in one process (one Spark start) and writes the report. "
            f"Run `{demo_run['run_id']}`: **{demo['seconds']:.1f} s**, "
            f"peak {_num(demo['peak_rss_mb'])} MB, "
            f"CPU {demo['cpu_seconds']:.0f} s, others' CPU "
            f"{100 * demo.get('others_cpu_share', 0):.0f}%, load {_load(demo)}."
            + (f" Its own split: {reported}." if reported else ""),
            "",
        ]
        if "error" in demo:
            failure = demo.get("details", {}).get("root_cause") or demo["error"].splitlines()[-1]
            lines += [
                "**The command failed** (exit status not 0) after that time; the root cause in "
                "its output:",
                "",
                "```",
                failure.strip(),
                "```",
                "",
            ]
    lines += ["## Machine", "", *machine_section(latest), ""]
    lines += [
        "## How to reproduce",
        "",
        "```bash",
        "make bench              # all three scales + `lakehouse run`; about an hour on 2 cores",
        ".venv/bin/python -m bench --scales real,550k  # the smaller scales only",
        ".venv/bin/python -m bench --scales 5.5m",
        ".venv/bin/python -m bench --scales real --quick  # self-test, 2-3 min, no result kept",
        ".venv/bin/python -m bench.report_md          # regenerate this page from bench/results/",
        "```",
        "",
        "Each run writes `bench/results/<UTC time>_<scales>.json` (every stage with its command, "
        "load, dbt's per-node timings and a log path) and regenerates this page. Work files go "
        "to `$TMPDIR/lakehouse-bench/<run>/` (lakes, inputs, logs and the copy of the code the "
        "run measured); lakes and inputs are deleted after each scale unless `--keep-work`.",
        "",
    ]
    return "\n".join(lines)


def write_docs(results_dir: Path = RESULTS_DIR, docs_file: Path = DOCS_FILE) -> Path:
    runs = load_runs(results_dir)
    if not runs:
        raise SystemExit(f"no results in {results_dir}")
    docs_file.write_text(render(runs))
    log.info("wrote %s", docs_file)
    return docs_file


def console_summary(run: dict[str, Any]) -> str:
    """The plain table printed at the end of a run."""
    lines = [f"benchmark {run['run_id']}"]
    if run.get("spark_startup") and "seconds" in run["spark_startup"]:
        lines.append(f"spark start alone: {run['spark_startup']['seconds']:.1f} s")
    for scale in run["scales"]:
        lines += ["", f"{scale['name']} ({_num(scale.get('rows'))} rows)"]
        stages = scale["stages"] + (scale.get("incremental") or {}).get("stages", [])
        lines += table(STAGE_HEADERS, [stage_row(s) for s in stages])
        incremental = scale.get("incremental") or {}
        if "ratio_to_full" in incremental:
            lines.append(f"incremental / full lake build: {incremental['ratio_to_full']:.0%}")
        if "error" in incremental:
            lines.append(f"incremental FAILED: {incremental['error'].splitlines()[0]}")
        if scale.get("watch"):
            lines.append(watch_summary(scale["watch"]))
        if scale.get("baseline"):
            b = scale["baseline"]
            lines.append(
                f"lake build / DuckDB baseline: {b['lake_build_over_baseline']}x "
                f"(same work: {b['same_work']})"
            )
        if scale.get("error"):
            lines.append(f"FAILED: {scale['error'].splitlines()[0]}")
    if run.get("demo") and "seconds" in run["demo"]:
        lines += [
            "",
            f"lakehouse run (550,068 rows): {run['demo']['seconds']:.1f} s, "
            f"peak {_num(run['demo']['peak_rss_mb'])} MB",
        ]
    lines += ["", "targets:"]
    for t in run.get("targets", []):
        verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "MISSED")
        lines.append(f"  {t['target']:<38} {t['goal']:<22} {_num(t['measured'], 1):>12} {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.report_md", description="Regenerate docs/benchmarks.md."
    )
    parser.add_argument("--results", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--out", type=Path, default=DOCS_FILE, help="the page to write")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    write_docs(args.results, args.out)


if __name__ == "__main__":
    main()
