"""Write the tenant mapping into small tables that SQL models join against.

Keeping the mapping in tables, rather than pasting values into SQL text,
lets one set of model files serve every tenant and keeps the SQL readable.
"""

from __future__ import annotations

import logging

import duckdb

from routiine_pipeline.mapping import TenantMapping
from routiine_pipeline.models.sources import MAPPING_TABLE_SCHEMAS

log = logging.getLogger(__name__)

# Emails count as inbound when Type or TaskSubtype matches this regular
# expression (case-insensitive), because Salesforce has no standard
# direction field for emails and orgs that track it encode it in Type.
INBOUND_EMAIL_PATTERN = "inbound|received"


def stage_rows(mapping: TenantMapping) -> list[tuple[str, str, str, int]]:
    """Build map_stage rows: every stage and every alias, with aliases resolved.

    Args:
        mapping: The tenant mapping.

    Returns:
        (stage_name, canonical_stage, category, stage_order) tuples. An alias
        whose target stage is not in the mapping is left out and logged, so
        its records show up as unmapped values.
    """
    rows = [
        (name, name, stage.category, stage.order)
        for name, stage in mapping.stages.items()
    ]
    for alias, target in mapping.stage_aliases.items():
        stage = mapping.stages.get(target)
        if stage is None:
            log.warning(
                "stage alias %r points to unknown stage %r; ignored", alias, target
            )
            continue
        if alias in mapping.stages:
            continue
        rows.append((alias, target, stage.category, stage.order))
    return sorted(rows)


def task_kind_rows(mapping: TenantMapping) -> list[tuple[str, str, str]]:
    """Build map_task_kind rows from keys of the form "Type|TaskSubtype".

    Args:
        mapping: The tenant mapping.

    Returns:
        (type_pattern, subtype_pattern, kind) tuples, where "*" matches any value.
    """
    rows = []
    for key, kind in mapping.task_kinds.items():
        type_pattern, separator, subtype_pattern = key.partition("|")
        if not separator:
            log.warning("task kind key %r has no '|'; read it as Type|*", key)
            subtype_pattern = "*"
        rows.append((type_pattern or "*", subtype_pattern or "*", kind))
    return sorted(rows)


def settings_rows(tenant: str, mapping: TenantMapping) -> list[tuple[str, str]]:
    """Build map_settings rows: scalar settings that the SQL reads by key."""
    fallback = mapping.fallback_stage_category
    return [
        ("event_kind", mapping.event_kind),
        ("fallback_stage_category", fallback.category),
        ("fallback_stage_order", str(fallback.order)),
        ("inbound_email_pattern", INBOUND_EMAIL_PATTERN),
        ("tenant", tenant),
    ]


def write_mapping_tables(
    conn: duckdb.DuckDBPyConnection, tenant: str, mapping: TenantMapping
) -> None:
    """Replace map_stage, map_task_kind and map_settings with the tenant's mapping.

    Args:
        conn: The tenant's DuckDB connection.
        tenant: The tenant id, stored in map_settings under "tenant".
        mapping: The tenant mapping.
    """
    contents = {
        "map_stage": stage_rows(mapping),
        "map_task_kind": task_kind_rows(mapping),
        "map_settings": settings_rows(tenant, mapping),
    }
    for table, rows in contents.items():
        columns = MAPPING_TABLE_SCHEMAS[table]
        ddl = ", ".join(f"{name} {kind}" for name, kind in columns.items())
        conn.execute(f"CREATE OR REPLACE TABLE {table} ({ddl})")
        if rows:
            marks = ", ".join("?" for _ in columns)
            conn.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
