"""Why a file did not land, in words the person who sent it can act on.

Every failure of the ingestion is an `IngestionError` whose message names the file, the line (when
there is one) and the problem, e.g. ``sales.csv: line 7: 9 fields, the header has 10``. The
subclasses say which kind of problem it is, so a caller can react to the kind without parsing text:

- `RejectedFileError` and its subclasses: the content is not a Bronze CSV. Nothing lands but a
  copy of the file under ``_rejected/`` (`rejected_at` says where): nothing the user sent is lost.
- `SourceError`: the file cannot be read (missing, a folder with no CSV, changed while landing).
- `DestinationError`: the destination refused or failed (missing bucket, access denied, bad
  credentials, checksum mismatch). Messages never contain credentials.
"""

from __future__ import annotations

from collections.abc import Sequence


class IngestionError(Exception):
    """A file could not be landed; ``str(error)`` is the message for the user."""

    def __init__(self, file: str, problem: str, line: int | None = None) -> None:
        self.file = file
        self.problem = problem
        self.line = line
        where = file if line is None else f"{file}: line {line}"
        super().__init__(f"{where}: {problem}")


class SourceError(IngestionError):
    """The file the user named cannot be read as sent (missing, unreadable, changed meanwhile)."""


class RejectedFileError(IngestionError):
    """The content is not a Bronze CSV; the file is kept under ``_rejected/`` and nothing lands."""

    #: Where the copy of the rejected file was written (a path or an s3:// URI), once it was.
    rejected_at: str | None = None


class EmptyFileError(RejectedFileError):
    """The file has no bytes, or a header and no data rows."""


class NotCsvError(RejectedFileError):
    """Binary content (NUL bytes, an archive, an image, ...) or a corrupt gzip stream."""


class EncodingError(RejectedFileError):
    """Bytes that are not UTF-8."""


class MalformedCsvError(RejectedFileError):
    """CSV structure Spark would misread: an unclosed quote, a stray carriage return, ..."""


class HeaderError(RejectedFileError):
    """The header is not the ten expected columns (in any order, forgiving case and spaces)."""

    def __init__(
        self,
        file: str,
        problem: str,
        *,
        missing: Sequence[str] = (),
        unknown: Sequence[str] = (),
        duplicated: Sequence[str] = (),
    ) -> None:
        super().__init__(file, problem, line=1)
        self.missing = tuple(missing)
        self.unknown = tuple(unknown)
        self.duplicated = tuple(duplicated)


class RaggedRowError(RejectedFileError):
    """A data row with more or fewer fields than the header."""

    def __init__(self, file: str, line: int, fields: int, expected: int) -> None:
        super().__init__(
            file,
            f"{fields} field{'s' if fields != 1 else ''}, the header has {expected}",
            line=line,
        )
        self.fields = fields
        self.expected = expected


class DestinationError(IngestionError):
    """The destination (a folder or an S3 bucket) refused or failed an operation."""

    def __init__(self, location: str, problem: str) -> None:
        super().__init__(location, problem)
        self.location = location


class ChecksumMismatchError(DestinationError):
    """What the destination stored is not what was sent (its checksum differs from ours)."""


__all__ = [
    "ChecksumMismatchError",
    "DestinationError",
    "EmptyFileError",
    "EncodingError",
    "HeaderError",
    "IngestionError",
    "MalformedCsvError",
    "NotCsvError",
    "RaggedRowError",
    "RejectedFileError",
    "SourceError",
]
