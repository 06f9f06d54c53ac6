import os
import time
from datetime import UTC, datetime

import pytest

from routiine_pipeline.extract.windows import MonthWindow
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.salesforce.soql import soql_datetime
from routiine_pipeline.storage.raw_writer import (
    WatermarkUpdate,
    commit_rows,
    ensure_tables,
    read_watermarks,
)
from routiine_pipeline.storage.warehouse import open_database

UTC = UTC
FIELDS = [
    STANDARD_SCHEMAS["Opportunity"].field_named(name)
    for name in ("Id", "SystemModstamp", "IsDeleted", "StageName")
]


def _row(record_id: str, stamp: datetime, stage: str, deleted: bool = False) -> dict:
    return {
        "id": record_id,
        "systemmodstamp": stamp,
        "isdeleted": deleted,
        "stagename": stage,
    }


@pytest.fixture
def conn(tmp_path):
    with open_database(tmp_path / "tenant.duckdb") as connection:
        ensure_tables(connection, "Opportunity", FIELDS)
        yield connection


def test_newest_systemmodstamp_wins(conn):
    new, old = (
        datetime(2024, 3, 1, 10, 5, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
    )
    commit_rows(
        conn,
        "Opportunity",
        FIELDS,
        [_row("006000000000001AAA", new, "Closed Won")],
        window_of_row={},
        watermark_updates=[],
    )
    commit_rows(
        conn,
        "Opportunity",
        FIELDS,
        [_row("006000000000001AAA", old, "Prospecting")],
        window_of_row={},
        watermark_updates=[],
    )
    assert conn.execute("SELECT stagename FROM raw_opportunity").fetchall() == [
        ("Closed Won",)
    ]


def test_duplicate_ids_in_one_batch_keep_newest(conn):
    first, second = (
        datetime(2024, 3, 1, 10, 0, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 1, tzinfo=UTC),
    )
    rows = [
        _row("006000000000001AAA", second, "Qualification"),
        _row("006000000000001AAA", first, "Prospecting"),
    ]
    commit_rows(
        conn, "Opportunity", FIELDS, rows, window_of_row={}, watermark_updates=[]
    )
    assert conn.execute(
        "SELECT count(*), max(stagename) FROM raw_opportunity"
    ).fetchone() == (1, "Qualification")


def test_delete_leaves_tombstone(conn):
    stamp = datetime(2024, 3, 1, 11, 0, tzinfo=UTC)
    commit_rows(
        conn,
        "Opportunity",
        FIELDS,
        [_row("006000000000002AAA", stamp, "Prospecting", deleted=True)],
        window_of_row={},
        watermark_updates=[],
    )
    assert conn.execute(
        "SELECT epoch(_deleted_at) FROM raw_opportunity"
    ).fetchone() == (stamp.timestamp(),)


def test_watermark_never_moves_backwards(conn):
    later, earlier = (
        datetime(2024, 3, 1, 10, 4, 59, tzinfo=UTC),
        datetime(2024, 3, 1, 10, 4, 57, tzinfo=UTC),
    )
    for mark in (later, earlier, None):
        commit_rows(
            conn,
            "Opportunity",
            FIELDS,
            [],
            window_of_row={},
            watermark_updates=[WatermarkUpdate("2024-03-01", mark, "x", 0)],
        )
    assert read_watermarks(conn, "Opportunity")["2024-03-01"].watermark == later


def test_watermark_rolls_back_with_rows(conn):
    stamp = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
    row = _row("006000000000003AAA", stamp, "Prospecting")
    # A NULL window key breaks the watermark insert after the rows went in.
    broken = [
        WatermarkUpdate("2024-03-01", stamp, "x", 1),
        WatermarkUpdate(None, stamp, "x", 1),
    ]
    with pytest.raises(Exception, match="NOT NULL"):
        commit_rows(
            conn,
            "Opportunity",
            FIELDS,
            [row],
            window_of_row={},
            watermark_updates=broken,
        )
    assert read_watermarks(conn, "Opportunity") == {}
    assert conn.execute("SELECT count(*) FROM raw_opportunity").fetchone() == (0,)


def test_watermark_round_trip_in_new_york(tmp_path, monkeypatch):
    """A UTC watermark stays the same instant whatever the process and session time zone."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        watermark = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)
        with open_database(tmp_path / "ny.duckdb") as connection:
            ensure_tables(connection, "Opportunity", FIELDS)
            commit_rows(
                connection,
                "Opportunity",
                FIELDS,
                [],
                window_of_row={},
                watermark_updates=[WatermarkUpdate("2024-03-01", watermark, None, 0)],
            )
            connection.execute("SET TimeZone = 'America/New_York'")
            assert connection.execute(
                "SELECT epoch(watermark) FROM _watermarks"
            ).fetchone() == (1709287200,)
            stored = read_watermarks(connection, "Opportunity")["2024-03-01"].watermark
        assert stored.tzinfo is not None
        assert soql_datetime(stored) == "2024-03-01T10:00:00Z"
        assert MonthWindow.containing(stored).key == "2024-03-01"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert os.environ.get("TZ") is None
