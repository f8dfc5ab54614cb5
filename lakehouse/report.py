"""The insights report: one self-contained HTML page built from the marts.

`build_report(duckdb_path, out_dir)` opens the DuckDB warehouse read-only, reads the marts
(schema `marts`), draws six plotly charts and the key numbers as HTML tables, and writes
`out_dir/insights.html`. plotly.js is inlined once in the page head, so the file opens offline.
The figures are the marts' own: the headline numbers come finished from `mart_insights_summary`
and the heatmap's cells from `mart_city_age_markets` (tested dbt models); the report only lays
them out.

The page is the Jinja2 template `templates/insights.html.j2` (with `report.css`), rendered with
autoescape: every value that comes from the data is escaped there. The chart labels are escaped
here, with `esc`, because plotly renders its labels as pseudo-HTML (and decodes the entities back
for display); the charts and plotly.js are the only markup the template takes as it is.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
import plotly.io as pio
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from lakehouse.engines import connect_warehouse
from lakehouse.health import Health, read_health
from lakehouse.settings import Paths, ProjectNotFound

log = logging.getLogger(__name__)

REPORT_FILE = "insights.html"
# The marts the report reads: the exposure `insights_report` (models/marts/_marts__models.yml).
# Found by name in whichever schema holds them (`marts` locally; dbt's schema naming decides).
MARTS = (
    "mart_top_products",
    "mart_category_performance",
    "mart_customer_segments",
    "mart_high_value_customers",
    "mart_daily_sales",
    "mart_insights_summary",
    "mart_city_age_markets",
)
TOP_TABLE_ROWS = 10
CLV_BINS = 50

# The id of each chart's div, in page order; the tests and the browser check use them.
CHART_IDS = (
    "chart-top-products",
    "chart-category-pareto",
    "chart-customer-segments",
    "chart-market-heatmap",
    "chart-clv-distribution",
    "chart-daily-sales",
)

# The pipeline health section's charts, shown when the warehouse holds the audit history, and
# how much history they show.
HEALTH_CHART_IDS = ("chart-build-history", "chart-rejections")
HEALTH_RUNS = 50
HEALTH_BATCHES = 50

SPEND_ORDER = ("VIP", "Loyal", "Regular")
FREQUENCY_ORDER = ("High", "Medium", "Low")
ABC_COLOURS = {"A": "#2563eb", "B": "#f59e0b", "C": "#94a3b8"}
OTHER_COLOURS = ("#10b981", "#ef4444", "#8b5cf6", "#ec4899")
BLUE, ORANGE, GREEN, GREY = "#2563eb", "#f97316", "#10b981", "#64748b"
PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}

Row = dict[str, Any]


class ReportError(RuntimeError):
    """The report cannot be built from this warehouse; the message says what to do."""


@dataclass(frozen=True)
class Column:
    """One column of an HTML table: header, row key and how to format the value."""

    header: str
    key: str
    fmt: Callable[[Any], str] = str
    numeric: bool = False


@dataclass(frozen=True)
class MartData:
    """What the report needs from the marts, read once."""

    totals: Row
    top_products: list[Row]
    categories: list[Row]
    segments: list[Row]
    markets: list[Row]
    clv: list[Row]
    top_customers: list[Row]
    daily: list[Row]


# ---------------------------------------------------------------------------------------------
# Reading the marts


def build_report(duckdb_path: Path, out_dir: Path) -> Path:
    """Read the marts in `duckdb_path` and write `out_dir/insights.html`; return its path."""
    source = Path(duckdb_path).expanduser().resolve()
    data = read_marts(source)
    if not data.totals["products"]:
        log.warning("the marts in %s are empty: land data and run `lakehouse build`", source)
    page = render_report(data, source, datetime.now(UTC), read_pipeline_health(source))
    out_dir = Path(out_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / REPORT_FILE
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    log.info("wrote %s (%d bytes) from %s", target, len(page.encode("utf-8")), source)
    return target


def read_marts(source: Path) -> MartData:
    """Read every mart the report needs, or raise ReportError saying what is missing."""
    if not source.is_file():
        raise ReportError(f"no DuckDB warehouse at {source}: run `lakehouse build` first")
    con = _connect(source)
    try:
        marts = _locate_marts(con, source)
        log.info("reading marts from %s", source)

        def query(mart: str, sql: str, **params: Any) -> list[Row]:
            return _query(con, source, marts[mart], sql.format(relation=marts[mart], **params))

        summary = query("mart_insights_summary", SUMMARY_SQL)
        totals = summary[0] if summary else NO_SALES
        return MartData(
            totals=totals,
            top_products=query(
                "mart_top_products", TOP_PRODUCTS_SQL, limit=int(totals["top_products_limit"])
            ),
            categories=query("mart_category_performance", CATEGORIES_SQL),
            segments=query("mart_customer_segments", SEGMENTS_SQL),
            markets=query("mart_city_age_markets", MARKETS_SQL),
            clv=query("mart_high_value_customers", CLV_SQL),
            top_customers=query("mart_high_value_customers", TOP_CUSTOMERS_SQL),
            daily=query("mart_daily_sales", DAILY_SQL),
        )
    finally:
        con.close()


def read_pipeline_health(source: Path) -> Health | None:
    """The audit history in the warehouse (and Bronze's ledger beside it), or None without one."""
    try:
        health = read_health(Paths(source.parent), duckdb_file=source)
    except ProjectNotFound as error:
        log.warning("no pipeline health section: the SLAs are project vars (%s)", error)
        return None
    except duckdb.Error as error:
        log.warning("no pipeline health section: cannot read the audit history (%s)", error)
        return None
    return health if health.audited else None


def _connect(source: Path) -> duckdb.DuckDBPyConnection:
    try:
        return connect_warehouse(source)
    except duckdb.Error as exc:
        raise ReportError(f"cannot open {source} read-only: {exc}") from exc


def _locate_marts(con: duckdb.DuckDBPyConnection, source: Path) -> dict[str, str]:
    """Mart name -> its relation, in whichever schema of the file's database holds it."""
    schemas: dict[str, list[str]] = {}
    for schema, name in con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = current_database() and list_contains(?, table_name) "
        "order by table_schema",
        [list(MARTS)],
    ).fetchall():
        schemas.setdefault(str(name), []).append(str(schema))
    missing = [mart for mart in MARTS if mart not in schemas]
    if len(missing) == len(MARTS):
        raise ReportError(f"no marts in {source}: run `lakehouse build` first")
    if missing:
        raise ReportError(
            f"missing marts in {source} ({', '.join(missing)}): run `lakehouse build` first"
        )
    twice = {mart: found for mart, found in schemas.items() if len(found) > 1}
    if twice:
        names = "; ".join(f"{mart} in {', '.join(found)}" for mart, found in twice.items())
        raise ReportError(f"marts in more than one schema of {source} ({names}): keep one")
    return {mart: f'"{found[0]}"."{mart}"' for mart, found in schemas.items()}


