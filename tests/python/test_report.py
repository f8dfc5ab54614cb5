"""The insights report: what it shows equals what the marts hold, it escapes what it prints,
it fails clearly without marts, and it renders in a real browser.

The expected numbers are computed here with SQL on the marts, never through the report code.
The browser test drives headless Chromium over the DevTools protocol on a pipe (fds 3 and 4,
`--remote-debugging-pipe`), with the standard library only.
"""

from __future__ import annotations

import base64
import fcntl
import html
import json
import os
import re
import select
import signal
import subprocess
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import duckdb
import markupsafe
import pytest

from lakehouse.report import CHART_IDS, HEALTH_CHART_IDS, MARTS, ReportError, build_report
from tests.python.lakehouse_story import DAY1, DAY2, DAY3, Story, count_rows, ledger_entries

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTEFACT = REPO / "reports" / "test-artifacts" / "insights.png"
EXAMPLE_WAREHOUSE = Path("/tmp/lk1/warehouse.duckdb")
PAYLOAD = '<script>alert("pwned")</script>&\''


# ---------------------------------------------------------------------------------------------
# Reading the page back


@dataclass
class Page:
    """What the tests read back from the HTML: cards, tables, element ids, scripts."""

    cards: dict[str, str] = field(default_factory=dict)
    card_texts: dict[str, str] = field(default_factory=dict)
    tables: dict[str, list[list[str]]] = field(default_factory=dict)
    ids: dict[str, dict[str, str]] = field(default_factory=dict)
    script_srcs: list[str] = field(default_factory=list)
    stylesheets: list[str] = field(default_factory=list)
    title: str = ""


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._in_title = False
        self._card: str | None = None
        self._card_text: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if "id" in attr:
            self.page.ids[attr["id"]] = {"tag": tag, **attr}
        if "data-key" in attr:
            self._card = attr["data-key"]
            self.page.cards[self._card] = attr.get("data-value", "")
        if "card-value" in attr.get("class", "").split() and self._card is not None:
            self._card_text = self._card
            self.page.card_texts[self._card] = ""
        if tag == "script" and "src" in attr:
            self.page.script_srcs.append(attr["src"])
        if tag == "link" and "stylesheet" in attr.get("rel", ""):
            self.page.stylesheets.append(attr.get("href", ""))
        if tag == "title":
            self._in_title = True
        if tag == "table":
            self._table = attr.get("id", "")
            self.page.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "div":
            self._card_text = None
        if tag == "title":
            self._in_title = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.page.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._in_title:
            self.page.title += data
        if self._card_text is not None:
            self.page.card_texts[self._card_text] += data


def parse(text: str) -> Page:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser.page


def body_rows(page: Page, table_id: str) -> list[list[str]]:
    """The rows of a table without its header row."""
    return page.tables[table_id][1:]


def column(page: Page, table_id: str, header: str) -> list[str]:
    head = page.tables[table_id][0]
    index = head.index(header)
    return [row[index] for row in body_rows(page, table_id)]


def sql_rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def sql_value(db: Path, sql: str) -> Any:
    return sql_rows(db, sql)[0][0]


# ---------------------------------------------------------------------------------------------
# The report on the real marts


