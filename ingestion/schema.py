"""The Bronze contract for Walmart-style sales: the ten source columns, in canonical order.

Every Bronze part is written with exactly these columns, in this order, followed by
`SOURCE_LINE_COLUMN` (the line of the row in the file the user sent; the header is line 1).
The dbt Bronze source and the data generator import this tuple, so it is the one place to change.
"""

from __future__ import annotations

from typing import Final

EXPECTED_COLUMNS: Final[tuple[str, ...]] = (
    "User_ID",
    "Product_ID",
    "Gender",
    "Age",
    "Occupation",
    "City_Category",
    "Stay_In_Current_City_Years",
    "Marital_Status",
    "Product_Category",
    "Purchase",
)

SOURCE_LINE_COLUMN: Final[str] = "source_line_number"

# The Bronze table these files make up: the folder under the Bronze root, and the dbt source table.
SOURCE_TABLE: Final[str] = "walmart_sales"

__all__ = ["EXPECTED_COLUMNS", "SOURCE_LINE_COLUMN", "SOURCE_TABLE"]
