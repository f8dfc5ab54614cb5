"""Read the file the user sent and turn it into Bronze rows, fast and byte-faithful.

A Bronze row is the user's row with its ten fields in canonical order, then ``,<line number>``.
Field bytes are never re-typed or trimmed. The input is read in blocks of whole lines
(`SourceReader.blocks`); each block is checked (`ingestion.validation`) and encoded:

- the common case (no quote character, canonical order) never loops over rows in Python: numpy
  finds the newlines and commas, proves every line has exactly ten fields, and pyarrow appends the
  line numbers in one vectorised join. Output bytes are the input line bytes plus the suffix.
- columns in another order: each line is split on commas and re-joined in canonical order.
- a quote character anywhere in the block: Python's csv module parses each line (strict), so
  commas inside quotes are not separators; rows in canonical order keep their exact bytes,
  reordered rows are written back with minimal quoting (values unchanged).

A quoted field must close on its own line: Spark reads Bronze one line at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, cast

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from ingestion.errors import NotCsvError, SourceError
from ingestion.schema import EXPECTED_COLUMNS, SOURCE_LINE_COLUMN
from ingestion.validation import (
    MAX_HEADER_BYTES,
    check_fields,
    check_text,
    empty_file,
    sniff_format,
    unclosed_quote,
)

#: Bytes read from the source per block (the last line of a block is completed past this).
BLOCK_BYTES = 4 << 20
#: The header every Bronze part starts with.
BRONZE_HEADER = ",".join((*EXPECTED_COLUMNS, SOURCE_LINE_COLUMN)).encode()

_NCOLS = len(EXPECTED_COLUMNS)
_CANONICAL = tuple(range(_NCOLS))
_POWERS_OF_TEN = np.array([10**k for k in range(1, 19)], dtype=np.int64)


class CorruptInputError(Exception):
    """A .gz input ended early or is damaged (the caller knows the line)."""


@dataclass(frozen=True)
class EncodedBlock:
    """Bronze rows of one block, each as ``\\n<fields>,<line>``, back to back in `data`."""

    data: memoryview
    ends: npt.NDArray[np.int64]
    """Row boundaries in `data`: row i is ``data[ends[i]:ends[i + 1]]``; ``ends[0] == 0``."""
    lines: int
    """Physical lines the block held (rows plus blank lines)."""
    blank: int
    """Empty lines skipped (Spark skips them too); they keep their line numbers."""

    @property
    def rows(self) -> int:
        return len(self.ends) - 1


class SourceReader:
    """The file as sent: plain or gzip CSV, read as a header line then blocks of whole lines.

    `position` is how many bytes of the file as sent have been consumed (for a progress bar).
    """

    def __init__(self, path: Path, name: str, block_bytes: int | None = None) -> None:
        self.name = name
        self.block_bytes = block_bytes or BLOCK_BYTES
        try:
            self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as error:
            raise SourceError(name, f"cannot read the file ({error.strerror})") from None
        self._stream: IO[bytes] = self._raw
        self._pending = b""
        try:
            head = self._raw.read(64)
            self._raw.seek(0)
            self.compressed = sniff_format(name, head) == "gzip"
        except BaseException:
            self._raw.close()
            raise
        if self.compressed:
            self._stream = cast(IO[bytes], gzip.GzipFile(fileobj=self._raw, mode="rb"))

    @property
    def position(self) -> int:
        return self._raw.tell()

    def header(self) -> bytes:
        """The first line without its line ending; afterwards `blocks` yields the rest."""
        buffer = b""
        while True:
            chunk = self._read(min(self.block_bytes, MAX_HEADER_BYTES))
            buffer += chunk
            end = buffer.find(b"\n")
            if end >= 0:
                self._pending = buffer[end:]
                return buffer[:end]
            if not chunk:
                self._pending = b""
                if not buffer.strip(b"\xef\xbb\xbf"):
                    raise empty_file(self.name)
                return buffer
            if len(buffer) > MAX_HEADER_BYTES:
                raise NotCsvError(
                    self.name,
                    f"no line break in the first {MAX_HEADER_BYTES} bytes: not a CSV file",
                    line=1,
                )

    def blocks(self) -> Iterator[bytes]:
        """Blocks of whole lines, each line preceded by its ``\\n`` (see `EncodedBlock`).

        A CR that precedes the newline a block is cut at is dropped here (the block after begins
        with that newline); every other CR is judged by `check_text`.
        """
        pending = self._pending
        while True:
            chunk = self._read(self.block_bytes)
            if not chunk:
                if pending.endswith(b"\n"):
                    pending = pending[:-1]
                    if pending.endswith(b"\r"):
                        pending = pending[:-1]
                if pending:
                    yield pending
                return
            cut = chunk.rfind(b"\n")
            if cut < 0 or (cut == 0 and not pending):
                pending += chunk
                continue
            block = b"".join((pending, memoryview(chunk)[:cut]))  # one copy
            pending = chunk[cut:]
            if block.endswith(b"\r"):
                block = block[:-1]
            if block:
                yield block

    def _read(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only at the end of the stream."""
        try:
            data = self._stream.read(size)
            while self.compressed and data and len(data) < size:
                more = self._stream.read(size - len(data))
                if not more:
                    break
                data += more
        except (OSError, EOFError, zlib.error) as error:
            if self.compressed:
                raise CorruptInputError(str(error) or type(error).__name__) from None
            raise SourceError(self.name, f"cannot read the file ({error})") from None
        return data

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def encode_block(file: str, block: bytes, first_line: int, order: tuple[int, ...]) -> EncodedBlock:
    """Check a block and encode its rows for Bronze (see the module docstring)."""
    block = check_text(file, block, first_line)
    if b'"' in block:
        return _encode_quoted(file, block, first_line, order)
    if order != _CANONICAL:
        return _encode_reordered(file, block, first_line, order)
    return _encode_canonical(file, block, first_line)


