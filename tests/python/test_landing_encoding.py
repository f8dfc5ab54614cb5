"""Properties of the pieces under the landing: whatever the CSV (quotes, odd characters, column
order, line endings, block boundaries), Bronze holds the same values as Python's csv module reads
from the input; and the parallel gzip is ordinary, deterministic gzip."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingestion import bronze_csv
from ingestion.gzip_parts import ParallelGzip, crc32_combine
from ingestion.landing import land_file
from tests.python.ingestion_fixtures import CANONICAL, landed, local_target

# Field text without line breaks (a quoted line break is refused, tested elsewhere).
FIELD = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n\x00"),
    max_size=6,
)
TABLE = st.lists(st.lists(FIELD, min_size=10, max_size=10), min_size=1, max_size=25)


class _Sink(io.BytesIO):
    pass


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=TABLE,
    order=st.permutations(list(range(10))),
    crlf=st.booleans(),
    quote_all=st.booleans(),
    block=st.sampled_from([64, 200, 4 << 20]),
    part_bytes=st.sampled_from([1024, 16 * 2**20]),
)
def test_bronze_holds_exactly_what_the_csv_module_reads(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    rows: list[list[str]],
    order: list[int],
    crlf: bool,
    quote_all: bool,
    block: int,
    part_bytes: int,
) -> None:
    # given any table written by the csv module, columns in any order, either line ending
    monkeypatch.setattr(bronze_csv, "BLOCK_BYTES", block)
    text = io.StringIO()
    writer = csv.writer(
        text,
        lineterminator="\r\n" if crlf else "\n",
        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL,
    )
    writer.writerow([CANONICAL[i] for i in order])
    for row in rows:
        writer.writerow([row[i] for i in order])
    folder = tmp_path_factory.mktemp("prop")
    source = folder / "table.csv"
    source.write_bytes(text.getvalue().encode("utf-8"))
    # when it is landed
    target = local_target(folder)
    result = land_file(
        source, target.destination, ingest_date=dt.date(2026, 1, 1), part_bytes=part_bytes
    )
    # then Bronze has each row once, in canonical order, with its line, values untouched
    assert landed(target.objects(), result.batch_id).rows() == [
        [*row, str(number)] for number, row in enumerate(rows, start=2)
    ]


@given(a=st.binary(max_size=300), b=st.binary(max_size=300))
def test_crc32_combine_equals_the_crc_of_the_concatenation(a: bytes, b: bytes) -> None:
    assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


def test_parallel_gzip_is_one_ordinary_deterministic_gzip_member() -> None:
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "walmart_head_2000rows.csv"
    data = fixture.read_bytes() * 3
    outputs = []
    for workers in (1, 3):
        sink = _Sink()
        with ThreadPoolExecutor(workers) as pool:
            compressor = ParallelGzip(pool, level=1, max_pending=2)
            member = compressor.open(sink)
            for start in range(0, len(data), 40_000):  # segments smaller and larger than 32 KiB
                compressor.add(member, data[start : start + 40_000])
            compressor.add(member, b"x" * 10)
            compressor.close(member)
            compressor.wait()
        outputs.append(sink.getvalue())
    assert outputs[0] == outputs[1]  # the same bytes whatever the number of threads
    decompressor = zlib.decompressobj(31)
    assert decompressor.decompress(outputs[0]) == data + b"x" * 10
    assert decompressor.eof and decompressor.unused_data == b""
    assert gzip.decompress(outputs[0]) == data + b"x" * 10  # CRC and size checked here
    # segments primed with the 32 KiB before them compress as well as one stream
    assert len(outputs[0]) <= 1.01 * len(zlib.compress(data, 1, 31))


def test_fixture_file_is_real_and_unchanged() -> None:
    # the tests' expectations assume the committed fixture; a changed file is a changed suite
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "walmart_head_2000rows.csv"
    lines = fixture.read_bytes().split(b"\n")
    assert lines[0].decode().split(",") == list(CANONICAL)
    assert len(lines) == 2002 and lines[-1] == b""
