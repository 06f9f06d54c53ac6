"""Model outputs for the hand-written scenario in conftest.py, checked row by row."""

from __future__ import annotations

from datetime import date

import pytest
from model_scenario import TENANT, utc

from routiine_pipeline.models import UnmappedValue, run_model_tests


def rows(conn, sql: str) -> list[tuple]:
    return conn.execute(sql).fetchall()


@pytest.mark.parametrize(
    ("table", "key", "expected_ids"),
    [
        ("stg_account", "account_id", ["001A1"]),
        ("stg_contact", "contact_id", ["003C1", "003C2"]),
        ("stg_opportunity", "opportunity_id", ["006D1", "006D4", "006D5"]),
        (
            "stg_opportunity_history",
            "history_id",
            ["008H1", "008H2", "008H3", "008H4", "008H5"],
        ),
        (
            "stg_task",
            "task_id",
            ["00T1", "00T2", "00T3", "00T4", "00T5", "00T7", "00T8"],
        ),
        ("stg_event", "event_id", ["00U1", "00U2"]),
        ("deal", "deal_id", ["006D1", "006D4", "006D5"]),
    ],
)
def test_staging_drops_deleted_rows(built, table, key, expected_ids):
    conn, _ = built
    assert [
        r[0] for r in rows(conn, f"select {key} from {table} order by 1")
    ] == expected_ids


def test_deal_stage_categories(built):
    conn, _ = built
    result = rows(
        conn,
        "select deal_id, stage_name, canonical_stage, stage_category, stage_order, "
        "is_stage_mapped from deal order by 1",
    )
    assert result == [
        ("006D1", "Proposal/Price Quote", "Proposal/Price Quote", "open", 4, True),
        ("006D4", "Verbal Commit", "Verbal Commit", "open", 1, False),
        ("006D5", "Won", "Closed Won", "won", 6, True),
    ]


def test_unknown_stage_reported(built):
    _, results = built
    expected = [
        UnmappedValue(TENANT, "Opportunity", "StageName", "006D4", "Verbal Commit")
    ]
    assert results["stg_opportunity"].unmapped == expected
    assert results["deal"].unmapped == expected
    assert results["deal"].unmapped_counts() == {"Opportunity.StageName": 1}
    assert results["stg_opportunity_history"].unmapped == []


def test_deal_columns(built):
    conn, _ = built
    result = rows(
        conn,
        "select deal_id, name, account_name, owner_name, amount, close_date, is_closed, "
        "is_won, engage_date, last_stage_change_at, has_stage_history, "
        "close_date_push_count, product, sf_momentum_score, sf_next_best_action "
        "from deal order by 1",
    )
    assert result == [
        (
            "006D1",
            "Acme expansion",
            "Acme",
            "Ann Lee",
            5000.0,
            date(2025, 6, 30),
            False,
            False,
            date(2025, 3, 3),
            utc(2025, 3, 12),
            True,
            2,
            "Platform",
            61.0,
            "Keep momentum",
        ),
        (
            "006D4",
            "Odd stage",
            "Acme",
            "Ann Lee",
            None,
            None,
            False,
            False,
            None,
            utc(2025, 3, 1),
            False,
            0,
            None,
            None,
            None,
        ),
        (
            "006D5",
            "Aliased win",
            "Acme",
            "Ann Lee",
            900.0,
            date(2025, 3, 20),
            True,
            True,
            None,
            utc(2025, 3, 1),
            False,
            0,
            None,
            None,
            None,
        ),
    ]