def _encode_canonical(file: str, block: bytes, first_line: int) -> EncodedBlock:
    """The fast path: no quotes, canonical order; no Python loop over rows."""
    raw = np.frombuffer(block, dtype=np.uint8)
    # Newlines and commas in one scan: a good block reads "\n" then nine "," per line.
    marks = np.flatnonzero((raw == 0x0A) | (raw == 0x2C))
    grid = raw[marks]
    good = len(grid) % _NCOLS == 0
    if good:
        grid = grid.reshape(-1, _NCOLS)
        good = bool((grid[:, 0] == 0x0A).all() and (grid[:, 1:] == 0x2C).all())
    if good:
        starts = marks[::_NCOLS]
        lines, blanks = len(starts), 0
        blank: npt.NDArray[np.bool_] | None = None
    else:
        starts, blank = _blank_lines_or_raise(file, raw, first_line)
        lines, blanks = len(starts), int(blank.sum())

    offsets = np.append(starts, len(block)).astype(np.int32)
    rows = pa.StringArray.from_buffers(lines, pa.py_buffer(offsets), pa.py_buffer(block))
    numbers = np.arange(first_line, first_line + lines, dtype=np.int64)
    if blank is not None and blanks:
        keep = ~blank
        rows = rows.filter(pa.array(keep))
        numbers = numbers[keep]
    joined = pc.binary_join_element_wise(rows, _decimal_strings(numbers), ",")
    row_ends = np.frombuffer(joined.buffers()[1], dtype=np.int32)[: len(numbers) + 1]
    first, last = int(row_ends[0]), int(row_ends[-1])
    return EncodedBlock(
        data=memoryview(joined.buffers()[2])[first:last],
        ends=row_ends.astype(np.int64) - first,
        lines=lines,
        blank=blanks,
    )


