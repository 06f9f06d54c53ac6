"""Field plans per sObject: the tenant's mapping checked against describe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS, FieldSpec

# Fields the extract cannot work without: the upsert key, the change signal and the delete flag.
REQUIRED_FIELDS = ("Id", "SystemModstamp", "IsDeleted")


@dataclass
class FieldPlan:
    """The fields of one sObject that will be selected, and what the mapping named but the org lacks."""

    sobject: str
    selected: list[FieldSpec]
    stored: list[FieldSpec]
    missing: list[str] = field(default_factory=list)
    formula: list[str] = field(default_factory=list)

    def warnings(self, tenant: str) -> list[str]:
        messages = [
            f"tenant {tenant}, {self.sobject}: mapped field {name} does not exist in the org or is "
            "hidden from the integration user; it is left out of the query and stays NULL. Grant "
            "field-level access or remove it from the tenant's mapping."
            for name in self.missing
        ]
        messages += [
            f"tenant {tenant}, {self.sobject}: mapped field {name} is a formula field; its value is "
            "read but its changes do not move SystemModstamp, so it can be stale between record edits."
            for name in self.formula
        ]
        return messages


def spec_from_describe(raw: dict[str, Any]) -> FieldSpec:
    """Build a FieldSpec from one entry of a describe result's `fields`."""
    return FieldSpec(
        name=raw["name"],
        type=raw.get("type", "string"),
        label=raw.get("label", ""),
        length=raw.get("length") or 0,
        updateable=bool(raw.get("updateable")),
        createable=bool(raw.get("createable")),
        nillable=bool(raw.get("nillable", True)),
        calculated=bool(raw.get("calculated")),
        custom=bool(raw.get("custom")),
        filterable=bool(raw.get("filterable", True)),
        reference_to=tuple(raw.get("referenceTo") or ()),
        picklist_values=tuple(
            value["value"] for value in raw.get("picklistValues") or ()
        ),
    )


def plan_fields(
    sobject: str, mapped: list[str], describe: dict[str, Any] | None
) -> FieldPlan:
    """Match the mapped field names against describe (case-insensitively).

    Without a describe result the standard schema is used. A mapped field
    the org lacks keeps its raw column (typed from the standard schema when
    known) so downstream SQL still finds it, filled with NULL.
    """
    if describe is not None:
        org_fields = {
            raw["name"].lower(): spec_from_describe(raw)
            for raw in describe.get("fields", [])
        }
    else:
        org_fields = {
            spec.name.lower(): spec for spec in STANDARD_SCHEMAS[sobject].fields
        }
    names = list(dict.fromkeys([*REQUIRED_FIELDS, *mapped]))
    selected: list[FieldSpec] = []
    stored: list[FieldSpec] = []
    plan = FieldPlan(sobject, selected, stored)
    for name in names:
        spec = org_fields.get(name.lower())
        if spec is None:
            plan.missing.append(name)
            standard = STANDARD_SCHEMAS.get(sobject)
            fallback = standard.field_named(name) if standard else None
            stored.append(fallback or FieldSpec(name, "string"))
            continue
        if spec.calculated:
            plan.formula.append(spec.name)
        selected.append(spec)
        stored.append(spec)
    for required in REQUIRED_FIELDS:
        if required in plan.missing:
            raise ValueError(
                f"{sobject}: describe has no {required} field, so the object cannot be synced incrementally"
            )
    return plan


def plan_tenant_fields(
    client, conn, tenant: str, sobjects: list[str]
) -> list[FieldPlan]:
    """Plan the fields of each sObject from the tenant's mapping and the org's describe.

    Describe results come from the tenant's cache when fresh (one Composite call
    fetches the stale ones), so planning usually costs no API call.
    """
    from routiine_pipeline.control.store import load_tenant_mapping
    from routiine_pipeline.extract.describe import load_describes
    from routiine_pipeline.mapping import default_fields

    mapping = load_tenant_mapping(tenant)
    describes = load_describes(client, conn, sobjects)
    return [
        plan_fields(
            sobject,
            mapping.fields.get(sobject) or default_fields(sobject),
            describes.get(sobject),
        )
        for sobject in sobjects
    ]