def test_event_rows(built):
    conn, _ = built
    result = rows(
        conn,
        "select event_id, source_object, kind, deal_id, account_id, contact_id, "
        "occurred_at, direction, duration_seconds, is_open_task from event order by 1",
    )
    assert result == [
        (
            "00T1",
            "Task",
            "call",
            "006D1",
            "001A1",
            "003C1",
            utc(2025, 3, 20, 10),
            "inbound",
            300,
            False,
        ),
        (
            "00T2",
            "Task",
            "email",
            "006D1",
            "001A1",
            "003C2",
            utc(2025, 3, 21, 12),
            "outbound",
            None,
            False,
        ),
        (
            "00T4",
            "Task",
            "email",
            "006D1",
            "001A1",
            None,
            utc(2025, 3, 23, 9),
            "outbound",
            None,
            False,
        ),
        (
            "00T5",
            "Task",
            "email",
            "006D1",
            "001A1",
            "003C1",
            utc(2025, 3, 24, 8),
            "inbound",
            None,
            False,
        ),
        (
            "00T7",
            "Task",
            "call",
            "006D1",
            "001A1",
            None,
            utc(2025, 3, 19),
            "outbound",
            None,
            True,
        ),
        (
            "00T8",
            "Task",
            "call",
            None,
            None,
            None,
            utc(2025, 3, 4, 16),
            "internal",
            None,
            False,
        ),
        (
            "00U1",
            "Event",
            "meeting",
            "006D1",
            "001A1",
            "003C2",
            utc(2025, 3, 22, 15),
            "two_way",
            1800,
            False,
        ),
        (
            "00U2",
            "Event",
            "meeting",
            None,
            "001A1",
            None,
            utc(2025, 3, 25, 9),
            "two_way",
            3600,
            False,
        ),
    ]


def test_other_tasks_excluded(built):
    conn, _ = built
    assert rows(conn, "select count(*) from event where event_id = '00T3'") == [(0,)]


def test_deal_stage_history_rows(built):
    conn, _ = built
    result = rows(
        conn,
        "select stage_visit_id, visit_number, canonical_stage, previous_stage, "
        "is_forward_move, entered_at, left_at, is_current, days_in_stage, close_date, "
        "previous_close_date, amount, previous_amount, close_date_pushes, "
        "close_date_at_exit, amount_at_exit from deal_stage_history order by 1",
    )
    assert result == [
        (
            "008H1",
            1,
            "Prospecting",
            None,
            None,
            utc(2025, 3, 1),
            utc(2025, 3, 5),
            False,
            4.0,
            date(2025, 5, 31),
            None,
            4000.0,
            None,
            0,
            date(2025, 5, 31),
            4000.0,
        ),
        (
            "008H2",
            2,
            "Qualification",
            "Prospecting",
            True,
            utc(2025, 3, 5),
            utc(2025, 3, 12),
            False,
            7.0,
            date(2025, 5, 31),
            date(2025, 5, 31),
            4000.0,
            4000.0,
            1,
            date(2025, 6, 15),
            4000.0,
        ),
        (
            "008H4",
            3,
            "Proposal/Price Quote",
            "Qualification",
            True,
            utc(2025, 3, 12),
            None,
            True,
            None,
            date(2025, 6, 30),
            date(2025, 6, 15),
            5000.0,
            4000.0,
            1,
            date(2025, 6, 30),
            5000.0,
        ),
    ]


def test_deal_change_flags(built):
    conn, _ = built
    result = rows(
        conn,
        "select change_id, is_stage_change, is_close_date_push, is_close_date_pull, "
        "amount_change from deal_change order by 1",
    )
    assert result == [
        ("008H1", True, False, False, None),
        ("008H2", True, False, False, 0.0),
        ("008H3", False, True, False, 0.0),
        ("008H4", True, True, False, 1000.0),
    ]


def test_declared_tests_pass(built, project):
    conn, _ = built
    failures = [
        (name, outcome.name, outcome.examples)
        for name, model in project.models.items()
        for outcome in run_model_tests(conn, model)
        if not outcome.passed
    ]
    assert failures == []


def test_declared_test_detects_duplicate(built, project):
    conn, _ = built
    conn.execute("insert into deal select * from deal where deal_id = '006D1'")
    outcomes = {o.name: o for o in run_model_tests(conn, project.models["deal"])}
    assert outcomes["unique_deal_id"].failing_rows == 1
    assert outcomes["unique_deal_id"].examples == ("006D1",)
    assert outcomes["not_null_deal_id"].passed
