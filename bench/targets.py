"""The performance goals of issues #7, #11 and #14, checked against measured figures.

Rates are per second of the command's wall time, as a user would see it (Python start and
imports included). Memory is in MB of 1,000,000 bytes; 6 GB is taken as 6,000 MB.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Scales = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Target:
    name: str
    goal: str
    unit: str
    limit: float
    at_most: bool
    measure: Callable[[Scales, dict[str, Any] | None], tuple[float, str] | None]
    """(value, where it was measured) or None when the run did not measure it."""


def _stage(scale: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if not scale:
        return None
    return next((s for s in scale.get("stages", []) if s["name"] == name), None)


def _largest_generated(scales: Scales, stage: str, field: str) -> tuple[float, str] | None:
    for name in ("5.5m", "550k"):
        found = _stage(scales.get(name), stage)
        if found and found.get(field) is not None:
            return float(found[field]), name
    return None


def _stage_seconds(scale: str, stage: str) -> Callable[[Scales, Any], tuple[float, str] | None]:
    def measure(scales: Scales, _: Any) -> tuple[float, str] | None:
        found = _stage(scales.get(scale), stage)
        return (float(found["seconds"]), scale) if found else None

    return measure


def _warm_shell(scales: Scales, _: Any) -> tuple[float, str] | None:
    found = _stage(scales.get("550k"), "shell: dbt run dim_customers")
    warm = (found or {}).get("details", {}).get("warm_s")
    return (float(warm), "550k") if warm is not None else None


def _incremental(scales: Scales, _: Any) -> tuple[float, str] | None:
    incremental = (scales.get("5.5m") or {}).get("incremental") or {}
    ratio = incremental.get("ratio_to_full")
    return (100 * ratio, "5.5m") if ratio is not None else None


def _demo(_: Scales, demo: dict[str, Any] | None) -> tuple[float, str] | None:
    if not demo or "seconds" not in demo:
        return None
    return float(demo["seconds"]), "550k" + (", and the command failed" if "error" in demo else "")


def _peak(scales: Scales, _: Any) -> tuple[float, str] | None:
    peak = (scales.get("5.5m") or {}).get("pipeline_peak_rss_mb")
    return (float(peak), "5.5m") if peak is not None else None


def _watch_p95(scales: Scales, _: Any) -> tuple[float, str] | None:
    watch = (scales.get("550k") or {}).get("watch") or {}
    return (float(watch["p95_s"]), "550k") if "p95_s" in watch else None


TARGETS = (
    Target(
        "generator",
        ">= 1,000,000 rows/s",
        "rows/s",
        1_000_000,
        False,
        lambda s, _: _largest_generated(s, "generate", "rows_per_s"),
    ),
    Target(
        "local ingestion",
        ">= 200 MB/s",
        "MB/s",
        200,
        False,
        lambda s, _: _largest_generated(s, "ingest", "mb_per_s"),
    ),
    Target(
        "`lakehouse build` at 550,068 rows, all tests",
        "<= 20 s",
        "s",
        20,
        True,
        _stage_seconds("550k", "build"),
    ),
    Target(
        "lake models at 5.5 M rows, incl. start",
        "<= 45 s",
        "s",
        45,
        True,
        _stage_seconds("5.5m", "lake build"),
    ),
    Target(
        "`lakehouse build` with nothing new, 5.5 M",
        "<= 12 s",
        "s",
        12,
        True,
        _stage_seconds("5.5m", "build, nothing new"),
    ),
    Target(
        "`lakehouse build` after one new 1% batch, 5.5 M",
        "<= 15% of full",
        "% of full",
        15,
        True,
        _incremental,
    ),
    Target(
        "`lakehouse dbt run --select dim_customers`, 550k",
        "<= 10 s",
        "s",
        10,
        True,
        _stage_seconds("550k", "dbt run dim_customers"),
    ),
    Target(
        "the same in `lakehouse shell`, second command (warm engine), 550k",
        "<= 10 s",
        "s",
        10,
        True,
        _warm_shell,
    ),
    Target("make demo at 550,068 rows", "<= 90 s", "s", 90, True, _demo),
    Target("peak memory of the pipeline at 5.5 M", "<= 3.5 GB", "MB", 3_500, True, _peak),
    Target(
        "arrival-to-mart latency p95, 1% batches on 550k (`lakehouse watch`)",
        "<= 20 s",
        "s",
        20,
        True,
        _watch_p95,
    ),
)


def evaluate(
    scales: list[dict[str, Any]] | Scales, demo: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """One row per target: the goal, the measured value (None if not measured) and whether met."""
    by_name = scales if isinstance(scales, dict) else {s["name"]: s for s in scales}
    rows = []
    for target in TARGETS:
        measured = target.measure(by_name, demo)
        row: dict[str, Any] = {"target": target.name, "goal": target.goal, "unit": target.unit}
        if measured is None:
            row.update({"measured": None, "scale": None, "met": None})
        else:
            value, scale = measured
            met = value <= target.limit if target.at_most else value >= target.limit
            met = met and "failed" not in scale
            row.update({"measured": round(value, 1), "scale": scale, "met": met})
        rows.append(row)
    return rows
