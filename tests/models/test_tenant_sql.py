"""Tenant source fields and record types applied to the SQL models in a real DuckDB file."""

from __future__ import annotations

import logging
from datetime import date

import duckdb
import pytest
from model_scenario import TENANT, insert_scenario, scenario_mapping, utc

from routiine_pipeline.models import run_models


@pytest.fixture
def conn(tmp_path):
    connection = duckdb.connect(str(tmp_path / f"{TENANT}.duckdb"))
    connection.execute("SET TimeZone = 'UTC'")
    insert_scenario(connection)
    yield connection
    connection.close()


def _add_record_types(conn) -> None:
    conn.execute("ALTER TABLE raw_opportunity ADD COLUMN recordtypeid VARCHAR")
    conn.execute(
        "UPDATE raw_opportunity SET recordtypeid = '012NEW' WHERE id = '006D1'"
    )
    conn.execute(
        "UPDATE raw_opportunity SET recordtypeid = '012RENEW' WHERE id <> '006D1'"
    )


@pytest.mark.parametrize(
    ("record_types", "expected_deals"),
    [
        ([], ["006D1", "006D4", "006D5"]),
        (["012NEW"], ["006D1"]),
        (["012RENEW"], ["006D4", "006D5"]),
        (["012NEW", "012RENEW"], ["006D1", "006D4", "006D5"]),
    ],
)
def test_record_types_filter_deal(project, conn, record_types, expected_deals):
    _add_record_types(conn)
    mapping = scenario_mapping()
    mapping.record_types = record_types
    run_models(conn, project, TENANT, mapping)
    assert [
        r[0] for r in conn.execute("SELECT deal_id FROM deal ORDER BY 1").fetchall()
    ] == expected_deals
    changes = conn.execute(
        "SELECT DISTINCT deal_id FROM deal_change ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in changes] == [d for d in expected_deals if d == "006D1"]


def test_record_types_without_field_include_all(project, conn, caplog):
    mapping = scenario_mapping()
    mapping.record_types = ["012NEW"]
    with caplog.at_level(logging.WARNING):
        run_models(conn, project, TENANT, mapping)
    deals = [
        r[0] for r in conn.execute("SELECT deal_id FROM deal ORDER BY 1").fetchall()
    ]
    assert deals == ["006D1", "006D4", "006D5"]
    warnings = [
        r.getMessage() for r in caplog.records if "record types" in r.getMessage()
    ]
    assert warnings == [
        "tenant acme: the mapping includes record types ['012NEW'], but Opportunity has no "
        "RecordTypeId field in this org; every Opportunity is included"
    ]


def test_deal_source_reads_custom_field(project, conn):
    conn.execute("ALTER TABLE raw_opportunity ADD COLUMN amount_usd__c DOUBLE")
    conn.execute("ALTER TABLE raw_opportunity ADD COLUMN close_date_x__c DATE")
    conn.execute("UPDATE raw_opportunity SET amount_usd__c = 7.5 WHERE id = '006D1'")
    conn.execute(
        "UPDATE raw_opportunity SET close_date_x__c = DATE '2026-01-31' WHERE id = '006D1'"
    )
    mapping = scenario_mapping()
    mapping.deal_sources = {"amount": "Amount_USD__c", "close_date": "Close_Date_X__c"}
    run_models(conn, project, TENANT, mapping)
    rows = conn.execute(
        "SELECT deal_id, amount, close_date FROM deal ORDER BY 1"
    ).fetchall()
    assert rows == [
        ("006D1", 7.5, date(2026, 1, 31)),
        ("006D4", None, None),
        ("006D5", None, None),
    ]


def test_default_mapping_runs_file_sql(project, conn):
    results = run_models(conn, project, TENANT, scenario_mapping())
    assert results["deal"].row_count == 3
    created = conn.execute(
        "SELECT created_at FROM deal WHERE deal_id = '006D1'"
    ).fetchone()[0]
    assert created == utc(2025, 3, 1)
