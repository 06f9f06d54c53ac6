"""Create raw tables and insert records into them, for tests and local experiments.

The extract owns the raw tables in production. This module writes the same
layout (standard schemas, lower-cased columns, bookkeeping columns), so
models can run against hand-written rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from routiine_pipeline.mapping import EXTRACT_OBJECTS, default_fields
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.storage.raw_tables import (
    column_name,
    raw_table_ddl,
    raw_table_name,
)


def create_raw_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create every raw table of the default mapping if it does not exist."""
    for sobject in EXTRACT_OBJECTS:
        fields = [
            spec
            for spec in STANDARD_SCHEMAS[sobject].fields
            if spec.name in default_fields(sobject)
        ]
        conn.execute(raw_table_ddl(sobject, fields))


def insert_raw(
    conn: duckdb.DuckDBPyConnection,
    sobject: str,
    records: Iterable[Mapping[str, Any]],
    window: str = "2025-01-01",
) -> int:
    """Insert records keyed by Salesforce field name; missing fields are NULL.

    Args:
        conn: A DuckDB connection whose raw tables exist.
        sobject: The sObject name, for example "Opportunity".
        records: Field name to value; `_deleted_at` may be given to write a tombstone.
        window: The `_window` value stored with each row.

    Returns:
        The number of rows inserted.
    """
    table = raw_table_name(sobject)
    columns = [row[0] for row in conn.execute(f"DESCRIBE {table}").fetchall()]
    extracted_at = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for record in records:
        values = {column_name(name): value for name, value in record.items()}
        values.setdefault("isdeleted", False)
        values.setdefault("_extracted_at", extracted_at)
        values.setdefault("_window", window)
        unknown = set(values) - set(columns)
        if unknown:
            raise ValueError(f"{table} has no columns {sorted(unknown)}")
        rows.append(values)
    if not rows:
        return 0
    # One INSERT ... SELECT from a DataFrame instead of one INSERT per record,
    # because the demo org has about 100,000 records. Columns no record sets
    # stay out of the statement, so they keep their NULL default.
    names = [name for name in columns if any(name in row for row in rows)]
    frame = pd.DataFrame(
        {
            name: pd.Series([row.get(name) for row in rows], dtype=object)
            for name in names
        }
    )
    quoted = ", ".join(f'"{name}"' for name in names)
    conn.register("_insert_raw_rows", frame)
    try:
        conn.execute(
            f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM _insert_raw_rows"
        )
    finally:
        conn.unregister("_insert_raw_rows")
    return len(rows)
