"""`lakehouse`: the command line of the project, thin over plain functions.

\b
    generate   write a synthetic Walmart-style dataset (any size, deterministic)
    ingest     land CSV files in Bronze (local folder or S3), safely and idempotently
    build      dbt build: the lake (Spark: Silver, Gold), then the warehouse (DuckDB: marts)
    watch      land new files as they arrive in a folder or S3 prefix, and build, continuously
    report     the insights report (HTML) from the marts
    run        the whole pipeline; generates and lands the default dataset if Bronze is empty
    docs       the dbt docs site: one lineage graph, Bronze to the marts and exposures
    dbt ...    any dbt command with the local engines wired (Java, Iceberg jar, DuckDB ext.)
    shell      a dbt prompt whose Spark session stays warm between commands (the dev loop)
    env        the same wiring as shell exports, for calling `dbt` yourself
    rehearse   rehearse a production build offline (`rehearse glue`: dbt-glue on a local stand-in)
    status     the lake's health: last builds, freshness against the SLA, failing tests, rejects

\b
The dbt project is the current directory, or --project-dir / $DBT_PROJECT_DIR (as for dbt).
Local artefacts go under $LAKEHOUSE_HOME (default ./lake).

\b
Exit codes:
    0  done
    1  a dbt build or test failed (dbt printed which node and why)
    2  usage error: an unknown option, a missing argument, a path that does not exist
    3  input refused: a file was not landed (the others were), or no dbt project was found
    4  `status`: an SLA is breached (data older than its error_after, or a test failing now)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn
from rich.table import Table

from lakehouse import pipeline
from lakehouse.engines import engine_environment
from lakehouse.jvm import jit_mode
from lakehouse.settings import (
    DEFAULT_ROWS,
    Paths,
    ProjectNotFound,
    paths,
    project_dir,
    reports_dir,
)

if TYPE_CHECKING:
    from lakehouse.watch import Source

console = Console(stderr=True)


class ExitCode(enum.IntEnum):
    """What the command's exit status tells a script or scheduler (listed in `--help`)."""

    OK = 0
    BUILD_FAILED = 1
    USAGE = 2  # click's own code for usage errors
    REFUSED = 3
    SLA_BREACHED = 4  # `lakehouse status`: freshness past error_after, or a test failing now


@contextmanager
def progress_bar(
    description: str, total: int, unit_is_bytes: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar fed with a running total (rows or bytes)."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    columns += (
        [TransferSpeedColumn()] if unit_is_bytes else [TextColumn("{task.completed:,.0f} rows")]
    )
    columns += [TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


@click.group(help=__doc__)
@click.option("-v", "--verbose", is_flag=True, help="Log what the library does.")
@click.option(
    "--project-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The dbt project folder (default: $DBT_PROJECT_DIR, else the current directory).",
)
def main(verbose: bool, project_dir: Path | None) -> None:
    if project_dir is not None:
        os.environ["DBT_PROJECT_DIR"] = str(project_dir.expanduser().resolve())
    try:
        jit_mode()  # a misspelt LAKEHOUSE_SPARK_JIT is said before anything runs
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@main.command()
@click.option("--rows", type=click.IntRange(min=1), default=DEFAULT_ROWS, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Spread the rows over N daily files, with returning and new customers.",
)
@click.option(
    "--bad-rows",
    type=click.FloatRange(0, 1),
    default=0.0,
    show_default=True,
    help="Fraction of rows made invalid, spread over every rule Silver checks.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="A .csv file (one day) or a directory (one file per day).",
)
def generate(rows: int, seed: int, days: int, bad_rows: float, out: Path) -> None:
    """Write a synthetic dataset faithful to the real Walmart file's statistics."""
    _generate(rows, seed, days, bad_rows, out)


def _generate(rows: int, seed: int, days: int, bad_rows: float, out: Path) -> list[Path]:
    from lakehouse.generator import write_dataset

    started = time.perf_counter()
    with progress_bar("generating", rows, unit_is_bytes=False) as advance:
        dataset = write_dataset(
            out, rows=rows, seed=seed, days=days, bad_rows=bad_rows, progress=advance
        )
    seconds = time.perf_counter() - started
    console.print(
        f"wrote {rows:,} rows to {len(dataset.files)} file(s) in {seconds:.1f}s "
        f"({rows / seconds:,.0f} rows/s)"
    )
    for file in dataset.files:
        console.print(f"  {file}")
    return list(dataset.files)


@main.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--to",
    "destination_uri",
    default=None,
    help="The lake root: s3://bucket[/prefix] or a folder; Bronze lands under <root>/bronze. "
    "Default: $LAKEHOUSE_HOME.",
)
@click.option("--endpoint-url", default=None, help="Any S3-compatible endpoint (MinIO, moto, ...).")
@click.option(
    "--ingest-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Partition date for backfills (default: today, UTC).",
)
def ingest(
    sources: tuple[Path, ...],
    destination_uri: str | None,
    endpoint_url: str | None,
    ingest_date: dt.datetime | None,
) -> None:
    """Land CSV files in Bronze. Bad files are refused with the line and the problem."""
    _ingest(
        list(sources), destination_uri, endpoint_url, ingest_date.date() if ingest_date else None
    )


