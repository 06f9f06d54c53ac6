"""Build model tables in a tenant's DuckDB file and report unmapped picklist values."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import duckdb

from routiine_pipeline.mapping import TenantMapping
from routiine_pipeline.models.loader import ModelError, ModelProject, SqlModel
from routiine_pipeline.models.mapping_tables import write_mapping_tables
from routiine_pipeline.models.tenant_sql import (
    OPPORTUNITY_TABLE,
    render_model_sql,
    table_columns,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnmappedValue:
    """One record whose picklist value the tenant mapping does not know."""

    tenant: str
    object: str
    field: str
    record_id: str
    value: str | None


@dataclass
class ModelRunResult:
    """The outcome of building one model table: row count, column types, unmapped values."""

    model: str
    row_count: int
    column_types: list[tuple[str, str]]
    unmapped: list[UnmappedValue] = field(default_factory=list)

    def unmapped_counts(self) -> dict[str, int]:
        """Count unmapped records per "Object.Field"."""
        counts = Counter(f"{value.object}.{value.field}" for value in self.unmapped)
        return dict(sorted(counts.items()))

    def unmapped_value_counts(self) -> dict[str, dict[str, int]]:
        """Count unmapped records per "Object.Field" and value, most frequent value first."""
        counts: dict[str, Counter] = {}
        for value in self.unmapped:
            key = f"{value.object}.{value.field}"
            counts.setdefault(key, Counter())[str(value.value)] += 1
        return {
            key: dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))
            for key, counter in sorted(counts.items())
        }


def unmapped_warning(
    tenant: str, result: ModelRunResult, mapping: TenantMapping
) -> str | None:
    """Build the warning that lists a model's unmapped stage values with their counts.

    Args:
        tenant: The tenant id.
        result: The model's run result.
        mapping: The tenant mapping, for the fallback category and order.

    Returns:
        One message for the whole model, or None when every value is mapped.
    """
    if not result.unmapped:
        return None
    fallback = mapping.fallback_stage_category
    parts = []
    for field_key, values in result.unmapped_value_counts().items():
        listed = ", ".join(f"{value!r} ({count})" for value, count in values.items())
        parts.append(f"{field_key}: {listed}")
    return (
        f"tenant {tenant}: unmapped stage values in {result.model}, "
        f"{len(result.unmapped)} records given the fallback category "
        f"{fallback.category} (order {fallback.order}): {'; '.join(parts)}. "
        f"Map them with `routiine mapping alias-stage {tenant} VALUE STAGE` or "
        f"`routiine mapping set-stage {tenant} VALUE --category open|won|lost --order N`."
    )


def run_model(
    conn: duckdb.DuckDBPyConnection,
    model: SqlModel,
    tenant: str,
    mapping: TenantMapping | None = None,
) -> ModelRunResult:
    """Replace the model's table with the result of its SQL.

    Args:
        conn: The tenant's DuckDB connection; mapping tables must already exist.
        model: The model to build.
        tenant: The tenant id, used in unmapped-value reports.
        mapping: The tenant mapping, to read its Opportunity source fields and
            record types; None runs the file's SQL as written.

    Returns:
        The row count, column types and unmapped picklist values of the new table.

    Raises:
        ModelError: DuckDB rejected the SQL; the message names the model and file.
    """
    sql = model.sql
    if mapping is not None:
        columns = table_columns(conn, OPPORTUNITY_TABLE)
        sql = render_model_sql(model, mapping, columns, tenant)
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {model.name} AS\n{sql}")
    except duckdb.Error as error:
        raise ModelError(
            f"model {model.name} ({model.path}) failed in DuckDB: {error}"
        ) from error
    row_count = conn.execute(f"SELECT count(*) FROM {model.name}").fetchone()[0]
    column_types = [
        (row[0], row[1]) for row in conn.execute(f"DESCRIBE {model.name}").fetchall()
    ]
    unmapped = find_unmapped_values(conn, model, tenant)
    return ModelRunResult(model.name, row_count, column_types, unmapped)


def find_unmapped_values(
    conn: duckdb.DuckDBPyConnection, model: SqlModel, tenant: str
) -> list[UnmappedValue]:
    """List the records of a built model whose picklist value is not in the mapping.

    Args:
        conn: The tenant's DuckDB connection.
        model: A model whose header declares `unmapped_values`.
        tenant: The tenant id, copied into each report row.

    Returns:
        One UnmappedValue per record, ordered by object, field and record id.
    """
    found: list[UnmappedValue] = []
    for report in model.config.unmapped_values:
        rows = conn.execute(
            f"SELECT {report.id_column}, {report.value_column} FROM {model.name} "
            f"WHERE NOT {report.mapped_column} ORDER BY 1"
        ).fetchall()
        found.extend(
            UnmappedValue(tenant, report.object, report.field, str(record_id), value)
            for record_id, value in rows
        )
    return found


def reports_unmapped_first(project: ModelProject, name: str) -> bool:
    """Tell whether a model is where unmapped values enter, so it warns about them.

    Staging models read the raw tables and warn. Models built from them, such
    as `deal`, count the same records in their metadata but do not warn again,
    so one unknown value gives one warning per run.
    """
    return any(table.startswith("raw_") for table in project.upstream_sources(name))


def run_models(
    conn: duckdb.DuckDBPyConnection,
    project: ModelProject,
    tenant: str,
    mapping: TenantMapping,
    select: list[str] | None = None,
) -> dict[str, ModelRunResult]:
    """Write the mapping tables, then build models in dependency order.

    Args:
        conn: The tenant's DuckDB connection.
        project: The loaded models.
        tenant: The tenant id.
        mapping: The tenant mapping written to map_* tables first.
        select: Model names to build; None builds all. Order follows the project.

    Returns:
        The run result of each model built, by name.
    """
    write_mapping_tables(conn, tenant, mapping)
    results = {}
    for name, model in project.models.items():
        if select is not None and name not in select:
            continue
        results[name] = run_model(conn, model, tenant, mapping)
        if reports_unmapped_first(project, name):
            message = unmapped_warning(tenant, results[name], mapping)
            if message:
                log.warning(message)
        log.info(
            "tenant %s: built %s with %d rows", tenant, name, results[name].row_count
        )
    return results
