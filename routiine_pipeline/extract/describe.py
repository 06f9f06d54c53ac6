"""Describe results, fetched in one Composite call and cached in the tenant's DuckDB file.

Field lists change rarely and each describe is an API call, so results are
reused for a day. A run that finds older cached results fetches every stale
describe again in one request.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from routiine_pipeline.salesforce.client import (
    MAX_COMPOSITE_SUBREQUESTS,
    SalesforceClient,
)

log = logging.getLogger(__name__)

DESCRIBE_MAX_AGE = timedelta(hours=24)

_DDL = """
CREATE TABLE IF NOT EXISTS _describe_cache (
  sobject VARCHAR PRIMARY KEY,
  fetched_at TIMESTAMPTZ NOT NULL,
  body VARCHAR NOT NULL
)
"""


def load_describes(
    client: SalesforceClient,
    conn: duckdb.DuckDBPyConnection,
    sobjects: list[str],
    *,
    now: datetime | None = None,
    max_age: timedelta = DESCRIBE_MAX_AGE,
) -> dict[str, dict[str, Any] | None]:
    """Return describe results per sObject, fetching only the stale ones.

    An sObject the org does not know maps to None; the caller reports it.
    """
    now = now or datetime.now(UTC)
    conn.execute(_DDL)
    cached = {
        row[0]: (row[1], json.loads(row[2]))
        for row in conn.execute(
            "SELECT sobject, fetched_at, body FROM _describe_cache"
        ).fetchall()
    }
    results: dict[str, dict[str, Any] | None] = {}
    stale = []
    for sobject in sobjects:
        entry = cached.get(sobject)
        if entry and now - entry[0] < max_age:
            results[sobject] = entry[1]
        else:
            stale.append(sobject)

    for start in range(0, len(stale), MAX_COMPOSITE_SUBREQUESTS):
        chunk = stale[start : start + MAX_COMPOSITE_SUBREQUESTS]
        responses = client.composite(
            [
                {
                    "method": "GET",
                    "url": f"{client.data_path}/sobjects/{name}/describe",
                    "referenceId": f"d_{name}",
                }
                for name in chunk
            ]
        )
        for sobject, response in zip(chunk, responses, strict=True):
            if response.get("httpStatusCode") != 200:
                log.warning(
                    "describe %s returned HTTP %s",
                    sobject,
                    response.get("httpStatusCode"),
                )
                results[sobject] = None
                continue
            body = response["body"]
            results[sobject] = body
            conn.execute(
                "INSERT OR REPLACE INTO _describe_cache VALUES (?, ?, ?)",
                [sobject, now, json.dumps(body)],
            )
    if stale:
        log.info(
            "Fetched describe for %d sObjects in %d call(s)",
            len(stale),
            -(-len(stale) // MAX_COMPOSITE_SUBREQUESTS),
        )
    return results


def forget_describe(conn: duckdb.DuckDBPyConnection, sobject: str) -> None:
    """Drop the cached describe of `sobject`, so the next run fetches it again."""
    conn.execute(_DDL)
    conn.execute("DELETE FROM _describe_cache WHERE sobject = ?", [sobject])
    log.info(
        "Dropped the cached describe of %s; the next run fetches it again", sobject
    )
