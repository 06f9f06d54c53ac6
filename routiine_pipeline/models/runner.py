"""Build model tables in a tenant's DuckDB file and report unmapped picklist values."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import duckdb

from routiine_pipeline.mapping import TenantMapping
from routiine_pipeline.models.loader import ModelError, ModelProject, SqlModel
from routiine_pipeline.models.mapping_tables import write_mapping_tables

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


def run_model(
    conn: duckdb.DuckDBPyConnection, model: SqlModel, tenant: str
) -> ModelRunResult:
    """Replace the model's table with the result of its SQL.

    Args:
        conn: The tenant's DuckDB connection; mapping tables must already exist.
        model: The model to build.
        tenant: The tenant id, used in unmapped-value reports.

    Returns:
        The row count, column types and unmapped picklist values of the new table.

    Raises:
        ModelError: DuckDB rejected the SQL; the message names the model and file.
    """
    try:
        conn.execute(f"CREATE OR REPLACE TABLE {model.name} AS\n{model.sql}")
    except duckdb.Error as error:
        raise ModelError(
            f"model {model.name} ({model.path}) failed in DuckDB: {error}"
        ) from error
    row_count = conn.execute(f"SELECT count(*) FROM {model.name}").fetchone()[0]
    column_types = [
        (row[0], row[1]) for row in conn.execute(f"DESCRIBE {model.name}").fetchall()
    ]
    unmapped = find_unmapped_values(conn, model, tenant)
    if unmapped:
        examples = ", ".join(f"{v.record_id}={v.value!r}" for v in unmapped[:10])
        log.warning(
            "tenant %s: model %s has %d records with unmapped picklist values, "
            "given the fallback category (first ones: %s)",
            tenant,
            model.name,
            len(unmapped),
            examples,
        )
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
        results[name] = run_model(conn, model, tenant)
        log.info(
            "tenant %s: built %s with %d rows", tenant, name, results[name].row_count
        )
    return results
