"""Reading a large window through a Bulk API 2.0 query job instead of REST pages.

A REST page contains at most 2,000 records and costs a call, so a 100,000-record
window costs 50 calls. A Bulk query job costs one call to create it, one per
poll and one per result chunk (up to `max_records` rows each). The pass sends
every window's first page through REST; when that page reports a `totalSize`
above the threshold, the page is dropped and the window is read by a job.

Each CSV chunk is committed like a REST page, through the same conversion and
upsert, and the watermark moves only with the last chunk, after the records
received equal the job's `numberRecordsProcessed`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from routiine_pipeline.extract.records import records_from_csv
from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.bulk import BulkQueryApi, PollPolicy

if TYPE_CHECKING:
    from routiine_pipeline.extract.cycle import ObjectOutcome, _Stream
    from routiine_pipeline.extract.windows import ExtractSettings
    from routiine_pipeline.salesforce.client import SalesforceClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BulkSettings:
    """Tuning of Bulk reads: the rows per result chunk and the polling schedule."""

    max_records: int = 50_000
    poll: PollPolicy = field(default_factory=PollPolicy)

    def __post_init__(self) -> None:
        if self.max_records < 1:
            raise ValueError(f"max_records {self.max_records} must be at least 1")


def wants_bulk(
    settings: ExtractSettings, page: dict[str, Any], *, first_page: bool
) -> bool:
    """Tell whether a window whose first page is `page` should be read by a Bulk job."""
    threshold = settings.bulk_threshold
    if not first_page or threshold <= 0 or page.get("done"):
        return False
    return int(page.get("totalSize") or 0) > threshold


class BulkReadMixin:
    """The Bulk read of `ExtractPass`, kept apart so that cycle.py stays about REST composites."""

    client: SalesforceClient
    tenant: str
    settings: ExtractSettings
    bulk: BulkSettings
    log: logging.Logger

    if TYPE_CHECKING:  # provided by ExtractPass

        def _consume_page(self, stream: _Stream, page: dict) -> bool: ...

        def _restart_or_fail(
            self, stream: _Stream, error: errors.SalesforceError
        ) -> bool: ...

        def _pause_before_restart(self, restarts: int) -> None: ...

        def _stop(
            self, outcome: ObjectOutcome, error: errors.SalesforceError
        ) -> Exception: ...

    def _read_through_bulk(self, stream: _Stream) -> None:
        """Read one window with a Bulk job, restarting it (new job) on faults, within the restart limit."""
        outcome = stream.outcome
        outcome.read_method = "bulk"
        api = BulkQueryApi(self.client)
        while True:
            try:
                self._read_job(api, stream)
                return
            except (
                errors.RequestLimitExceededError,
                errors.BudgetExhaustedError,
            ) as error:
                raise self._stop(outcome, error) from None
            except errors.TotalSizeMismatchError as error:
                outcome.error = str(error)
                self.log.error(str(error))
                return
            except (
                errors.TransientError,
                errors.BulkJobError,
                errors.InvalidQueryLocatorError,
            ) as error:
                error.with_context(sobject=stream.plan.sobject)
                if not self._restart_or_fail(stream, error):
                    return
                self._pause_before_restart(outcome.restarts)
            except errors.SalesforceApiError as error:
                outcome.error = str(
                    error.with_context(tenant=self.tenant, sobject=stream.plan.sobject)
                )
                self.log.error(
                    "Tenant %s, %s: Bulk read failed: %s",
                    self.tenant,
                    stream.plan.sobject,
                    error,
                )
                return

    def _read_job(self, api: BulkQueryApi, stream: _Stream) -> None:
        sobject = stream.plan.sobject
        job = api.create_query_job(stream.soql, include_deleted=True)
        stream.outcome.bulk_jobs.append(job.id)
        started = time.monotonic()
        job = api.wait_for_job(job.id, self.bulk.poll)
        self.log.info(
            "Tenant %s, %s: Bulk job %s complete with %s records in %.1f s",
            self.tenant,
            sobject,
            job.id,
            job.records_processed,
            time.monotonic() - started,
        )
        locator: str | None = None
        while True:
            chunk = api.get_results(
                job.id, locator=locator, max_records=self.bulk.max_records
            )
            records = records_from_csv(chunk.csv_text, stream.plan.selected)
            if len(records) != chunk.record_count:
                raise errors.TotalSizeMismatchError(
                    f"tenant {self.tenant}, {sobject}: Bulk job {job.id} sent {len(records)} CSV rows "
                    f"but Sforce-NumberOfRecords {chunk.record_count}; the watermark stays where it was",
                    tenant=self.tenant,
                    sobject=sobject,
                )
            done = chunk.next_locator is None
            total = job.records_processed
            if total is None:
                # Without numberRecordsProcessed the chunk headers are the only count to check against.
                total = stream.received + chunk.record_count if done else -1
            page = {
                "totalSize": total,
                "done": done,
                "records": records,
                "nextRecordsUrl": None
                if done
                else f"bulk:{job.id}:{chunk.next_locator}",
            }
            if not self._consume_page(stream, page):
                return
            locator = chunk.next_locator
