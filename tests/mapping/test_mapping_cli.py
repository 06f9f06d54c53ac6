"""Mapping validation against cached describe results, and the `routiine mapping` commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import dagster as dg
import duckdb
import pytest

from routiine_pipeline import settings
from routiine_pipeline.cli import main
from routiine_pipeline.mapping import StageCategory, default_mapping
from routiine_pipeline.models.mapping_validation import (
    CachedDescribe,
    read_cached_describes,
    validate_mapping,
)
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS

TENANT = "acme"
FETCHED_AT = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)


def describe_body(
    sobject: str, extra_fields: tuple[str, ...] = (), record_types=()
) -> dict:
    fields = [
        {
            "name": spec.name,
            "picklistValues": [{"value": v} for v in spec.picklist_values],
        }
        for spec in STANDARD_SCHEMAS[sobject].fields
    ]
    fields += [{"name": name, "picklistValues": []} for name in extra_fields]
    return {
        "name": sobject,
        "fields": fields,
        "recordTypeInfos": [{"recordTypeId": rt} for rt in record_types],
    }


def cached(**overrides) -> dict[str, CachedDescribe]:
    describes = {
        sobject: CachedDescribe(describe_body(sobject), FETCHED_AT)
        for sobject in STANDARD_SCHEMAS
    }
    for sobject, body in overrides.items():
        describes[sobject] = CachedDescribe(body, FETCHED_AT)
    return describes


def test_default_mapping_valid():
    report = validate_mapping(TENANT, default_mapping(), cached())
    assert report.errors == []


def _edited(**changes):
    mapping = default_mapping()
    for name, value in changes.items():
        setattr(mapping, name, value)
    return mapping


@pytest.mark.parametrize(
    ("mapping", "describes", "error"),
    [
        (
            _edited(
                fields={
                    **default_mapping().fields,
                    "Opportunity": ["Id", "Amount_USD__c"],
                }
            ),
            cached(),
            "tenant acme: field Opportunity.Amount_USD__c not found in the org's describe "
            "(cached 2025-01-02 03:04 UTC).",
        ),
        (
            _edited(
                stages={**default_mapping().stages, "Verbal": StageCategory("open", 3)}
            ),
            cached(),
            "tenant acme: stage 'Verbal' is not a value of Opportunity.StageName.",
        ),
        (
            _edited(stage_aliases={"Qualifying": "Qualified"}),
            cached(),
            "tenant acme: stage alias 'Qualifying' points to 'Qualified', which is not a mapped stage.",
        ),
        (
            _edited(task_kinds={"Phone|*": "call"}),
            cached(),
            "tenant acme: task kind key uses Task.Type 'Phone', which is not a value in the org.",
        ),
        (
            _edited(deal_sources={"amount": "Amount_USD__c"}),
            cached(),
            "tenant acme: deal column amount reads Opportunity.Amount_USD__c, which is not in the org's describe.",
        ),
        (
            _edited(record_types=["012B"]),
            cached(
                Opportunity=describe_body("Opportunity", ("RecordTypeId",), ("012A",))
            ),
            "tenant acme: record type 012B is not one of the org's Opportunity record types (012A)",
        ),
        (
            _edited(stages={"Prospecting": StageCategory("maybe", 1)}),
            cached(),
            "tenant acme: stage 'Prospecting' has category 'maybe'; use one of open, won, lost",
        ),
        (
            default_mapping(),
            {},
            "tenant acme: no cached describe of Account; run a sync of the tenant first",
        ),
    ],
)
def test_invalid_mapping_reported(mapping, describes, error):
    report = validate_mapping(TENANT, mapping, describes)
    assert any(message.startswith(error) for message in report.errors), report.errors


def test_uncovered_stage_warned():
    body = describe_body("Opportunity")
    stage_field = next(f for f in body["fields"] if f["name"] == "StageName")
    stage_field["picklistValues"].append({"value": "Verbal Commit"})
    report = validate_mapping(TENANT, default_mapping(), cached(Opportunity=body))
    assert report.errors == []
    assert (
        "tenant acme: Opportunity.StageName values not in the mapping, given the fallback "
        "category open (order 1): 'Verbal Commit'"
    ) in report.warnings


def test_record_types_without_field_warned():
    report = validate_mapping(TENANT, _edited(record_types=["012A"]), cached())
    assert report.errors == []
    assert report.warnings[0].startswith(
        "tenant acme: Opportunity has no RecordTypeId field in this org"
    )


@pytest.fixture
def tenant(routiine_home):
    """A tenant in the control store with the standard describe cached in its DuckDB file."""
    from routiine_pipeline.tenants import add_tenant

    add_tenant(dg.DagsterInstance.ephemeral(), TENANT, org_type="production")
    path = settings.tenant_database_path(TENANT)
    with duckdb.connect(str(path)) as conn:
        conn.execute(
            "CREATE TABLE _describe_cache (sobject VARCHAR PRIMARY KEY, "
            "fetched_at TIMESTAMPTZ NOT NULL, body VARCHAR NOT NULL)"
        )
        for sobject in STANDARD_SCHEMAS:
            extra = ("Amount_USD__c",) if sobject == "Opportunity" else ()
            conn.execute(
                "INSERT INTO _describe_cache VALUES (?, ?, ?)",
                [sobject, FETCHED_AT, json.dumps(describe_body(sobject, extra))],
            )
    return TENANT


def _stored():
    from routiine_pipeline.tenants import control_store

    return control_store().mapping(TENANT)


def test_cache_read_from_tenant_file(tenant):
    with duckdb.connect(
        str(settings.tenant_database_path(tenant)), read_only=True
    ) as conn:
        describes = read_cached_describes(conn)
    assert sorted(describes) == sorted(STANDARD_SCHEMAS)
    assert describes["Opportunity"].fetched_at == FETCHED_AT


@pytest.mark.parametrize(
    ("argv", "check"),
    [
        (
            ["alias-stage", TENANT, "Qualifying", "Qualification"],
            lambda m: m.stage_aliases == {"Qualifying": "Qualification"},
        ),
        (
            ["set-stage", TENANT, "Prospecting", "--category", "open", "--order", "2"],
            lambda m: m.stages["Prospecting"] == StageCategory("open", 2),
        ),
        (
            ["set-task-kind", TENANT, "Meeting", "*", "none"],
            lambda m: "Meeting|*" not in m.task_kinds,
        ),
        (
            ["set-deal-source", TENANT, "amount", "Amount_USD__c"],
            lambda m: (
                m.deal_sources == {"amount": "Amount_USD__c"}
                and "Amount_USD__c" in m.fields["Opportunity"]
            ),
        ),
        (
            ["set-record-types", TENANT, "012A"],
            lambda m: m.record_types == ["012A"],
        ),
    ],
)
def test_edit_saved(tenant, capsys, argv, check):
    assert main(["mapping", *argv]) == 0
    assert capsys.readouterr().out == f"Saved the mapping of tenant {TENANT}.\n"
    assert check(_stored())


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (
            ["set-stage", TENANT, "Verbal", "--category", "open", "--order", "3"],
            "  tenant acme: stage 'Verbal' is not a value of Opportunity.StageName.",
        ),
        (
            ["set-field", TENANT, "Opportunity", "Id,Amount,Amount_EUR__c"],
            "  tenant acme: field Opportunity.Amount_EUR__c not found in the org's describe",
        ),
        (
            ["alias-stage", TENANT, "Qualifying", "Qualified"],
            "  tenant acme: stage alias 'Qualifying' points to 'Qualified'",
        ),
    ],
)
def test_invalid_edit_not_saved(tenant, capsys, argv, error):
    assert main(["mapping", *argv]) == 1
    stderr = capsys.readouterr().err
    assert stderr.startswith("error: mapping of tenant acme not saved, 1 error(s):\n")
    assert error in stderr
    assert _stored() == default_mapping()


def test_record_types_warning_printed(tenant, capsys):
    assert main(["mapping", "set-record-types", TENANT, "012A"]) == 0
    assert (
        "warning: tenant acme: Opportunity has no RecordTypeId field"
        in capsys.readouterr().err
    )


def test_show_and_set_round_trip(tenant, capsys, tmp_path):
    assert main(["mapping", "show", TENANT]) == 0
    shown = json.loads(capsys.readouterr().out)
    shown["stage_aliases"] = {"Qualifying": "Qualification"}
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(shown))
    assert main(["mapping", "set", TENANT, str(path)]) == 0
    assert _stored().stage_aliases == {"Qualifying": "Qualification"}


def test_unknown_tenant_rejected(routiine_home, capsys):
    assert main(["mapping", "show", "nobody"]) == 1
    assert "tenant 'nobody' not found in the control store" in capsys.readouterr().err


def test_no_cache_needs_flag(routiine_home, capsys):
    from routiine_pipeline.tenants import add_tenant

    add_tenant(dg.DagsterInstance.ephemeral(), "fresh", org_type="production")
    assert main(["mapping", "alias-stage", "fresh", "Qualifying", "Qualification"]) == 1
    assert "no cached describe of Account" in capsys.readouterr().err
    assert (
        main(
            [
                "mapping",
                "alias-stage",
                "fresh",
                "Qualifying",
                "Qualification",
                "--no-validate",
            ]
        )
        == 0
    )
