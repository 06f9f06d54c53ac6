"""GET /query, /queryAll and their nextRecordsUrl pages."""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from routiine_pipeline.emulator.http_types import (
    Request,
    Response,
    error_response,
    json_response,
)
from routiine_pipeline.emulator.soql_lexer import SoqlError
from routiine_pipeline.emulator.values import encode_value

if TYPE_CHECKING:
    from routiine_pipeline.emulator.cursors import Cursor
    from routiine_pipeline.emulator.org import Org
    from routiine_pipeline.salesforce.schema import FieldSpec

logger = logging.getLogger(__name__)

# Sforce-Query-Options batchSize bounds, from Salesforce's REST API documentation.
MIN_BATCH_SIZE = 200
MAX_BATCH_SIZE = 2_000
_BATCH_SIZE = re.compile(r"batchSize\s*=\s*(\d+)", re.IGNORECASE)


def encode_record(
    sobject: str, record: dict[str, Any], fields: list[FieldSpec], version: str
) -> dict[str, Any]:
    """Encode one query row: `attributes` first, then the selected fields in SELECT order."""
    encoded: dict[str, Any] = {
        "attributes": {
            "type": sobject,
            "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}",
        }
    }
    for spec in fields:
        encoded[spec.name] = encode_value(record.get(spec.name))
    return encoded


def requested_batch_size(
    request: Request, page_size: int, default: int | None = None
) -> int:
    """Return the page size: the Sforce-Query-Options batchSize (200..2,000) capped by the server's page size."""
    header = request.header("Sforce-Query-Options") or ""
    match = _BATCH_SIZE.search(header)
    if match is None:
        return default or page_size
    batch = min(max(int(match.group(1)), MIN_BATCH_SIZE), MAX_BATCH_SIZE)
    return min(batch, page_size)


def handle_query(
    org: Org, request: Request, version: str, page_size: int, *, include_deleted: bool
) -> Response:
    soql = request.query.get("q")
    if soql is None:
        return error_response(
            400, "MALFORMED_QUERY", "A query string has to be specified"
        )
    try:
        compiled, rows = org.run_query(soql, include_deleted=include_deleted)
    except SoqlError as error:
        return error_response(400, error.error_code, error.message)
    if compiled.is_count:
        return json_response(200, {"totalSize": len(rows), "done": True, "records": []})
    records = [
        encode_record(compiled.sobject, row, compiled.select, version) for row in rows
    ]
    batch = requested_batch_size(request, page_size)
    if len(records) <= batch:
        return json_response(
            200, {"totalSize": len(records), "done": True, "records": records}
        )
    cursor = org.cursors.open(records, batch)
    return json_response(200, _page(org, cursor, 0, batch, version, request.target))


def handle_query_more(
    org: Org, request: Request, version: str, page_size: int, locator_and_offset: str
) -> Response:
    """Serve a nextRecordsUrl page from the snapshot taken when the query ran."""
    locator, _, offset_text = locator_and_offset.rpartition("-")
    cursor = org.cursors.get(locator) if locator else None
    # The server takes this fault kind on direct requests; a composite subrequest gets it here.
    expired = org.faults.take_request_fault(request.target, {"invalid_query_locator"})
    if (
        expired is not None
        or cursor is None
        or not offset_text.isdigit()
        or int(offset_text) > len(cursor.records)
    ):
        return error_response(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
    batch = requested_batch_size(request, page_size, default=cursor.batch_size)
    return json_response(
        200, _page(org, cursor, int(offset_text), batch, version, request.target)
    )


def _page(
    org: Org, cursor: Cursor, offset: int, batch: int, version: str, target: str
) -> dict[str, Any]:
    total = len(cursor.records)
    next_offset = offset + batch
    if next_offset < total and org.faults.take_request_fault(target, {"skip_page"}):
        # Reproduces a client that lost a batch: the link jumps over one page of records.
        next_offset += batch
    page: dict[str, Any] = {"totalSize": total, "done": next_offset >= total}
    if next_offset < total:
        # Salesforce returns /query/ links for queryAll cursors as well.
        page["nextRecordsUrl"] = (
            f"/services/data/v{version}/query/{cursor.locator}-{next_offset}"
        )
    page["records"] = cursor.records[offset : offset + batch]
    return page
