"""Raw tables: one per sObject, one row per record Id, columns named after fields.

Column names are the Salesforce field API names lower-cased (`StageName`
becomes `stagename`, `Region__c` becomes `region__c`), because DuckDB
identifiers are case-insensitive and lower case reads naturally in SQL.
Three bookkeeping columns follow the fields:

- `_deleted_at`: when the record was deleted in Salesforce (its
  SystemModstamp at deletion, or the `deletedDate` of a hard delete);
  NULL while the record lives. The row stays as a tombstone.
- `_extracted_at`: when this version of the row was committed.
- `_window`: the month partition key whose extract wrote this version.
"""

from __future__ import annotations

import re

from routiine_pipeline.salesforce.schema import FieldSpec

_TABLE_NAMES = {
    "Account": "raw_account",
    "Contact": "raw_contact",
    "User": "raw_user",
    "Opportunity": "raw_opportunity",
    "OpportunityHistory": "raw_opportunity_history",
    "Task": "raw_task",
    "Event": "raw_event",
}

_DUCKDB_TYPES = {
    "boolean": "BOOLEAN",
    "currency": "DOUBLE",
    "double": "DOUBLE",
    "percent": "DOUBLE",
    "int": "BIGINT",
    "date": "DATE",
    "datetime": "TIMESTAMPTZ",
}

BOOKKEEPING_COLUMNS = {
    "_deleted_at": "TIMESTAMPTZ",
    "_extracted_at": "TIMESTAMPTZ",
    "_window": "VARCHAR",
}


def raw_table_name(sobject: str) -> str:
    """Return the raw table of an sObject, for example `raw_opportunity_history`."""
    if sobject in _TABLE_NAMES:
        return _TABLE_NAMES[sobject]
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", sobject.removesuffix("__c")).lower()
    return f"raw_{snake}"


def column_name(field_name: str) -> str:
    """Return the raw-table column of a Salesforce field."""
    return field_name.lower()


def duckdb_type(spec: FieldSpec) -> str:
    """Return the DuckDB type that stores a field of the given describe type."""
    return _DUCKDB_TYPES.get(spec.type, "VARCHAR")


def raw_table_ddl(sobject: str, fields: list[FieldSpec]) -> str:
    """Build the CREATE TABLE statement of a raw table with Id as its primary key."""
    columns = [f'"{column_name(spec.name)}" {duckdb_type(spec)}' for spec in fields]
    columns += [f"{name} {kind}" for name, kind in BOOKKEEPING_COLUMNS.items()]
    body = ",\n  ".join(columns)
    return f"CREATE TABLE IF NOT EXISTS {raw_table_name(sobject)} (\n  {body},\n  PRIMARY KEY (id)\n)"
