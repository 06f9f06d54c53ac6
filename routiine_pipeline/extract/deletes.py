"""Hard deletes: records removed from the recycle bin, which no query returns any more.

Soft deletes arrive through `queryAll` as rows with IsDeleted = true. A record
purged from the recycle bin (emptied by a user, or after 15 days) vanishes
from `queryAll`, so the only signal is Salesforce's delete log behind
`GET /sobjects/{type}/deleted/?start=&end=`, which covers at most 15 days.

A check runs once per `interval` per tenant and sObject, tracked in the
`_delete_checks` table of the tenant's DuckDB file. It runs again sooner only
after a transient failure or when forced. The /deleted requests
of all sObjects go in one Composite request. When the last check is older
than the log's reach (or the log reports an `earliestDateAvailable` later
than the requested start), the log cannot prove what was deleted in between,
so the sObject gets a full Id reconciliation: every Id is read with
`queryAll SELECT Id FROM X`, and every stored row whose Id is gone becomes a
tombstone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import duckdb

from routiine_pipeline.extract.id_scan import scan_ids
from routiine_pipeline.extract.records import parse_datetime
from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.client import (
    MAX_COMPOSITE_SUBREQUESTS,
    SalesforceClient,
    error_from_body,
)
from routiine_pipeline.storage.raw_writer import (
    count_rows_extracted_before,
    live_ids,
    tombstone_rows,
)

log = logging.getLogger(__name__)

# Salesforce keeps the delete log for 15 days; a start date further back is rejected.
DELETE_LOG_REACH = timedelta(days=15)

_DDL = """
CREATE TABLE IF NOT EXISTS _delete_checks (
  sobject VARCHAR PRIMARY KEY,
  checked_through TIMESTAMPTZ,
  last_checked_at TIMESTAMPTZ NOT NULL,
  method VARCHAR NOT NULL,
  tombstoned BIGINT NOT NULL DEFAULT 0,
  error VARCHAR
)
"""


@dataclass(frozen=True)
class DeleteCheckSettings:
    """Tuning of hard-delete checks.

    `interval` is the time between checks, because each check costs a call.
    `overlap` re-reads the end of the previous check's range, so deletes
    committed while it ran are not missed. `margin` keeps the requested start
    this far inside the 15-day reach, to allow for clock differences with
    Salesforce.
    """

    interval: timedelta = timedelta(hours=24)
    overlap: timedelta = timedelta(minutes=5)
    margin: timedelta = timedelta(minutes=10)
    id_scan_restarts: int = 2


@dataclass
class DeleteCheckOutcome:
    """The result of one sObject's delete check, for run metadata."""

    sobject: str
    method: str = "not_due"
    start: str | None = None
    end: str | None = None
    reported: int = 0
    tombstoned: int = 0
    reason: str = ""
    error: str | None = None


@dataclass
class _State:
    checked_through: datetime | None
    last_checked_at: datetime


