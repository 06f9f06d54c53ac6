"""Storage of one batch's SaveResults: the log, the last written values and the retry queue.

A batch is stored with a fixed number of set-based statements over one
registered DataFrame, in one transaction. One statement per record made the
storage, not the PATCH calls, the slowest part of a large write-back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from routiine_pipeline.writeback import queue as retry_queue
from routiine_pipeline.writeback.changes import Change

# The DataFrame view that the statements below read. DuckDB keeps it per connection.
BATCH_VIEW = "writeback_batch_results"

_FRAME_COLUMNS = (
    "position",
    "record_id",
    "log_values",
    "queue_values",
    "attempt",
    "success",
    "status_code",
    "message",
    "error_fields",
    "errors",
    "momentum_score",
    "next_best_action",
    "failure_kind",
    "next_attempt_at",
    "sets_state",
    "sets_queue",
)

_INSERT_LOG = f"""
INSERT INTO writeback_log
SELECT $tenant, $run_id, record_id, log_values, attempt, success, status_code,
       message, error_fields, errors, $now
FROM {BATCH_VIEW}
ORDER BY position
"""

_UPSERT_STATE = f"""
INSERT OR REPLACE INTO writeback_state
SELECT record_id, momentum_score, next_best_action, $now
FROM {BATCH_VIEW}
WHERE sets_state
"""

_CLEAR_QUEUE = f"""
DELETE FROM writeback_queue
WHERE record_id IN (SELECT record_id FROM {BATCH_VIEW} WHERE sets_queue AND success)
"""

_UPSERT_QUEUE = f"""
INSERT OR REPLACE INTO writeback_queue
SELECT record_id, queue_values, attempt, failure_kind, status_code, errors,
       next_attempt_at, $now
FROM {BATCH_VIEW}
WHERE sets_queue AND NOT success
"""


@dataclass(frozen=True)
class RecordResult:
    """One record's SaveResult and the retry decision taken for it.

    `kind` is None for a success. `next_attempt_at` is None for a success, a
    deleted record and a permanent failure out of attempts.
    """

    change: Change
    attempt: int
    success: bool
    errors: list[dict[str, Any]]
    kind: str | None
    next_attempt_at: datetime | None


def decide_result(
    change: Change,
    attempt: int,
    result: dict[str, Any],
    *,
    now: datetime,
    retry: retry_queue.RetrySettings,
) -> RecordResult:
    """Classify one SaveResult and compute when the record is sent again.

    Transient failures always get a next attempt after the backoff. Permanent
    failures get one while `attempt` is below `retry.max_permanent_attempts`.
    Deleted records never get one.
    """
    errors: list[dict[str, Any]] = result.get("errors") or []
    if result.get("success"):
        return RecordResult(change, attempt, True, errors, None, None)
    code = errors[0].get("statusCode") if errors else None
    kind = retry_queue.failure_kind(code)
    if kind == retry_queue.DELETED:
        next_at = None
    elif kind == retry_queue.TRANSIENT or attempt < retry.max_permanent_attempts:
        next_at = now + retry.backoff(attempt)
    else:
        next_at = None
    return RecordResult(change, attempt, False, errors, kind, next_at)


def store_results(
    conn: duckdb.DuckDBPyConnection,
    results: list[RecordResult],
    *,
    tenant: str,
    run_id: str | None,
    now: datetime,
) -> None:
    """Store a batch's results with four statements in one transaction, whatever its size.

    Every result becomes a writeback_log row, in batch order. A record's last
    success in the batch sets its writeback_state row. Its last result decides
    its writeback_queue row, which a success deletes and a failure inserts or
    replaces. A record id that appears twice therefore ends as if its results
    had been stored one at a time.
    """
    if not results:
        return
    frame = _results_frame(results)
    # BEGIN comes first because it also discards a result the caller left
    # unfetched, which makes register() raise in DuckDB 2.0. A ROLLBACK drops
    # the view.
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.register(BATCH_VIEW, frame)
        conn.execute(_INSERT_LOG, {"tenant": tenant, "run_id": run_id, "now": now})
        conn.execute(_UPSERT_STATE, {"now": now})
        conn.execute(_CLEAR_QUEUE)
        conn.execute(_UPSERT_QUEUE, {"now": now})
        conn.unregister(BATCH_VIEW)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _results_frame(results: list[RecordResult]) -> pd.DataFrame:
    """Build one row per result, holding every value the statements insert.

    Every column has the object dtype, so DuckDB converts each Python value as
    it converts a bound parameter. None becomes NULL, and a naive datetime is
    read in the session time zone.
    """
    last_success: dict[str, int] = {}
    last_result: dict[str, int] = {}
    for position, outcome in enumerate(results):
        last_result[outcome.change.record_id] = position
        if outcome.success:
            last_success[outcome.change.record_id] = position

    rows = []
    for position, outcome in enumerate(results):
        record_id = outcome.change.record_id
        values = outcome.change.values
        first = outcome.errors[0] if outcome.errors else {}
        score, action = None, None
        if outcome.success:
            score = values["Momentum_Score__c"]
            action = values["Next_Best_Action__c"]
        rows.append(
            (
                position,
                record_id,
                json.dumps(values),
                json.dumps(values, sort_keys=True),
                outcome.attempt,
                outcome.success,
                first.get("statusCode"),
                first.get("message"),
                json.dumps(first.get("fields") or []),
                json.dumps(outcome.errors),
                None if score is None else float(score),
                action,
                outcome.kind,
                outcome.next_attempt_at,
                last_success.get(record_id) == position,
                last_result[record_id] == position,
            )
        )
    return pd.DataFrame(rows, columns=_FRAME_COLUMNS, dtype=object)