def _query(con: duckdb.DuckDBPyConnection, source: Path, relation: str, sql: str) -> list[Row]:
    try:
        cursor = con.execute(sql)
        columns = [str(column[0]) for column in cursor.description or ()]
        return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    except duckdb.Error as exc:
        raise ReportError(
            f"cannot read {relation} in {source} ({exc}): rebuild with `lakehouse build`"
        ) from exc


# The headline figures, finished in dbt (one row; none while Gold holds no sale).
SUMMARY_SQL = """
select total_revenue as revenue, purchases, avg_purchase_amount as avg_basket, customers,
       products, sales_days as days, first_ingest_date as first_day, as_of_date as last_day,
       top_products_limit, top_products_revenue_share_pct
from {relation}
"""
NO_SALES: Row = {
    "revenue": 0,
    "purchases": 0,
    "avg_basket": None,
    "customers": 0,
    "products": 0,
    "days": 0,
    "first_day": None,
    "last_day": None,
    "top_products_limit": 0,
    "top_products_revenue_share_pct": None,
}

TOP_PRODUCTS_SQL = """
select product_id, product_category, product_category_name, revenue_rank, total_revenue,
       units_sold, distinct_customers, avg_revenue_per_customer, revenue_contribution_pct,
       abc_class, product_segment
from {relation}
order by revenue_rank, product_id
limit {limit}
"""

CATEGORIES_SQL = """
select product_category, product_category_name, products, total_revenue, units_sold, avg_price,
       revenue_share_pct, cumulative_revenue_share_pct, revenue_rank, top_product_id
from {relation}
order by cumulative_revenue_share_pct, revenue_rank, product_category
"""

SEGMENTS_SQL = """
select spend_segment, frequency_segment, customers, total_revenue, purchases, revenue_share_pct,
       customer_share_pct, avg_historic_clv, avg_predicted_clv, avg_basket_amount,
       median_total_spent
from {relation}
"""

MARKETS_SQL = """
select city_category, age_band, customers, total_revenue
from {relation}
"""

CLV_SQL = """
select historic_clv, predicted_clv
from {relation}
"""