def _ingest(
    sources: list[Path],
    destination_uri: str | None = None,
    endpoint_url: str | None = None,
    ingest_date: dt.date | None = None,
) -> None:
    from ingestion.destinations import destination_from_uri
    from ingestion.errors import IngestionError
    from ingestion.landing import expand_sources, land_file

    try:
        destination = destination_from_uri(destination_uri or str(paths().home), endpoint_url)
        files = expand_sources(sources)
    except IngestionError as error:
        console.print(f"[red]refused[/red] {error}")
        sys.exit(ExitCode.REFUSED)
    failed = 0
    for source in files:
        try:
            with progress_bar(
                f"landing {source.name}", source.stat().st_size, unit_is_bytes=True
            ) as advance:
                result = land_file(source, destination, ingest_date=ingest_date, progress=advance)
        except IngestionError as error:
            failed += 1
            console.print(f"[red]refused[/red] {error}")
            continue
        if result.status == "already_landed":
            console.print(
                f"{source.name}: already landed as batch {result.batch_id} "
                f"on {result.ingest_date}; nothing to do"
            )
        else:
            console.print(
                f"{source.name}: landed {result.rows:,} rows as batch {result.batch_id} "
                f"({result.parts} part(s), ingest_date={result.ingest_date})"
            )
    if failed:
        sys.exit(ExitCode.REFUSED)


@main.command()
@click.option("--lake-target", default=pipeline.LAKE_TARGET, show_default=True)
@click.option("--warehouse-target", default=pipeline.WAREHOUSE_TARGET, show_default=True)
@click.option("--full-refresh", is_flag=True, help="Rebuild incremental models from all of Bronze.")
@click.option(
    "--format",
    "table_format",
    type=click.Choice(["iceberg", "parquet"]),
    default=None,
    help="Table format of Silver and Gold (dbt var lake_table_format).",
)
def build(
    lake_target: str, warehouse_target: str, full_refresh: bool, table_format: str | None
) -> None:
    """Build and test the lake, then the warehouse, from whatever Bronze holds."""
    dbt_vars = {"lake_table_format": table_format} if table_format else None
    timings = pipeline.StageTimings()
    _run_or_exit(
        lambda: pipeline.build(lake_target, warehouse_target, full_refresh, dbt_vars, timings)
    )
    _print_build(timings)


def _print_build(timings: pipeline.StageTimings) -> None:
    for note in timings.notes:
        console.print(note)
    console.print(", ".join(f"{name} {secs:.1f}s" for name, secs in timings.seconds.items()))


@main.command()
@click.option(
    "--from",
    "source_uri",
    required=True,
    help="The folder or s3://bucket/prefix to watch (its *.csv and *.csv.gz, not sub-folders).",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between two looks at the source.",
)
@click.option("--endpoint-url", default=None, help="An S3-compatible endpoint for an s3:// source.")
@click.option(
    "--max-cycles",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many looks at the source (tests, benchmarks); default: until stopped.",
)
def watch(
    source_uri: str, interval: float, endpoint_url: str | None, max_cycles: int | None
) -> None:
    """Land every new complete CSV that appears in a folder or an S3 prefix into Bronze, then
    build the lake and the warehouse incrementally, in one process that keeps Spark warm.

    \b
    A folder's file is complete when its size and mtime hold still for a second (move files in
    with one rename; dot-files, *.tmp and *.part are ignored). Refused files are kept under
    $LAKEHOUSE_HOME/bronze/_rejected/ with their reason and the watch goes on; a failed build
    is retried. SIGINT/SIGTERM: finish the step in progress, then exit 0 (a second signal
    abandons at once). With --max-cycles the exit status says how the run went: 1 if the last
    build failed, 3 if a file was refused, else 0.
    """
    from lakehouse.watch import WatchRefused, source_from_uri, watching

    if "://" not in source_uri and not Path(source_uri).expanduser().is_dir():
        raise click.BadParameter(f"{source_uri}: no such folder", param_hint="--from")
    lake = paths()
    with contextlib.ExitStack() as held:
        try:
            project_dir()
            source = source_from_uri(source_uri, lake, endpoint_url)
            source.scan()
            held.enter_context(watching(lake))
        except (WatchRefused, ProjectNotFound) as error:
            console.print(f"[red]refused[/red] {error}")
            sys.exit(ExitCode.REFUSED)
        _watch(source, lake, interval, max_cycles)


