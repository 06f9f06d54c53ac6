"""Committing extracted rows and their watermark in one DuckDB transaction.

A row replaces the stored row of the same Id only when its SystemModstamp is
the same or newer, so re-reading an overlap, a retried page or an out-of-order
window never rolls a record back. The watermark of a (sObject, month window)
moves in the same transaction as the rows it covers, and never backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import pandas as pd

from routiine_pipeline.extract.crashpoints import crash_point
from routiine_pipeline.salesforce.schema import FieldSpec
from routiine_pipeline.storage.raw_tables import (
    column_name,
    duckdb_type,
    raw_table_ddl,
    raw_table_name,
)

WATERMARKS_DDL = """
CREATE TABLE IF NOT EXISTS _watermarks (
  sobject VARCHAR NOT NULL,
  window_key VARCHAR NOT NULL,
  watermark TIMESTAMPTZ,
  watermark_id VARCHAR,
  sealed BOOLEAN NOT NULL DEFAULT false,
  rows_committed BIGINT NOT NULL DEFAULT 0,
  updated_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (sobject, window_key)
)
"""


@dataclass(frozen=True)
class Watermark:
    """The newest SystemModstamp committed for one sObject and month window."""

    sobject: str
    window_key: str
    watermark: datetime | None
    watermark_id: str | None
    sealed: bool
    rows_committed: int


@dataclass(frozen=True)
class WatermarkUpdate:
    window_key: str
    watermark: datetime | None
    watermark_id: str | None
    rows: int
    seal: bool = False


def ensure_tables(
    conn: duckdb.DuckDBPyConnection, sobject: str, fields: list[FieldSpec]
) -> None:
    """Create the raw table and the watermark table; add columns newly mapped since last run."""
    conn.execute(WATERMARKS_DDL)
    conn.execute(raw_table_ddl(sobject, fields))
    table = raw_table_name(sobject)
    existing = {
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            [table],
        ).fetchall()
    }
    for spec in fields:
        if column_name(spec.name) not in existing:
            conn.execute(
                f'ALTER TABLE {table} ADD COLUMN "{column_name(spec.name)}" {duckdb_type(spec)}'
            )


def read_watermarks(
    conn: duckdb.DuckDBPyConnection, sobject: str
) -> dict[str, Watermark]:
    conn.execute(WATERMARKS_DDL)
    rows = conn.execute(
        "SELECT sobject, window_key, watermark, watermark_id, sealed, rows_committed "
        "FROM _watermarks WHERE sobject = ?",
        [sobject],
    ).fetchall()
    return {
        row[1]: Watermark(row[0], row[1], _utc(row[2]), row[3], row[4], row[5])
        for row in rows
    }


def commit_rows(
    conn: duckdb.DuckDBPyConnection,
    sobject: str,
    fields: list[FieldSpec],
    rows: list[dict[str, Any]],
    *,
    window_of_row: dict[str, str],
    watermark_updates: list[WatermarkUpdate],
) -> int:
    """Upsert rows (newest SystemModstamp wins) and move watermarks, atomically.

    Returns the number of rows inserted or replaced.
    """
    table = raw_table_name(sobject)
    columns = [column_name(spec.name) for spec in fields]
    now = datetime.now(UTC)
    frame = _frame(rows, columns, window_of_row, now)

    conn.execute("BEGIN TRANSACTION")
    try:
        crash_point("commit.begun")
        changed = 0
        if len(frame):
            all_columns = columns + ["_deleted_at", "_extracted_at", "_window"]
            quoted = ", ".join(f'"{name}"' for name in all_columns)
            assignments = ", ".join(
                f'"{name}" = excluded."{name}"' for name in all_columns if name != "id"
            )
            conn.register("incoming_rows", frame)
            conn.execute(
                f"INSERT INTO {table} ({quoted}) SELECT {quoted} FROM incoming_rows "
                f"ON CONFLICT (id) DO UPDATE SET {assignments} "
                f"WHERE excluded.systemmodstamp >= {table}.systemmodstamp"
            )
            conn.unregister("incoming_rows")
            changed = len(frame)
            crash_point("commit.rows_written")
        for update in watermark_updates:
            _advance_watermark(conn, sobject, update, now)
        crash_point("commit.watermarks_written")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return changed


def _frame(rows, columns, window_of_row, now) -> pd.DataFrame:
    # Within one batch a record can appear twice (changed while its query was
    # paged): keep its newest version so the upsert receives each Id once.
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        current = newest.get(row["id"])
        if current is None or row["systemmodstamp"] >= current["systemmodstamp"]:
            newest[row["id"]] = row
    records = []
    for row in newest.values():
        record = {name: row.get(name) for name in columns}
        record["_deleted_at"] = row["systemmodstamp"] if row.get("isdeleted") else None
        record["_extracted_at"] = now
        record["_window"] = window_of_row.get(row["id"])
        records.append(record)
    frame = pd.DataFrame.from_records(
        records, columns=columns + ["_deleted_at", "_extracted_at", "_window"]
    )
    for name in ("_deleted_at", "_extracted_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    return frame


def _advance_watermark(
    conn, sobject: str, update: WatermarkUpdate, now: datetime
) -> None:
    conn.execute(
        """
        INSERT INTO _watermarks (sobject, window_key, watermark, watermark_id, sealed, rows_committed, updated_at)
        VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (sobject, window_key) DO UPDATE SET
          watermark_id = CASE
            WHEN excluded.watermark IS NULL THEN _watermarks.watermark_id
            WHEN _watermarks.watermark IS NULL OR excluded.watermark >= _watermarks.watermark
              THEN excluded.watermark_id
            ELSE _watermarks.watermark_id END,
          watermark = CASE
            WHEN excluded.watermark IS NULL THEN _watermarks.watermark
            WHEN _watermarks.watermark IS NULL THEN excluded.watermark
            ELSE greatest(_watermarks.watermark, excluded.watermark) END,
          sealed = _watermarks.sealed OR excluded.sealed,
          rows_committed = _watermarks.rows_committed + excluded.rows_committed,
          updated_at = excluded.updated_at
        """,
        [
            sobject,
            update.window_key,
            update.watermark,
            update.watermark_id,
            update.seal,
            update.rows,
            now,
        ],
    )


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def live_ids(conn: duckdb.DuckDBPyConnection, sobject: str) -> set[str]:
    """Return the Ids of stored rows that are not tombstones; empty when the table does not exist yet."""
    table = raw_table_name(sobject)
    if not _table_exists(conn, table):
        return set()
    return {
        row[0]
        for row in conn.execute(
            f"SELECT id FROM {table} WHERE _deleted_at IS NULL"
        ).fetchall()
    }


def count_rows_extracted_before(
    conn: duckdb.DuckDBPyConnection, sobject: str, moment: datetime
) -> int:
    """Count stored rows last written before `moment` (wall-clock time of this process)."""
    table = raw_table_name(sobject)
    if not _table_exists(conn, table):
        return 0
    return conn.execute(
        f"SELECT count(*) FROM {table} WHERE _extracted_at < ?", [moment]
    ).fetchone()[0]


def tombstone_rows(
    conn: duckdb.DuckDBPyConnection, sobject: str, deletions: dict[str, datetime]
) -> int:
    """Mark stored rows as deleted at the given times and return how many changed.

    This is for hard deletes, which no query returns any more: the row gets
    `isdeleted` true, `_deleted_at` the delete time, and a SystemModstamp of at
    least that time (Salesforce stamps a delete), so an older version read again
    through a query overlap cannot bring it back. A row already tombstoned, or
    whose SystemModstamp is newer than the delete (it was undeleted and changed
    since), is left alone. Ids missing from the table are ignored.
    """
    table = raw_table_name(sobject)
    if not deletions or not _table_exists(conn, table):
        return 0
    frame = pd.DataFrame(
        {"id": list(deletions), "deleted_at": list(deletions.values())}
    )
    frame["deleted_at"] = pd.to_datetime(frame["deleted_at"], utc=True)
    now = datetime.now(UTC)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.register("hard_deletes", frame)
        changed = conn.execute(
            f"""
            UPDATE {table} SET
              isdeleted = true,
              _deleted_at = hard_deletes.deleted_at,
              systemmodstamp = greatest({table}.systemmodstamp, hard_deletes.deleted_at),
              _extracted_at = ?
            FROM hard_deletes
            WHERE {table}.id = hard_deletes.id
              AND {table}._deleted_at IS NULL
              AND {table}.systemmodstamp <= hard_deletes.deleted_at
            """,
            [now],
        ).fetchone()[0]
        conn.unregister("hard_deletes")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return int(changed)


def _table_exists(conn: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?",
            [table],
        ).fetchone()[0]
    )
