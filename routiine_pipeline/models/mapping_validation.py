"""Check a tenant mapping against the describe results of the tenant's org.

The describe results come from the `_describe_cache` table that the extract
writes into the tenant's DuckDB file (extract/describe.py), so a check needs
no Salesforce call and works offline. The cache is as fresh as the last
sync, which refreshes entries older than a day.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from routiine_pipeline.mapping import (
    DEAL_SOURCE_DEFAULTS,
    RECORD_TYPE_FIELD,
    TenantMapping,
)

STAGE_CATEGORIES = ("open", "won", "lost")
EVENT_KINDS = ("call", "email", "meeting")


class MappingValidationError(ValueError):
    """A tenant mapping does not fit the tenant's org. The message lists every problem."""


@dataclass
class CachedDescribe:
    """One sObject's describe result and when the extract fetched it."""

    body: dict[str, Any]
    fetched_at: datetime

    def field_names(self) -> dict[str, str]:
        """Return {lower-case name: API name} of every field the org exposes."""
        return {raw["name"].lower(): raw["name"] for raw in self.body.get("fields", [])}

    def picklist_values(self, field_name: str) -> list[str] | None:
        """Return the picklist values of a field, or None when the field does not exist."""
        for raw in self.body.get("fields", []):
            if raw["name"].lower() == field_name.lower():
                return [value["value"] for value in raw.get("picklistValues") or []]
        return None

    def record_type_ids(self) -> list[str]:
        return [info["recordTypeId"] for info in self.body.get("recordTypeInfos") or []]