TOP_CUSTOMERS_SQL = f"""
select customer_id, clv_rank, spend_rank, total_spent, historic_clv, predicted_clv,
       purchase_count, distinct_products, spend_segment, frequency_segment, gender, age_band,
       city_category
from {{relation}}
order by clv_rank, total_spent desc, customer_id
limit {TOP_TABLE_ROWS}
"""

DAILY_SQL = """
select ingest_date, total_revenue, purchases, customers, new_customers, returning_customers,
       avg_purchase_amount, cumulative_revenue
from {relation}
order by ingest_date
"""


# ---------------------------------------------------------------------------------------------
# Formatting


def esc(value: Any) -> str:
    """Any value as escaped HTML text, for plotly's labels (the template escapes the page)."""
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any) -> float:
    return 0.0 if value is None else float(value)


def fmt_int(value: Any) -> str:
    return "—" if value is None else f"{int(value):,}"


def fmt_amount(value: Any) -> str:
    return "—" if value is None else f"{Decimal(value):,.2f}"


def fmt_pct(value: Any) -> str:
    return "—" if value is None else f"{Decimal(value):.2f} %"


def fmt_compact(value: float) -> str:
    """1234567 -> 1.23M, for labels inside the charts."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.2f}{suffix}"
    return f"{value:.0f}"


def _sort_key(order: Sequence[str]) -> Callable[[Any], tuple[int, str]]:
    def key(value: Any) -> tuple[int, str]:
        text = "" if value is None else str(value)
        return (order.index(text) if text in order else len(order), text)

    return key


def _age_key(band: Any) -> tuple[int, str]:
    text = "" if band is None else str(band)
    match = re.match(r"\s*(\d+)", text)
    return (int(match.group(1)) if match else 10**6, text)


def _segment_label(row: Row) -> str:
    return f"{esc(row['spend_segment'])} · {esc(row['frequency_segment'])}"


def _sorted_segments(rows: Iterable[Row]) -> list[Row]:
    spend, frequency = _sort_key(SPEND_ORDER), _sort_key(FREQUENCY_ORDER)
    return sorted(
        rows, key=lambda r: (spend(r["spend_segment"]), frequency(r["frequency_segment"]))
    )


# ---------------------------------------------------------------------------------------------
# Charts


def _layout(
    fig: go.Figure, height: int = 440, top: int = 30, legend_y: float = 1.02, **extra: Any
) -> go.Figure:
    """The look every chart shares; `top` leaves room above the plot (legend, subplot titles)."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 60, "r": 30, "t": top, "b": 60},
        font={"family": "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", "size": 12},
        legend={
            "orientation": "h",
            "yanchor": "bottom",
            "y": legend_y,
            "x": 0,
            "traceorder": "normal",
        },
        hoverlabel={"namelength": -1},
        **extra,
    )
    return fig


def _bar(
    name: str, x: Sequence[Any], y: Sequence[float], colour: str, hover: str, **extra: Any
) -> go.Bar:
    """A bar trace as every chart draws one: named, one colour, its own hover text."""
    return go.Bar(name=name, x=x, y=y, marker_color=colour, hovertemplate=hover, **extra)


def _line(name: str, x: Sequence[Any], y: Sequence[float], hover: str, **extra: Any) -> go.Scatter:
    """The running-total line drawn over bars (orange, on the secondary axis)."""
    return go.Scatter(
        name=name,
        x=x,
        y=y,
        mode="lines+markers",
        line={"color": ORANGE, "width": 2.5},
        hovertemplate=hover,
        **extra,
    )


def _ordered_categories(
    fig: go.Figure, labels: Sequence[str], tickangle: int = -35, **extra: Any
) -> None:
    """The x axis shows `labels` as categories, in this order, slanted."""
    fig.update_xaxes(
        type="category", categoryorder="array", categoryarray=labels, tickangle=tickangle, **extra
    )


