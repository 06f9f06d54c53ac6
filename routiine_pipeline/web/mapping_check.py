"""Checks a tenant's mapping against the `describe` results of its org before it is saved."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from routiine_pipeline.mapping import TenantMapping

DescribeLoader = Callable[[str, list[str]], dict[str, dict[str, Any] | None]]


class MappingError(ValueError):
    """The mapping JSON is malformed or names objects or fields the org does not have."""


def parse_mapping(text: str) -> TenantMapping:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as error:
        raise MappingError(
            f"the mapping is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
        ) from None
    if not isinstance(raw, dict):
        raise MappingError(
            "the mapping must be a JSON object with keys such as fields, stages and stage_aliases"
        )
    try:
        return TenantMapping.from_dict(raw)
    except (TypeError, ValueError, AttributeError) as error:
        raise MappingError(
            f"the mapping does not have the expected shape: {error}"
        ) from None


def unknown_fields(
    mapping: TenantMapping, describes: dict[str, dict[str, Any] | None]
) -> list[str]:
    """Return one message per sObject or field of the mapping that the describe results lack."""
    problems = []
    requested = {sobject: list(names) for sobject, names in mapping.fields.items()}
    requested.setdefault("Opportunity", [])
    requested["Opportunity"] += [
        name
        for name in mapping.deal_sources.values()
        if name not in requested["Opportunity"]
    ]
    for sobject, names in requested.items():
        describe = describes.get(sobject)
        if describe is None:
            problems.append(
                f"sObject {sobject} does not exist in the org (describe found nothing)"
            )
            continue
        known = {field["name"].lower() for field in describe.get("fields", [])}
        for name in names:
            if name.lower() not in known:
                problems.append(
                    f"{sobject}.{name}: no such field in the org's describe of {sobject}"
                )
    return problems


def check_mapping(
    text: str, tenant_id: str, load_describes: DescribeLoader
) -> TenantMapping:
    """Parse the mapping and check every field it names; raise MappingError listing each unknown one."""
    mapping = parse_mapping(text)
    sobjects = sorted(set(mapping.fields) | {"Opportunity"})
    problems = unknown_fields(mapping, load_describes(tenant_id, sobjects))
    if problems:
        raise MappingError("mapping not saved: " + "; ".join(problems))
    return mapping