@dataclass
class ValidationReport:
    """The problems found: errors block saving the mapping, warnings do not."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def read_cached_describes(conn: duckdb.DuckDBPyConnection) -> dict[str, CachedDescribe]:
    """Read every cached describe result from a tenant's DuckDB file.

    Args:
        conn: The tenant's DuckDB connection (read-only is enough).

    Returns:
        CachedDescribe per sObject name; empty when no sync has run yet.
    """
    exists = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = '_describe_cache'"
    ).fetchone()[0]
    if not exists:
        return {}
    rows = conn.execute(
        "SELECT sobject, fetched_at, body FROM _describe_cache"
    ).fetchall()
    return {
        name: CachedDescribe(json.loads(body), fetched_at)
        for name, fetched_at, body in rows
    }


def _close(value: str, options: list[str]) -> str:
    matches = difflib.get_close_matches(value, options, n=3, cutoff=0.6)
    return f" Close matches: {', '.join(matches)}." if matches else ""


def check_structure(tenant: str, mapping: TenantMapping) -> list[str]:
    """Return the errors that need no describe: categories, kinds, alias targets, columns."""
    errors = []
    for value, stage in mapping.stages.items():
        if stage.category not in STAGE_CATEGORIES:
            errors.append(
                f"tenant {tenant}: stage {value!r} has category {stage.category!r}; "
                f"use one of {', '.join(STAGE_CATEGORIES)}"
            )
    fallback = mapping.fallback_stage_category
    if fallback.category not in STAGE_CATEGORIES:
        errors.append(
            f"tenant {tenant}: fallback category {fallback.category!r} is invalid; "
            f"use one of {', '.join(STAGE_CATEGORIES)}"
        )
    for alias, target in mapping.stage_aliases.items():
        if target not in mapping.stages:
            errors.append(
                f"tenant {tenant}: stage alias {alias!r} points to {target!r}, which is not "
                f"a mapped stage.{_close(target, list(mapping.stages))} Add the stage with "
                f"`routiine mapping set-stage {tenant} {target!r} --category ... --order N` first"
            )
    kinds = [mapping.event_kind, *mapping.task_kinds.values()]
    for kind in kinds:
        if kind not in EVENT_KINDS:
            errors.append(
                f"tenant {tenant}: event kind {kind!r} is invalid; use one of {', '.join(EVENT_KINDS)}"
            )
    for column in mapping.deal_sources:
        if column not in DEAL_SOURCE_DEFAULTS:
            errors.append(
                f"tenant {tenant}: deal column {column!r} cannot take another source field; "
                f"use one of {', '.join(DEAL_SOURCE_DEFAULTS)}.{_close(column, list(DEAL_SOURCE_DEFAULTS))}"
            )
    return errors


def validate_mapping(
    tenant: str, mapping: TenantMapping, describes: dict[str, CachedDescribe]
) -> ValidationReport:
    """Check fields, record types and picklist values of a mapping against describe.

    Args:
        tenant: The tenant id, named in every message.
        mapping: The mapping to check.
        describes: Cached describe results by sObject name.

    Returns:
        The errors (fields or values the org lacks, invalid categories) and
        warnings (org values the mapping leaves to the fallback or out).
    """
    report = ValidationReport(errors=check_structure(tenant, mapping))
    for sobject in sorted(set(mapping.fields) | {"Opportunity", "Task"}):
        if sobject not in describes:
            report.errors.append(
                f"tenant {tenant}: no cached describe of {sobject}; run a sync of the "
                "tenant first (the extract caches describe results), or save with --no-validate"
            )
    for sobject, names in sorted(mapping.fields.items()):
        describe = describes.get(sobject)
        if describe is None:
            continue
        known = describe.field_names()
        for name in names:
            if name.lower() not in known:
                report.errors.append(
                    f"tenant {tenant}: field {sobject}.{name} not found in the org's describe "
                    f"(cached {describe.fetched_at:%Y-%m-%d %H:%M} UTC).{_close(name, list(known.values()))} "
                    f"Fix the name, grant the integration user access, or remove it with "
                    f"`routiine mapping set-field {tenant} {sobject} ...`"
                )
    opportunity = describes.get("Opportunity")
    if opportunity is not None:
        _check_deal_sources(tenant, mapping, opportunity, report)
        _check_record_types(tenant, mapping, opportunity, report)
        _check_stages(tenant, mapping, opportunity, report)
    task = describes.get("Task")
    if task is not None:
        _check_task_kinds(tenant, mapping, task, report)
    return report


def _check_deal_sources(
    tenant: str,
    mapping: TenantMapping,
    describe: CachedDescribe,
    report: ValidationReport,
) -> None:
    known = describe.field_names()
    read = {name.lower() for name in mapping.fields.get("Opportunity", [])}
    for column, name in sorted(mapping.deal_sources.items()):
        if name.lower() not in known:
            report.errors.append(
                f"tenant {tenant}: deal column {column} reads Opportunity.{name}, which is "
                f"not in the org's describe.{_close(name, list(known.values()))}"
            )
        elif read and name.lower() not in read:
            report.errors.append(
                f"tenant {tenant}: deal column {column} reads Opportunity.{name}, which the "
                f"extract does not read; add it with `routiine mapping set-field {tenant} "
                "Opportunity ...` (the deal source command adds it for you)"
            )


def _check_record_types(
    tenant: str,
    mapping: TenantMapping,
    describe: CachedDescribe,
    report: ValidationReport,
) -> None:
    if not mapping.record_types:
        return
    if RECORD_TYPE_FIELD.lower() not in describe.field_names():
        report.warnings.append(
            f"tenant {tenant}: Opportunity has no {RECORD_TYPE_FIELD} field in this org, so "
            f"the record types {', '.join(mapping.record_types)} cannot filter; every "
            "Opportunity is included"
        )
        return
    known = describe.record_type_ids()
    for record_type in mapping.record_types:
        if record_type not in known:
            report.errors.append(
                f"tenant {tenant}: record type {record_type} is not one of the org's "
                f"Opportunity record types ({', '.join(known) or 'none'})"
            )
    if RECORD_TYPE_FIELD.lower() not in {
        f.lower() for f in mapping.fields.get("Opportunity", [])
    }:
        report.errors.append(
            f"tenant {tenant}: record types are set but the extract does not read "
            f"Opportunity.{RECORD_TYPE_FIELD}; add it with `routiine mapping set-field`"
        )


def _check_stages(
    tenant: str,
    mapping: TenantMapping,
    describe: CachedDescribe,
    report: ValidationReport,
) -> None:
    stage_field = mapping.deal_source("stage_name")
    values = describe.picklist_values(stage_field)
    if values is None:
        return  # reported as a missing field already
    for value in mapping.stages:
        if value not in values:
            report.errors.append(
                f"tenant {tenant}: stage {value!r} is not a value of Opportunity.{stage_field}."
                f"{_close(value, values)} If the org renamed it, map the old name with "
                f"`routiine mapping alias-stage {tenant} {value!r} NEW` and remove the stage"
            )
    uncovered = [
        v for v in values if v not in mapping.stages and v not in mapping.stage_aliases
    ]
    if uncovered:
        fallback = mapping.fallback_stage_category
        report.warnings.append(
            f"tenant {tenant}: Opportunity.{stage_field} values not in the mapping, given "
            f"the fallback category {fallback.category} (order {fallback.order}): "
            f"{', '.join(repr(v) for v in uncovered)}"
        )


def _check_task_kinds(
    tenant: str,
    mapping: TenantMapping,
    describe: CachedDescribe,
    report: ValidationReport,
) -> None:
    patterns = []
    for key in mapping.task_kinds:
        type_pattern, _, subtype_pattern = key.partition("|")
        patterns.append((type_pattern or "*", subtype_pattern or "*"))
    for field_name, position in (("Type", 0), ("TaskSubtype", 1)):
        values = describe.picklist_values(field_name)
        if values is None:
            report.warnings.append(
                f"tenant {tenant}: Task has no {field_name} field in this org"
            )
            continue
        used = {pattern[position] for pattern in patterns} - {"*"}
        for value in sorted(used):
            if value not in values:
                report.errors.append(
                    f"tenant {tenant}: task kind key uses Task.{field_name} {value!r}, which is "
                    f"not a value in the org.{_close(value, values)}"
                )
        if any(
            pattern[position] == "*" and pattern[1 - position] == "*"
            for pattern in patterns
        ):
            continue
        uncovered = [v for v in values if v not in used]
        if uncovered:
            report.warnings.append(
                f"tenant {tenant}: Task.{field_name} values with no event kind of their own "
                f"(such tasks are events only when the other field matches): "
                f"{', '.join(repr(v) for v in uncovered)}"
            )
