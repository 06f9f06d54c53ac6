"""Tables that SQL models may read without building them: raw tables and mapping tables.

Raw tables are written by the extract; their columns follow the standard
sObject schemas (every non-calculated field, lower-cased, plus bookkeeping
columns). Mapping tables are written by each model asset from the tenant
mapping just before its SQL runs.
"""

from __future__ import annotations

from routiine_pipeline.mapping import EXTRACT_OBJECTS
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.storage.raw_tables import (
    BOOKKEEPING_COLUMNS,
    column_name,
    duckdb_type,
    raw_table_name,
)

MAPPING_TABLE_SCHEMAS: dict[str, dict[str, str]] = {
    "map_stage": {
        "stage_name": "VARCHAR",
        "canonical_stage": "VARCHAR",
        "category": "VARCHAR",
        "stage_order": "INTEGER",
    },
    "map_task_kind": {
        "type_pattern": "VARCHAR",
        "subtype_pattern": "VARCHAR",
        "kind": "VARCHAR",
    },
    "map_settings": {"key": "VARCHAR", "value": "VARCHAR"},
}


def raw_table_schemas() -> dict[str, dict[str, str]]:
    """Return the column names and DuckDB types of every raw table the extract writes.

    Returns:
        A mapping of raw table name to {column: DuckDB type}.
    """
    schemas: dict[str, dict[str, str]] = {}
    for sobject in EXTRACT_OBJECTS:
        fields = [
            spec for spec in STANDARD_SCHEMAS[sobject].fields if not spec.calculated
        ]
        columns = {column_name(spec.name): duckdb_type(spec) for spec in fields}
        columns.update(BOOKKEEPING_COLUMNS)
        schemas[raw_table_name(sobject)] = columns
    return schemas


def source_schemas() -> dict[str, dict[str, str]]:
    """Return every table a model may read that no model builds."""
    return {**raw_table_schemas(), **MAPPING_TABLE_SCHEMAS}


def is_raw_table(table: str) -> bool:
    """Tell whether a table name follows the raw table convention (`raw_<object>`)."""
    return table.startswith("raw_")


def raw_asset_path(table: str) -> list[str]:
    """Return the asset key path of a raw table, for example ["raw", "opportunity"]."""
    return ["raw", table.removeprefix("raw_")]