def _watch(source: Source, lake: Paths, interval: float, max_cycles: int | None) -> None:
    from lakehouse.watch import Watcher

    def say(line: str) -> None:  # one line per event, whatever the width: logs get parsed
        console.print(line, soft_wrap=True, markup=False, highlight=False)

    def build(timings: pipeline.StageTimings) -> None:
        try:
            pipeline.build(timings=timings)
        finally:  # PySpark sets its own SIGINT handler when its context starts in this thread
            if not watcher.stopping.is_set():
                stop_on_signals(watcher.request_stop)

    watcher = Watcher(source, lake, interval, say, build)
    stop_on_signals(watcher.request_stop)
    say(f"watching {source.uri} every {interval:g}s; landing into {lake.bronze}")
    watcher.run(max_cycles)
    if watcher.stopping.is_set():
        say("stopped")
        return
    if watcher.last_build_failed:
        sys.exit(ExitCode.BUILD_FAILED)
    if watcher.refused_any:
        sys.exit(ExitCode.REFUSED)


def stop_on_signals(request_stop: Callable[[], None]) -> None:
    """SIGINT/SIGTERM: the first asks `request_stop`; a second one ends the process at once, by
    that signal (as a kill would: every commit of the lake is atomic)."""

    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        console.print(
            f"{signal.Signals(signum).name}: stopping after the step in progress "
            "(send it again to abandon now)"
        )
        request_stop()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


@main.command()
def report() -> None:
    """Write the insights report (self-contained HTML) from the marts."""
    from lakehouse.report import ReportError

    try:
        console.print(f"report: {_report()}")
    except ReportError as error:
        console.print(f"[red]{error}[/red]")
        sys.exit(ExitCode.BUILD_FAILED)


def _report() -> Path:
    from lakehouse.report import build_report

    return build_report(paths().duckdb_file, reports_dir())


@main.command()
@click.option(
    "--rows",
    type=click.IntRange(min=1),
    default=DEFAULT_ROWS,
    show_default=True,
    help="Rows to generate when Bronze is empty.",
)
@click.option("--seed", type=int, default=42, show_default=True)
def run(rows: int, seed: int) -> None:
    """The whole pipeline on the local defaults: (generate + ingest,) build, test, report."""
    started = time.perf_counter()
    timings = pipeline.StageTimings()
    lake = paths()
    if pipeline.bronze_is_empty(lake):
        console.print(
            f"Bronze is empty: generating and landing the default dataset ({rows:,} rows)"
        )
        stage = time.perf_counter()
        files = _generate(rows, seed, 1, 0.0, lake.incoming / "walmart_sales.csv")
        timings.measure("generate", stage)
        stage = time.perf_counter()
        _ingest(files)
        timings.measure("ingest", stage)
    _run_or_exit(lambda: pipeline.build(timings=timings))
    for note in timings.notes:
        console.print(note)
    stage = time.perf_counter()
    report_file = _report()
    timings.measure("report", stage)
    _summary(pipeline.layer_counts(lake), timings, report_file, time.perf_counter() - started)


def _summary(
    counts: dict[str, int], timings: pipeline.StageTimings, report_file: Path, seconds: float
) -> None:
    lake = paths()
    table = Table(title="lakehouse", show_header=True)
    table.add_column("layer / table")
    table.add_column("rows", justify="right")
    for name, rows in counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(f"Bronze files      {lake.bronze}")
    console.print(f"Iceberg warehouse {lake.warehouse}")
    console.print(f"DuckDB warehouse  {lake.duckdb_file}")
    console.print(f"Report            {report_file}")
    stages = ", ".join(f"{name} {secs:.1f}s" for name, secs in timings.seconds.items())
    console.print(f"Done in {seconds:.1f}s ({stages})")


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("dbt_args", nargs=-1, type=click.UNPROCESSED)
def dbt(dbt_args: tuple[str, ...]) -> None:
    """Any dbt command with the local engines wired, e.g. `lakehouse dbt build --target lake`."""
    _run_or_exit(lambda: pipeline.run_dbt(list(dbt_args)))


