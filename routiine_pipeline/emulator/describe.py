"""Describe payloads built from the schema, with the org's field visibility applied.

Keys come in alphabetical order, as Salesforce's describe output has them.
Only commonly read keys are emitted, so layout and action metadata is left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from routiine_pipeline.salesforce.schema import FieldSpec, SObjectSchema

if TYPE_CHECKING:
    from routiine_pipeline.emulator.org import Org

_TEXT_TYPES = {
    "string",
    "picklist",
    "combobox",
    "email",
    "textarea",
    "phone",
    "url",
    "id",
    "reference",
}
_FORMULAS = {
    (
        "Opportunity",
        "Days_Open__c",
    ): "IF(IsClosed, CloseDate - DATEVALUE(CreatedDate), TODAY() - DATEVALUE(CreatedDate))"
}
READ_ONLY_OBJECTS = {"OpportunityHistory"}


def _relationship_name(spec: FieldSpec) -> str | None:
    if spec.type != "reference":
        return None
    if spec.name.endswith("__c"):
        return spec.name[:-3] + "__r"
    return spec.name.removesuffix("Id")


def describe_field(org: Org, sobject: str, spec: FieldSpec) -> dict[str, Any]:
    updateable = org.is_field_updateable(sobject, spec.name)
    # Field-level security that makes a field read-only also stops inserts into it.
    read_only_by_security = spec.updateable and not updateable
    is_text = spec.type in _TEXT_TYPES
    return {
        "aggregatable": spec.type not in ("textarea",),
        "autoNumber": False,
        "byteLength": spec.length * 3 if is_text else 0,
        "calculated": spec.calculated,
        "calculatedFormula": _FORMULAS.get((sobject, spec.name)),
        "cascadeDelete": False,
        "caseSensitive": False,
        "controllerName": None,
        "createable": spec.createable and not read_only_by_security,
        "custom": spec.custom,
        "defaultValue": None,
        "defaultedOnCreate": spec.name
        in (
            "Id",
            "IsDeleted",
            "CreatedDate",
            "CreatedById",
            "LastModifiedDate",
            "LastModifiedById",
            "SystemModstamp",
            "OwnerId",
        ),
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": spec.precision if spec.type == "int" else 0,
        "externalId": False,
        "filterable": spec.filterable,
        "groupable": spec.type
        not in ("double", "currency", "percent", "datetime", "textarea"),
        "htmlFormatted": False,
        "idLookup": spec.type == "id",
        "inlineHelpText": None,
        "label": spec.label or spec.name,
        "length": spec.length if is_text else 0,
        "name": spec.name,
        "nameField": spec.name == "Name",
        "nillable": spec.nillable,
        "picklistValues": [
            {
                "active": True,
                "defaultValue": False,
                "label": value,
                "validFor": None,
                "value": value,
            }
            for value in spec.picklist_values
        ],
        "polymorphicForeignKey": len(spec.reference_to) > 1,
        "precision": spec.precision if spec.type != "int" else 0,
        "referenceTo": list(spec.reference_to),
        "relationshipName": _relationship_name(spec),
        "restrictedPicklist": False,
        "scale": spec.scale,
        "soapType": spec.soap_type,
        "sortable": spec.type != "textarea",
        "type": spec.type,
        "unique": False,
        "updateable": updateable,
    }


def _urls(schema: SObjectSchema, version: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{schema.name}"
    return {
        "describe": f"{base}/describe",
        "rowTemplate": f"{base}/{{ID}}",
        "sobject": base,
    }


def describe_sobject(org: Org, schema: SObjectSchema, version: str) -> dict[str, Any]:
    """Build the GET /sobjects/{type}/describe result, leaving hidden fields out."""
    writable = schema.name not in READ_ONLY_OBJECTS
    fields = [
        describe_field(org, schema.name, spec)
        for spec in schema.fields
        if org.is_field_visible(schema.name, spec.name)
    ]
    return {
        "actionOverrides": [],
        "activateable": False,
        "childRelationships": [],
        "createable": writable,
        "custom": schema.name.endswith("__c"),
        "customSetting": False,
        "deletable": writable,
        "deprecatedAndHidden": False,
        "feedEnabled": writable,
        "fields": fields,
        "keyPrefix": schema.key_prefix,
        "label": schema.label,
        "labelPlural": schema.label + ("es" if schema.label.endswith("s") else "s"),
        "layoutable": writable,
        "mergeable": schema.name in ("Account", "Contact"),
        "mruEnabled": writable,
        "name": schema.name,
        "queryable": True,
        "recordTypeInfos": [],
        "replicateable": True,
        "retrieveable": True,
        "searchable": writable,
        "triggerable": writable,
        "undeletable": writable,
        "updateable": writable,
        "urls": _urls(schema, version),
    }


def describe_global(org: Org, version: str) -> dict[str, Any]:
    """Build the GET /sobjects/ result: one summary per object in the org."""
    summaries = []
    for schema in org.schemas.values():
        full = describe_sobject(org, schema, version)
        summary = {
            key: value
            for key, value in full.items()
            if key
            not in (
                "fields",
                "childRelationships",
                "recordTypeInfos",
                "actionOverrides",
            )
        }
        summaries.append(summary)
    return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": summaries}