@pytest.fixture(scope="module")
def report_file(warehouse_duckdb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_report(warehouse_duckdb, tmp_path_factory.mktemp("report") / "reports")


@pytest.fixture(scope="module")
def report_text(report_file: Path) -> str:
    return report_file.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(report_text: str) -> Page:
    return parse(report_text)


def test_writes_one_self_contained_file(report_file: Path, report_text: str, page: Page) -> None:
    assert report_file.name == "insights.html"
    assert report_file.parent.is_dir()
    assert report_text.startswith("<!DOCTYPE html>")
    assert page.title == "Insights report"
    # plotly.js inline exactly once, nothing fetched from anywhere; the story's warehouse holds
    # the audit history, so the pipeline health charts are there too.
    assert report_text.count("Plotly.newPlot(") == len(CHART_IDS) + len(HEALTH_CHART_IDS)
    assert report_text.count("* plotly.js v") == 1
    assert page.script_srcs == []
    assert page.stylesheets == []


def test_has_every_chart_div(report_text: str, page: Page) -> None:
    for chart_id in (*CHART_IDS, *HEALTH_CHART_IDS):
        element = page.ids.get(chart_id)
        assert element is not None, f"no element with id {chart_id}"
        assert element["tag"] == "div"
        assert "plotly-graph-div" in element["class"]
        assert re.search(rf'Plotly\.newPlot\(\s*"{chart_id}"', report_text), chart_id


def test_headline_numbers_equal_the_marts(warehouse_duckdb: Path, page: Page) -> None:
    db = warehouse_duckdb
    expected = {
        "revenue": sql_value(db, "select sum(total_revenue) from marts.mart_daily_sales"),
        "purchases": sql_value(db, "select sum(purchases) from marts.mart_daily_sales"),
        "customers": sql_value(db, "select count(*) from marts.mart_high_value_customers"),
        "products": sql_value(db, "select count(*) from marts.mart_top_products"),
        "days": sql_value(db, "select count(distinct ingest_date) from marts.mart_daily_sales"),
    }
    # The marts agree with each other, so the headline does not depend on which one it reads.
    assert expected["revenue"] == sql_value(
        db, "select sum(total_revenue) from marts.mart_top_products"
    )
    assert expected["purchases"] == sql_value(
        db, "select sum(units_sold) from marts.mart_category_performance"
    )
    assert expected["revenue"] > 0
    for key, value in expected.items():
        assert int(page.cards[key]) == value, key
        assert page.card_texts[key] == f"{value:,}", key
    basket = Decimal(page.cards["avg_basket"])
    assert abs(basket - Decimal(expected["revenue"]) / Decimal(expected["purchases"])) <= Decimal(
        "0.005"
    )


def test_top_products_table_equals_the_mart(warehouse_duckdb: Path, page: Page) -> None:
    rows = sql_rows(
        warehouse_duckdb,
        "select revenue_rank, product_id, total_revenue, units_sold from marts.mart_top_products "
        "order by total_revenue desc, product_id limit 10",
    )
    assert column(page, "table-top-products", "Product") == [r[1] for r in rows]
    assert column(page, "table-top-products", "Rank") == [f"{r[0]:,}" for r in rows]
    assert column(page, "table-top-products", "Revenue") == [f"{r[2]:,}" for r in rows]
    assert column(page, "table-top-products", "Units") == [f"{r[3]:,}" for r in rows]


def test_top_customers_table_equals_the_mart(warehouse_duckdb: Path, page: Page) -> None:
    rows = sql_rows(
        warehouse_duckdb,
        "select customer_id, historic_clv, total_spent from marts.mart_high_value_customers "
        "order by coalesce(predicted_clv, historic_clv) desc, total_spent desc, customer_id "
        "limit 10",
    )
    assert column(page, "table-top-customers", "Customer") == [str(r[0]) for r in rows]
    assert column(page, "table-top-customers", "Historic CLV") == [f"{r[1]:,.2f}" for r in rows]
    assert column(page, "table-top-customers", "Total spent") == [f"{r[2]:,}" for r in rows]


def test_segment_table_equals_the_mart(warehouse_duckdb: Path, page: Page) -> None:
    rows = sql_rows(
        warehouse_duckdb,
        "select spend_segment, frequency_segment, customers, total_revenue "
        "from marts.mart_customer_segments",
    )
    expected = {(r[0], r[1]): (f"{r[2]:,}", f"{r[3]:,}") for r in rows}
    shown = {
        (s, f): (c, r)
        for s, f, c, r in zip(
            column(page, "table-segments", "Spend"),
            column(page, "table-segments", "Frequency"),
            column(page, "table-segments", "Customers"),
            column(page, "table-segments", "Revenue"),
            strict=True,
        )
    }
    assert shown == expected
    assert len(body_rows(page, "table-segments")) == len(rows)


def test_pipeline_health_shows_each_batch_and_each_mart(
    page: Page, story: Story, warehouse_duckdb: Path
) -> None:
    """The story landed three files (one with injected bad rows) and built every mart: the
    section lists each batch, newest first, with what its file held, and every mart's freshness
    (the copy of the warehouse has no ledger beside it, so no Bronze row)."""
    assert page.ids["health"]["tag"] == "section"
    ledger = sorted(ledger_entries(story.home), key=lambda e: e["ingested_at"], reverse=True)
    bad = len(story.day2_expected["bad_lines"])
    landed = {
        DAY1: count_rows(story.real_rows),
        DAY2: count_rows(story.day2_csv),
        DAY3: count_rows(story.day3_csv),
    }
    rejected = {DAY1: 0, DAY2: bad, DAY3: 0}
    assert column(page, "table-batch-quality", "Batch") == [e["batch_id"] for e in ledger]
    days = [e["ingest_date"] for e in ledger]
    assert column(page, "table-batch-quality", "Landed") == [f"{landed[d]:,}" for d in days]
    assert column(page, "table-batch-quality", "Rejected") == [f"{rejected[d]:,}" for d in days]
    assert column(page, "table-batch-quality", "Rejected %") == [
        f"{Decimal(100 * rejected[d]) / Decimal(landed[d]):.2f} %" for d in days
    ]
    marts = sql_rows(
        warehouse_duckdb,
        "select table_name from information_schema.tables where table_schema = 'marts'",
    )
    assert sorted(column(page, "table-freshness", "Relation")) == sorted(m for (m,) in marts)
    assert set(MARTS) < {m for (m,) in marts}
    # the marts reflect the day-3 batch, landed minutes before the report
    assert set(column(page, "table-freshness", "Ingest date")) == {DAY3}
    assert set(column(page, "table-freshness", "State")) == {"ok"}


def test_says_where_and_when(report_text: str, page: Page, warehouse_duckdb: Path) -> None:
    assert html.escape(str(warehouse_duckdb.resolve())) in report_text
    assert page.ids["source"]["tag"] == "code"
    assert "<time datetime=" in report_text


# ---------------------------------------------------------------------------------------------
# Escaping and errors, on a tiny hand-made warehouse


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def make_tiny_warehouse(
    path: Path, payload: str, skip: tuple[str, ...] = (), schemas: tuple[str, ...] = ("marts",)
) -> Path:
    """The marts with one or two rows each, every text column holding `payload`, in each of
    `schemas`."""
    p = _lit(payload)
    tables = {
        "mart_top_products": f"""
            select {p} as product_id, 1 as product_category, {p} as product_category_name,
                   1 as revenue_rank, 300::bigint as total_revenue, 3::bigint as units_sold,
                   2::bigint as distinct_customers,
                   150.00::decimal(18,2) as avg_revenue_per_customer,
                   100.00::decimal(9,2) as revenue_contribution_pct, {p} as abc_class,
                   {p} as product_segment""",
        "mart_category_performance": f"""
            select 1 as product_category, {p} as product_category_name, 1::bigint as products,
                   300::hugeint as total_revenue, 3::hugeint as units_sold,
                   100.00::decimal(18,2) as avg_price, 100.00::decimal(18,2) as revenue_share_pct,
                   100.00::decimal(18,2) as cumulative_revenue_share_pct, 1::bigint as revenue_rank,
                   {p} as top_product_id, {p} as top_3_product_ids""",
        "mart_customer_segments": f"""
            select {p} as spend_segment, {p} as frequency_segment, 2::bigint as customers,
                   300::hugeint as total_revenue, 3::hugeint as purchases,
                   100.00::decimal(18,2) as revenue_share_pct,
                   100.00::decimal(18,2) as customer_share_pct,
                   15.00::decimal(18,2) as avg_historic_clv,
                   null::decimal(18,2) as avg_predicted_clv,
                   100.00::decimal(18,2) as avg_basket_amount,
                   150.00::decimal(18,2) as median_total_spent""",
        "mart_high_value_customers": f"""
            select * from (values
                ({p}, 1::bigint, 1::bigint, 200::bigint, 20.00::decimal(18,2),
                 25.00::decimal(18,2), 2::bigint, 1::bigint, 100.00::decimal(18,2)),
                ({p} || '2', 2::bigint, 2::bigint, 100::bigint, 10.00::decimal(18,2),
                 null::decimal(18,2), 1::bigint, 1::bigint, 100.00::decimal(18,2))
            ) as t(customer_id, spend_rank, clv_rank, total_spent, historic_clv, predicted_clv,
                   purchase_count, distinct_products, avg_purchase_amount)
            cross join (select {p} as spend_segment, {p} as frequency_segment, {p} as gender,
                   {p} as age_band, {p} as age_group, {p} as city_category,
                   {p} as city_category_name, {p} as years_in_city, false as is_married)""",
        "mart_daily_sales": """
            select date '2026-01-02' as ingest_date, 300::hugeint as total_revenue,
                   3::bigint as purchases, 2::bigint as customers, 2::bigint as new_customers,
                   0::bigint as returning_customers, 100.00::decimal(18,2) as avg_purchase_amount,
                   300::hugeint as cumulative_revenue""",
        "mart_city_age_markets": f"""
            select {p} as city_category, {p} as age_band, 2::bigint as customers,
                   300::bigint as total_revenue""",
        "mart_insights_summary": """
            select date '2026-01-02' as as_of_date, 1::bigint as sales_days,
                   300::hugeint as total_revenue, 3::bigint as purchases,
                   100.00::decimal(18,2) as avg_purchase_amount, 2::bigint as customers,
                   1::bigint as products, 20 as top_products_limit,
                   100.00::decimal(38,2) as top_products_revenue_share_pct,
                   date '2026-01-02' as first_ingest_date""",
    }
    assert set(tables) == set(MARTS)
    with duckdb.connect(str(path)) as con:
        for schema in schemas:
            con.execute(f"create schema {schema}")
            for name, select_sql in tables.items():
                if name not in skip:
                    con.execute(f"create table {schema}.{name} as {select_sql}")
    return path


def test_escapes_every_value(tmp_path: Path) -> None:
    db = make_tiny_warehouse(tmp_path / "tiny.duckdb", PAYLOAD)
    text = build_report(db, tmp_path / "out").read_text(encoding="utf-8")
    raw = '<script>alert("pwned")</script>'
    assert raw not in text
    assert "<script>alert(" not in text
    assert str(markupsafe.escape(PAYLOAD)) in text  # the template's autoescape
    page = parse(text)
    # The escaped text reads back as the original value in every table that shows it.
    assert column(page, "table-top-products", "Product") == [PAYLOAD]
    assert column(page, "table-top-products", "Category") == [PAYLOAD]
    assert column(page, "table-top-customers", "Customer") == [PAYLOAD, PAYLOAD + "2"]
    assert column(page, "table-segments", "Spend") == [PAYLOAD]
    assert int(page.cards["revenue"]) == 300
    # Only our own script tags: the two in the head and one per chart.
    assert text.count("<script") == 2 + len(CHART_IDS)


def test_templates_are_package_data() -> None:
    """An installed (not editable) package carries the templates the report renders."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["lakehouse"]
    templates = REPO / "lakehouse" / "templates"
    shipped = {p for pattern in patterns for p in (REPO / "lakehouse").glob(pattern)}
    assert {templates / "insights.html.j2", templates / "report.css"} <= shipped


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.duckdb"
    with pytest.raises(
        ReportError, match=r"no DuckDB warehouse at .*nowhere\.duckdb.*lakehouse build"
    ):
        build_report(missing, tmp_path / "out")
    assert not (tmp_path / "out" / "insights.html").exists()


def test_no_marts_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with pytest.raises(ReportError) as error:
        build_report(empty, tmp_path / "out")
    assert str(error.value) == f"no marts in {empty.resolve()}: run `lakehouse build` first"
    assert not (tmp_path / "out" / "insights.html").exists()


def test_one_missing_mart_is_named(tmp_path: Path) -> None:
    db = make_tiny_warehouse(tmp_path / "partial.duckdb", "x", skip=("mart_daily_sales",))
    with pytest.raises(
        ReportError, match=r"missing marts in .*\(mart_daily_sales\): run `lakehouse build`"
    ):
        build_report(db, tmp_path / "out")


def test_marts_are_read_from_the_schema_that_holds_them(tmp_path: Path) -> None:
    """Where dbt puts the marts is dbt's schema naming (a prefix in production), not the
    report's: a warehouse whose marts live in `analytics_marts` gives the same page."""
    db = make_tiny_warehouse(tmp_path / "prefixed.duckdb", "x", schemas=("analytics_marts",))
    page = parse(build_report(db, tmp_path / "out").read_text(encoding="utf-8"))
    assert int(page.cards["revenue"]) == 300
    assert column(page, "table-top-products", "Product") == ["x"]


def test_marts_in_two_schemas_are_a_clear_error(tmp_path: Path) -> None:
    db = make_tiny_warehouse(tmp_path / "twice.duckdb", "x", schemas=("marts", "old_marts"))
    with pytest.raises(
        ReportError, match=r"more than one schema .*mart_daily_sales in marts, old_marts"
    ):
        build_report(db, tmp_path / "out")
    assert not (tmp_path / "out" / "insights.html").exists()


def test_not_a_duckdb_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.duckdb"
    bogus.write_text("not a database" * 100)
    with pytest.raises(ReportError, match="cannot open"):
        build_report(bogus, tmp_path / "out")


# ---------------------------------------------------------------------------------------------
# In a real browser

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
VIEWPORT_WIDTH = 1280

# Per chart: the SVGs, and the marks drawn in them (bars, lines, heatmap images) with real size.
CHECK_CHARTS_JS = """
(() => {
  const visible = (el) => { const b = el.getBBox(); return b.width > 0 && b.height > 0; };
  // a bar for a tiny value (category 19 is ~0.01%% of category 1's revenue) is drawn with a
  // width but rounds to zero height: it still counts as drawn
  const drawnBar = (el) => el.getBBox().width > 0;
  const count = (div, sel, drawn = visible) =>
    Array.from(div.querySelectorAll(sel)).filter(drawn).length;
  const out = {};
  for (const id of %s) {
    const div = document.getElementById(id);
    if (!div) { out[id] = null; continue; }
    const svgs = Array.from(div.querySelectorAll('svg.main-svg'));
    out[id] = {
      svgs: svgs.length,
      svgChildren: svgs.reduce((n, s) => n + s.childElementCount, 0),
      width: Math.round(div.getBoundingClientRect().width),
      bars: count(div, 'g.barlayer g.point > path', drawnBar),
      lines: count(div, 'g.scatterlayer path.js-line'),
      heatmaps: count(div, 'g.heatmaplayer image'),
    };
  }
  return out;
})()
"""


class CdpError(RuntimeError):
    pass


class Chromium:
    """Headless Chromium driven over the DevTools protocol on --remote-debugging-pipe."""

    def __init__(self, profile: Path, log_file: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire_fds() -> None:  # in the child: Chromium reads fd 3 and writes fd 4
            read_end = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.log_file = log_file
        self._log = log_file.open("wb")
        self.proc = subprocess.Popen(
            [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            close_fds=False,
            preexec_fn=wire_fds,
            start_new_session=True,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, session: str | None = None, timeout: float = 30, **params: Any
    ) -> Any:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CdpError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def open(self, page: Path, timeout: float = 60) -> str:
        """Open a file in a new tab, watching its console and network; return the session id."""
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session: str = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session)
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=VIEWPORT_WIDTH,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.navigate", session, url=page.resolve().as_uri())
        self.wait_for("Page.loadEventFired", timeout=timeout)
        return session

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(self._receive(deadline))

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                raise CdpError(f"no answer from Chromium in time; its log: {self.log_file}")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise CdpError(f"Chromium closed the pipe; its log: {self.log_file}")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        result: dict[str, Any] = json.loads(message)
        return result

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.send("Browser.close", timeout=5)
            self.proc.wait(timeout=10)
        except (CdpError, OSError, subprocess.TimeoutExpired):
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)  # the group we started, by its id
                self.proc.wait(timeout=10)
        finally:
            os.close(self._to_chrome)
            os.close(self._from_chrome)
            self._log.close()


@pytest.fixture
def launch_chromium(tmp_path: Path) -> Iterator[Callable[[], Chromium]]:
    """Start Chromium from inside the test (so a missing browser FAILS the test), close it after."""
    started: list[Chromium] = []

    def launch() -> Chromium:
        if not CHROMIUM.is_file():
            pytest.fail(
                f"{CHROMIUM} is missing: the browser tests need Debian's Chromium, "
                "install it with `apt-get install -y chromium`"
            )
        browser = Chromium(tmp_path / "chromium-profile", tmp_path / "chromium.log")
        started.append(browser)
        return browser

    yield launch
    for browser in started:
        browser.close()


def console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append(str(details.get("exception", {}).get("description", details.get("text"))))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            errors.append(str(params["entry"].get("text")))
    return errors


def outside_requests(events: list[dict[str, Any]]) -> list[str]:
    urls = [
        str(e["params"]["request"]["url"])
        for e in events
        if e.get("method") == "Network.requestWillBeSent"
    ]
    return [u for u in urls if not u.startswith(("file:", "data:", "blob:", "about:"))]


@pytest.mark.browser
def test_renders_in_chromium(
    launch_chromium: Callable[[], Chromium],
    report_file: Path,
    warehouse_duckdb: Path,
    tmp_path: Path,
    story: Story,
) -> None:
    chromium = launch_chromium()
    started = time.monotonic()
    session = chromium.open(report_file)

    db = warehouse_duckdb
    products = sql_value(db, "select count(*) from marts.mart_top_products")
    categories = sql_value(db, "select count(*) from marts.mart_category_performance")
    segments = sql_value(db, "select count(*) from marts.mart_customer_segments")
    days = sql_value(db, "select count(*) from marts.mart_daily_sales")
    expected_bars = {
        "chart-top-products": min(products, 20),
        "chart-category-pareto": categories,
        "chart-customer-segments": 2 * segments,
    }
    # the day-2 batch is the only one with rejected rows: at least one bar per reason
    reasons = sum(1 for n in story.day2_expected["bad_rows_by_reason"].values() if n)

    def rendered() -> dict[str, Any]:
        reply = chromium.send(
            "Runtime.evaluate",
            session,
            expression=CHECK_CHARTS_JS % json.dumps([*CHART_IDS, *HEALTH_CHART_IDS]),
            returnByValue=True,
        )
        value: dict[str, Any] = reply["result"]["value"]
        return value

    def complete(charts: dict[str, Any]) -> bool:
        return all(
            c and c["svgs"] and c["svgChildren"] and (c["bars"] or c["lines"] or c["heatmaps"])
            for c in charts.values()
        ) and all(charts[k]["bars"] >= n for k, n in expected_bars.items())

    deadline = time.monotonic() + 30
    charts = rendered()
    while not complete(charts) and time.monotonic() < deadline:
        time.sleep(0.2)
        charts = rendered()

    # A full-page screenshot, kept as an artefact whatever the assertions say.
    size = chromium.send("Page.getLayoutMetrics", session)["cssContentSize"]
    shot = chromium.send(
        "Page.captureScreenshot",
        session,
        format="png",
        captureBeyondViewport=True,
        clip={"x": 0, "y": 0, "width": VIEWPORT_WIDTH, "height": size["height"], "scale": 1},
    )
    png = base64.b64decode(shot["data"])
    (tmp_path / "insights.png").write_bytes(png)
    ARTEFACT.parent.mkdir(parents=True, exist_ok=True)
    ARTEFACT.write_bytes(png)
    elapsed = time.monotonic() - started

    assert png.startswith(b"\x89PNG") and len(png) > 50_000
    for chart_id in (*CHART_IDS, *HEALTH_CHART_IDS):
        chart = charts[chart_id]
        assert chart is not None, f"{chart_id} is not in the page"
        assert chart["svgs"] >= 1 and chart["svgChildren"] > 0, f"{chart_id} has no plot: {chart}"
        assert chart["width"] > 300, f"{chart_id} is squashed: {chart}"
    for chart_id, bars in expected_bars.items():
        assert charts[chart_id]["bars"] == bars, f"{chart_id}: {charts[chart_id]}"
    assert charts["chart-category-pareto"]["lines"] == 1
    assert charts["chart-market-heatmap"]["heatmaps"] >= 1
    assert charts["chart-clv-distribution"]["bars"] >= 1
    assert charts["chart-daily-sales"]["bars"] >= days, charts["chart-daily-sales"]
    # a duration bar per build that ran dbt (three per target; the fourth found nothing new)
    assert charts["chart-build-history"]["bars"] >= 2 * 3, charts["chart-build-history"]
    assert charts["chart-rejections"]["bars"] >= reasons, charts["chart-rejections"]
    assert console_errors(chromium.events) == []
    assert outside_requests(chromium.events) == []
    assert elapsed < 60


@pytest.mark.browser
def test_browser_checks_catch_errors(
    launch_chromium: Callable[[], Chromium], tmp_path: Path
) -> None:
    """The console and network checks above are not vacuous: a broken page trips both."""
    chromium = launch_chromium()
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><body>"
        '<img src="http://127.0.0.1:9/pixel.png">'
        '<script>console.error("report-boom"); throw new Error("report-bang");</script>'
        "</body></html>",
        encoding="utf-8",
    )
    chromium.open(broken)
    errors = console_errors(chromium.events)
    assert any("report-boom" in e for e in errors), errors
    assert any("report-bang" in e for e in errors), errors
    assert outside_requests(chromium.events) == ["http://127.0.0.1:9/pixel.png"]
