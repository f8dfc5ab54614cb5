"""Deterministic gzip, compressed on every core, for Bronze parts.

gzip is not splittable, so Bronze is cut into parts that Spark reads in parallel; within a part,
compression is itself spread over a thread pool (zlib releases the GIL) the way pigz does it: the
part is deflated in segments, each primed with the 32 KiB that precede it (so the ratio matches a
single stream) and ended with a sync flush, and the segments are concatenated into ONE gzip member
with the CRC-32 of the whole. Any gzip reader (Spark/Hadoop, Python, zcat) sees an ordinary file.

The header has mtime 0 and no file name, and the segment boundaries depend only on the input and
the settings, so the same input always yields the same bytes.
"""

from __future__ import annotations

import struct
import zlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeAlias

BytesLike: TypeAlias = bytes | bytearray | memoryview

#: gzip header: magic, deflate, no flags, mtime 0, XFL 4 ("fastest"), OS 255 ("unknown").
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_WINDOW = 32 * 1024
_CRC32_POLY = 0xEDB88320


class Sink(Protocol):
    """Where compressed bytes go (a staged object of a destination)."""

    def write(self, data: BytesLike, /) -> object: ...


def deflate_segment(data: BytesLike, primer: bytes, level: int) -> tuple[bytes, int, int]:
    """Raw deflate of one segment ending on a byte boundary; returns (bytes, crc32, length)."""
    compressor = (
        zlib.compressobj(level, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, primer)
        if primer
        else zlib.compressobj(level, zlib.DEFLATED, -15)
    )
    view = memoryview(data)
    out = compressor.compress(view) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out, zlib.crc32(view), view.nbytes


@dataclass
class GzipMember:
    """One gzip file being written by `ParallelGzip`; `size` and `crc` cover what was written."""

    sink: Sink
    size: int = 0
    crc: int = 0
    window: bytes = b""
    finished: bool = False


class ParallelGzip:
    """Compress segments of one or more gzip members in a pool; write them in order.

    `add` queues a segment (it is compressed in the background), `close` queues the end of a
    member; both write whatever is ready, in submission order, and wait only when more than
    `max_pending` segments are queued. `wait` writes everything. Segments are referenced until
    written: do not mutate what you pass to `add`.
    """

    def __init__(self, pool: ThreadPoolExecutor, level: int = 1, max_pending: int = 4) -> None:
        self.pool = pool
        self.level = level
        self.max_pending = max_pending
        self._queue: deque[tuple[GzipMember, Future[tuple[bytes, int, int]] | None]] = deque()

    def open(self, sink: Sink) -> GzipMember:
        sink.write(GZIP_HEADER)
        return GzipMember(sink)

    def add(self, member: GzipMember, data: BytesLike) -> None:
        view = memoryview(data)
        future = self.pool.submit(deflate_segment, view, member.window, self.level)
        self._queue.append((member, future))
        if view.nbytes >= _WINDOW:
            member.window = bytes(view[-_WINDOW:])
        else:
            member.window = (member.window + bytes(view))[-_WINDOW:]
        self._write_ready(wait_all=False)

    def close(self, member: GzipMember) -> None:
        self._queue.append((member, None))
        self._write_ready(wait_all=False)

    def wait(self) -> None:
        self._write_ready(wait_all=True)

    def cancel(self) -> None:
        for _, future in self._queue:
            if future is not None:
                future.cancel()
        self._queue.clear()

    def _write_ready(self, wait_all: bool) -> None:
        while self._queue:
            member, future = self._queue[0]
            if future is None:
                final = zlib.compressobj(self.level, zlib.DEFLATED, -15).flush(zlib.Z_FINISH)
                member.sink.write(final)  # an empty last block ends the deflate stream
                member.sink.write(struct.pack("<II", member.crc, member.size & 0xFFFFFFFF))
                member.finished = True
            elif wait_all or future.done() or len(self._queue) > self.max_pending:
                compressed, crc, length = future.result()
                member.sink.write(compressed)
                member.crc = crc32_combine(member.crc, crc, length)
                member.size += length
            else:
                return
            self._queue.popleft()


def crc32_combine(crc1: int, crc2: int, length2: int) -> int:
    """CRC-32 of A+B from crc32(A), crc32(B) and len(B) (zlib's crc32_combine, in Python)."""
    if length2 == 0:
        return crc1
    return _multiply(_x_to_the_8n(length2), crc1) ^ crc2


def _multiply(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial (reflected bit order)."""
    product = 0
    mask = 1 << 31
    while True:
        if a & mask:
            product ^= b
            if not a & (mask - 1):
                return product
        mask >>= 1
        b = (b >> 1) ^ _CRC32_POLY if b & 1 else b >> 1


def _x_to_the_8n(n: int) -> int:
    """x^(8n) modulo the polynomial: the operator that shifts a CRC past n zero bytes."""
    product = 1 << 31  # x^0
    k = 3
    while n:
        if n & 1:
            product = _multiply(_X_TO_2K[k & 31], product)
        n >>= 1
        k += 1
    return product


def _powers() -> tuple[int, ...]:
    table = [1 << 30]  # x^1
    for _ in range(31):
        table.append(_multiply(table[-1], table[-1]))
    return tuple(table)


_X_TO_2K = _powers()

__all__ = [
    "GZIP_HEADER",
    "GzipMember",
    "ParallelGzip",
    "Sink",
    "crc32_combine",
    "deflate_segment",
]