def chart_top_products(rows: list[Row]) -> go.Figure:
    """Top products by revenue, one bar trace per ABC class so the legend explains the colours."""
    fig = go.Figure()
    order = [esc(r["product_id"]) for r in rows]
    classes = sorted({esc(r["abc_class"]) for r in rows})
    others = iter(OTHER_COLOURS * (len(classes) + 1))
    for abc in classes:
        members = [r for r in rows if esc(r["abc_class"]) == abc]
        fig.add_trace(
            _bar(
                f"class {abc}",
                [esc(r["product_id"]) for r in members],
                [_num(r["total_revenue"]) for r in members],
                ABC_COLOURS.get(abc) or next(others),
                (
                    "<b>#%{customdata[4]} %{x}</b><br>%{customdata[0]}<br>"
                    "revenue %{y:,.0f}<br>units %{customdata[1]}, customers %{customdata[2]}"
                    "<br>%{customdata[3]} of all revenue<extra>%{fullData.name}</extra>"
                ),
                customdata=[
                    [
                        esc(r["product_category_name"]),
                        fmt_int(r["units_sold"]),
                        fmt_int(r["distinct_customers"]),
                        fmt_pct(r["revenue_contribution_pct"]),
                        fmt_int(r["revenue_rank"]),
                    ]
                    for r in members
                ],
            )
        )
    _ordered_categories(fig, order, tickangle=-45, title="product")
    fig.update_yaxes(title="revenue")
    return _layout(fig, bargap=0.25, showlegend=True)


