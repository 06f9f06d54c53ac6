"""Routing of /services/data/vNN.0/ resources, shared by direct requests and composite subrequests."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from routiine_pipeline.emulator import describe
from routiine_pipeline.emulator.http_types import (
    Request,
    Response,
    error_response,
    json_response,
    not_found,
)
from routiine_pipeline.emulator.routes_query import (
    encode_record,
    handle_query,
    handle_query_more,
)
from routiine_pipeline.emulator.routes_write import (
    handle_collection_update,
    handle_patch_record,
)
from routiine_pipeline.emulator.values import encode_value, parse_datetime

if TYPE_CHECKING:
    from routiine_pipeline.emulator.org import Org

# Values of a Developer Edition org's /limits, except DailyApiRequests, which the org tracks.
STATIC_LIMITS = {
    "ConcurrentAsyncGetReportInstances": 200,
    "ConcurrentSyncReportRuns": 20,
    "DailyAsyncApexExecutions": 250_000,
    "DailyBulkApiBatches": 15_000,
    "DailyBulkV2QueryFileStorageMB": 976_562,
    "DailyBulkV2QueryJobs": 10_000,
    "DailyStreamingApiEvents": 10_000,
    "DataStorageMB": 5,
    "FileStorageMB": 20,
    "HourlyAsyncReportRuns": 1_200,
    "HourlyDashboardRefreshes": 200,
    "SingleEmail": 15,
}


def classify_call(method: str, rest: str) -> str:
    """Name the kind of a data API request, as counted in `Org.calls`."""
    parts = [part for part in rest.split("/") if part]
    if not parts:
        return "resources"
    head = parts[0]
    if head in ("query", "queryAll"):
        return "query_more" if len(parts) > 1 else "query"
    if head == "composite":
        return "collections" if parts[1:2] == ["sobjects"] else "composite"
    if head == "limits":
        return "limits"
    if head == "jobs":
        if method == "POST":
            return "bulk_create"
        return "bulk_results" if parts[-1] == "results" else "bulk_poll"
    if head == "sobjects":
        if len(parts) == 1:
            return "describe_global"
        if len(parts) >= 3 and parts[2] in ("describe", "deleted", "updated"):
            return parts[2]
        return "sobject_update" if method == "PATCH" else "sobject"
    return "other"


def is_query_operation(method: str, rest: str) -> bool:
    """Tell whether a request is one that composite counts toward its limit of 5 (query or Collections)."""
    return method in ("GET", "PATCH", "POST", "DELETE") and classify_call(
        method, rest
    ) in ("query", "query_more", "collections")


def route_data_request(
    org: Org, request: Request, version: str, rest: str, page_size: int
) -> Response:
    """Serve one authenticated, already counted data API request. `rest` is the path after /vNN.0."""
    from routiine_pipeline.emulator.routes_composite import handle_composite

    parts = [unquote(part) for part in rest.split("/") if part]
    method = request.method
    if not parts:
        return json_response(200, _resource_list(version))
    head = parts[0]
    if head in ("query", "queryAll") and method == "GET":
        if len(parts) == 1:
            return handle_query(
                org, request, version, page_size, include_deleted=head == "queryAll"
            )
        if len(parts) == 2:
            return handle_query_more(org, request, version, page_size, parts[1])
    if head == "limits" and method == "GET" and len(parts) == 1:
        return json_response(200, _limits(org))
    if head == "composite" and len(parts) == 1 and method == "POST":
        return handle_composite(org, request, version, page_size)
    if head == "composite" and parts[1:] == ["sobjects"] and method == "PATCH":
        return handle_collection_update(org, request)
    if head == "sobjects":
        return _route_sobjects(org, request, version, parts[1:])
    return not_found()


def _route_sobjects(
    org: Org, request: Request, version: str, parts: list[str]
) -> Response:
    method = request.method
    if not parts:
        if method == "GET":
            return json_response(200, describe.describe_global(org, version))
        return not_found()
    try:
        schema = org.schema(parts[0])
    except KeyError:
        return not_found()
    tail = parts[1:]
    if method == "GET" and tail == ["describe"]:
        return json_response(200, describe.describe_sobject(org, schema, version))
    if method == "GET" and tail == ["deleted"]:
        return _deleted(org, request, schema.name)
    if len(tail) == 1 and method == "PATCH":
        return handle_patch_record(org, request, schema.name, tail[0])
    if len(tail) == 1 and method == "GET":
        record = org.get(schema.name, tail[0])
        if record is None:
            return not_found()
        fields = [
            spec
            for spec in schema.fields
            if org.is_field_visible(schema.name, spec.name)
        ]
        return json_response(200, encode_record(schema.name, record, fields, version))
    return not_found()


def _deleted(org: Org, request: Request, sobject: str) -> Response:
    """GET /sobjects/{type}/deleted/?start=&end=, the replication API's delete log."""
    bounds: dict[str, datetime] = {}
    for name in ("start", "end"):
        text = request.query.get(name)
        if not text:
            return error_response(
                400, "MISSING_ARGUMENT", f"The '{name}' parameter is required"
            )
        try:
            bounds[name] = parse_datetime(text)
        except ValueError:
            return error_response(
                400,
                "INVALID_REPLICATION_DATE",
                f"Invalid '{name}' date {text!r}; use ISO 8601 such as 2024-03-01T10:00:00Z",
            )
    try:
        result = org.deleted_records(sobject, bounds["start"], bounds["end"])
    except ValueError as error:
        return error_response(400, "INVALID_REPLICATION_DATE", str(error))
    payload = {
        "deletedRecords": [
            {"id": entry["id"], "deletedDate": encode_value(entry["deletedDate"])}
            for entry in result["deletedRecords"]
        ],
        "earliestDateAvailable": encode_value(result["earliestDateAvailable"]),
        "latestDateCovered": encode_value(result["latestDateCovered"]),
    }
    return json_response(200, payload)


def _limits(org: Org) -> dict[str, Any]:
    limit = org.daily_api_limit
    limits: dict[str, Any] = {
        "DailyApiRequests": {
            "Max": limit,
            "Remaining": max(0, limit - org.api_usage_used),
        }
    }
    for name, maximum in STATIC_LIMITS.items():
        limits[name] = {"Max": maximum, "Remaining": maximum}
    return dict(sorted(limits.items()))


def _resource_list(version: str) -> dict[str, str]:
    base = f"/services/data/v{version}"
    return {
        name: f"{base}/{name}"
        for name in ("composite", "limits", "query", "queryAll", "sobjects")
    }
