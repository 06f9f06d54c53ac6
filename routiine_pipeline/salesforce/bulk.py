"""Bulk API 2.0 query jobs: create, poll until done, and read the CSV results chunk by chunk.

Every HTTP request here is one API call, counted by the budget guard like any
REST call. Salesforce's documentation does not say whether Bulk API 2.0
requests decrement DailyApiRequests, so the pipeline counts them as if they do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.client import SalesforceClient

log = logging.getLogger(__name__)

FINISHED_STATES = ("JobComplete", "Failed", "Aborted")
# Salesforce sends the literal string "null" as the locator of the last chunk.
LAST_CHUNK_LOCATOR = "null"


@dataclass(frozen=True)
class BulkJob:
    """The fields of Salesforce's job info that the pipeline reads."""

    id: str
    state: str
    operation: str
    sobject: str
    records_processed: int | None
    error_message: str | None

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> BulkJob:
        processed = info.get("numberRecordsProcessed")
        return cls(
            id=info["id"],
            state=info.get("state", ""),
            operation=info.get("operation", ""),
            sobject=info.get("object", ""),
            records_processed=int(processed) if processed is not None else None,
            error_message=info.get("errorMessage"),
        )


@dataclass(frozen=True)
class ResultChunk:
    """One CSV chunk of a job's results and the locator of the next one (None after the last)."""

    csv_text: str
    record_count: int
    next_locator: str | None


@dataclass(frozen=True)
class PollPolicy:
    """How long to wait between job polls: doubling from `first_delay` up to `max_delay` seconds."""

    first_delay: float = 1.0
    max_delay: float = 15.0
    max_wait: float = 1_800.0

    def delay(self, poll: int) -> float:
        """Return the pause in seconds before poll number `poll` (the first poll follows creation at once)."""
        if poll <= 1:
            return 0.0
        return min(self.max_delay, self.first_delay * 2 ** (poll - 2))


class BulkQueryApi:
    """Bulk API 2.0 query calls of one org, sent through the client so its budget guard, retries and token refresh apply."""

    def __init__(
        self, client: SalesforceClient, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.client = client
        self.sleep = sleep

    @property
    def jobs_path(self) -> str:
        return f"{self.client.data_path}/jobs/query"

    def create_query_job(self, soql: str, *, include_deleted: bool = True) -> BulkJob:
        """Create a query job; `include_deleted` uses operation queryAll so soft-deleted rows come back."""
        body = {
            "operation": "queryAll" if include_deleted else "query",
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        }
        info = self.client.request_json(
            "POST", self.jobs_path, kind="bulk_create", json=body
        )
        job = BulkJob.from_info(info)
        log.info(
            "Bulk query job %s created on %s (%s)", job.id, job.sobject, job.operation
        )
        return job

    def get_query_job(self, job_id: str) -> BulkJob:
        info = self.client.request_json(
            "GET", f"{self.jobs_path}/{job_id}", kind="bulk_poll"
        )
        return BulkJob.from_info(info)

    def wait_for_job(self, job_id: str, policy: PollPolicy) -> BulkJob:
        """Poll until the job finishes; raise BulkJobError when it fails, aborts or outlasts `max_wait`."""
        waited = 0.0
        poll = 0
        while True:
            poll += 1
            pause = policy.delay(poll)
            if waited + pause > policy.max_wait:
                raise errors.BulkJobError(
                    f"Bulk query job {job_id} did not finish within {policy.max_wait:.0f} s; "
                    "raise the poll policy's max_wait or read the window through REST",
                    error_code="JOB_TIMED_OUT",
                    tenant=self.client.tenant,
                )
            if pause:
                self.sleep(pause)
                waited += pause
            job = self.get_query_job(job_id)
            if job.state == "JobComplete":
                return job
            if job.state in FINISHED_STATES:
                raise errors.BulkJobError(
                    f"Bulk query job {job_id} ended {job.state}: {job.error_message or 'no error message'}",
                    error_code=f"JOB_{job.state.upper()}",
                    tenant=self.client.tenant,
                )
            log.debug("Bulk query job %s is %s after poll %d", job_id, job.state, poll)

    def get_results(
        self, job_id: str, *, locator: str | None, max_records: int
    ) -> ResultChunk:
        """Read one chunk of results; `locator` None reads the first chunk."""
        params: dict[str, Any] = {"maxRecords": max_records}
        if locator:
            params["locator"] = locator
        text, headers = self.client.request_text(
            f"{self.jobs_path}/{job_id}/results", kind="bulk_results", params=params
        )
        lowered = {name.lower(): value for name, value in headers.items()}
        count_text = lowered.get("sforce-numberofrecords")
        if count_text is None or not count_text.isdigit():
            raise errors.SalesforceApiError(
                f"Bulk results of job {job_id} lack a numeric Sforce-NumberOfRecords header: {count_text!r}",
                tenant=self.client.tenant,
            )
        next_locator = lowered.get("sforce-locator")
        if next_locator in (None, "", LAST_CHUNK_LOCATOR):
            next_locator = None
        return ResultChunk(text, int(count_text), next_locator)