@main.command()
def shell() -> None:
    """A dbt prompt that keeps the engines warm: each line is a dbt command, e.g.
    `run --select dim_customers --target lake`; `exit` (or end of input) quits.

    Every `lakehouse dbt` command pays a new JVM, the metastore's start and a cold JIT (about
    ten seconds before dbt runs its first node). Here one Spark session serves every command,
    so re-running a model after an edit costs what the model costs. Failures are printed and
    the prompt goes on; the exit status is 1 when the last command failed.
    """
    failed = False
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("dbt> " if interactive else "")
        except EOFError:
            break
        args = shlex.split(line.strip())
        if args and args[0] == "dbt":
            args = args[1:]
        if not args:
            continue
        if args[0] in ("exit", "quit"):
            break
        started = time.perf_counter()
        try:
            pipeline.run_dbt(args)
            failed = False
        except pipeline.DbtFailed as error:
            console.print(f"[red]{error}[/red]")
            failed = True
        console.print(f"`dbt {shlex.join(args)}` took {time.perf_counter() - started:.1f}s")
    sys.exit(ExitCode.BUILD_FAILED if failed else ExitCode.OK)


@main.command()
def docs() -> None:
    """Generate the dbt docs site (lineage Bronze -> marts) into target/."""
    _run_or_exit(pipeline.generate_docs)
    site = pipeline.target_path(pipeline.LAKE_TARGET) / "index.html"
    console.print(f"docs: {site} (serve with `lakehouse dbt docs serve --port 8080`)")


@main.command("setup-jvm")
@click.option("--force", is_flag=True, help="Rebuild even when archives for these jars exist.")
def setup_jvm(force: bool) -> None:
    """Build the Spark JVM's class-data sharing archives (`make setup` runs this)."""
    from lakehouse.jvm import build_archives
    from lakehouse.settings import profiles_dir

    def build() -> None:
        archive = build_archives(profiles_dir() / "profiles.yml", force=force)
        console.print(f"CDS archive: {archive or 'none (Spark starts without one)'}")

    _run_or_exit(build)


@main.command()
def env() -> None:
    """Print the environment the local targets need, as shell exports: eval "$(lakehouse env)"."""
    for key, value in engine_environment().items():
        click.echo(f"export {key}={shlex.quote(value)}")


@main.group()
def rehearse() -> None:
    """Rehearse a production build offline, against local stand-ins of the cloud services."""


@rehearse.command("glue")
@click.option(
    "--statement-timeout",
    type=click.FloatRange(min=1),
    default=None,
    help="Seconds a Glue statement may run on the stand-in before it is cancelled (default 900).",
)
def rehearse_glue(statement_timeout: float | None) -> None:
    """`dbt build --target prod_lake` through dbt-glue on a local Glue stand-in, on this home's
    Bronze, then compare Gold and the Silver reconciliation with the local lake's build.

    Exits 1 on any difference or failure, 3 when it refuses (empty Bronze, or an endpoint that
    is not the stand-in: it never calls AWS)."""
    from lakehouse.rehearse import RehearsalFailed, RehearsalRefused
    from lakehouse.rehearse import rehearse_glue as run_rehearsal

    try:
        result = run_rehearsal(statement_timeout=statement_timeout, log=console.print)
    except (RehearsalRefused, ProjectNotFound) as error:
        console.print(f"[red]refused[/red] {error}")
        sys.exit(ExitCode.REFUSED)
    except (RehearsalFailed, pipeline.DbtFailed) as error:
        console.print(f"[red]{error}[/red]")
        sys.exit(ExitCode.BUILD_FAILED)
    table = Table(title="Glue rehearsal: local lake vs dbt-glue on the stand-in", show_header=True)
    for column in ("check", "local lake", "dbt-glue", ""):
        table.add_column(column)
    for line in result.lines:
        table.add_row(*line)
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    _exit_listing(console, "difference(s)", result.differences, ExitCode.BUILD_FAILED)
    console.print("dbt-glue on the stand-in built the same Gold and Silver as the local lake")


