"""Land raw Walmart-style sales CSV in the Bronze layer, on a folder or on S3 (boto3).

A file lands completely or not at all: its header and rows are checked first, it is split into
gzip parts under ``walmart_sales/ingest_date=…/batch_id=…/``, and a ledger entry written last
commits the batch (the batch id is the file's content hash, so the same file lands once). A
refused file is kept under ``_rejected/`` with the reason.

This package is the landing code alone; it imports nothing from the `lakehouse` application.
The caller says where to land (`destination_from_uri`, or a `Destination` built by hand).
"""

from ingestion.destinations import (
    Destination,
    LocalDestination,
    S3Destination,
    destination_from_uri,
    make_s3_client,
)
from ingestion.errors import IngestionError, SourceError
from ingestion.landing import LandingResult, expand_sources, land_file, land_paths
from ingestion.schema import EXPECTED_COLUMNS, SOURCE_LINE_COLUMN, SOURCE_TABLE

__all__ = [
    "EXPECTED_COLUMNS",
    "SOURCE_LINE_COLUMN",
    "SOURCE_TABLE",
    "Destination",
    "IngestionError",
    "LandingResult",
    "LocalDestination",
    "S3Destination",
    "SourceError",
    "destination_from_uri",
    "expand_sources",
    "land_file",
    "land_paths",
    "make_s3_client",
]
