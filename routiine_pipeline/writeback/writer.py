"""Sending changes with sObject Collections and keeping every per-record result."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

import duckdb

from routiine_pipeline.mapping import WRITEBACK_FIELDS
from routiine_pipeline.salesforce.client import MAX_COLLECTION_RECORDS, SalesforceClient
from routiine_pipeline.writeback.changes import Change, build_payload, ensure_tables

log = logging.getLogger(__name__)

# Failures that may succeed on a later attempt; everything else is permanent.
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE", "REQUEST_RUNNING_TOO_LONG"})


class WritebackConfigError(Exception):
    """The org does not let the integration user write a Routiine-owned field."""


@dataclass
class WritebackReport:
    """Figures of one write-back: what was sent, what stuck, what failed and why."""

    changed: int = 0
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    dropped_deleted: int = 0
    transient: int = 0
    restored_edits: int = 0
    calls: int = 0
    failures: list[dict] = field(default_factory=list)


def check_writable(describe: dict | None, tenant: str) -> None:
    """Fail before any PATCH when a Routiine field is missing or read-only for the integration user."""
    if describe is None:
        return
    fields = {raw["name"]: raw for raw in describe.get("fields", [])}
    for name in WRITEBACK_FIELDS:
        spec = fields.get(name)
        if spec is None:
            raise WritebackConfigError(
                f"tenant {tenant}: Opportunity has no field {name} (or it is hidden from the integration "
                "user); create the custom field and grant edit access, then rerun the write-back"
            )
        if not spec.get("updateable"):
            raise WritebackConfigError(
                f"tenant {tenant}: Opportunity.{name} is not updateable for the integration user; grant "
                "edit access in its field-level security, then rerun the write-back"
            )


def send_changes(
    client: SalesforceClient,
    conn: duckdb.DuckDBPyConnection,
    changes: list[Change],
    *,
    tenant: str,
    run_id: str | None,
    logger: logging.Logger | None = None,
) -> WritebackReport:
    """Send changes 200 records a call (`allOrNone=false`) and store each SaveResult."""
    logger = logger or log
    ensure_tables(conn)
    report = WritebackReport(changed=len(changes), restored_edits=sum(c.restores_edit for c in changes))
    for change in changes:
        if change.restores_edit:
            logger.warning(
                "Tenant %s: Opportunity %s had its Routiine fields edited in Salesforce; restoring %s",
                tenant, change.record_id, change.values,
            )
    for start in range(0, len(changes), MAX_COLLECTION_RECORDS):
        chunk = changes[start : start + MAX_COLLECTION_RECORDS]
        payload = [build_payload(change) for change in chunk]
        results = client.update_records(payload)
        report.calls += 1
        report.sent += len(chunk)
        _store_results(conn, tenant, run_id, chunk, results, report, logger)
        logger.info(
            "Tenant %s: write-back batch %d sent %d records (%d/%d done)",
            tenant, report.calls, len(chunk), report.sent, len(changes),
        )
    return report


def _store_results(conn, tenant, run_id, chunk, results, report, logger) -> None:
    now = datetime.now(timezone.utc)
    conn.execute("BEGIN TRANSACTION")
    try:
        for change, result in zip(chunk, results, strict=True):
            attempt = _next_attempt(conn, change.record_id)
            errors = result.get("errors") or []
            first = errors[0] if errors else {}
            conn.execute(
                "INSERT INTO writeback_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    tenant, run_id, change.record_id, json.dumps(change.values), attempt,
                    bool(result.get("success")), first.get("statusCode"), first.get("message"),
                    json.dumps(first.get("fields") or []), json.dumps(errors), now,
                ],
            )
            if result.get("success"):
                report.succeeded += 1
                conn.execute(
                    "INSERT OR REPLACE INTO writeback_state VALUES (?, ?, ?, ?)",
                    [change.record_id, change.values["Momentum_Score__c"], change.values["Next_Best_Action__c"], now],
                )
                continue
            code = first.get("statusCode")
            if code == "ENTITY_IS_DELETED":
                report.dropped_deleted += 1
                logger.info("Tenant %s: Opportunity %s was deleted in Salesforce; dropped", tenant, change.record_id)
                continue
            if code in TRANSIENT_CODES:
                report.transient += 1
            else:
                report.failed += 1
            report.failures.append({"record_id": change.record_id, "attempt": attempt, "errors": errors})
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _next_attempt(conn, record_id: str) -> int:
    """Count attempts since the last success, so a value that later fails starts again at 1."""
    return conn.execute(
        """
        SELECT count(*) + 1 FROM writeback_log
        WHERE record_id = ? AND logged_at > coalesce(
          (SELECT max(logged_at) FROM writeback_log WHERE record_id = ? AND success), '-infinity'::TIMESTAMPTZ)
        """,
        [record_id, record_id],
    ).fetchone()[0]