@main.command()
@click.option("--warehouse-target", default=pipeline.WAREHOUSE_TARGET, show_default=True)
@click.option(
    "--vars",
    "dbt_vars",
    default=None,
    help="Override the freshness vars, as for dbt: '{\"marts_freshness_error_after_hours\": 24}'.",
)
def status(warehouse_target: str, dbt_vars: str | None) -> None:
    """The lake's health in one screen; exits 4 when an SLA is breached."""
    import json

    from lakehouse.health import read_health

    try:
        overrides = json.loads(dbt_vars) if dbt_vars else None
        health = read_health(paths(), warehouse_target, overrides)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"--vars is not JSON: {error}") from error
    except ProjectNotFound as error:
        console.print(f"[red]{error}[/red]")
        sys.exit(ExitCode.REFUSED)
    out = Console(width=None if sys.stdout.isatty() else 160)
    if health.empty:
        out.print(
            f"{health.home}: nothing landed and nothing built yet. Land a file with "
            "`lakehouse ingest <file.csv>` and build with `lakehouse build` "
            "(or run `lakehouse run`)."
        )
        return
    _print_health(out, health)
    _exit_listing(out, "SLA breach(es)", health.breaches, ExitCode.SLA_BREACHED)
    out.print("[green]healthy[/green]: every SLA met, no test failing")


STATE_STYLE = {"ok": "green", "warn": "yellow", "error": "red"}


def _when(value: Any) -> str:
    return "—" if value is None else str(value)[:19].replace("T", " ")


def _print_health(out: Console, health: Any) -> None:
    out.print(f"[bold]lakehouse status[/bold]  {health.home}  (times UTC)")
    builds = Table(title="builds", show_header=True)
    for name in ("target", "last run", "action", "status", "last successful build", "took", "runs"):
        builds.add_column(name)
    for run in health.last_runs:
        seconds = run["last_success_seconds"]
        builds.add_row(
            run["target"],
            _when(run["last_run_at"]),
            run["last_action"],
            run["last_status"],
            _when(run["last_success_at"]),
            "—" if seconds is None else f"{seconds:.1f}s",
            str(run["runs"]),
        )
    if not health.last_runs:
        builds.add_row("—", "no build recorded yet: run `lakehouse build`", "", "", "", "", "")
    out.print(builds)

    fresh = Table(title="freshness (age of the newest batch, by landing time)", show_header=True)
    for name in ("relation", "newest batch landed", "ingest date", "age", "warn / error after"):
        fresh.add_column(name)
    fresh.add_column("state")
    for item in health.freshness:
        style = STATE_STYLE[item.state]
        age = item.age_hours
        fresh.add_row(
            item.name,
            _when(item.newest_landed_at),
            item.newest_ingest_date or "—",
            "—" if age is None else f"{age:.1f} h",
            f"{item.sla.warn_after_hours:g} h / {item.sla.error_after_hours:g} h",
            f"[{style}]{item.state}[/{style}]",
        )
    out.print(fresh)

    tests = Table(title="tests failing or warning in the last build", show_header=True)
    for name in ("target", "test", "status", "failures"):
        tests.add_column(name)
    for test in health.failing_tests:
        tests.add_row(test["target"], test["name"], test["status"], _when(test["failures"]))
    if not health.failing_tests:
        tests.add_row("—", "none" if health.audited else "no build recorded yet", "", "")
    out.print(tests)

    batches = Table(title="latest batches", show_header=True)
    for name in ("batch", "ingest date", "landed", "valid", "rejected", "rejected %"):
        batches.add_column(name, justify="left" if name in ("batch", "ingest date") else "right")
    batches.add_column("rejected by reason")
    reasons: dict[str, list[str]] = {}
    for rejection in health.rejections:
        reasons.setdefault(rejection["batch_id"], []).append(
            f"{rejection['reason']} {rejection['rejected_rows']:,}"
        )
    for batch in health.latest_batches:
        batches.add_row(
            batch["batch_id"],
            str(batch["ingest_date"]),
            f"{batch['landed_rows']:,}",
            f"{batch['valid_rows']:,}",
            f"{batch['rejected_rows']:,}",
            "—" if batch["rejected_pct"] is None else f"{batch['rejected_pct']:.2f}",
            ", ".join(reasons.get(batch["batch_id"], [])),
        )
    if not health.latest_batches:
        batches.add_row("no batch built yet", "", "", "", "", "", "")
    out.print(batches)


def _exit_listing(out: Console, what: str, items: list[str], code: ExitCode) -> None:
    """When there is anything in `items`: how many, each on its line, and exit with `code`."""
    if items:
        out.print(f"[red]{len(items)} {what}[/red]")
        for item in items:
            out.print(f"  {item}")
        sys.exit(code)


def _run_or_exit(action: Callable[[], Any]) -> None:
    try:
        action()
    except ProjectNotFound as error:
        console.print(f"[red]{error}[/red]")
        sys.exit(ExitCode.REFUSED)
    except pipeline.DbtFailed as error:
        console.print(f"[red]{error}[/red]")
        sys.exit(ExitCode.BUILD_FAILED)


if __name__ == "__main__":
    main()
