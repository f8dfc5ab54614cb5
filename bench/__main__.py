"""`python -m bench [--scales real,550k,5.5m] [--out PATH] [--quick]` (what `make bench` runs).

Runs every stage of the local pipeline per scale, each as a measured subprocess of the
`lakehouse` CLI in a fresh LAKEHOUSE_HOME; writes the results as JSON under bench/results/ and
regenerates docs/benchmarks.md. `--quick` is a self-test of the harness (real rows only, no dbt
tests, no separate Spark start, no `lakehouse run`): it writes its JSON under the work folder and
leaves bench/results/ and the docs alone. Exit status 1 when a stage failed (its time and root
cause are still recorded) or when the DuckDB baseline and the lake did not produce the same Gold.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from bench import report_md, runner

# Outside the repository: each run keeps a copy of the project there (bench/snapshot.py), which
# tools scanning the tree (mypy, sqlfluff, structure checks) must not find.
WORK_DIR = Path(tempfile.gettempdir()) / "lakehouse-bench"


def _scales(text: str) -> tuple[str, ...]:
    scales = tuple(s.strip().lower() for s in text.split(",") if s.strip())
    unknown = [s for s in scales if s not in runner.SCALE_NAMES]
    if unknown or not scales:
        raise argparse.ArgumentTypeError(
            f"scales are a comma-separated subset of {','.join(runner.SCALE_NAMES)}"
        )
    return scales


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scales",
        type=_scales,
        default=runner.SCALE_NAMES,
        help="comma-separated: real, 550k, 5.5m (default: all three)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results JSON (default: bench/results/<UTC time>_<scales>.json)",
    )
    parser.add_argument("--quick", action="store_true", help="fast self-test of the harness")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=WORK_DIR,
        help=f"where lake homes, logs and the code copy go (default: {WORK_DIR})",
    )
    parser.add_argument("--keep-work", action="store_true", help="keep lakes and inputs")
    parser.add_argument(
        "--no-demo",
        action="store_true",
        help="skip `lakehouse run` at the default size (run when 550k is measured)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="measure `lakehouse run` whatever the scales"
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not regenerate docs/benchmarks.md"
    )
    parser.add_argument(
        "--max-quiet-wait",
        type=float,
        default=None,
        metavar="SECONDS",
        help="before each stage wait up to this long for the CPUs to be idle (other people's "
        "work shares them); default 90, 0 with --quick",
    )
    parser.add_argument(
        "--patch",
        type=Path,
        action="append",
        default=[],
        help="a unified diff to apply to the run's copy of the code (recorded in the results); "
        "for measuring with a fix that is not committed yet",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    args = parse_args(argv)
    options = runner.Options(
        scales=args.scales,
        quick=args.quick,
        work_dir=args.work_dir.resolve(),
        keep_work=args.keep_work,
        demo=args.demo or (not args.quick and not args.no_demo and "550k" in args.scales),
        patches=tuple(p.resolve() for p in args.patch),
        max_quiet_wait_s=(
            args.max_quiet_wait if args.max_quiet_wait is not None else 0 if args.quick else 90
        ),
    )
    result = runner.run(options)
    default_dir = options.work_dir if args.quick else report_md.RESULTS_DIR
    out = args.out or default_dir / f"{result['run_id']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    logging.getLogger("bench").info("results: %s", out)
    if not args.quick and not args.no_docs and out.parent.resolve() == report_md.RESULTS_DIR:
        report_md.write_docs()
    print(report_md.console_summary(result))
    failed = [s["name"] for s in result["scales"] if "error" in s]
    failed += [s["name"] for s in result["scales"] if "error" in (s.get("incremental") or {})]
    failed += [s["name"] for s in result["scales"] if "error" in (s.get("watch") or {})]
    failed += [k for k in ("spark_startup", "demo") if "error" in (result.get(k) or {})]
    # the baseline and the lake must have done the same work, or the ratio means nothing
    failed += [s["name"] for s in result["scales"] if not s.get("baseline", {}).get("same_work", 1)]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
