"""One extraction pass over several sObjects, batched into Composite requests.

Each sObject gets one `queryAll` over its SystemModstamp window (queryAll so
soft-deleted rows arrive as tombstones). Up to five queries, first pages or
follow-up `nextRecordsUrl` pages, travel in one Composite request, which
Salesforce counts as one API call. Rows are committed page by page. An
sObject's watermark moves only with its last page, once the number of
records received matches `totalSize`.

A query's page k + 1 can be requested only after page k returned its
`nextRecordsUrl`, so a query of n pages needs at least n Composite calls.
To keep the last calls of a pass from going out with one or two
subrequests, each call takes the known follow-up pages first (the query with
the largest number of records left first), then first pages, largest
expected query first.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from routiine_pipeline.extract.bulk import BulkReadMixin, BulkSettings, wants_bulk
from routiine_pipeline.extract.crashpoints import crash_point
from routiine_pipeline.extract.describe import forget_describe
from routiine_pipeline.extract.plan import FieldPlan
from routiine_pipeline.extract.records import convert_record
from routiine_pipeline.extract.windows import (
    ExtractSettings,
    MonthWindow,
    QueryBounds,
    query_bounds,
)
from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.client import (
    MAX_COMPOSITE_QUERIES,
    SalesforceClient,
    error_from_body,
)
from routiine_pipeline.salesforce.soql import window_query
from routiine_pipeline.storage.raw_tables import raw_table_name
from routiine_pipeline.storage.raw_writer import (
    WatermarkUpdate,
    commit_rows,
    ensure_tables,
    read_watermarks,
)

log = logging.getLogger(__name__)

# The order of first pages while the tenant's file has no rows of the sObjects.
# The sObjects that usually have the largest number of records come first, so
# their page chains start early. Unlisted sObjects follow in plan order.
DEFAULT_SIZE_ORDER: tuple[str, ...] = (
    "Task",
    "Event",
    "OpportunityHistory",
    "Opportunity",
    "Contact",
    "Account",
    "User",
)


class CycleStoppedError(errors.SalesforceError):
    """The pass stopped early (API limit or budget); finished sObjects stay committed."""


@dataclass
class ObjectOutcome:
    """Outcome of one sObject's pass: the figures a user looks for in run metadata."""

    sobject: str
    soql: str | None = None
    lower: str | None = None
    upper: str | None = None
    pages: int = 0
    received: int = 0
    deleted: int = 0
    total_size: int | None = None
    restarts: int = 0
    read_method: str = "rest"
    bulk_jobs: list[str] = field(default_factory=list)
    watermarks: dict[str, str | None] = field(default_factory=dict)
    sealed: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    done: bool = False


@dataclass
class _Stream:
    plan: FieldPlan
    bounds: QueryBounds
    soql: str
    outcome: ObjectOutcome
    # Rows of the sObject stored before the pass, the estimate of the query's size.
    stored_rows: int = 0
    # Position in DEFAULT_SIZE_ORDER, which breaks ties between equal estimates.
    size_rank: int = 0
    next_url: str | None = None
    received: int = 0
    newest: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    rows_per_window: dict[str, int] = field(default_factory=dict)

    def restart(self) -> None:
        self.next_url = None
        self.received = 0
        self.newest.clear()
        self.rows_per_window.clear()
        # The window is read again from its first page, so its record counts start over.
        self.outcome.received = 0
        self.outcome.deleted = 0
        self.outcome.restarts += 1


