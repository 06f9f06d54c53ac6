"""Selection of the Routiine-owned values to send, and the payloads that carry them.

A value is sent when it differs from the last value written, or when the
extract saw a newer version of the record (after our last write) whose value
differs: someone edited a Routiine-owned field in Salesforce, and Routiine
restores it, because those fields flow one way.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import duckdb

from routiine_pipeline.mapping import WRITEBACK_FIELDS

STATE_DDL = """
CREATE TABLE IF NOT EXISTS writeback_state (
  record_id VARCHAR PRIMARY KEY,
  momentum_score__c DOUBLE,
  next_best_action__c VARCHAR,
  written_at TIMESTAMPTZ NOT NULL
)
"""

LOG_DDL = """
CREATE TABLE IF NOT EXISTS writeback_log (
  tenant VARCHAR NOT NULL,
  run_id VARCHAR,
  record_id VARCHAR NOT NULL,
  field_values VARCHAR NOT NULL,
  attempt INTEGER NOT NULL,
  success BOOLEAN NOT NULL,
  status_code VARCHAR,
  message VARCHAR,
  error_fields VARCHAR,
  errors VARCHAR,
  logged_at TIMESTAMPTZ NOT NULL
)
"""

_ALLOWED_KEYS = frozenset({"attributes", "id", *WRITEBACK_FIELDS})


class ConflictPolicyError(ValueError):
    """A payload tried to write a field that Salesforce owns."""


@dataclass(frozen=True)
class Change:
    """One Opportunity whose Routiine-owned fields must be sent."""

    record_id: str
    values: dict[str, Any]
    restores_edit: bool


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(STATE_DDL)
    conn.execute(LOG_DDL)


def pending_changes(conn: duckdb.DuckDBPyConnection) -> list[Change]:
    """Compare the current scores with the last written and the last extracted values."""
    ensure_tables(conn)
    rows = conn.execute(
        """
        SELECT m.deal_id, m.score, m.next_best_action,
               s.momentum_score__c, s.next_best_action__c, s.written_at,
               o.momentum_score__c, o.next_best_action__c, o.systemmodstamp
        FROM momentum_score AS m
        JOIN raw_opportunity AS o ON o.id = m.deal_id AND o._deleted_at IS NULL
        LEFT JOIN writeback_state AS s ON s.record_id = m.deal_id
        WHERE m.score IS NOT NULL
        ORDER BY m.deal_id
        """
    ).fetchall()
    changes = []
    for (
        deal_id,
        score,
        action,
        last_score,
        last_action,
        written_at,
        sf_score,
        sf_action,
        modstamp,
    ) in rows:
        desired = {"Momentum_Score__c": float(score), "Next_Best_Action__c": action}
        never_written = written_at is None
        differs_from_last = never_written or (last_score, last_action) != (
            desired["Momentum_Score__c"],
            action,
        )
        # The extracted value only shows an edit when it was read after our write.
        seen_after_write = never_written or (
            modstamp is not None and modstamp > written_at
        )
        differs_in_salesforce = seen_after_write and (sf_score, sf_action) != (
            desired["Momentum_Score__c"],
            action,
        )
        if differs_from_last or differs_in_salesforce:
            changes.append(
                Change(
                    deal_id,
                    desired,
                    restores_edit=not differs_from_last and not never_written,
                )
            )
    return changes


def build_payload(change: Change) -> dict[str, Any]:
    """Build one sObject Collections record, refusing any field outside the Routiine allowlist."""
    record = {
        "attributes": {"type": "Opportunity"},
        "id": change.record_id,
        **change.values,
    }
    check_payload(record)
    return record


def check_payload(record: dict[str, Any]) -> None:
    """Enforce the conflict policy: only Routiine-owned fields, only finite numbers."""
    outside = sorted(set(record) - _ALLOWED_KEYS)
    if outside:
        raise ConflictPolicyError(
            f"Opportunity {record.get('id')}: refusing to write {', '.join(outside)}; only the "
            f"Routiine-owned fields {', '.join(WRITEBACK_FIELDS)} may be sent"
        )
    for name, value in record.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(
                f"Opportunity {record.get('id')}: {name} is {value}, which is not valid JSON"
            )
    json.dumps(record, allow_nan=False)
