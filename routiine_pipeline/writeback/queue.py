"""The write-back retry queue: which failed records to send again, and when.

Each failed record has one row in the tenant's DuckDB file, keyed by record
id, holding the values its attempts carried. A new value for the record
replaces the row, so attempts count per value. The control store keeps each
tenant's next due time, so the sensor needs neither DuckDB nor Salesforce.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import sqlalchemy as sa

from routiine_pipeline.control import budget_tables
from routiine_pipeline.control.store import ControlStore

QUEUE_DDL = """
CREATE TABLE IF NOT EXISTS writeback_queue (
  record_id VARCHAR PRIMARY KEY,
  field_values VARCHAR NOT NULL,
  attempts INTEGER NOT NULL,
  failure_kind VARCHAR NOT NULL,
  status_code VARCHAR,
  errors VARCHAR NOT NULL,
  next_attempt_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ NOT NULL
)
"""

TRANSIENT, PERMANENT, DELETED = "transient", "permanent", "deleted"
# Codes that may succeed on a later attempt. HTTP failures of a whole call are
# stored under SERVER_UNAVAILABLE, UNKNOWN_EXCEPTION or TIMEOUT and retried too.
TRANSIENT_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "SERVER_UNAVAILABLE",
        "REQUEST_RUNNING_TOO_LONG",
        "UNKNOWN_EXCEPTION",
        "TIMEOUT",
    }
)


def failure_kind(status_code: str | None) -> str:
    if status_code == "ENTITY_IS_DELETED":
        return DELETED
    return TRANSIENT if status_code in TRANSIENT_CODES else PERMANENT


@dataclass(frozen=True)
class RetrySettings:
    """Backoff and attempt limits of write-back retries.

    Transient failures retry without limit, after base * 2^(attempt - 1)
    seconds capped at max_backoff, and are alerted once at alert_after
    attempts. Permanent failures get at most max_permanent_attempts attempts,
    then an alert, and wait for a new value.
    """

    base_backoff: timedelta = timedelta(minutes=1)
    max_backoff: timedelta = timedelta(hours=1)
    alert_after: int = 3
    max_permanent_attempts: int = 2

    def __post_init__(self) -> None:
        if self.max_permanent_attempts < 1 or self.alert_after < 1:
            raise ValueError(
                "max_permanent_attempts and alert_after must be at least 1"
            )

    def backoff(self, attempt: int) -> timedelta:
        return min(self.max_backoff, self.base_backoff * 2 ** (attempt - 1))


@dataclass(frozen=True)
class QueueEntry:
    record_id: str
    values: dict[str, Any]
    attempts: int
    kind: str
    next_attempt_at: datetime | None


def ensure_queue(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(QUEUE_DDL)


def load_queue(conn: duckdb.DuckDBPyConnection) -> dict[str, QueueEntry]:
    ensure_queue(conn)
    rows = conn.execute(
        "SELECT record_id, field_values, attempts, failure_kind, next_attempt_at FROM writeback_queue"
    ).fetchall()
    return {
        row[0]: QueueEntry(row[0], json.loads(row[1]), row[2], row[3], row[4])
        for row in rows
    }


def publish_due_time(
    store: ControlStore, conn: duckdb.DuckDBPyConnection, tenant: str, now: datetime
) -> None:
    """Copy the number of pending retries and the earliest due time to the control store."""
    pending, next_at = conn.execute(
        "SELECT count(*), min(next_attempt_at) FROM writeback_queue WHERE next_attempt_at IS NOT NULL"
    ).fetchone()
    table = budget_tables.writeback_retries
    with store.engine.begin() as control:
        control.execute(table.delete().where(table.c.tenant_id == tenant))
        control.execute(
            table.insert().values(
                tenant_id=tenant,
                pending=pending,
                next_attempt_at=next_at,
                updated_at=now,
            )
        )


def due_retries(store: ControlStore, now: datetime) -> dict[str, datetime]:
    """Return tenants whose earliest write-back retry is due at `now`, with that due time."""
    table = budget_tables.writeback_retries
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.tenant_id, table.c.next_attempt_at).where(
                table.c.next_attempt_at.is_not(None),
                table.c.next_attempt_at <= now,
                table.c.pending > 0,
            )
        ).all()
    return {tenant: at for tenant, at in rows}
