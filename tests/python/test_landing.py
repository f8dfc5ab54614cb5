"""Landing files in Bronze (ingestion/landing.py), against a temp folder AND S3 on loopback.

What landed is read back from the file system or with boto3 directly (tests/python/
ingestion_fixtures.py), never through the Destination under test; expected rows come from the
input parsed by Python's csv module.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import re
import subprocess
import sys
import threading
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from ingestion import bronze_csv
from ingestion.errors import (
    EmptyFileError,
    EncodingError,
    HeaderError,
    IngestionError,
    MalformedCsvError,
    NotCsvError,
    RaggedRowError,
    RejectedFileError,
    SourceError,
)
from ingestion.landing import LandingResult, land_file, land_paths
from tests.python.ingestion_fixtures import (
    CANONICAL,
    FIXTURE,
    FIXTURE_ROWS,
    PROJECT_DIR,
    SHARED_ROWS,
    Hooked,
    Target,
    fixture_table,
    landed,
    local_target,
    moto_s3_fixture,  # noqa: F401 - the moto_s3 fixture
    source_rows,
    target_fixture,  # noqa: F401 - the target fixture
    write_csv,
)

DAY = dt.date(2025, 6, 30)  # never today: a default date must not pass for it
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def expected_rows(path: Path) -> list[list[str]]:
    return [[*fields, str(line)] for line, fields in source_rows(path)]


# --------------------------------------------------------------------------- the happy path


def test_every_row_lands_once_with_its_line_number_and_exact_bytes(target: Target) -> None:
    # given the real 2,000-row fixture
    sent = FIXTURE.read_bytes()
    # when it is landed
    result = land_file(FIXTURE, target.destination, ingest_date=DAY)
    # then every input row is in Bronze exactly once, in order, with its line number
    assert result == LandingResult(
        batch_id=sha256(sent)[:16],
        status="landed",
        ingest_date=DAY,
        rows=FIXTURE_ROWS,
        parts=1,
        source_name=FIXTURE.name,
        bytes=len(sent),
        column_order_rewritten=False,
        location=result.location,
    )
    objects = target.objects()
    batch = landed(objects, result.batch_id)
    assert batch.rows() == expected_rows(FIXTURE)
    # and the part's bytes are the bytes sent, line by line, plus ",<line>", LF endings
    part = next(iter(batch.parts.values()))
    input_lines = sent.decode().splitlines()
    assert part.decode().split("\n") == [
        ",".join((*CANONICAL, "source_line_number")),
        *(f"{line},{number}" for number, line in enumerate(input_lines[1:], start=2)),
        "",
    ]
    # and nothing but the batch folder and the ledger entry is left behind
    prefix = f"walmart_sales/ingest_date={DAY}/batch_id={result.batch_id}/"
    assert set(objects) == {
        prefix + "part-00000.csv.gz",
        prefix + "_manifest.json",
        f"_ledger/walmart_sales/{result.batch_id}.json",
    }
    assert target.open_multipart_uploads() == []


def test_ledger_entry_and_manifest_describe_the_batch(target: Target) -> None:
    sent = FIXTURE.read_bytes()
    result = land_file(FIXTURE, target.destination, ingest_date=DAY, part_bytes=32 * 1024)
    objects = target.objects()
    batch = landed(objects, result.batch_id)

    # the ledger entry: ONE line of JSON with exactly the contract's keys
    assert batch.ledger_text is not None
    assert batch.ledger_text.count("\n") == 1 and batch.ledger_text.endswith("\n")
    ledger = batch.ledger
    assert ledger is not None
    assert list(ledger) == [
        "batch_id", "ingest_date", "source_name", "source_sha256",
        "rows", "bytes", "parts", "ingested_at",
    ]  # fmt: skip
    assert ledger["batch_id"] == sha256(sent)[:16]
    assert ledger["ingest_date"] == "2025-06-30"
    assert ledger["source_name"] == FIXTURE.name
    assert ledger["source_sha256"] == sha256(sent)
    assert ledger["rows"] == FIXTURE_ROWS
    assert ledger["bytes"] == len(sent)
    assert ledger["parts"] == len(batch.parts) > 1
    assert TIMESTAMP.match(ledger["ingested_at"])

    # the manifest: what was sent, and each part with its own checksum
    manifest = batch.manifest
    assert manifest["source_name"] == FIXTURE.name
    assert manifest["source_sha256"] == sha256(sent)
    assert manifest["rows"] == FIXTURE_ROWS and manifest["bytes"] == len(sent)
    assert manifest["header"] == sent.decode().splitlines()[0]
    assert manifest["column_order_rewritten"] is False
    assert manifest["ingest_date"] == "2025-06-30"
    assert manifest["ingested_at"] == ledger["ingested_at"]
    assert [p["key"] for p in manifest["parts"]] == sorted(batch.parts)
    for entry in manifest["parts"]:
        stored = objects[entry["key"]]
        assert entry["bytes"] == len(stored)
        assert entry["sha256"] == sha256(stored)
        assert entry["rows"] == batch.parts[entry["key"]].count(b"\n") - 1
    assert sum(p["rows"] for p in manifest["parts"]) == FIXTURE_ROWS


def test_parts_are_bounded_in_size_and_together_hold_every_row(target: Target) -> None:
    # given a part size much smaller than the file
    limit = 16 * 1024
    result = land_file(FIXTURE, target.destination, ingest_date=DAY, part_bytes=limit)
    batch = landed(target.objects(), result.batch_id)
    # then the rows are spread over several parts, each a complete CSV of at most `limit` bytes
    assert result.parts == len(batch.parts) >= FIXTURE.stat().st_size // limit
    assert sorted(batch.parts) == [
        f"walmart_sales/ingest_date={DAY}/batch_id={result.batch_id}/part-{n:05d}.csv.gz"
        for n in range(result.parts)
    ]
    for csv_bytes in batch.parts.values():
        assert len(csv_bytes) <= limit
        assert csv_bytes.startswith(b"User_ID,Product_ID,") and csv_bytes.endswith(b"\n")
    # and in part order they are the input rows, none lost or repeated
    assert batch.rows() == expected_rows(FIXTURE)


def test_the_same_input_always_yields_the_same_bytes(tmp_path: Path) -> None:
    first = local_target(tmp_path / "one")
    second = local_target(tmp_path / "two")
    a = land_file(FIXTURE, first.destination, ingest_date=DAY, part_bytes=20_000)
    b = land_file(FIXTURE, second.destination, ingest_date=DAY, part_bytes=20_000)
    parts_a = {k: v for k, v in first.objects().items() if "/part-" in k}
    parts_b = {k: v for k, v in second.objects().items() if "/part-" in k}
    assert a.batch_id == b.batch_id and len(parts_a) > 1
    assert parts_a == parts_b
    for stored in parts_a.values():
        assert stored[4:8] == b"\0\0\0\0"  # gzip mtime 0
        # one gzip member per part (what Hadoop's codec expects), not several concatenated
        decompressor = zlib.decompressobj(31)
        decompressor.decompress(stored)
        assert decompressor.eof and decompressor.unused_data == b""


@pytest.mark.skipif(not SHARED_ROWS.exists(), reason="needs ../shared/data (absent on clones)")
def test_all_29116_real_rows_round_trip(tmp_path: Path) -> None:
    local = local_target(tmp_path)
    result = land_file(SHARED_ROWS, local.destination, ingest_date=DAY, part_bytes=256 * 1024)
    assert result.rows == 29_116 and result.parts > 1
    assert landed(local.objects(), result.batch_id).rows() == expected_rows(SHARED_ROWS)


def test_values_are_landed_as_sent_not_judged(target: Target, tmp_path: Path) -> None:
    # given rows whose values Silver will refuse, and values with spaces around them
    header, rows = fixture_table()
    rows = [list(r) for r in rows[:5]]
    rows[0][9] = "abc"
    rows[1][2] = " M "
    rows[2] = ["", "", "", "", "", "", "", "", "", ""]
    rows[3][1] = "P0006 9042  "
    rows[4][3] = "ünïcødé"
    source = write_csv(tmp_path / "odd values.csv", header, rows)
    # when landed, then every value is byte for byte what was sent
    result = land_file(source, target.destination, ingest_date=DAY)
    batch = landed(target.objects(), result.batch_id)
    assert batch.rows() == [[*row, str(n)] for n, row in enumerate(rows, start=2)]


def test_columns_in_another_order_are_rewritten_to_canonical_order(
    target: Target, tmp_path: Path
) -> None:
    # given the fixture with its columns reversed, and names in other case with spaces
    header, rows = fixture_table()
    order = list(reversed(range(10)))
    sent_header = [f" {header[i].upper()} " if i % 2 else header[i].lower() for i in order]
    source = write_csv(
        tmp_path / "reordered.csv", sent_header, [[r[i] for i in order] for r in rows]
    )
    # when landed
    result = land_file(source, target.destination, ingest_date=DAY, part_bytes=20_000)
    # then Bronze has the canonical order and each value still lines up with its column
    assert result.column_order_rewritten is True
    batch = landed(target.objects(), result.batch_id)
    assert batch.rows() == [[*row, str(n)] for n, row in enumerate(rows, start=2)]
    assert batch.manifest["column_order_rewritten"] is True
    assert batch.manifest["header"] == ",".join(sent_header)


def test_bom_crlf_and_blank_lines_are_accepted(target: Target, tmp_path: Path) -> None:
    # given a file with a UTF-8 BOM, CRLF line endings and blank lines (physical lines count)
    header, rows = fixture_table()
    lines = [",".join(header), *(",".join(r) for r in rows[:6])]
    lines.insert(3, "")
    lines.insert(6, "")
    source = tmp_path / "windows.csv"
    source.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n\r\n").encode())
    result = land_file(source, target.destination, ingest_date=DAY)
    batch = landed(target.objects(), result.batch_id)
    part = next(iter(batch.parts.values()))
    # then the parts are LF only, values carry no CR, and line numbers are the physical lines
    assert b"\r" not in part
    assert batch.rows() == expected_rows(source)
    assert [row[-1] for row in batch.rows()] == ["2", "3", "5", "6", "8", "9"]
    assert batch.manifest["header"] == ",".join(header)
    assert batch.manifest["utf8_bom"] is True and batch.manifest["line_endings"] == "CRLF"
    assert result.rows == 6


def test_quoted_fields_keep_their_values_in_either_column_order(
    target: Target, tmp_path: Path
) -> None:
    # given quoted values with commas and doubled quotes, once in canonical order, once reordered
    header, rows = fixture_table()
    rows = [list(r) for r in rows[:4]]
    rows[0][1] = '"P00,069"'
    rows[1][9] = '"8""370"'
    rows[2][3] = '"0-17"'
    canonical = write_csv(tmp_path / "quoted.csv", header, rows)
    order = [9, 0, 1, 2, 3, 4, 5, 6, 7, 8]
    reordered = write_csv(
        tmp_path / "quoted_reordered.csv",
        [header[i] for i in order],
        [[r[i] for i in order] for r in rows],
    )
    values = [["P00,069" if v == '"P00,069"' else v for v in row] for row in rows]
    values[1][9] = '8"370'
    values[2][3] = "0-17"
    for source in (canonical, reordered):
        result = land_file(source, target.destination, ingest_date=DAY)
        batch = landed(target.objects(), result.batch_id)
        assert batch.rows() == [[*row, str(n)] for n, row in enumerate(values, start=2)]
    # and in canonical order the quoted bytes are kept exactly as sent
    result = land_file(canonical, target.destination, ingest_date=DAY)
    part = next(iter(landed(target.objects(), result.batch_id).parts.values()))
    assert b'\n1000001,"P00,069",F' in part


def test_a_gzip_file_lands_the_same_rows(target: Target, tmp_path: Path) -> None:
    sent = gzip.compress(FIXTURE.read_bytes(), mtime=0)
    source = tmp_path / "walmart.csv.gz"
    source.write_bytes(sent)
    result = land_file(source, target.destination, ingest_date=DAY)
    assert result.batch_id == sha256(sent)[:16]  # the bytes the user sent
    batch = landed(target.objects(), result.batch_id)
    assert batch.rows() == expected_rows(FIXTURE)
    assert batch.ledger is not None and batch.ledger["bytes"] == len(sent)


def test_small_blocks_keep_line_numbers_across_block_boundaries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given blocks much smaller than the file (so rows, CRLFs and blanks straddle them)
    monkeypatch.setattr(bronze_csv, "BLOCK_BYTES", 1000)
    header, rows = fixture_table()
    lines = [",".join(header), *(",".join(r) for r in rows)]
    for at in (40, 41, 700, 1500):
        lines.insert(at, "")
    source = tmp_path / "crlf.csv"
    source.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    local = local_target(tmp_path)
    result = land_file(source, local.destination, ingest_date=DAY, part_bytes=10_000)
    assert landed(local.objects(), result.batch_id).rows() == expected_rows(source)
    # and an error found after several parts were written names its line, and nothing lands
    lines[1700] += ",extra"
    source.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    fresh = local_target(tmp_path / "fresh")
    assert fresh.root is not None
    (fresh.root / "walmart_sales").mkdir(parents=True)  # as Spark's `create table` leaves it
    with pytest.raises(RaggedRowError, match=r"line 1701: 11 fields, the header has 10"):
        land_file(source, fresh.destination, ingest_date=DAY, part_bytes=10_000)
    assert {k.split("/")[0] for k in fresh.objects()} == {"_rejected"}
    # no partition folder is left for Spark to find, and the table folder stays
    assert list((fresh.root / "walmart_sales").iterdir()) == []


# --------------------------------------------------------------------------- bad input


def _table(
    transform: Callable[[list[str], list[list[str]]], tuple[list[str], list[list[str]]]],
) -> bytes:
    header, rows = fixture_table()
    header, rows = transform(list(header), [list(r) for r in rows])
    return ("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n").encode()


def _with_line(number: int, change: Callable[[bytes], bytes]) -> bytes:
    lines = FIXTURE.read_bytes().split(b"\n")
    lines[number - 1] = change(lines[number - 1])
    return b"\n".join(lines)


def _zip() -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("walmart.csv", FIXTURE.read_bytes())
    return buffer.getvalue()


HEADER = FIXTURE.read_text().splitlines()[0]
BAD_INPUTS: dict[str, tuple[Callable[[], bytes], type[IngestionError], int, str]] = {
    "empty": (lambda: b"", EmptyFileError, 1, "the file is empty"),
    "header only": (lambda: HEADER.encode() + b"\n", EmptyFileError, 2, "no data rows"),
    "header and blank lines": (
        lambda: HEADER.encode() + b"\r\n\r\n\n", EmptyFileError, 2, "no data rows",
    ),
    "missing column": (
        lambda: _table(lambda h, rs: (h[:-1], [r[:-1] for r in rs])),
        HeaderError, 1, "missing Purchase",
    ),
    "extra column": (
        lambda: _table(lambda h, rs: ([*h, "Discount"], [[*r, "5"] for r in rs])),
        HeaderError, 1, "unknown 'Discount'",
    ),
    "duplicate column": (
        lambda: _table(lambda h, rs: ([*h[:3], "gender", *h[4:]], rs)),
        HeaderError, 1, "missing Age; duplicated 'gender'",
    ),
    "unknown column": (
        lambda: _table(lambda h, rs: ([*h[:-1], "Amount"], rs)),
        HeaderError, 1, "missing Purchase; unknown 'Amount'",
    ),
    "json": (lambda: b'{"User_ID": 1}\n', HeaderError, 1, "does not have the expected columns"),
    "latin-1 byte": (
        lambda: _with_line(5, lambda line: line.replace(b",F,", b",\xe9,")),
        EncodingError, 5, "byte 0xE9 at column 19 is not UTF-8",
    ),
    "utf-16": (lambda: FIXTURE.read_text().encode("utf-16"), EncodingError, 1, "UTF-16"),
    "short row": (
        lambda: _with_line(7, lambda line: line.rsplit(b",", 1)[0]),
        RaggedRowError, 7, "9 fields, the header has 10",
    ),
    "long row": (
        lambda: _with_line(1500, lambda line: line + b",1"),
        RaggedRowError, 1500, "11 fields, the header has 10",
    ),
    "single field row": (lambda: _with_line(9, lambda line: b"  "), RaggedRowError, 9, "1 field,"),
    "png": (lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)), NotCsvError, 1, "a PNG image"),
    "zip": (_zip, NotCsvError, 1, "a zip archive"),
    "nul byte": (
        lambda: _with_line(3, lambda line: line[:4] + b"\0" + line[4:]),
        NotCsvError, 3, "NUL byte at column 5",
    ),
    "random binary": (lambda: b"\x00\xff\x10" * 100, NotCsvError, 1, "NUL byte"),
    "corrupt gzip": (
        lambda: gzip.compress(FIXTURE.read_bytes())[:8_000],
        NotCsvError, 0, "the gzip data is damaged",
    ),
    "stray carriage return": (
        lambda: _with_line(4, lambda line: line.replace(b",", b",\r", 1)),
        MalformedCsvError, 4, "carriage return (CR) at column 9",
    ),
    "line break inside quotes": (
        lambda: _with_line(6, lambda line: line.replace(b",P00", b',"P00\n', 1) + b'"'),
        MalformedCsvError, 6, "quoted field is not closed",
    ),
    "unclosed quote": (
        lambda: _with_line(6, lambda line: line.replace(b",", b',"', 1)),
        MalformedCsvError, 6, "quoted field is not closed",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_a_bad_file_is_refused_with_line_and_problem_and_kept_aside(
    case: str, target: Target, tmp_path: Path
) -> None:
    make, error_class, line, problem = BAD_INPUTS[case]
    sent = make()
    source = tmp_path / "sales 2026.csv"
    source.write_bytes(sent)
    # when it is landed
    with pytest.raises(error_class) as caught:
        land_file(source, target.destination, ingest_date=DAY)
    # then the message names the file, the line and the problem
    message = str(caught.value)
    if line:
        assert message.startswith(f"{source}: line {line}: "), message
    else:  # the line where the gzip stream broke: somewhere after the header
        assert re.match(rf"^{re.escape(str(source))}: line \d+: ", message), message
    assert problem in message
    # and nothing landed except the file as sent, with the reason beside it
    folder = f"_rejected/walmart_sales/{DAY}/{sha256(sent)[:16]}/"
    objects = target.objects()
    assert set(objects) == {folder + source.name, folder + "reason.json"}
    assert objects[folder + source.name] == sent
    reason = json.loads(objects[folder + "reason.json"])
    assert reason["file"] == source.name
    assert reason["line"] == caught.value.line
    assert reason["problem"] in message
    assert TIMESTAMP.match(reason["detected_at"])
    assert isinstance(caught.value, RejectedFileError)
    assert caught.value.rejected_at == target.destination.location(folder + source.name)
    assert target.open_multipart_uploads() == []


def test_a_missing_source_is_a_source_error(target: Target, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        land_file(tmp_path / "nope.csv", target.destination)
    assert target.objects() == {}


def test_a_file_that_changes_while_landing_is_not_committed(tmp_path: Path) -> None:
    # given a file that grows while it is being read (the user's export is still running)
    source = tmp_path / "growing.csv"
    source.write_bytes(FIXTURE.read_bytes())

    def append(_: int) -> None:
        with open(source, "ab") as file:
            file.write(b"1000001,P00069042,F,0-17,10,A,2,0,3,8370\n")

    local = local_target(tmp_path)
    with pytest.raises(SourceError, match="changed while it was being landed"):
        land_file(source, local.destination, ingest_date=DAY, progress=append)
    assert local.objects() == {}


# --------------------------------------------------------------------------- idempotency


def test_landing_the_same_file_twice_lands_it_once(target: Target) -> None:
    first = land_file(FIXTURE, target.destination, ingest_date=DAY)
    before = target.objects()
    # when the same bytes are landed again, even on another day
    second = land_file(FIXTURE, target.destination, ingest_date=DAY + dt.timedelta(days=1))
    # then nothing is written and the result points at the first landing
    assert second.status == "already_landed"
    assert (second.batch_id, second.ingest_date, second.rows, second.parts) == (
        first.batch_id, DAY, FIXTURE_ROWS, first.parts,
    )  # fmt: skip
    assert target.objects() == before
    assert [k for k in before if k.startswith("_ledger/")] == [
        f"_ledger/walmart_sales/{first.batch_id}.json"
    ]


def test_two_landings_racing_to_commit_end_with_one_batch(target: Target) -> None:
    # given two threads that both get past the "already landed?" check, and are held at the
    # ledger write until both are there
    barrier = threading.Barrier(2, timeout=30)

    def hold_at_ledger(key: str) -> None:
        if key.startswith("_ledger/"):
            barrier.wait()

    results: list[LandingResult] = []
    errors: list[BaseException] = []

    def land() -> None:
        try:
            hooked = Hooked(target.destination, before_write=hold_at_ledger)
            results.append(land_file(FIXTURE, hooked, ingest_date=DAY, part_bytes=20_000))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=land) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    # then one landed and one found it landed; one ledger entry; every row exactly once
    assert sorted(r.status for r in results) == ["already_landed", "landed"]
    objects = target.objects()
    assert [k for k in objects if k.startswith("_ledger/")] == [
        f"_ledger/walmart_sales/{results[0].batch_id}.json"
    ]
    batch = landed(objects, results[0].batch_id)
    assert batch.rows() == expected_rows(FIXTURE)
    assert batch.ledger is not None and batch.manifest["ingested_at"] == batch.ledger["ingested_at"]
    assert not [k for k in objects if k.startswith("_inflight/") or "/." in k]


CHILD = """
import json, os, sys, time
from pathlib import Path
from ingestion.landing import land_file
from tests.python.ingestion_fixtures import FIXTURE, Hooked, open_destination