def chart_category_pareto(rows: list[Row]) -> go.Figure:
    """Categories by revenue (bars) with the running share of revenue (line, right axis)."""
    labels = [esc(r["product_category_name"] or r["product_category"]) for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        _bar(
            "revenue",
            labels,
            [_num(r["total_revenue"]) for r in rows],
            BLUE,
            "<b>%{x}</b><br>revenue %{y:,.0f} (%{customdata[0]})"
            "<br>%{customdata[1]} products<extra></extra>",
            customdata=[[fmt_pct(r["revenue_share_pct"]), fmt_int(r["products"])] for r in rows],
        ),
        secondary_y=False,
    )
    fig.add_trace(
        _line(
            "cumulative share of revenue",
            labels,
            [_num(r["cumulative_revenue_share_pct"]) for r in rows],
            "<b>%{x}</b><br>cumulative %{y:.2f} %<extra></extra>",
            marker={"size": 7},
        ),
        secondary_y=True,
    )
    # The 80 % line of the Pareto rule, on the share axis.
    fig.add_shape(
        type="line",
        xref="paper",
        x0=0,
        x1=1,
        yref="y2",
        y0=80,
        y1=80,
        line={"color": GREY, "dash": "dot", "width": 1.5},
    )
    fig.add_annotation(
        xref="paper",
        x=1,
        xanchor="right",
        yref="y2",
        y=80,
        yanchor="bottom",
        text="80 % of revenue",
        showarrow=False,
        font={"color": GREY},
    )
    _ordered_categories(fig, labels)
    fig.update_yaxes(title="revenue", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(
        title="cumulative share",
        range=[0, 105],
        tickmode="linear",
        tick0=0,
        dtick=20,
        ticksuffix=" %",
        showgrid=False,
        secondary_y=True,
    )
    return _layout(fig, height=480)


def chart_customer_segments(rows: list[Row]) -> go.Figure:
    """Share of customers against share of revenue for each spend x frequency segment."""
    rows = _sorted_segments(rows)
    labels = [_segment_label(r) for r in rows]
    fig = go.Figure()
    for name, key, colour in (
        ("share of customers", "customer_share_pct", GREY),
        ("share of revenue", "revenue_share_pct", BLUE),
    ):
        fig.add_trace(
            _bar(
                name,
                labels,
                [_num(r[key]) for r in rows],
                colour,
                "<b>%{x}</b><br>%{y:.2f} %<br>%{customdata[0]} customers, "
                "revenue %{customdata[1]}<extra>%{fullData.name}</extra>",
                text=[fmt_pct(r[key]) for r in rows],
                textposition="outside",
                customdata=[[fmt_int(r["customers"]), fmt_int(r["total_revenue"])] for r in rows],
            )
        )
    fig.update_xaxes(title="spend segment · frequency segment")
    fig.update_yaxes(title="share", ticksuffix=" %", rangemode="tozero")
    return _layout(fig, barmode="group", bargap=0.25, uniformtext={"minsize": 9, "mode": "hide"})


def chart_market_heatmap(rows: list[Row]) -> go.Figure:
    """Revenue by city category (columns) and age band (rows), summed over gender and marriage."""
    cities = sorted({esc(r["city_category"]) for r in rows})
    bands = sorted({r["age_band"] for r in rows}, key=_age_key)
    band_labels = [esc(b) for b in bands]
    revenue: dict[tuple[str, str], float] = {}
    customers: dict[tuple[str, str], Any] = {}
    for r in rows:
        cell = (esc(r["city_category"]), esc(r["age_band"]))
        revenue[cell], customers[cell] = _num(r["total_revenue"]), r["customers"]
    z: list[list[float | None]] = [[revenue.get((c, b)) for c in cities] for b in band_labels]
    text = [[fmt_compact(v) if v is not None else "" for v in line] for line in z]
    custom = [[fmt_int(customers.get((c, b))) for c in cities] for b in band_labels]
    fig = go.Figure(
        go.Heatmap(
            x=[f"city {c}" for c in cities],
            y=band_labels,
            z=z,
            text=text,
            texttemplate="%{text}",
            customdata=custom,
            colorscale="Blues",
            colorbar={"title": {"text": "revenue"}},
            hovertemplate=(
                "<b>%{x}, age %{y}</b><br>revenue %{z:,.0f}<br>%{customdata} customers"
                "<extra></extra>"
            ),
            xgap=2,
            ygap=2,
        )
    )
    fig.update_xaxes(title="city category", side="bottom")
    fig.update_yaxes(title="age band", type="category")
    return _layout(fig, height=420)


def chart_clv_distribution(rows: list[Row]) -> go.Figure:
    """Histogram of historic CLV, and of predicted CLV once the lake has enough history."""
    historic = [_num(r["historic_clv"]) for r in rows if r["historic_clv"] is not None]
    predicted = [_num(r["predicted_clv"]) for r in rows if r["predicted_clv"] is not None]
    # The same bins for both, so the two distributions compare bar for bar.
    low, high = min([0.0, *historic, *predicted]), max([0.0, *historic, *predicted])
    bins = {"start": low, "end": high + 1, "size": max((high - low) / CLV_BINS, 0.01)}
    fig = go.Figure()
    for kind, values, colour, opacity in (
        ("historic", historic, BLUE, 0.75 if predicted else 1.0),
        ("predicted", predicted, ORANGE, 0.6),
    ):
        if values or kind == "historic":
            fig.add_trace(
                go.Histogram(
                    name=f"{kind} CLV",
                    x=values,
                    xbins=bins,
                    marker_color=colour,
                    opacity=opacity,
                    hovertemplate=f"CLV %{{x}}<br>%{{y:,}} customers<extra>{kind}</extra>",
                )
            )
    fig.update_xaxes(title="customer lifetime value")
    fig.update_yaxes(title="customers")
    return _layout(fig, barmode="overlay", bargap=0.05)


def _count_bars(
    fig: go.Figure,
    x: list[str],
    rows: list[Row],
    series: Sequence[tuple[str, str, str]],
    row: int = 1,
    col: int = 1,
) -> None:
    """One bar trace of counts per (name, key, colour), in one subplot (stacked by the layout)."""
    for name, key, colour in series:
        fig.add_trace(
            _bar(
                name,
                x,
                [_num(r[key]) for r in rows],
                colour,
                f"<b>%{{x}}</b><br>%{{y:,}} {name}<extra></extra>",
            ),
            row=row,
            col=col,
        )


def chart_daily_sales(rows: list[Row]) -> go.Figure:
    """Revenue per ingest date, and how many of the day's customers were new or returning.

    The dates are categories, so a single day is one visible bar rather than a lonely point on a
    date axis; the cumulative revenue line only appears once there are two days to join.
    """
    days = [esc(r["ingest_date"]) for r in rows]
    fig = make_subplots(
        rows=1,
        cols=2,
        specs=[[{"secondary_y": True}, {}]],
        horizontal_spacing=0.14,
        subplot_titles=("revenue per day", "customers per day"),
    )
    fig.add_trace(
        _bar(
            "revenue",
            days,
            [_num(r["total_revenue"]) for r in rows],
            BLUE,
            "<b>%{x}</b><br>revenue %{y:,.0f}<br>%{customdata[0]} purchases, "
            "average %{customdata[1]}<extra></extra>",
            customdata=[
                [fmt_int(r["purchases"]), fmt_amount(r["avg_purchase_amount"])] for r in rows
            ],
        ),
        row=1,
        col=1,
        secondary_y=False,
    )
    if len(rows) > 1:
        fig.add_trace(
            _line(
                "cumulative revenue",
                days,
                [_num(r["cumulative_revenue"]) for r in rows],
                "<b>%{x}</b><br>cumulative %{y:,.0f}<extra></extra>",
            ),
            row=1,
            col=1,
            secondary_y=True,
        )
        # No axis title: it would run into the next plot; the legend names the line.
        fig.update_yaxes(showgrid=False, rangemode="tozero", row=1, col=1, secondary_y=True)
    _count_bars(
        fig,
        days,
        rows,
        (
            ("new customers", "new_customers", GREEN),
            ("returning customers", "returning_customers", GREY),
        ),
        col=2,
    )
    fig.update_xaxes(type="category", title="ingest date")
    fig.update_yaxes(title="revenue", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title="customers", row=1, col=2)
    gap = 0.4 if len(rows) > 1 else 0.6
    return _layout(fig, height=470, top=90, legend_y=1.14, barmode="stack", bargap=gap)


def _run_label(run: Row) -> str:
    when = run["completed_at"]
    return f"{esc(run['target'])} {when:%m-%d %H:%M:%S}" if when else esc(run["invocation_id"])


def chart_build_history(runs: list[Row]) -> go.Figure:
    """Per build that ran dbt: its duration, and how its tests ended (passed, warned, failed)."""
    labels = [_run_label(r) for r in runs]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=("build duration", "test outcomes"),
    )
    targets = sorted({str(r["target"]) for r in runs})
    colours = iter((BLUE, ORANGE, *OTHER_COLOURS) * (len(targets) + 1))
    for target in targets:
        members = [r for r in runs if r["target"] == target]
        fig.add_trace(
            _bar(
                esc(target),
                [_run_label(r) for r in members],
                [_num(r["elapsed_seconds"]) for r in members],
                next(colours),
                "<b>%{x}</b><br>%{y:.1f} s<br>%{customdata[0]}, %{customdata[1]}<extra></extra>",
                customdata=[[esc(r["action"]), esc(r["status"])] for r in members],
            ),
            row=1,
            col=1,
        )
    _count_bars(
        fig,
        labels,
        runs,
        (
            ("tests passed", "passed_tests", GREEN),
            ("tests warned", "warned_tests", "#f59e0b"),
            ("tests failed", "failed_tests", "#ef4444"),
        ),
        row=2,
    )
    _ordered_categories(fig, labels)
    fig.update_yaxes(title="seconds", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title="tests", rangemode="tozero", row=2, col=1)
    return _layout(fig, height=620, top=90, legend_y=1.08, barmode="stack", bargap=0.3)


