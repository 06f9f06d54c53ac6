"""Extraction failures other Salesforce syncs have shown, replayed with their exact expected values.

Record Ids follow Salesforce's key prefixes: OPP-n is 0060000000000nnAAA,
TASK-n is 00T…; times are UTC.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from emulated_org import (
    FEBRUARY,
    MARCH,
    START,
    emulated_org,
    iso,
    minutes,
    record,
    record_id,
    recording_session,
    subrequest_urls,
    utc,
)

from routiine_pipeline.extract.plan import plan_fields
from routiine_pipeline.extract.windows import ExtractSettings
from routiine_pipeline.mapping import EXTRACT_OBJECTS, default_mapping
from routiine_pipeline.salesforce.client import MAX_GET_URL_BYTES
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS, FieldSpec
from routiine_pipeline.salesforce.soql import soql_datetime, window_query
from routiine_pipeline.storage.raw_writer import (
    WatermarkUpdate,
    commit_rows,
    ensure_tables,
    read_watermarks,
)
from routiine_pipeline.storage.warehouse import open_database

OPPORTUNITY = "Opportunity"
OPP = [None] + [record_id(OPPORTUNITY, n) for n in range(1, 6)]
NO_LAG = ExtractSettings(lag=timedelta(0))


def _seed_watermark(env, stamp: datetime) -> None:
    """Store a watermark as an earlier pass would have left it."""
    plan = plan_fields(OPPORTUNITY, [], None)
    with open_database(env.database) as conn:
        ensure_tables(conn, OPPORTUNITY, plan.stored)
        commit_rows(
            conn,
            OPPORTUNITY,
            plan.stored,
            [],
            window_of_row={},
            watermark_updates=[WatermarkUpdate(MARCH.key, stamp, None, 0)],
        )


def _rows_without_commit_time(env) -> list[tuple]:
    columns = [
        row[0]
        for row in env.rows(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'raw_opportunity'"
        )
        if row[0] != "_extracted_at"
    ]
    return env.rows(f"SELECT {', '.join(columns)} FROM raw_opportunity ORDER BY id")


def test_shared_stamp_small_pages_end(tmp_path):
    with emulated_org(tmp_path, page_size=2) as env:
        shared = utc(2024, 3, 1, 10, 0, 0)
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, 1, shared),
                    record(OPPORTUNITY, 2, shared),
                    record(OPPORTUNITY, 3, shared),
                    record(OPPORTUNITY, 4, utc(2024, 3, 1, 10, 0, 7)),
                ]
            }
        )
        _seed_watermark(env, utc(2024, 3, 1, 9, 0))
        env.clock.set(utc(2024, 3, 1, 10, 10))
        session, sent = recording_session()

        calls = env.calls()
        outcome = env.extract(utc(2024, 3, 1, 10, 10), client=env.client(session))[
            OPPORTUNITY
        ]
        assert outcome.error is None
        assert env.calls() - calls == 2
        urls = subrequest_urls(sent)
        assert len(urls) == 2
        assert len(set(urls)) == len(urls)
        assert env.rows("SELECT id FROM raw_opportunity ORDER BY id") == [
            (OPP[n],) for n in range(1, 5)
        ]
        assert outcome.watermarks[MARCH.key] == "2024-03-01T10:00:07.000Z"
        assert env.watermark(OPPORTUNITY).watermark_id == OPP[4]

        # Salesforce accepts no batchSize below 200, so a real org returns these 4 records in one page.
        # At 2 records per page the second run's overlap re-read would take 2 requests.
        env.server.page_size = 200
        before = _rows_without_commit_time(env)
        calls = env.calls()
        again = env.extract(utc(2024, 3, 1, 10, 11))[OPPORTUNITY]
        assert env.calls() - calls == 1
        assert again.received == 4
        assert _rows_without_commit_time(env) == before
        assert len(before) == 4


@pytest.mark.parametrize(
    "settings", [NO_LAG, ExtractSettings()], ids=["without lag", "default lag"]
)
def test_late_commit_read_next_run(tmp_path, settings):
    with emulated_org(tmp_path) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, 1, utc(2024, 3, 1, 10, 4, 58)),
                    record(OPPORTUNITY, 2, utc(2024, 3, 1, 10, 4, 59)),
                ]
            }
        )
        env.clock.set(utc(2024, 3, 1, 10, 5, 0))
        env.extract(utc(2024, 3, 1, 10, 5, 0), settings=settings)
        first_mark = env.watermark(OPPORTUNITY)

        env.clock.set(utc(2024, 3, 1, 10, 5, 3))
        late_id = env.org.late_commit(
            OPPORTUNITY,
            {"Name": "Deal 3", "StageName": "Negotiation/Review"},
            stamp=utc(2024, 3, 1, 10, 4, 57),
        )
        assert late_id == OPP[3]
        env.clock.set(utc(2024, 3, 1, 10, 15, 0))
        env.extract(utc(2024, 3, 1, 10, 15, 0), settings=settings)

        lower = env.org.soql_log[-1][0].split("SystemModstamp >= ")[1][:20]
        assert lower <= "2024-03-01T10:04:57Z"
        assert env.rows("SELECT id, stagename FROM raw_opportunity ORDER BY id") == [
            (OPP[1], "Prospecting"),
            (OPP[2], "Prospecting"),
            (OPP[3], "Negotiation/Review"),
        ]
        second_mark = env.watermark(OPPORTUNITY)
        assert second_mark.watermark == utc(2024, 3, 1, 10, 4, 59)
        if first_mark is not None and first_mark.watermark is not None:
            assert second_mark.watermark >= first_mark.watermark


@pytest.mark.parametrize(
    ("skip_page", "rows", "error", "watermark"),
    [
        (False, 5, None, utc(2024, 3, 1, 9, 40)),
        (
            True,
            3,
            "received 3 records but the query reported totalSize 5",
            utc(2024, 3, 1, 9, 0),
        ),
    ],
    ids=["all pages", "page skipped"],
)
def test_dropped_page_fails_without_watermark(
    tmp_path, skip_page, rows, error, watermark
):
    with emulated_org(tmp_path, page_size=2) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(
                        OPPORTUNITY, n, utc(2024, 3, 1, 9, 0) + minutes(10 * (n - 1))
                    )
                    for n in range(1, 6)
                ]
            }
        )
        _seed_watermark(env, utc(2024, 3, 1, 9, 0))
        if skip_page:
            env.org.inject_fault("skip_page")
        session, sent = recording_session()

        outcome = env.extract(START, client=env.client(session))[OPPORTUNITY]

        urls = subrequest_urls(sent)
        assert len(urls) == (2 if skip_page else 3)
        assert "/queryAll?q=" in urls[0]
        assert [url.rsplit("-", 1)[1] for url in urls[1:]] == (
            ["4"] if skip_page else ["2", "4"]
        )
        assert outcome.total_size == 5
        assert outcome.received == rows
        assert env.rows("SELECT count(*) FROM raw_opportunity") == [(rows,)]
        assert (error in outcome.error) if error else outcome.error is None
        assert env.watermark(OPPORTUNITY).watermark == watermark


def test_soft_delete_through_query_all(tmp_path):
    from routiine_pipeline.models.loader import load_models
    from routiine_pipeline.models.runner import run_models
    from routiine_pipeline.scoring.score import score_open_deals

    task_id = record_id("Task", 1)
    with emulated_org(tmp_path) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, 1, utc(2024, 3, 1, 9, 0)),
                    record(OPPORTUNITY, 2, utc(2024, 3, 1, 9, 5)),
                ],
                "Task": [
                    record(
                        "Task",
                        1,
                        utc(2024, 3, 1, 9, 10),
                        WhatId=OPP[2],
                        Type="Call",
                        TaskSubtype="Call",
                    )
                ],
            }
        )
        env.extract(START, sobjects=EXTRACT_OBJECTS)
        env.clock.set(utc(2024, 3, 1, 11, 0))
        env.org.delete(OPPORTUNITY, OPP[2], at=utc(2024, 3, 1, 11, 0))
        outcomes = env.extract(utc(2024, 3, 1, 11, 10), sobjects=EXTRACT_OBJECTS)

        assert all(include_deleted for _, include_deleted in env.org.soql_log)
        assert env.rows(
            "SELECT id, isdeleted, epoch(_deleted_at) FROM raw_opportunity ORDER BY id"
        ) == [
            (OPP[1], False, None),
            (OPP[2], True, utc(2024, 3, 1, 11, 0).timestamp()),
        ]
        assert env.rows(
            "SELECT isdeleted, epoch(_deleted_at) FROM raw_task WHERE id = ?", [task_id]
        ) == [(True, utc(2024, 3, 1, 11, 0).timestamp())]
        assert env.rows(
            "SELECT count(*) FROM raw_opportunity WHERE _deleted_at IS NULL"
        ) == [(1,)]
        assert outcomes[OPPORTUNITY].watermarks[MARCH.key] == "2024-03-01T11:00:00.000Z"

        with open_database(env.database) as conn:
            run_models(conn, load_models(), "acme", default_mapping())
            scored = {
                score.deal_id
                for score in score_open_deals(conn, utc(2024, 3, 1, 12, 0))
            }
            events = {
                row[0] for row in conn.execute("SELECT event_id FROM event").fetchall()
            }
        assert scored == {OPP[1]}
        assert task_id not in events


@pytest.mark.parametrize(
    "source_stamp",
    ["2024-03-01T10:00:00.000+0000", "2024-03-01T10:00:00.000Z"],
)
def test_stored_stamp_sent_as_z_literal(tmp_path, source_stamp):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: [record(OPPORTUNITY, 1, source_stamp)]})
        first = env.extract(utc(2024, 3, 1, 10, 10))[OPPORTUNITY]
        second = env.extract(utc(2024, 3, 1, 10, 20))[OPPORTUNITY]

        assert first.watermarks[MARCH.key] == "2024-03-01T10:00:00.000Z"
        assert second.error is None
        decoded = env.org.soql_log[-1][0]
        assert (
            "SystemModstamp >= 2024-03-01T09:55:00Z AND SystemModstamp < 2024-03-01T10:19:00Z"
            in decoded
        )
        assert "+0000" not in decoded
        assert ".000000" not in decoded


@pytest.mark.parametrize(
    ("lower", "literal"),
    [
        (datetime(2024, 3, 1, 10, 0, tzinfo=UTC), "2024-03-01T10:00:00Z"),
        (datetime(2021, 8, 11, 12, 52, 8, 62712, tzinfo=UTC), "2021-08-11T12:52:08Z"),
        (datetime.fromisoformat("2024-03-01T05:00:00-05:00"), "2024-03-01T10:00:00Z"),
    ],
)
def test_python_datetime_sent_as_z_literal(tmp_path, lower, literal):
    with emulated_org(tmp_path) as env:
        soql = window_query(OPPORTUNITY, ["Name"], lower=lower, upper=None)
        page = env.client().query(soql, include_deleted=True)
        assert page["done"] is True
        assert env.org.soql_log[-1][0].endswith(
            f"WHERE SystemModstamp >= {literal} ORDER BY SystemModstamp ASC, Id ASC"
        )


def test_unencoded_plus_offset_rejected(tmp_path):
    """The emulator decodes '+' as a space, as Salesforce does, so a raw offset literal fails."""
    with emulated_org(tmp_path) as env:
        client = env.client()
        target = f"{env.url}{client.data_path}/query?q=SELECT+Id+FROM+Opportunity+WHERE+SystemModstamp+>=+2024-03-01T10:00:00.000+0000"
        response = client.session.get(
            target,
            headers={"Authorization": f"Bearer {client.tokens.access_token()}"},
            timeout=10,
        )
        assert response.status_code == 400
        assert response.json()[0]["errorCode"] == "MALFORMED_QUERY"


def test_utc_watermark_in_new_york_session(tmp_path, monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        with emulated_org(tmp_path) as env:
            env.org.load(
                {OPPORTUNITY: [record(OPPORTUNITY, 1, utc(2024, 3, 1, 10, 0))]}
            )
            conn = duckdb.connect(str(env.database))
            conn.execute("SET TimeZone = 'America/New_York'")
            try:
                env.extract(utc(2024, 3, 1, 10, 10), connection=conn)
                assert conn.execute(
                    "SELECT epoch(watermark) FROM _watermarks"
                ).fetchall() == [(1709287200,)]
                assert conn.execute(
                    "SELECT epoch(systemmodstamp) FROM raw_opportunity"
                ).fetchall() == [(1709287200,)]
                stored = read_watermarks(conn, OPPORTUNITY)[MARCH.key].watermark
                assert soql_datetime(stored) == "2024-03-01T10:00:00Z"
                assert iso(stored) == "2024-03-01T10:00:00.000Z"

                outcome = env.extract(utc(2024, 3, 1, 10, 20), connection=conn)[
                    OPPORTUNITY
                ]
            finally:
                conn.close()
            assert outcome.lower == "2024-03-01T09:55:00.000Z"
            assert "SystemModstamp >= 2024-03-01T09:55:00Z" in env.org.soql_log[-1][0]
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_picklist_rename_moves_two_rows(tmp_path):
    edited = utc(2024, 2, 20, 9, 0)
    renamed = utc(2024, 3, 2, 8, 0)
    with emulated_org(tmp_path) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, 1, edited, StageName="Negotiation"),
                    record(OPPORTUNITY, 2, edited, StageName="Negotiation"),
                    record(
                        OPPORTUNITY, 3, utc(2024, 2, 21, 9, 0), StageName="Prospecting"
                    ),
                ]
            }
        )
        env.extract(START, windows=(FEBRUARY, MARCH))
        first_commit = dict(env.rows("SELECT id, _extracted_at FROM raw_opportunity"))

        env.clock.set(renamed)
        for number in (1, 2):
            env.org.update(
                OPPORTUNITY,
                OPP[number],
                {"StageName": "Negotiation/Review"},
                at=renamed,
                system_only=True,
            )
        outcome = env.extract(renamed + minutes(10), windows=(FEBRUARY, MARCH))[
            OPPORTUNITY
        ]

        assert outcome.received == 2
        recommitted = [
            record_id
            for record_id, extracted_at in env.rows(
                "SELECT id, _extracted_at FROM raw_opportunity"
            )
            if extracted_at != first_commit[record_id]
        ]
        assert sorted(recommitted) == [OPP[1], OPP[2]]
        assert env.rows(
            "SELECT id, stagename, epoch(lastmodifieddate), epoch(systemmodstamp) FROM raw_opportunity ORDER BY id"
        ) == [
            (OPP[1], "Negotiation/Review", edited.timestamp(), renamed.timestamp()),
            (OPP[2], "Negotiation/Review", edited.timestamp(), renamed.timestamp()),
            (
                OPP[3],
                "Prospecting",
                utc(2024, 2, 21, 9, 0).timestamp(),
                utc(2024, 2, 21, 9, 0).timestamp(),
            ),
        ]


REGION = FieldSpec("Region__c", "string", "Region", 80, custom=True)
READ_FIELDS = [
    "Id",
    "Name",
    "StageName",
    "Amount",
    "CloseDate",
    "SystemModstamp",
    "Region__c",
]


def _with_fields(*extra: FieldSpec) -> dict:
    schemas = dict(STANDARD_SCHEMAS)
    schemas[OPPORTUNITY] = dataclasses.replace(
        schemas[OPPORTUNITY], fields=schemas[OPPORTUNITY].fields + extra
    )
    return schemas


@pytest.mark.parametrize(
    ("org_b", "region_selected", "stored_region"),
    [
        ("field absent", False, None),
        ("field hidden", False, None),
        ("field visible", True, "EMEA"),
    ],
)
def test_missing_or_hidden_field_left_out(
    tmp_path, org_b, region_selected, stored_region
):
    schemas = STANDARD_SCHEMAS if org_b == "field absent" else _with_fields(REGION)
    with emulated_org(tmp_path, schemas=schemas) as env:
        values = {} if org_b == "field absent" else {"Region__c": "EMEA"}
        env.org.load(
            {OPPORTUNITY: [record(OPPORTUNITY, 1, utc(2024, 3, 1, 9, 0), **values)]}
        )
        if org_b == "field hidden":
            env.org.set_field_visibility(OPPORTUNITY, "Region__c", False)
        client = env.client()
        plan = plan_fields(OPPORTUNITY, READ_FIELDS, client.describe(OPPORTUNITY))

        outcome = env.extract(START, client=client, plans=[plan])[OPPORTUNITY]

        assert outcome.error is None
        assert ("Region__c" in env.org.soql_log[-1][0]) is region_selected
        assert env.rows("SELECT id, region__c FROM raw_opportunity") == [
            (OPP[1], stored_region)
        ]
        region_warnings = [
            message for message in outcome.warnings if "Region__c" in message
        ]
        assert len(region_warnings) == (0 if region_selected else 1)


def test_wide_object_selects_mapped_fields_only(tmp_path):
    """With 700 custom fields in describe, the query names only the mapped fields and stays a short GET."""
    extra = tuple(
        FieldSpec(f"Extra_{n:03d}__c", "string", f"Extra {n}", 255, custom=True)
        for n in range(700)
    )
    with emulated_org(tmp_path, schemas=_with_fields(*extra)) as env:
        env.org.load({OPPORTUNITY: [record(OPPORTUNITY, 1, utc(2024, 3, 1, 9, 0))]})
        client = env.client()
        describe = client.describe(OPPORTUNITY)
        assert len(describe["fields"]) > 700
        session, sent = recording_session()
        plan = plan_fields(OPPORTUNITY, READ_FIELDS[:-1], describe)

        outcome = env.extract(START, client=env.client(session), plans=[plan])[
            OPPORTUNITY
        ]

        assert outcome.error is None
        selected = (
            env.org.soql_log[-1][0]
            .split(" FROM ")[0]
            .removeprefix("SELECT ")
            .split(", ")
        )
        assert selected == [
            "Id",
            "SystemModstamp",
            "IsDeleted",
            "Name",
            "StageName",
            "Amount",
            "CloseDate",
        ]
        assert all(
            len(url.encode()) < MAX_GET_URL_BYTES for url in subrequest_urls(sent)
        )