@dataclass
class DeleteCheck:
    """Applies hard deletes of one tenant's sObjects to its raw tables.

    `run_start` is the pass's notion of now, in Salesforce's clock; the
    `/deleted` range ends there. `pass_started` is this process's wall-clock
    time when the pass began, compared with `_extracted_at` to tell whether
    rows stored before this pass exist.
    """

    client: SalesforceClient
    conn: duckdb.DuckDBPyConnection
    tenant: str
    run_start: datetime
    pass_started: datetime
    settings: DeleteCheckSettings = field(default_factory=DeleteCheckSettings)
    logger: logging.Logger = log

    def run(
        self, sobjects: list[str], *, force: bool = False
    ) -> dict[str, DeleteCheckOutcome]:
        """Check each due sObject (all with `force`) and return an outcome per sObject."""
        self.conn.execute(_DDL)
        states = self._read_states()
        outcomes = {sobject: DeleteCheckOutcome(sobject) for sobject in sobjects}
        from_log: dict[str, datetime] = {}
        reconcile: list[str] = []
        floor = self.run_start - DELETE_LOG_REACH + self.settings.margin
        for sobject in sobjects:
            outcome = outcomes[sobject]
            state = states.get(sobject)
            if (
                state is not None
                and not force
                and self.run_start - state.last_checked_at < self.settings.interval
            ):
                outcome.reason = f"last checked {_iso(state.last_checked_at)}"
                continue
            if state is None or state.checked_through is None:
                if count_rows_extracted_before(self.conn, sobject, self.pass_started):
                    outcome.reason = "rows stored before any delete check"
                    reconcile.append(sobject)
                else:
                    # Every stored row was read by this pass, after run_start, so deletes
                    # before run_start cannot concern them: start the log from here.
                    outcome.method, outcome.reason = (
                        "baseline",
                        "first check, no older rows",
                    )
                    self._save(sobject, self.run_start, "baseline", 0)
                continue
            if state.checked_through < floor:
                outcome.reason = f"last check through {_iso(state.checked_through)} is beyond the 15-day delete log"
                reconcile.append(sobject)
                continue
            from_log[sobject] = max(
                state.checked_through - self.settings.overlap, floor
            )

        reconcile += self._apply_delete_log(from_log, outcomes)
        if reconcile:
            self._reconcile(reconcile, outcomes)
        return outcomes

    # -- the delete log --------------------------------------------------------

    def _apply_delete_log(
        self, starts: dict[str, datetime], outcomes: dict[str, DeleteCheckOutcome]
    ) -> list[str]:
        """Tombstone what /deleted reports; return the sObjects whose log has a gap."""
        gaps: list[str] = []
        names = list(starts)
        end = self.run_start
        for first in range(0, len(names), MAX_COMPOSITE_SUBREQUESTS):
            chunk = names[first : first + MAX_COMPOSITE_SUBREQUESTS]
            subrequests = [
                {
                    "method": "GET",
                    "url": f"{self.client.data_path}/sobjects/{sobject}/deleted/?"
                    + urlencode({"start": _iso(starts[sobject]), "end": _iso(end)}),
                    "referenceId": f"deleted_{sobject}",
                }
                for sobject in chunk
            ]
            try:
                responses = self.client.composite(subrequests)
            except errors.TransientError as error:
                # The client retried already. The attempt is not recorded, so the next cycle tries again.
                for sobject in chunk:
                    self._fail(
                        outcomes[sobject],
                        error.with_context(sobject=sobject),
                        record_attempt=False,
                    )
                continue
            for sobject, response in zip(chunk, responses, strict=True):
                outcome = outcomes[sobject]
                outcome.method, outcome.start, outcome.end = (
                    "deleted",
                    _iso(starts[sobject]),
                    _iso(end),
                )
                status, body = response.get("httpStatusCode", 500), response.get("body")
                if status != 200:
                    error = error_from_body(
                        body, status, tenant=self.tenant
                    ).with_context(sobject=sobject)
                    if error.error_code == "INVALID_REPLICATION_DATE":
                        outcome.reason = f"/deleted rejected the range: {error.message}"
                        gaps.append(sobject)
                    else:
                        self._fail(outcome, error)
                    continue
                if self._apply_log_result(sobject, starts[sobject], body, outcome):
                    gaps.append(sobject)
        return gaps

    def _apply_log_result(
        self, sobject: str, start: datetime, body: dict, outcome: DeleteCheckOutcome
    ) -> bool:
        """Tombstone the reported records and save the state; return True when the log has a gap."""
        deletions = {
            entry["id"]: parse_datetime(entry["deletedDate"])
            for entry in body.get("deletedRecords", [])
        }
        outcome.reported = len(deletions)
        outcome.tombstoned = tombstone_rows(self.conn, sobject, deletions)
        earliest = parse_datetime(body["earliestDateAvailable"])
        covered = parse_datetime(body["latestDateCovered"])
        self.logger.info(
            "Tenant %s, %s: /deleted reported %d records since %s, %d tombstoned",
            self.tenant,
            sobject,
            outcome.reported,
            _iso(start),
            outcome.tombstoned,
        )
        if earliest > start:
            outcome.reason = f"delete log starts at {_iso(earliest)}, after the requested {_iso(start)}: entries were purged"
            return True
        self._save(sobject, covered, "deleted", outcome.tombstoned)
        return False

    # -- full Id reconciliation --------------------------------------------------

    def _reconcile(
        self, sobjects: list[str], outcomes: dict[str, DeleteCheckOutcome]
    ) -> None:
        scans = scan_ids(
            self.client,
            sobjects,
            restarts=self.settings.id_scan_restarts,
            logger=self.logger,
        )
        for sobject in sobjects:
            outcome = outcomes[sobject]
            outcome.method = "reconcile"
            scan = scans[sobject]
            if scan.error is not None:
                self._fail(outcome, scan.error)
                continue
            stored = live_ids(self.conn, sobject)
            remote = {record_id[:15] for record_id in scan.ids}
            missing = {
                record_id: self.run_start
                for record_id in stored
                if record_id[:15] not in remote
            }
            tombstoned = tombstone_rows(self.conn, sobject, missing)
            outcome.tombstoned += tombstoned
            self.logger.info(
                "Tenant %s, %s: Id reconciliation over %d Ids in Salesforce and %d stored: %d tombstoned (%s)",
                self.tenant,
                sobject,
                len(scan.ids),
                len(stored),
                tombstoned,
                outcome.reason,
            )
            # The Id scan ran after run_start, so the delete log can take over from there.
            self._save(sobject, self.run_start, "reconcile", outcome.tombstoned)

    # -- state ---------------------------------------------------------------------

    def _fail(
        self,
        outcome: DeleteCheckOutcome,
        error: errors.SalesforceError,
        *,
        record_attempt: bool = True,
    ) -> None:
        outcome.error = str(error)
        self.logger.error(
            "Tenant %s, %s: delete check failed: %s",
            self.tenant,
            outcome.sobject,
            error,
        )
        if not record_attempt:
            return
        # Record the attempt so a persistent failure is retried once per interval, not every cycle.
        self.conn.execute(
            """
            INSERT INTO _delete_checks (sobject, checked_through, last_checked_at, method, error)
            VALUES (?, NULL, ?, 'failed', ?)
            ON CONFLICT (sobject) DO UPDATE SET last_checked_at = excluded.last_checked_at, error = excluded.error
            """,
            [outcome.sobject, self.run_start, str(error)],
        )

    def _save(
        self, sobject: str, checked_through: datetime, method: str, tombstoned: int
    ) -> None:
        self.conn.execute(
            """
            INSERT INTO _delete_checks (sobject, checked_through, last_checked_at, method, tombstoned, error)
            VALUES (?, ?, ?, ?, ?, NULL)
            ON CONFLICT (sobject) DO UPDATE SET
              checked_through = excluded.checked_through,
              last_checked_at = excluded.last_checked_at,
              method = excluded.method,
              tombstoned = _delete_checks.tombstoned + excluded.tombstoned,
              error = NULL
            """,
            [sobject, checked_through, self.run_start, method, tombstoned],
        )

    def _read_states(self) -> dict[str, _State]:
        rows = self.conn.execute(
            "SELECT sobject, checked_through, last_checked_at FROM _delete_checks"
        ).fetchall()
        return {row[0]: _State(_utc(row[1]), _utc(row[2])) for row in rows}


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value is not None else None


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
