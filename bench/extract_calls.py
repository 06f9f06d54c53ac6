"""Count the API calls of a 100,000-record backfill of one sObject: REST Composite pages vs Bulk API 2.0.

Runs the emulator on a loopback port with 100,000 Opportunities in one month.
Extracts them twice into fresh DuckDB files, once with Bulk switched off and
once with the default Bulk threshold. Prints the calls the emulator counted,
next to the fewest calls each method can need. Usage:

    python bench/extract_calls.py [--records 100000] [--max-records 50000]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from routiine_pipeline.emulator import Clock, EmulatorServer, Org
from routiine_pipeline.extract.bulk import BulkSettings
from routiine_pipeline.extract.cycle import ExtractPass
from routiine_pipeline.extract.plan import plan_fields
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.mapping import default_fields
from routiine_pipeline.salesforce.bulk import PollPolicy
from routiine_pipeline.salesforce.client import SalesforceClient
from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.storage.warehouse import open_database

RUN_START = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)
MONTH = MonthWindow.from_key("2024-03-01")
REST_PAGE = 2_000


class _IssuedTokens:
    """Tokens taken straight from the emulated org, without the browser flow."""

    def __init__(self, org: Org, client_id: str) -> None:
        self.org, self.client_id = org, client_id
        self.token = org.issue_tokens(client_id)[0]

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str) -> str:
        self.token = self.org.issue_tokens(self.client_id)[0]
        return self.token


def _org(records: int) -> Org:
    org = Org(clock=Clock(RUN_START, frozen=True))
    start = MONTH.start
    rows = []
    for number in range(1, records + 1):
        stamp = start + timedelta(seconds=number * 20)
        rows.append(
            {
                "Id": make_id("Opportunity", number),
                "Name": f"Deal {number}",
                "StageName": "Prospecting",
                "Amount": 1000.0 + number,
                "CloseDate": date(2024, 6, 30),
                "IsClosed": False,
                "IsWon": False,
                "CreatedDate": stamp,
                "LastModifiedDate": stamp,
                "SystemModstamp": stamp,
            }
        )
    org.load({"Opportunity": rows})
    return org


def _backfill(
    org: Org, url: str, database: Path, *, bulk_threshold: int, max_records: int
) -> dict:
    client = SalesforceClient(
        instance_url=url,
        tokens=_IssuedTokens(org, "routiine-demo-client"),
        tenant="bench",
    )
    plans = [plan_fields("Opportunity", default_fields("Opportunity"), None)]
    before_total, before_kinds = org.data_api_calls, dict(org.calls)
    started = time.monotonic()
    with open_database(database) as conn:
        extract = ExtractPass(
            client,
            conn,
            tenant="bench",
            run_start=RUN_START,
            settings=ExtractSettings(lag=timedelta(0), bulk_threshold=bulk_threshold),
            bulk=BulkSettings(
                max_records=max_records, poll=PollPolicy(first_delay=0.0, max_delay=0.0)
            ),
        )
        outcome = extract.run(plans, [MONTH])["Opportunity"]
        stored = conn.execute("SELECT count(*) FROM raw_opportunity").fetchone()[0]
    if outcome.error:
        raise SystemExit(f"backfill failed: {outcome.error}")
    kinds = {
        kind: count - before_kinds.get(kind, 0)
        for kind, count in org.calls.items()
        if count != before_kinds.get(kind, 0)
    }
    return {
        "read_method": outcome.read_method,
        "api_calls": org.data_api_calls - before_total,
        "api_calls_by_kind": kinds,
        "records_stored": stored,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records",
        type=int,
        default=100_000,
        help="Opportunities in the month (default 100,000)",
    )
    parser.add_argument(
        "--max-records",
        type=int,
        default=BulkSettings().max_records,
        help="rows per Bulk result chunk",
    )
    args = parser.parse_args()

    org = _org(args.records)
    with EmulatorServer(org) as server, tempfile.TemporaryDirectory() as folder:
        rest = _backfill(
            org,
            server.url,
            Path(folder) / "rest.duckdb",
            bulk_threshold=0,
            max_records=args.max_records,
        )
        bulk = _backfill(
            org,
            server.url,
            Path(folder) / "bulk.duckdb",
            bulk_threshold=ExtractSettings().bulk_threshold,
            max_records=args.max_records,
        )
    chunks = math.ceil(args.records / args.max_records)
    result = {
        "records": args.records,
        "rest": {**rest, "minimum": math.ceil(args.records / REST_PAGE)},
        # Create, one poll, one call per result chunk; the first REST page that measured the window comes on top.
        "bulk": {
            **bulk,
            "minimum_with_these_chunks": 2 + chunks,
            "minimum_one_chunk": 3,
        },
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
