"""Synthetic Walmart-style sales, calibrated on the real file's published statistics.

A tool apart from the landing code (as jaffle-shop's `jafgen` is from jaffle-shop): it writes the
CSV files a store would send, which `ingestion` then lands like any other file.
"""

from lakehouse.generator.dataset import BAD_ROW_KINDS, GeneratedDataset, write_dataset

__all__ = ["BAD_ROW_KINDS", "GeneratedDataset", "write_dataset"]
