"""The Bronze contract and Silver's rule names, as the tests hold the code to them.

The column list is a deliberate hand-written copy of `ingestion/schema.py`: the independent
oracle that makes a change to the contract fail a test instead of moving the tests along with
it. Silver's rule names are read from the one place that defines them, `macros/validation.sql`,
so that a rule added there fails the generator's tests until the generator can break it too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

PROJECT_DIR = Path(__file__).resolve().parents[2]

CANONICAL: Final = (
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
CSV_HEADER: Final = ",".join(CANONICAL)
BRONZE_HEADER: Final = ",".join((*CANONICAL, "source_line_number"))
# Gender through Marital_Status: what describes the customer rather than the sale. A customer
# has one value of each (the real file never disagrees with itself).
DEMOGRAPHICS: Final = CANONICAL[2:8]


def silver_rule_names() -> tuple[str, ...]:
    """The reasons Silver rejects a row for, in the order macros/validation.sql checks them,
    without `missing_line_number` (landing numbers every line; no CSV value can break it)."""
    text = (PROJECT_DIR / "macros" / "validation.sql").read_text()
    body = text.split("macro sales_validation_rules()", 1)[1].split("endmacro", 1)[0]
    names = tuple(re.findall(r"^\s*\('([a-z_]+)',", body, flags=re.MULTILINE))
    assert names[0] == "missing_line_number", names  # the parse found the rule table
    return names[1:]


__all__ = ["BRONZE_HEADER", "CANONICAL", "CSV_HEADER", "DEMOGRAPHICS", "silver_rule_names"]
