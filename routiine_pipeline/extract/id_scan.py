"""Reading every Id of several sObjects, five queries per Composite request.

Used by the full Id reconciliation of hard deletes. A scan is only usable
when it is complete: an Id missing from an incomplete scan would turn a live
record into a tombstone. So a scan whose Id count differs from `totalSize`
is an error, and an expired query locator or a transient fault restarts the
sObject's scan from its first page, a bounded number of times.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.client import (
    MAX_COMPOSITE_QUERIES,
    SalesforceClient,
    error_from_body,
)

log = logging.getLogger(__name__)


@dataclass
class IdScan:
    """The Ids read for one sObject (soft-deleted ones included), or the error that stopped the scan."""

    sobject: str
    ids: set[str] = field(default_factory=set)
    total_size: int | None = None
    next_url: str | None = None
    restarts: int = 0
    error: errors.SalesforceError | None = None
    done: bool = False


def scan_ids(
    client: SalesforceClient,
    sobjects: list[str],
    *,
    restarts: int = 2,
    logger: logging.Logger = log,
) -> dict[str, IdScan]:
    """Read all Ids of each sObject through `queryAll`; every scan ends done or with an error."""
    # TODO: a scan costs one REST page per 2,000 Ids of an sObject. For very large objects a
    # Bulk API 2.0 job (see extract/bulk.py) would cost fewer calls.
    scans = {sobject: IdScan(sobject) for sobject in sobjects}
    queue = list(scans.values())
    while queue:
        batch, queue = queue[:MAX_COMPOSITE_QUERIES], queue[MAX_COMPOSITE_QUERIES:]
        subrequests = [
            {
                "method": "GET",
                "url": scan.next_url
                or client.query_url(
                    f"SELECT Id FROM {scan.sobject}", include_deleted=True
                ),
                "referenceId": f"ids_{scan.sobject}",
            }
            for scan in batch
        ]
        try:
            responses = client.composite(subrequests)
        except errors.TransientError as error:
            queue += [scan for scan in batch if _restart(scan, error, restarts, logger)]
            continue
        for scan, response in zip(batch, responses, strict=True):
            if _take_page(client, scan, response, restarts, logger):
                queue.append(scan)
    return scans


def _take_page(
    client: SalesforceClient,
    scan: IdScan,
    response: dict,
    restarts: int,
    logger: logging.Logger,
) -> bool:
    """Add one page's Ids to the scan; return True when the scan needs another request."""
    status, body = response.get("httpStatusCode", 500), response.get("body")
    if status != 200:
        error = error_from_body(body, status, tenant=client.tenant).with_context(
            sobject=scan.sobject
        )
        if status >= 500 or isinstance(
            error, (errors.TransientError, errors.InvalidQueryLocatorError)
        ):
            return _restart(scan, error, restarts, logger)
        scan.error = error
        return False
    scan.ids.update(record["Id"] for record in body.get("records", []))
    scan.total_size = body.get("totalSize")
    if not body.get("done"):
        scan.next_url = body.get("nextRecordsUrl")
        if scan.next_url:
            return True
    received = len(scan.ids)
    if received != scan.total_size:
        scan.error = errors.TotalSizeMismatchError(
            f"Id scan read {received} distinct Ids but the query reported totalSize {scan.total_size}; "
            "no row is tombstoned from an incomplete scan",
            tenant=client.tenant,
            sobject=scan.sobject,
        )
        return False
    scan.done = True
    return False


def _restart(
    scan: IdScan, error: errors.SalesforceError, restarts: int, logger: logging.Logger
) -> bool:
    if scan.restarts >= restarts:
        scan.error = error
        return False
    scan.restarts += 1
    logger.warning(
        "Id scan of %s: %s; restarting from the first page (restart %d)",
        scan.sobject,
        error,
        scan.restarts,
    )
    scan.ids.clear()
    scan.next_url = None
    return True
