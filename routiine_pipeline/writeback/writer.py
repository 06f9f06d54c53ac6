"""Sending changes with sObject Collections and keeping every per-record result.

Each call carries up to 200 records with `allOrNone=false`, so one record's
failure never blocks the others. Every SaveResult becomes a `writeback_log`
row. Failed records go to the retry queue (see queue.py), and the records
that need a person's attention in this cycle become one grouped alert.
results.py stores each call's SaveResults in one transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import duckdb

from routiine_pipeline.mapping import WRITEBACK_FIELDS
from routiine_pipeline.salesforce import errors as sf_errors
from routiine_pipeline.salesforce.client import MAX_COLLECTION_RECORDS, SalesforceClient
from routiine_pipeline.writeback import queue as retry_queue
from routiine_pipeline.writeback.changes import Change, build_payload, ensure_tables
from routiine_pipeline.writeback.results import decide_result, store_results

log = logging.getLogger(__name__)


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
    waiting_retry: int = 0
    held_after_failure: int = 0
    calls: int = 0
    stopped: str | None = None
    failures: list[dict] = field(default_factory=list)
    alerts: list[dict] = field(default_factory=list)


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
    now: datetime | None = None,
    retry: retry_queue.RetrySettings | None = None,
) -> WritebackReport:
    """Send the changes that are due, 200 records a call, and store each SaveResult.

    A record in the retry queue with the same values is sent only once its
    next attempt is due. An API limit stops the sending cleanly: finished
    batches stay stored and the rest stays pending for the next cycle.
    """
    logger = logger or log
    now = now or datetime.now(UTC)
    retry = retry or retry_queue.RetrySettings()
    ensure_tables(conn)
    queued = retry_queue.load_queue(conn)
    report = WritebackReport(changed=len(changes))
    due: list[tuple[Change, int]] = []
    for change in changes:
        entry = queued.get(change.record_id)
        if entry is not None and entry.values == change.values:
            if entry.next_attempt_at is None:
                report.held_after_failure += 1
                continue
            if entry.next_attempt_at > now:
                report.waiting_retry += 1
                continue
            due.append((change, entry.attempts + 1))
        else:
            due.append((change, 1))
        if change.restores_edit:
            report.restored_edits += 1
            logger.warning(
                "Tenant %s: Opportunity %s had its Routiine fields edited in Salesforce; restoring %s",
                tenant,
                change.record_id,
                change.values,
            )

    for start in range(0, len(due), MAX_COLLECTION_RECORDS):
        chunk = due[start : start + MAX_COLLECTION_RECORDS]
        payload = [build_payload(change) for change, _ in chunk]
        try:
            results = client.update_records(payload)
        except (
            sf_errors.BudgetExhaustedError,
            sf_errors.RequestLimitExceededError,
        ) as error:
            report.stopped = f"API limit reached: {error}"
            logger.warning(
                "Tenant %s: write-back stopped, %d records left for the next cycle: %s",
                tenant,
                len(due) - start,
                error,
            )
            break
        except sf_errors.TransientError as error:
            # The client already retried the call; every record of the batch waits for a later cycle.
            report.calls += 1
            code = (
                "TIMEOUT"
                if "timed out" in error.message
                else (error.error_code or "SERVER_UNAVAILABLE")
            )
            failure = {"statusCode": code, "message": error.message, "fields": []}
            results = [
                {"id": change.record_id, "success": False, "errors": [failure]}
                for change, _ in chunk
            ]
        else:
            report.calls += 1
        report.sent += len(chunk)
        _store_results(conn, tenant, run_id, chunk, results, report, logger, now, retry)
        logger.info(
            "Tenant %s: write-back batch %d sent %d records (%d/%d done)",
            tenant,
            report.calls,
            len(chunk),
            report.sent,
            len(due),
        )
    return report


def _store_results(
    conn, tenant, run_id, chunk, results, report, logger, now, retry
) -> None:
    outcomes = [
        decide_result(change, attempt, result, now=now, retry=retry)
        for (change, attempt), result in zip(chunk, results, strict=True)
    ]
    # The batch is stored before the report counts it, so a failed transaction
    # leaves no count, log line or alert for results that were not stored.
    store_results(conn, outcomes, tenant=tenant, run_id=run_id, now=now)
    for outcome in outcomes:
        if outcome.success:
            report.succeeded += 1
        else:
            _count_failure(tenant, outcome, report, logger, retry)


def _count_failure(tenant, outcome, report, logger, retry) -> None:
    change = outcome.change
    attempt = outcome.attempt
    next_at = outcome.next_attempt_at
    failure = {
        "record_id": change.record_id,
        "attempt": attempt,
        "kind": outcome.kind,
        "errors": outcome.errors,
    }
    if outcome.kind == retry_queue.DELETED:
        report.dropped_deleted += 1
        logger.info(
            "Tenant %s: Opportunity %s was deleted in Salesforce; its write-back is dropped",
            tenant,
            change.record_id,
        )
        return
    report.failures.append(failure)
    if outcome.kind == retry_queue.TRANSIENT:
        report.transient += 1
        if attempt == retry.alert_after:
            report.alerts.append(
                dict(
                    failure,
                    outcome=f"still failing after {attempt} attempts; retried from "
                    f"{next_at:%Y-%m-%d %H:%M:%S} UTC",
                )
            )
    else:
        report.failed += 1
        if next_at is None:
            report.alerts.append(
                dict(
                    failure,
                    outcome=f"gave up after {attempt} attempts; sent again "
                    "only when the value changes",
                )
            )