spec, sync, mode = json.loads(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]

def hold_at_ledger(key):
    # both processes get here before either writes the ledger entry
    if key.startswith("_ledger/"):
        (sync / f"ready-{os.getpid()}").touch()
        deadline = time.monotonic() + 30
        while len(list(sync.glob("ready-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)

def die_at_third_part(key):
    if key.endswith("/part-00002.csv.gz"):
        os._exit(9)  # no cleanup, no finally: a killed process

hooks = {"race": {"before_write": hold_at_ledger}, "kill": {"before_commit": die_at_third_part}}
destination = Hooked(open_destination(spec), **hooks[mode])
day = __import__("datetime").date.fromisoformat(sys.argv[4])
result = land_file(FIXTURE, destination, ingest_date=day, part_bytes=20_000)
print(result.status)
"""


def run_children(target: Target, mode: str, count: int, sync: Path) -> list[subprocess.Popen[str]]:
    sync.mkdir(exist_ok=True)
    return [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(target.spec()), str(sync), mode, str(DAY)],
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]


def test_two_processes_landing_the_same_file_at_once_end_with_one_batch(
    target: Target, tmp_path: Path
) -> None:
    # given two processes that both pass the "already landed?" check and meet at the ledger
    children = run_children(target, "race", 2, tmp_path / "sync")
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    # then exactly one landed the batch, and it holds every row exactly once
    assert sorted(out.strip() for out, _ in outputs) == ["already_landed", "landed"]
    assert len(list((tmp_path / "sync").glob("ready-*"))) == 2  # they really did race
    objects = target.objects()
    ledgers = [k for k in objects if k.startswith("_ledger/")]
    assert len(ledgers) == 1
    batch = landed(objects, json.loads(objects[ledgers[0]])["batch_id"])
    assert batch.rows() == expected_rows(FIXTURE)


def test_a_killed_process_leaves_no_batch_and_a_rerun_completes(tmp_path: Path) -> None:
    local = local_target(tmp_path)
    # given a landing process killed while publishing its parts
    (child,) = run_children(local, "kill", 1, tmp_path / "sync")
    child.communicate(timeout=120)
    assert child.returncode == 9
    objects = local.objects()
    assert objects and not [k for k in objects if k.startswith("_ledger/")]
    for key, stored in objects.items():
        if key.rsplit("/", 1)[-1].startswith("part-"):
            gzip.decompress(stored)  # whatever is under a final name is whole
    # when it is landed again, then the batch is complete and exact
    result = land_file(FIXTURE, local.destination, ingest_date=DAY, part_bytes=20_000)
    objects = local.objects()
    visible = {k for k in objects if not k.rsplit("/", 1)[-1].startswith(".")}
    prefix = f"walmart_sales/ingest_date={DAY}/batch_id={result.batch_id}/"
    assert visible == {
        *(f"{prefix}part-{n:05d}.csv.gz" for n in range(result.parts)),
        prefix + "_manifest.json",
        f"_ledger/walmart_sales/{result.batch_id}.json",
    }
    assert landed(objects, result.batch_id).rows() == expected_rows(FIXTURE)


# --------------------------------------------------------------------------- crashes


def crash_at_part(number: int) -> Callable[[str], None]:
    def hook(key: str) -> None:
        if key.endswith(f"/part-{number:05d}.csv.gz"):
            raise RuntimeError("injected crash")

    return hook


def test_a_crash_after_the_first_part_commits_nothing_and_a_rerun_completes(
    target: Target,
) -> None:
    # given a landing that dies after its first part is published
    crashing = Hooked(target.destination, before_commit=crash_at_part(1))
    with pytest.raises(RuntimeError, match="injected crash"):
        land_file(FIXTURE, crashing, ingest_date=DAY, part_bytes=20_000)
    # then there is no ledger entry (Silver sees no batch) and every visible part is whole
    objects = target.objects()
    assert not [k for k in objects if k.startswith("_ledger/")]
    assert not [k for k in objects if k.rsplit("/", 1)[-1].startswith(".")]
    for key, stored in objects.items():
        if "/part-" in key:
            gzip.decompress(stored)  # complete, or it would raise
    assert target.open_multipart_uploads() == []
    # when the same file is landed again
    result = land_file(FIXTURE, target.destination, ingest_date=DAY, part_bytes=20_000)
    # then the batch is complete: every row exactly once, and nothing left in flight
    assert result.status == "landed"
    objects = target.objects()
    assert landed(objects, result.batch_id).rows() == expected_rows(FIXTURE)
    assert not [k for k in objects if k.startswith("_inflight/")]


def test_a_rerun_of_a_crashed_batch_never_leaves_rows_under_two_dates(tmp_path: Path) -> None:
    local = local_target(tmp_path)
    crashing = Hooked(local.destination, before_commit=crash_at_part(2))
    with pytest.raises(RuntimeError):
        land_file(FIXTURE, crashing, ingest_date=DAY, part_bytes=20_000)
    assert any(f"ingest_date={DAY}/" in k for k in local.objects())

    # re-run without a date (say, the next morning): the batch is finished where it started
    resumed = land_file(FIXTURE, local.destination, part_bytes=20_000)
    assert resumed.ingest_date == DAY
    assert {k.split("/")[1] for k in local.objects() if k.startswith("walmart_sales/")} == {
        f"ingest_date={DAY}"
    }

    # a crashed batch re-landed with an explicit other date moves there entirely
    other = local_target(tmp_path / "other")
    with pytest.raises(RuntimeError):
        land_file(FIXTURE, Hooked(other.destination, before_commit=crash_at_part(2)),
                  ingest_date=DAY, part_bytes=20_000)  # fmt: skip
    later = DAY + dt.timedelta(days=3)
    moved = land_file(FIXTURE, other.destination, ingest_date=later, part_bytes=20_000)
    objects = other.objects()
    assert {k.split("/")[1] for k in objects if k.startswith("walmart_sales/")} == {
        f"ingest_date={later}"
    }
    assert landed(objects, moved.batch_id).rows() == expected_rows(FIXTURE)


def test_a_rerun_with_another_part_size_leaves_no_stale_parts(tmp_path: Path) -> None:
    local = local_target(tmp_path)
    with pytest.raises(RuntimeError):
        land_file(FIXTURE, Hooked(local.destination, before_commit=crash_at_part(3)),
                  ingest_date=DAY, part_bytes=8_000)  # fmt: skip
    result = land_file(FIXTURE, local.destination, ingest_date=DAY, part_bytes=50_000)
    batch = landed(local.objects(), result.batch_id)
    assert len(batch.parts) == result.parts == 2
    assert batch.rows() == expected_rows(FIXTURE)


# --------------------------------------------------------------------------- many files


def test_land_paths_lands_a_folder_and_reports_bad_files(target: Target, tmp_path: Path) -> None:
    folder = tmp_path / "incoming"
    folder.mkdir()
    header, rows = fixture_table()
    write_csv(folder / "a.csv", header, rows[:10])
    (folder / "b.CSV.GZ").write_bytes(
        gzip.compress(write_csv(tmp_path / "b.csv", header, rows[10:30]).read_bytes())
    )
    (folder / "c.csv").write_bytes(b"not,a,header\n1,2,3\n")
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.csv").write_text("ignored")
    seen: list[int] = []
    failures: list[tuple[str, str]] = []
    results = land_paths(
        [folder], target.destination, DAY, progress=seen.append,
        on_error=lambda path, error: failures.append((path.name, type(error).__name__)),
    )  # fmt: skip
    assert [(r.source_name, r.rows) for r in results] == [("a.csv", 10), ("b.CSV.GZ", 20)]
    assert failures == [("c.csv", "HeaderError")]
    total = sum((folder / n).stat().st_size for n in ("a.csv", "b.CSV.GZ", "c.csv"))
    assert seen == sorted(seen) and seen[-1] == total
    # without on_error the first failure is raised
    with pytest.raises(HeaderError):
        land_paths([folder / "c.csv"], target.destination, DAY)
    empty = tmp_path / "empty-folder"
    empty.mkdir()
    with pytest.raises(SourceError, match=r"no \.csv or \.csv\.gz file"):
        land_paths([empty], target.destination)


def test_progress_reports_bytes_read_up_to_the_file_size(tmp_path: Path) -> None:
    seen: list[int] = []
    land_file(FIXTURE, local_target(tmp_path).destination, progress=seen.append)
    assert seen and seen == sorted(seen) and seen[-1] == FIXTURE.stat().st_size