def _batch_label(batch: Row) -> str:
    return f"{esc(batch['ingest_date'])} · {esc(batch['batch_id'])}"


def chart_rejections(batches: list[Row], rejections: list[Row]) -> go.Figure:
    """Per batch, the share of its landed rows Silver rejected, stacked by reason (a row with
    several reasons counts under each)."""
    labels = [_batch_label(b) for b in batches]
    shown = {b["batch_id"] for b in batches}
    reasons = sorted({str(r["reason"]) for r in rejections if r["batch_id"] in shown})
    colours = iter((*OTHER_COLOURS, BLUE, ORANGE, GREY) * (len(reasons) + 1))
    fig = go.Figure()
    for reason in reasons:
        rows = {r["batch_id"]: r for r in rejections if r["reason"] == reason}
        fig.add_trace(
            _bar(
                esc(reason),
                labels,
                [
                    100.0 * _num(rows[b["batch_id"]]["rejected_rows"]) / _num(b["landed_rows"])
                    if b["batch_id"] in rows and b["landed_rows"]
                    else 0.0
                    for b in batches
                ],
                next(colours),
                "<b>%{x}</b><br>%{y:.2f} % of landed rows (%{customdata} rows)"
                "<extra>%{fullData.name}</extra>",
                customdata=[
                    fmt_int(rows[b["batch_id"]]["rejected_rows"] if b["batch_id"] in rows else 0)
                    for b in batches
                ],
            )
        )
    if not reasons:
        fig.add_annotation(
            text="no row rejected in these batches", showarrow=False, x=0.5, y=0.5, xref="paper"
        )
    _ordered_categories(fig, labels, title="batch")
    fig.update_yaxes(title="rejected rows", ticksuffix=" %", rangemode="tozero")
    return _layout(fig, height=460, top=60, legend_y=1.04, barmode="stack", bargap=0.3)


def _figure_html(fig: go.Figure, div_id: str) -> Markup:
    return Markup(
        pio.to_html(
            fig,
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            config=PLOTLY_CONFIG,
            default_height=f"{fig.layout.height}px",
        )
    )


# ---------------------------------------------------------------------------------------------
# HTML


@dataclass(frozen=True)
class Table:
    """A table of a section: the template's `table` macro renders it, numeric cells with their
    raw value in data-value."""

    table_id: str
    columns: Sequence[Column]
    rows: Sequence[Row]
    heading: str = ""


@dataclass(frozen=True)
class Card:
    """One key number: data-key, the raw data-value, and how it reads."""

    key: str
    label: str
    raw: Any
    note: str
    fmt: Callable[[Any], str] = fmt_int

    @property
    def text(self) -> str:
        return self.fmt(self.raw)


