"""Bulk API 2.0 query jobs: /jobs/query create, poll, abort, delete and CSV results.

Shapes follow Salesforce's Bulk API 2.0 documentation (v47.0 and later). Job
info is JSON, and results are CSV with a header row. The `Sforce-Locator`
header names the next chunk (the string "null" after the last one), and
`Sforce-NumberOfRecords` gives the rows of the chunk. The query runs when the
job is created, so its results are a snapshot of that moment. The job then
reports `InProgress` until it has been polled `polls_to_complete` times.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import logging
import threading
import weakref
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from routiine_pipeline.emulator.http_types import (
    Request,
    Response,
    empty_response,
    error_response,
    json_response,
    not_found,
)
from routiine_pipeline.emulator.soql_lexer import SoqlError
from routiine_pipeline.emulator.values import format_datetime
from routiine_pipeline.salesforce.ids import checksum_suffix

if TYPE_CHECKING:
    from routiine_pipeline.emulator.org import Org

logger = logging.getLogger(__name__)

# NOTE: Salesforce sizes result chunks by file size when maxRecords is absent;
# this default is a stand-in, not a documented figure.
DEFAULT_MAX_RECORDS = 50_000
OPERATIONS = ("query", "queryAll")
CSV_CONTENT_TYPE = "text/csv"


@dataclass
class BulkQueryJob:
    """One query job and the CSV rows its query produced when the job was created."""

    id: str
    operation: str
    sobject: str
    api_version: str
    created_by: str
    created_at: datetime
    header: list[str]
    rows: list[list[str]]
    state: str = "UploadComplete"
    polls: int = 0
    error_message: str | None = None

    def info(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "object": self.sobject,
            "createdById": self.created_by,
            "createdDate": format_datetime(self.created_at),
            "systemModstamp": format_datetime(self.created_at),
            "state": self.state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": float(self.api_version),
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        if self.polls:
            done = self.state == "JobComplete"
            body["numberRecordsProcessed"] = len(self.rows) if done else 0
            body["retries"] = 0
            body["totalProcessingTime"] = 0
        if self.error_message:
            body["errorMessage"] = self.error_message
        return body


@dataclass
class BulkJobStore:
    """The query jobs of one org, plus the knobs tests use to slow or fail them."""

    polls_to_complete: int = 1
    fail_next: int = 0
    jobs: dict[str, BulkQueryJob] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def new_id(self) -> str:
        id15 = f"750{next(self._numbers):012d}"
        return id15 + checksum_suffix(id15)


_STORES: weakref.WeakKeyDictionary[Org, BulkJobStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def bulk_jobs(org: Org) -> BulkJobStore:
    """Return the Bulk job store of `org`, creating it on first use."""
    with _STORES_LOCK:
        store = _STORES.get(org)
        if store is None:
            store = _STORES[org] = BulkJobStore()
        return store


def handle_bulk(org: Org, request: Request, version: str, rest: str) -> Response:
    """Serve /jobs/query and its sub-resources; `rest` is the path after /vNN.0."""
    parts = [part for part in rest.split("/") if part]
    if parts[:2] != ["jobs", "query"]:
        return not_found()
    store = bulk_jobs(org)
    method = request.method
    if len(parts) == 2 and method == "POST":
        return _create(org, store, request, version)
    if len(parts) < 3:
        return not_found()
    with store.lock:
        job = store.jobs.get(parts[2])
    if job is None:
        return error_response(404, "NOT_FOUND", f"No query job with Id {parts[2]}")
    if len(parts) == 3 and method == "GET":
        return json_response(200, _poll(store, job))
    if len(parts) == 3 and method == "PATCH":
        return _abort(store, job, request)
    if len(parts) == 3 and method == "DELETE":
        with store.lock:
            store.jobs.pop(job.id, None)
        return empty_response(204)
    if parts[3:] == ["results"] and method == "GET":
        return _results(job, request)
    return not_found()


def _create(org: Org, store: BulkJobStore, request: Request, version: str) -> Response:
    try:
        body = request.json_body()
    except ValueError as error:
        return error_response(
            400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {error}"
        )
    if not isinstance(body, dict):
        return error_response(
            400, "JSON_PARSER_ERROR", "The request body must be a JSON object"
        )

    operation, soql = body.get("operation"), body.get("query")
    if operation not in OPERATIONS:
        return error_response(
            400,
            "INVALIDJOB",
            f"Invalid operation {operation!r}; expected one of {', '.join(OPERATIONS)}",
        )
    if not isinstance(soql, str) or not soql.strip():
        return error_response(
            400, "INVALIDJOB", "The query job needs a non-empty 'query'"
        )
    if body.get("contentType", "CSV") != "CSV":
        return error_response(400, "INVALIDJOB", "Only contentType CSV is supported")

    try:
        compiled, rows = org.run_query(soql, include_deleted=operation == "queryAll")
    except SoqlError as error:
        # NOTE: Salesforce validates the query at job creation; whether it reports the
        # SOQL error code or a generic one here is not confirmed.
        return error_response(400, error.error_code, error.message)
    if compiled.is_count:
        return error_response(
            400, "INVALIDJOB", "Aggregate queries are not supported by Bulk API 2.0"
        )

    header = [spec.name for spec in compiled.select]
    with store.lock:
        job = BulkQueryJob(
            id=store.new_id(),
            operation=operation,
            sobject=compiled.sobject,
            api_version=version,
            created_by=org.integration_user_id,
            created_at=org.clock.now(),
            header=header,
            rows=[[_csv_value(row.get(name)) for name in header] for row in rows],
        )
        if store.fail_next > 0:
            store.fail_next -= 1
            job.error_message = "InternalServerError : retry the job"
        store.jobs[job.id] = job
    logger.info(
        "Bulk query job %s created on %s: %d rows", job.id, job.sobject, len(job.rows)
    )
    return json_response(200, job.info())


def _poll(store: BulkJobStore, job: BulkQueryJob) -> dict[str, Any]:
    with store.lock:
        if job.state in ("UploadComplete", "InProgress"):
            job.polls += 1
            if job.polls >= store.polls_to_complete:
                job.state = "Failed" if job.error_message else "JobComplete"
            else:
                job.state = "InProgress"
        return job.info()


def _abort(store: BulkJobStore, job: BulkQueryJob, request: Request) -> Response:
    try:
        body = request.json_body()
    except ValueError as error:
        return error_response(400, "JSON_PARSER_ERROR", str(error))
    if not isinstance(body, dict) or body.get("state") != "Aborted":
        return error_response(
            400, "INVALIDJOBSTATE", "A query job can only be set to state Aborted"
        )
    with store.lock:
        if job.state in ("JobComplete", "Failed", "Aborted"):
            return error_response(
                400, "INVALIDJOBSTATE", f"Job {job.id} is already {job.state}"
            )
        job.state = "Aborted"
        return json_response(200, job.info())


def _results(job: BulkQueryJob, request: Request) -> Response:
    if job.state != "JobComplete":
        return error_response(
            412,
            "JOB_NOT_COMPLETE",
            f"Job {job.id} is not complete. Current status: {job.state}",
        )
    max_text = request.query.get("maxRecords")
    if max_text is not None and (not max_text.isdigit() or int(max_text) < 1):
        return error_response(
            400,
            "INVALIDREQUEST",
            f"maxRecords must be a positive integer, got {max_text!r}",
        )
    max_records = int(max_text) if max_text else DEFAULT_MAX_RECORDS
    offset = _offset_of(request.query.get("locator"))
    if offset is None or offset > len(job.rows):
        # NOTE: the error code Salesforce returns for an unknown locator is not confirmed.
        return error_response(400, "INVALIDLOCATOR", "Invalid locator")
    chunk = job.rows[offset : offset + max_records]
    next_offset = offset + len(chunk)
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n")
    writer.writerow(job.header)
    writer.writerows(chunk)
    headers = {
        "Content-Type": CSV_CONTENT_TYPE,
        "Sforce-Locator": _locator(next_offset)
        if next_offset < len(job.rows)
        else "null",
        "Sforce-NumberOfRecords": str(len(chunk)),
    }
    return Response(200, buffer.getvalue().encode("utf-8"), headers)


def _locator(offset: int) -> str:
    # Since v49.0 locators are opaque strings such as "MTAwMDA" (base64 of "10000").
    return base64.b64encode(str(offset).encode()).decode().rstrip("=")


def _offset_of(locator: str | None) -> int | None:
    if not locator:
        return 0
    try:
        text = base64.b64decode(locator + "=" * (-len(locator) % 4)).decode()
    except ValueError:
        return None
    return int(text) if text.isdigit() else None


def _csv_value(value: Any) -> str:
    """Render a stored value as Bulk CSV does: empty for null, `true`/`false`, `...000Z` datetimes."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return format_datetime(value).removesuffix("+0000") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
