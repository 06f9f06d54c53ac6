"""Adapt a model's SQL to one tenant: its Opportunity source fields and record types.

The model files name the standard Opportunity fields, so sqlglot lineage and
the docs describe every tenant the same way. A tenant that keeps the amount
in a custom field, or includes only some record types, gets the same query
with those column references replaced and a record type filter added, just
before it runs. Tenants on the default mapping run the file text unchanged.
"""

from __future__ import annotations

import logging

import duckdb
import sqlglot
from sqlglot import exp

from routiine_pipeline.mapping import (
    DEAL_SOURCE_DEFAULTS,
    RECORD_TYPE_FIELD,
    TenantMapping,
)
from routiine_pipeline.models.loader import DIALECT, SqlModel
from routiine_pipeline.storage.raw_tables import column_name

log = logging.getLogger(__name__)

OPPORTUNITY_TABLE = "raw_opportunity"


def source_renames(mapping: TenantMapping) -> dict[str, str]:
    """Return raw_opportunity column renames: standard column to the tenant's column.

    Args:
        mapping: The tenant mapping.

    Returns:
        Only the columns whose source field differs from the standard one.
    """
    renames = {}
    for deal_column, standard_field in DEAL_SOURCE_DEFAULTS.items():
        field_name = mapping.deal_source(deal_column)
        if field_name != standard_field:
            renames[column_name(standard_field)] = column_name(field_name)
    return renames


def table_columns(conn: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """Return the column names of a table, or an empty set when it does not exist."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
        [table],
    ).fetchall()
    return {row[0] for row in rows}


def render_model_sql(
    model: SqlModel,
    mapping: TenantMapping,
    opportunity_columns: set[str],
    tenant: str = "",
) -> str:
    """Return the SQL to run for one tenant.

    Args:
        model: The model as loaded from its file.
        mapping: The tenant mapping.
        opportunity_columns: The columns of the tenant's raw_opportunity table,
            to tell whether record types can be filtered at all.
        tenant: The tenant id, for log messages.

    Returns:
        The model's SQL, unchanged unless the model reads raw_opportunity and
        the tenant maps other source fields or limits the record types.
    """
    if OPPORTUNITY_TABLE not in model.upstream_tables:
        return model.sql
    renames = source_renames(mapping)
    record_column = column_name(RECORD_TYPE_FIELD)
    filter_record_types = bool(mapping.record_types)
    if filter_record_types and record_column not in opportunity_columns:
        # Orgs without record types have no RecordTypeId field at all.
        log.warning(
            "tenant %s: the mapping includes record types %s, but Opportunity has no "
            "%s field in this org; every Opportunity is included",
            tenant,
            mapping.record_types,
            RECORD_TYPE_FIELD,
        )
        filter_record_types = False
    if not renames and not filter_record_types:
        return model.sql

    query = sqlglot.parse_one(model.sql, dialect=DIALECT)
    aliases = {
        table.alias_or_name
        for table in query.find_all(exp.Table)
        if table.name == OPPORTUNITY_TABLE
    }
    for column in query.find_all(exp.Column):
        if column.table in aliases and column.name in renames:
            column.set("this", exp.to_identifier(renames[column.name]))
    if filter_record_types:
        for select in query.find_all(exp.Select):
            alias = _opportunity_alias(select)
            if alias is None:
                continue
            included = exp.column(record_column, table=alias).isin(
                *[exp.Literal.string(value) for value in mapping.record_types]
            )
            select.where(included, copy=False)
    return query.sql(dialect=DIALECT, pretty=True)


def _opportunity_alias(select: exp.Select) -> str | None:
    """Return the alias under which a SELECT reads raw_opportunity in its own FROM or JOINs."""
    sources = []
    from_clause = select.args.get("from_") or select.args.get("from")
    if from_clause is not None:
        sources.append(from_clause.this)
    sources += [join.this for join in select.args.get("joins") or []]
    for source in sources:
        if isinstance(source, exp.Table) and source.name == OPPORTUNITY_TABLE:
            return source.alias_or_name
    return None