def headline_cards(totals: Row) -> list[Card]:
    """The key numbers shown as cards."""
    first, last = totals["first_day"], totals["last_day"]
    span = "—" if first is None else str(first) if first == last else f"{first} → {last}"
    return [
        Card("revenue", "Revenue", totals["revenue"], "sum of purchase amounts"),
        Card("purchases", "Purchases", totals["purchases"], "purchase lines"),
        Card("customers", "Customers", totals["customers"], "who bought"),
        Card("products", "Products", totals["products"], "sold"),
        Card("days", "Days", totals["days"], span),
        Card(
            "avg_basket",
            "Average purchase",
            totals["avg_basket"],
            "revenue / purchases",
            fmt_amount,
        ),
    ]


TOP_PRODUCT_COLUMNS = (
    Column("Rank", "revenue_rank", fmt_int, numeric=True),
    Column("Product", "product_id"),
    Column("Category", "product_category_name"),
    Column("Revenue", "total_revenue", fmt_int, numeric=True),
    Column("Units", "units_sold", fmt_int, numeric=True),
    Column("Customers", "distinct_customers", fmt_int, numeric=True),
    Column("Share of revenue", "revenue_contribution_pct", fmt_pct, numeric=True),
    Column("ABC", "abc_class"),
    Column("Segment", "product_segment"),
)

TOP_CUSTOMER_COLUMNS = (
    Column("CLV rank", "clv_rank", fmt_int, numeric=True),
    Column("Customer", "customer_id"),
    Column("Predicted CLV", "predicted_clv", fmt_amount, numeric=True),
    Column("Historic CLV", "historic_clv", fmt_amount, numeric=True),
    Column("Total spent", "total_spent", fmt_int, numeric=True),
    Column("Purchases", "purchase_count", fmt_int, numeric=True),
    Column("Products", "distinct_products", fmt_int, numeric=True),
    Column("Spend", "spend_segment"),
    Column("Frequency", "frequency_segment"),
    Column("Gender", "gender"),
    Column("Age", "age_band"),
    Column("City", "city_category"),
)

SEGMENT_COLUMNS = (
    Column("Spend", "spend_segment"),
    Column("Frequency", "frequency_segment"),
    Column("Customers", "customers", fmt_int, numeric=True),
    Column("Share of customers", "customer_share_pct", fmt_pct, numeric=True),
    Column("Revenue", "total_revenue", fmt_int, numeric=True),
    Column("Share of revenue", "revenue_share_pct", fmt_pct, numeric=True),
    Column("Purchases", "purchases", fmt_int, numeric=True),
    Column("Avg basket", "avg_basket_amount", fmt_amount, numeric=True),
    Column("Median spent", "median_total_spent", fmt_amount, numeric=True),
    Column("Avg historic CLV", "avg_historic_clv", fmt_amount, numeric=True),
    Column("Avg predicted CLV", "avg_predicted_clv", fmt_amount, numeric=True),
)


FRESHNESS_COLUMNS = (
    Column("Relation", "name"),
    Column("Newest batch landed (UTC)", "newest_landed_at", lambda v: str(v)[:19]),
    Column("Ingest date", "newest_ingest_date"),
    Column("Age (hours)", "age_hours", lambda v: f"{v:,.1f}", numeric=True),
    Column("Warn after (hours)", "warn_after_hours", lambda v: f"{v:g}", numeric=True),
    Column("Error after (hours)", "error_after_hours", lambda v: f"{v:g}", numeric=True),
    Column("State", "state"),
)

BATCH_QUALITY_COLUMNS = (
    Column("Batch", "batch_id"),
    Column("Ingest date", "ingest_date"),
    Column("Landed", "landed_rows", fmt_int, numeric=True),
    Column("Valid", "valid_rows", fmt_int, numeric=True),
    Column("Rejected", "rejected_rows", fmt_int, numeric=True),
    Column("Rejected %", "rejected_pct", fmt_pct, numeric=True),
)


@dataclass(frozen=True)
class HealthSection:
    """The pipeline health section: its charts (HEALTH_CHART_IDS) and tables."""

    intro: str
    charts: Sequence[Markup]
    tables: Sequence[Table]


