"""Structural checks on a file before it lands: is it CSV text with the Bronze columns?

Only the structure is judged here (what Spark would otherwise silently misread); row values are
Silver's business, so ``abc`` as a Purchase passes. Every check raises a `RejectedFileError`
subclass whose message names the file, the line and the problem.

Line numbers are physical lines of the file as sent: the header is line 1, the first data row
line 2. Data arrive in *blocks* (see `ingestion.bronze_csv`): a block is a run of whole lines, each
preceded by its ``\\n`` (``b"\\nrow\\nrow"``), so the element before the n-th newline of a block is
line ``first_line + n``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

from ingestion.errors import (
    EmptyFileError,
    EncodingError,
    HeaderError,
    MalformedCsvError,
    NotCsvError,
    RaggedRowError,
)
from ingestion.schema import EXPECTED_COLUMNS

UTF8_BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
#: A header line longer than this is not a CSV header (and probably not text at all).
MAX_HEADER_BYTES = 1 << 20

# Leading bytes of formats people send by mistake, and what to call them in the message.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook is one too)"),
    (b"PK\x05\x06", "an empty zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Office document (.xls)"),
    (b"PAR1", "a Parquet file"),
    (b"ORC", "an ORC file"),
    (b"Obj\x01", "an Avro file"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
    (b"BZh", "a bzip2 archive"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3\x00", "an SQLite database"),
)


@dataclass(frozen=True)
class Header:
    """A checked header: which column of the file holds each canonical column."""

    text: str
    """The header line as sent (decoded, without BOM or line ending)."""
    order: tuple[int, ...]
    """``order[j]`` is the position in the file of ``EXPECTED_COLUMNS[j]``."""
    bom: bool

    @property
    def rewritten(self) -> bool:
        """True when the file's columns are in another order and Bronze gets them reordered."""
        return self.order != tuple(range(len(EXPECTED_COLUMNS)))


def sniff_format(file: str, head: bytes) -> str:
    """``"gzip"`` or ``"text"`` from the first bytes; `NotCsvError` for known binary formats.

    UTF-16 text gets an `EncodingError` (it is text, just not UTF-8).
    """
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise EncodingError(file, "the file is UTF-16 text; save it as UTF-8", line=1)
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            if magic == b"BZh" and head[4:10] != b"1AY&SY":
                continue
            raise NotCsvError(file, f"this is {kind}, not a CSV file", line=1)
    return "text"


def check_header(file: str, line: bytes) -> Header:
    """Check the first line (without its ``\\n``) against the ten Bronze columns.

    Names are compared forgiving case and surrounding spaces; the same ten in another order are
    accepted (Bronze gets them in canonical order). Anything else raises a `HeaderError`.
    """
    bom = line.startswith(UTF8_BOM)
    if bom:
        line = line[len(UTF8_BOM) :]
    if line.endswith(b"\r"):
        line = line[:-1]
    if not line.strip():
        raise HeaderError(file, f"the first line is empty; expected the header {_expected()}")
    check_text(file, b"\n" + line, first_line=1)
    text = line.decode("utf-8")
    try:
        names = next(csv.reader([text], strict=True))
    except csv.Error as error:
        raise MalformedCsvError(file, f"the header is not valid CSV ({error})", line=1) from None

    canonical = {column.casefold(): column for column in EXPECTED_COLUMNS}
    seen: dict[str, int] = {}
    unknown: list[str] = []
    duplicated: list[str] = []
    for position, name in enumerate(names):
        key = name.strip().casefold()
        if key not in canonical:
            unknown.append(name)
        elif key in seen:
            duplicated.append(name)
        else:
            seen[key] = position
    missing = [column for column in EXPECTED_COLUMNS if column.casefold() not in seen]
    if missing or unknown or duplicated:
        problems = []
        if missing:
            problems.append("missing " + ", ".join(missing))
        if unknown:
            problems.append("unknown " + ", ".join(repr(name) for name in unknown))
        if duplicated:
            problems.append("duplicated " + ", ".join(repr(name) for name in duplicated))
        raise HeaderError(
            file,
            f"the header does not have the expected columns: {'; '.join(problems)} "
            f"(expected {_expected()}, in any order)",
            missing=missing,
            unknown=unknown,
            duplicated=duplicated,
        )
    order = tuple(seen[column.casefold()] for column in EXPECTED_COLUMNS)
    return Header(text=text, order=order, bom=bom)


def check_text(file: str, block: bytes, first_line: int) -> bytes:
    """Check a block is UTF-8 CSV text; return it with CRLF line endings made LF.

    Raises `NotCsvError` for a NUL byte, `EncodingError` for bytes that are not UTF-8 and
    `MalformedCsvError` for a carriage return that does not end a line (Spark would split the
    row there).
    """
    nul = block.find(b"\x00")
    if nul >= 0:
        raise NotCsvError(
            file,
            f"NUL byte at column {column_of(block, nul)}: binary data, not CSV text",
            line=line_of(block, nul, first_line),
        )
    try:
        block.decode("utf-8")
    except UnicodeDecodeError as error:
        raise EncodingError(
            file,
            f"byte 0x{block[error.start]:02X} at column {column_of(block, error.start)} is not "
            "UTF-8; save the file as UTF-8",
            line=line_of(block, error.start, first_line),
        ) from None
    if b"\r" in block:
        block = block.replace(b"\r\n", b"\n")
        stray = block.find(b"\r")
        if stray >= 0:
            raise MalformedCsvError(
                file,
                f"carriage return (CR) at column {column_of(block, stray)} inside the line; "
                "lines must end with LF or CRLF",
                line=line_of(block, stray, first_line),
            )
    return block


def check_fields(file: str, line: int, fields: int) -> None:
    """A data row must have as many fields as the header."""
    if fields != len(EXPECTED_COLUMNS):
        raise RaggedRowError(file, line=line, fields=fields, expected=len(EXPECTED_COLUMNS))


def unclosed_quote(file: str, line: int) -> MalformedCsvError:
    """The error for a quoted field that does not end on its own line."""
    return MalformedCsvError(
        file,
        "a quoted field is not closed on this line (an unclosed quote, or a line break inside "
        "quotes); Bronze keeps one row per line",
        line=line,
    )


def empty_file(file: str) -> EmptyFileError:
    return EmptyFileError(file, "the file is empty", line=1)


def header_only(file: str) -> EmptyFileError:
    return EmptyFileError(file, "the file has a header but no data rows", line=2)


def line_of(block: bytes, position: int, first_line: int) -> int:
    """The line number of a byte position in a block (see the module docstring)."""
    return first_line + block.count(b"\n", 0, position + 1) - 1


def column_of(block: bytes, position: int) -> int:
    """1-based byte column of a position within its line."""
    return position - block.rfind(b"\n", 0, position)


def _expected() -> str:
    return ",".join(EXPECTED_COLUMNS)


__all__ = [
    "Header",
    "check_fields",
    "check_header",
    "check_text",
    "column_of",
    "empty_file",
    "header_only",
    "line_of",
    "sniff_format",
    "unclosed_quote",
]
