"""Field lists: long lists never truncated, formula fields, and mapped fields the org lacks or hides.

Describe comes from the emulator over HTTP, so hidden fields are left out the
way Salesforce leaves them out for the integration user.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from emulated_org import START, emulated_org, record, utc

from routiine_pipeline.emulator.soql_eval import compile_query
from routiine_pipeline.extract.describe import load_describes
from routiine_pipeline.extract.plan import plan_fields
from routiine_pipeline.extract.windows import ExtractSettings
from routiine_pipeline.mapping import default_fields
from routiine_pipeline.salesforce.client import MAX_GET_URL_BYTES
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS, FieldSpec
from routiine_pipeline.storage.warehouse import open_database

OPPORTUNITY = "Opportunity"
NO_LAG = ExtractSettings(lag=timedelta(0), restart_backoff=0.0)
CUSTOM_FIELDS = [f"Custom_Metric_{number:03d}__c" for number in range(1, 701)]


def _plans(env, mapping: dict[str, list[str]], client=None):
    client = client or env.client()
    with open_database(env.database) as conn:
        describes = load_describes(client, conn, list(mapping), now=START)
    return [
        plan_fields(sobject, fields, describes[sobject])
        for sobject, fields in mapping.items()
    ]


def _assert_no_rejected_query(env) -> None:
    """Every SOQL the emulator ran compiles against the org as it is, so none got INVALID_FIELD."""
    assert env.org.soql_log
    for soql, _ in env.org.soql_log:
        compile_query(soql, env.org.schemas, env.org.is_field_visible)


def test_700_custom_fields_all_selected(tmp_path):
    base = STANDARD_SCHEMAS[OPPORTUNITY]
    extra = tuple(
        FieldSpec(name, "string", name, 255, custom=True) for name in CUSTOM_FIELDS
    )
    schemas = dict(
        STANDARD_SCHEMAS,
        Opportunity=dataclasses.replace(base, fields=base.fields + extra),
    )
    with emulated_org(tmp_path, schemas=schemas) as env:
        values = {name: f"value {index}" for index, name in enumerate(CUSTOM_FIELDS)}
        # record() keeps only standard fields, so the custom values are added afterwards.
        env.org.load(
            {
                OPPORTUNITY: [
                    {**record(OPPORTUNITY, n, utc(2024, 3, 1, 9, n)), **values}
                    for n in range(1, 4)
                ]
            }
        )
        client = env.client()
        plans = _plans(
            env, {OPPORTUNITY: default_fields(OPPORTUNITY) + CUSTOM_FIELDS}, client
        )
        calls = env.calls()

        outcome = env.extract(START, settings=NO_LAG, client=client, plans=plans)[
            OPPORTUNITY
        ]

        assert outcome.error is None
        assert env.calls() == calls + 1
        assert len(plans[0].selected) == len(default_fields(OPPORTUNITY)) + 700
        sent = env.org.soql_log[-1][0]
        assert all(name in sent for name in CUSTOM_FIELDS)
        assert len(client.query_url(sent, include_deleted=True)) > MAX_GET_URL_BYTES
        columns = ", ".join(name.lower() for name in CUSTOM_FIELDS)
        stored = env.rows(f"SELECT {columns} FROM raw_opportunity ORDER BY id")
        assert stored == [tuple(values[name] for name in CUSTOM_FIELDS)] * 3
        # The same query as a GET would be rejected: the emulator returns 414 as Salesforce does.
        too_long = env.sessions[-1].get(
            env.url + client.query_url(sent, include_deleted=True),
            headers={"Authorization": f"Bearer {client.tokens.access_token()}"},
        )
        assert too_long.status_code == 414


def test_formula_field_not_a_change_signal(tmp_path):
    with emulated_org(tmp_path) as env:
        # Record 2 is newer, so the watermark moves past the overlap and record 1 is not read again.
        env.org.load(
            {
                OPPORTUNITY: [
                    record(
                        OPPORTUNITY,
                        1,
                        utc(2024, 3, 1, 9, 0),
                        CreatedDate=utc(2024, 2, 20, 9, 0),
                    ),
                    record(
                        OPPORTUNITY,
                        2,
                        utc(2024, 3, 1, 9, 30),
                        CreatedDate=utc(2024, 2, 20, 9, 0),
                    ),
                ]
            }
        )
        plans = _plans(env, {OPPORTUNITY: ["Name", "Days_Open__c"]})
        assert plans[0].formula == ["Days_Open__c"]

        first = env.extract(START, settings=NO_LAG, plans=plans)[OPPORTUNITY]
        assert first.warnings == [
            "tenant acme, Opportunity: mapped field Days_Open__c is a formula field; its value is read but its "
            "changes do not move SystemModstamp, so it can be stale between record edits."
        ]
        assert "WHERE SystemModstamp >= " in first.soql
        assert "Days_Open__c >" not in first.soql
        assert env.rows("SELECT days_open__c FROM raw_opportunity ORDER BY id") == [
            (10.0,),
            (10.0,),
        ]

        env.clock.set(START + timedelta(days=3))
        assert env.org.records(OPPORTUNITY)[0]["Days_Open__c"] == 13.0
        second = env.extract(START + timedelta(days=3), settings=NO_LAG, plans=plans)[
            OPPORTUNITY
        ]
        assert second.received == 1
        assert env.rows("SELECT days_open__c FROM raw_opportunity ORDER BY id") == [
            (10.0,),
            (13.0,),
        ]


@pytest.mark.parametrize(
    ("hidden", "mapped_extra", "missing"),
    [
        ("NextStep", [], ["NextStep"]),
        (None, ["Region__c"], ["Region__c"]),
        ("LeadSource", ["Region__c"], ["LeadSource", "Region__c"]),
    ],
)
def test_missing_field_warns_and_others_sync(tmp_path, hidden, mapped_extra, missing):
    with emulated_org(tmp_path) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(
                        OPPORTUNITY,
                        1,
                        utc(2024, 3, 1, 9, 0),
                        NextStep="Call",
                        LeadSource="Web",
                    )
                ],
                "Account": [record("Account", 1, utc(2024, 3, 1, 9, 0))],
            }
        )
        if hidden:
            env.org.set_field_visibility(OPPORTUNITY, hidden, False)
        mapping = {
            "Account": default_fields("Account"),
            OPPORTUNITY: default_fields(OPPORTUNITY) + mapped_extra,
        }
        plans = _plans(env, mapping)

        outcomes = env.extract(
            START, sobjects=("Account", OPPORTUNITY), settings=NO_LAG, plans=plans
        )

        assert outcomes[OPPORTUNITY].warnings == [
            f"tenant acme, Opportunity: mapped field {name} does not exist in the org or is hidden from the "
            "integration user; it is left out of the query and stays NULL. Grant field-level access or "
            "remove it from the tenant's mapping."
            for name in missing
        ]
        for name in missing:
            assert name not in outcomes[OPPORTUNITY].soql
            assert env.rows(f"SELECT {name.lower()} FROM raw_opportunity") == [(None,)]
        assert outcomes[OPPORTUNITY].error is None
        assert outcomes["Account"].error is None
        assert outcomes["Account"].received == 1
        assert env.rows("SELECT stagename FROM raw_opportunity") == [("Prospecting",)]
        _assert_no_rejected_query(env)


def test_field_hidden_after_describe_refetched(tmp_path):
    with emulated_org(tmp_path) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, 1, utc(2024, 3, 1, 9, 0), NextStep="Call")
                ],
                "Account": [record("Account", 1, utc(2024, 3, 1, 9, 0))],
            }
        )
        mapping = {
            "Account": default_fields("Account"),
            OPPORTUNITY: default_fields(OPPORTUNITY),
        }
        cached = _plans(env, mapping)
        env.org.set_field_visibility(OPPORTUNITY, "NextStep", False)

        outcomes = env.extract(
            START, sobjects=("Account", OPPORTUNITY), settings=NO_LAG, plans=cached
        )

        assert outcomes["Account"].error is None
        assert outcomes[OPPORTUNITY].error.startswith("INVALID_FIELD: ")
        assert "(tenant acme, sObject Opportunity)" in outcomes[OPPORTUNITY].error
        assert env.rows("SELECT sobject FROM _describe_cache ORDER BY sobject") == [
            ("Account",)
        ]

        refreshed = _plans(env, mapping)
        again = env.extract(
            START, sobjects=(OPPORTUNITY,), settings=NO_LAG, plans=refreshed[1:]
        )[OPPORTUNITY]
        assert again.error is None
        assert refreshed[1].missing == ["NextStep"]