def health_section(health: Health) -> HealthSection:
    runs = [r for r in health.runs if r["status"] != "skipped"][-HEALTH_RUNS:]
    batches = health.batches[-HEALTH_BATCHES:]
    freshness = [
        {
            "name": f.name,
            "newest_landed_at": f.newest_landed_at,
            "newest_ingest_date": f.newest_ingest_date,
            "age_hours": f.age_hours,
            "warn_after_hours": f.sla.warn_after_hours,
            "error_after_hours": f.sla.error_after_hours,
            "state": f.state,
        }
        for f in health.freshness
    ]
    skipped = sum(1 for r in health.runs if r["status"] == "skipped")
    breaches = health.breaches
    return HealthSection(
        f"{len(health.runs)} recorded builds ({skipped} found nothing new and ran no dbt), "
        f"{len(health.batches)} batches. "
        + (
            f"SLA breached: {'; '.join(breaches)}."
            if breaches
            else "Every freshness SLA is met and no test fails in the last build."
        )
        + " Freshness is the age of the newest batch a relation reflects, by landing time.",
        [
            _figure_html(chart_build_history(runs), HEALTH_CHART_IDS[0]),
            _figure_html(chart_rejections(batches, health.rejections), HEALTH_CHART_IDS[1]),
        ],
        [
            Table("table-freshness", FRESHNESS_COLUMNS, freshness, "Freshness against the SLA"),
            Table(
                "table-batch-quality",
                BATCH_QUALITY_COLUMNS,
                list(reversed(batches)),
                "Batch quality, newest first",
            ),
        ],
    )


@dataclass(frozen=True)
class Section:
    """One section of the page: a chart, and below it an optional table."""

    anchor: str
    title: str
    intro: str
    chart: Markup
    table: Table | None = None


TEMPLATES = Environment(
    loader=PackageLoader("lakehouse", "templates"),
    autoescape=select_autoescape(default=True),
    keep_trailing_newline=True,
)


def render_report(
    data: MartData, source: Path, generated: datetime, health: Health | None = None
) -> str:
    """The whole page as a string."""
    has_prediction = any(r["predicted_clv"] is not None for r in data.clv)
    top_share = _num(data.totals["top_products_revenue_share_pct"])
    sections = [
        Section(
            "top-products",
            f"Top {data.totals['top_products_limit']} products by revenue",
            f"The {len(data.top_products)} best-selling products take {top_share:.1f} % of all "
            "revenue. Colour is the ABC class: A products make the first 80 % of revenue, B the "
            "next 15 %, C the rest.",
            _figure_html(chart_top_products(data.top_products), CHART_IDS[0]),
            Table(
                "table-top-products",
                TOP_PRODUCT_COLUMNS,
                data.top_products[:TOP_TABLE_ROWS],
                f"Top {TOP_TABLE_ROWS}",
            ),
        ),
        Section(
            "categories",
            "Revenue by product category (Pareto)",
            "Categories from the largest to the smallest revenue; the line is the running share "
            "of revenue (right axis), so where it crosses 80 % tells how few categories make most "
            "of the sales.",
            _figure_html(chart_category_pareto(data.categories), CHART_IDS[1]),
        ),
        Section(
            "segments",
            "Customer segments",
            "Spend segment x frequency segment: each segment's share of customers next to its "
            "share of revenue. A revenue bar taller than the customer bar marks the segments "
            "worth more than their head count.",
            _figure_html(chart_customer_segments(data.segments), CHART_IDS[2]),
            Table("table-segments", SEGMENT_COLUMNS, _sorted_segments(data.segments)),
        ),
        Section(
            "markets",
            "Market segments",
            "Revenue by city category and age band, summed over gender and marital status: the "
            "darker the cell, the larger the market.",
            _figure_html(chart_market_heatmap(data.markets), CHART_IDS[3]),
        ),
        Section(
            "clv",
            "Customer lifetime value",
            "How customers spread over lifetime value. Historic CLV is total spent x gross margin; "
            + (
                "predicted CLV (orange) projects it over the CLV horizon. "
                if has_prediction
                else "predicted CLV appears once the lake holds enough days of history. "
            )
            + "The table lists the customers ranked highest by CLV.",
            _figure_html(chart_clv_distribution(data.clv), CHART_IDS[4]),
            Table(
                "table-top-customers",
                TOP_CUSTOMER_COLUMNS,
                data.top_customers,
                f"Top {TOP_TABLE_ROWS} customers by CLV",
            ),
        ),
        Section(
            "daily",
            "Daily sales",
            "Revenue per ingest date (with the cumulative revenue once there are several days), "
            "and the day's customers split into first-time and returning buyers.",
            _figure_html(chart_daily_sales(data.daily), CHART_IDS[5]),
        ),
    ]
    return TEMPLATES.get_template("insights.html.j2").render(
        title="Insights report",
        generated=generated,
        source=source,
        cards=headline_cards(data.totals),
        sections=sections,
        health=health_section(health) if health else None,
        plotlyjs=Markup(get_plotlyjs()),
    )