def _blank_lines_or_raise(
    file: str, raw: npt.NDArray[np.uint8], first_line: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Line starts and blank-line mask of a block that is not uniformly ten fields per line.

    Raises `RaggedRowError` for the first non-blank line without exactly ten fields.
    """
    starts = np.flatnonzero(raw == 0x0A)
    lines = len(starts)
    ends = np.append(starts[1:], len(raw))
    blank = ends - starts == 1
    commas = np.flatnonzero(raw == 0x2C)
    per_line = np.bincount(np.searchsorted(starts, commas, side="right") - 1, minlength=lines)
    ragged = (per_line != _NCOLS - 1) & ~blank
    if ragged.any():
        index = int(np.argmax(ragged))
        check_fields(file, first_line + index, int(per_line[index]) + 1)
    return starts, blank


def _encode_reordered(
    file: str, block: bytes, first_line: int, order: tuple[int, ...]
) -> EncodedBlock:
    """No quotes, columns in another order: split on commas, re-join in canonical order."""
    out: list[bytes] = []
    blanks = 0
    lines = block.split(b"\n")[1:]
    for index, line in enumerate(lines):
        if not line:
            blanks += 1
            continue
        fields = line.split(b",")
        check_fields(file, first_line + index, len(fields))
        out.append(b"\n" + b",".join([fields[k] for k in order]) + b",%d" % (first_line + index))
    return _from_rows(out, len(lines), blanks)


def _encode_quoted(
    file: str, block: bytes, first_line: int, order: tuple[int, ...]
) -> EncodedBlock:
    """A quote character in the block: parse each line with the csv module (strict)."""
    text_lines = block.decode("utf-8").split("\n")[1:]
    reorder = order != _CANONICAL
    out: list[bytes] = []
    blanks = 0
    reader = csv.reader(text_lines, strict=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    consumed = 0
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error:
            raise unclosed_quote(file, first_line + consumed) from None
        index = consumed
        consumed = reader.line_num
        if consumed != index + 1:
            raise unclosed_quote(file, first_line + index)
        if not record and not text_lines[index]:
            blanks += 1
            continue
        line = first_line + index
        check_fields(file, line, len(record))
        if reorder:
            buffer.seek(0)
            buffer.truncate()
            writer.writerow([*(record[k] for k in order), str(line)])
            out.append(("\n" + buffer.getvalue()[:-1]).encode())
        else:
            out.append(b"\n" + text_lines[index].encode() + b",%d" % line)
    return _from_rows(out, len(text_lines), blanks)


def _from_rows(rows: list[bytes], lines: int, blanks: int) -> EncodedBlock:
    ends = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(row) for row in rows], out=ends[1:])
    return EncodedBlock(data=memoryview(b"".join(rows)), ends=ends, lines=lines, blank=blanks)


def _decimal_strings(numbers: npt.NDArray[np.int64]) -> pa.StringArray:
    """Ascending non-negative integers as a pyarrow string array, built without a Python loop."""
    count = len(numbers)
    if count == 0:
        return pa.array([], type=pa.string())
    digits = 1 + np.searchsorted(_POWERS_OF_TEN, numbers, side="right")
    offsets = np.zeros(count + 1, dtype=np.int32)
    np.cumsum(digits, out=offsets[1:])
    text = np.empty(int(offsets[-1]), dtype=np.uint8)
    # Ascending numbers: rows with the same digit count are contiguous.
    bounds = np.flatnonzero(np.diff(digits)) + 1
    for start, stop in zip(
        np.concatenate(([0], bounds)), np.concatenate((bounds, [count])), strict=True
    ):
        width = int(digits[start])
        group = numbers[start:stop]
        matrix = np.empty((stop - start, width), dtype=np.uint8)
        for place in range(width):
            matrix[:, width - 1 - place] = (group // 10**place) % 10 + 0x30
        text[offsets[start] : offsets[stop]] = matrix.ravel()
    return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(text))


__all__ = [
    "BLOCK_BYTES",
    "BRONZE_HEADER",
    "CorruptInputError",
    "EncodedBlock",
    "SourceReader",
    "encode_block",
]