class ExtractPass(BulkReadMixin):
    """Runs the queries of one tenant's pass and commits what they return.

    Windows whose first page reports more than `settings.bulk_threshold`
    records are read afterwards through Bulk API 2.0 query jobs (see bulk.py).
    """

    def __init__(
        self,
        client: SalesforceClient,
        conn: duckdb.DuckDBPyConnection,
        *,
        tenant: str,
        settings: ExtractSettings,
        run_start: datetime,
        logger: logging.Logger | None = None,
        bulk: BulkSettings | None = None,
    ) -> None:
        self.client = client
        self.conn = conn
        self.tenant = tenant
        self.settings = settings
        self.run_start = run_start
        self.log = logger or log
        self.bulk = bulk or BulkSettings()
        self.outcomes: dict[str, ObjectOutcome] = {}
        self._bulk_queue: list[_Stream] = []

    def run(
        self,
        plans: list[FieldPlan],
        windows: list[MonthWindow],
        *,
        full_refresh: bool = False,
    ) -> dict[str, ObjectOutcome]:
        """Extract every planned sObject over the windows; outcomes stay readable if it raises."""
        outcomes = self.outcomes
        pending: list[_Stream] = []
        for position, plan in enumerate(plans):
            outcome = ObjectOutcome(plan.sobject, warnings=plan.warnings(self.tenant))
            outcomes[plan.sobject] = outcome
            for message in outcome.warnings:
                self.log.warning(message)
            ensure_tables(self.conn, plan.sobject, plan.stored)
            crash_point("cycle.tables_ready")
            marks = read_watermarks(self.conn, plan.sobject)
            open_windows = [w for w in windows if full_refresh or not _sealed(marks, w)]
            bounds = query_bounds(
                open_windows,
                marks,
                run_start=self.run_start,
                settings=self.settings,
                full_refresh=full_refresh,
            )
            if bounds is None:
                outcome.done = True
                outcome.watermarks = {
                    w.key: _iso(marks[w.key].watermark) if w.key in marks else None
                    for w in windows
                }
                continue
            soql = window_query(
                plan.sobject,
                [spec.name for spec in plan.selected],
                lower=bounds.lower,
                upper=bounds.upper,
            )
            outcome.soql, outcome.lower, outcome.upper = (
                soql,
                _iso(bounds.lower),
                _iso(bounds.upper),
            )
            pending.append(
                _Stream(
                    plan,
                    bounds,
                    soql,
                    outcome,
                    stored_rows=_count_rows(self.conn, plan.sobject),
                    size_rank=_size_rank(plan.sobject, position),
                )
            )

        while pending:
            pending.sort(key=_send_order)
            batch = pending[:MAX_COMPOSITE_QUERIES]
            pending = pending[MAX_COMPOSITE_QUERIES:]
            restarts_before = sum(stream.outcome.restarts for stream in batch)
            pending.extend(self._run_batch(batch))
            if sum(stream.outcome.restarts for stream in batch) > restarts_before:
                self._pause_before_restart(
                    max(stream.outcome.restarts for stream in batch)
                )
        while self._bulk_queue:
            self._read_through_bulk(self._bulk_queue.pop(0))
        return outcomes

    def _run_batch(self, batch: list[_Stream]) -> list[_Stream]:
        subrequests = [
            {
                "method": "GET",
                "url": stream.next_url
                or self.client.query_url(stream.soql, include_deleted=True),
                "referenceId": f"q{index}_{stream.plan.sobject}",
            }
            for index, stream in enumerate(batch)
        ]
        crash_point("cycle.before_composite")
        try:
            responses = self.client.composite(subrequests)
        except (errors.RequestLimitExceededError, errors.BudgetExhaustedError) as error:
            for stream in batch:
                stream.outcome.error = str(error)
            raise CycleStoppedError(
                str(error), error_code=error.error_code, tenant=self.tenant
            ) from None
        except errors.TransientError as error:
            # The client already retried the composite call itself; each window now restarts.
            return [s for s in batch if self._restart_or_fail(s, error)]

        follow_up: list[_Stream] = []
        crash_point("cycle.after_composite")
        for stream, response in zip(batch, responses, strict=True):
            status = response.get("httpStatusCode", 500)
            body = response.get("body")
            if status != 200:
                error = error_from_body(body, status, tenant=self.tenant).with_context(
                    sobject=stream.plan.sobject
                )
                if status >= 500 and not isinstance(error, errors.TransientError):
                    error = errors.TransientError(
                        error.message,
                        error_code=error.error_code,
                        status=status,
                        tenant=self.tenant,
                        sobject=stream.plan.sobject,
                    )
                if isinstance(error, errors.RequestLimitExceededError):
                    raise self._stop(stream.outcome, error)
                if isinstance(
                    error, (errors.InvalidQueryLocatorError, errors.TransientError)
                ):
                    if self._restart_or_fail(stream, error):
                        follow_up.append(stream)
                    continue
                stream.outcome.error = str(error)
                self.log.error(
                    "Tenant %s, %s: query failed: %s",
                    self.tenant,
                    stream.plan.sobject,
                    error,
                )
                if error.error_code == "INVALID_FIELD":
                    # The cached describe still lists a field the org no longer shows; the next run re-reads it.
                    forget_describe(self.conn, stream.plan.sobject)
                continue
            if stream.next_url is None and wants_bulk(
                self.settings, body, first_page=True
            ):
                self.log.info(
                    "Tenant %s, %s: %s records in the window, above the Bulk threshold of %d; "
                    "reading it through a Bulk API 2.0 query job",
                    self.tenant,
                    stream.plan.sobject,
                    body.get("totalSize"),
                    self.settings.bulk_threshold,
                )
                self._bulk_queue.append(stream)
                continue
            try:
                if self._consume_page(stream, body):
                    follow_up.append(stream)
            except errors.TotalSizeMismatchError as error:
                stream.outcome.error = str(error)
                self.log.error(str(error))
        return follow_up

    def _restart_or_fail(self, stream: _Stream, error: errors.SalesforceError) -> bool:
        if stream.outcome.restarts >= self.settings.window_restarts:
            stream.outcome.error = (
                f"{error} (gave up after {stream.outcome.restarts} restarts)"
            )
            self.log.error(
                "Tenant %s, %s: %s",
                self.tenant,
                stream.plan.sobject,
                stream.outcome.error,
            )
            return False
        self.log.warning(
            "Tenant %s, %s: %s; restarting the window from its committed watermark",
            self.tenant,
            stream.plan.sobject,
            error,
        )
        stream.restart()
        return True

    def _pause_before_restart(self, restarts: int) -> None:
        """Back off before a window's next attempt: `restart_backoff` seconds, doubling per restart."""
        pause = self.settings.restart_backoff * 2 ** max(0, restarts - 1)
        if pause > 0:
            time.sleep(pause)

    def _stop(
        self, outcome: ObjectOutcome, error: errors.SalesforceError
    ) -> CycleStoppedError:
        outcome.error = str(error)
        return CycleStoppedError(
            str(error), error_code=error.error_code, tenant=self.tenant
        )

    def _consume_page(self, stream: _Stream, page: dict) -> bool:
        """Commit one page; return True when more pages follow."""
        sobject = stream.plan.sobject
        outcome = stream.outcome
        rows, window_of_row = [], {}
        for record in page.get("records", []):
            try:
                row, problems = convert_record(sobject, record, stream.plan.stored)
            except ValueError as error:
                outcome.problems.append(
                    f"tenant {self.tenant}: {error}; record skipped"
                )
                self.log.warning("Tenant %s: %s; record skipped", self.tenant, error)
                continue
            for problem in problems:
                outcome.problems.append(problem.describe(self.tenant))
                self.log.warning(problem.describe(self.tenant))
            window = stream.bounds.window_for(row["systemmodstamp"])
            key = window.key if window else None
            window_of_row[row["id"]] = key
            rows.append(row)
            if key is not None:
                stamp = (row["systemmodstamp"], row["id"])
                if key not in stream.newest or stamp > stream.newest[key]:
                    stream.newest[key] = stamp
                stream.rows_per_window[key] = stream.rows_per_window.get(key, 0) + 1
            if row.get("isdeleted"):
                outcome.deleted += 1

        stream.received += len(page.get("records", []))
        outcome.pages += 1
        outcome.received += len(rows)
        outcome.total_size = page.get("totalSize")
        done = bool(page.get("done"))
        updates: list[WatermarkUpdate] = []
        if done:
            if stream.received != outcome.total_size:
                commit_rows(
                    self.conn,
                    sobject,
                    stream.plan.stored,
                    rows,
                    window_of_row=window_of_row,
                    watermark_updates=[],
                )
                raise errors.TotalSizeMismatchError(
                    f"tenant {self.tenant}, {sobject}: received {stream.received} records but the query "
                    f"reported totalSize {outcome.total_size}; a page went missing, so the watermark "
                    "stays where it was and the next pass reads the window again",
                    tenant=self.tenant,
                    sobject=sobject,
                )
            updates = self._watermark_updates(stream)
        commit_rows(
            self.conn,
            sobject,
            stream.plan.stored,
            rows,
            window_of_row=window_of_row,
            watermark_updates=updates,
        )
        crash_point("cycle.page_committed")
        self.log.info(
            "Tenant %s, %s: page %d committed, %d/%s records",
            self.tenant,
            sobject,
            outcome.pages,
            stream.received,
            outcome.total_size,
        )
        if done:
            outcome.done = True
            marks = read_watermarks(self.conn, sobject)
            outcome.watermarks = {
                w.key: _iso(marks[w.key].watermark) if w.key in marks else None
                for w in stream.bounds.windows
            }
            outcome.sealed = [u.window_key for u in updates if u.seal]
            return False
        stream.next_url = page.get("nextRecordsUrl")
        if not stream.next_url:
            raise errors.TotalSizeMismatchError(
                f"tenant {self.tenant}, {sobject}: page marked not done but without nextRecordsUrl",
                tenant=self.tenant,
                sobject=sobject,
            )
        return True

    def _watermark_updates(self, stream: _Stream) -> list[WatermarkUpdate]:
        updates = []
        for window in stream.bounds.windows:
            newest = stream.newest.get(window.key)
            updates.append(
                WatermarkUpdate(
                    window_key=window.key,
                    watermark=newest[0] if newest else None,
                    watermark_id=newest[1] if newest else None,
                    rows=stream.rows_per_window.get(window.key, 0),
                    seal=stream.bounds.seals(window),
                )
            )
        return updates


def _send_order(stream: _Stream) -> tuple[int, int, int]:
    """Sort key of a pending request: follow-up pages first, then first pages.

    Follow-up pages go by records left (`totalSize` minus records received),
    largest first. First pages go by rows stored before the pass, largest
    first. A restarted window counts as a first page again.
    """
    if stream.next_url is not None:
        left = (stream.outcome.total_size or 0) - stream.received
        return (0, -left, stream.size_rank)
    return (1, -stream.stored_rows, stream.size_rank)


def _size_rank(sobject: str, position: int) -> int:
    if sobject in DEFAULT_SIZE_ORDER:
        return DEFAULT_SIZE_ORDER.index(sobject)
    return len(DEFAULT_SIZE_ORDER) + position


def _count_rows(conn: duckdb.DuckDBPyConnection, sobject: str) -> int:
    """Count the stored rows of the sObject, tombstones included, as queryAll returns them too."""
    return conn.execute(f"SELECT count(*) FROM {raw_table_name(sobject)}").fetchone()[0]


def _sealed(marks, window: MonthWindow) -> bool:
    mark = marks.get(window.key)
    return bool(mark and mark.sealed)


def _iso(value: datetime | None) -> str | None:
    return (
        value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z" if value is not None else None
    )
