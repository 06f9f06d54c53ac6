"""Compare the pipeline's Salesforce API calls with a naive REST integration on the demo org.

Starts the emulator on a loopback port with the demo org and runs, in one
process and against the same org:

- the pipeline's full backfill twice, into fresh DuckDB files: one pass per
  month (what `routiine backfill TENANT` does) and all closed months in one
  pass (what `routiine backfill TENANT --parallel N` does), with the
  describe and hard-delete check calls that the extract asset adds;
- a naive full pull: one plain REST `query` per sObject, paged through
  `nextRecordsUrl`, each record stored as JSON in DuckDB;
- a quiet cycle (nothing changed) of both;
- the SQL models and the momentum score, in a child process, with wall time
  and peak resident memory;
- the write-back of the initial scores, then the demo's live changes, an
  incremental cycle and the write-back of the scores that changed. The
  pipeline sends sObject Collections of 200 records a call, and the naive
  integration one PATCH per record.

The emulator counts every call on its side. Both clients share one access
token that the emulated org issues. The script prints one table and can write
every figure as JSON:

    python bench/compare_naive.py --json /tmp/compare_naive.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import multiprocessing
import os
import platform
import queue
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import requests

from routiine_pipeline.emulator import Clock, EmulatorServer, Org
from routiine_pipeline.emulator.demo_org import (
    INTEGRATION_USER_ID,
    apply_demo_changes,
    build_demo_records,
)
from routiine_pipeline.extract.bulk import BulkSettings
from routiine_pipeline.extract.cycle import ExtractPass, ObjectOutcome
from routiine_pipeline.extract.deletes import DeleteCheck
from routiine_pipeline.extract.describe import load_describes
from routiine_pipeline.extract.plan import FieldPlan, plan_fields
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.mapping import EXTRACT_OBJECTS, default_fields, default_mapping
from routiine_pipeline.models import load_models, run_model, write_mapping_tables
from routiine_pipeline.models.checks import run_model_tests
from routiine_pipeline.salesforce.client import (
    DEFAULT_API_VERSION,
    MAX_COLLECTION_RECORDS,
    MAX_COMPOSITE_QUERIES,
    SalesforceClient,
)
from routiine_pipeline.salesforce.soql import soql_datetime
from routiine_pipeline.scoring import score_open_deals, write_scores
from routiine_pipeline.storage.raw_tables import raw_table_name
from routiine_pipeline.storage.warehouse import open_database
from routiine_pipeline.writeback.changes import Change, pending_changes
from routiine_pipeline.writeback.writer import check_writable, send_changes

log = logging.getLogger("compare_naive")

TENANT = "demo"
CLIENT_ID = "routiine-demo-client"
DEFAULT_ANCHOR = "2026-12-04T12:00:00+00:00"
# Records per REST query page: the emulator's default, and Salesforce's default batch size.
PAGE_SIZE = 2_000
SAMPLE_SECONDS = 0.05
# Emulated minutes between the backfill and the quiet cycle: one schedule interval.
QUIET_CYCLE_AFTER_MINUTES = 15
# Emulated minutes between the initial write-back and the demo's live changes, as in `routiine demo`.
CHANGES_AFTER_MINUTES = 20
# A pass starts this long after the changes, so the extract's 60-second lag does not hide them.
PASS_AFTER_CHANGES_MINUTES = 2
# The per-month backfill's file, which the cycles, models, scores and write-backs continue.
PIPELINE_FILE = "pipeline_per_month.duckdb"
DATABASE_FILES = (PIPELINE_FILE, "pipeline_one_pass.duckdb", "naive.duckdb")


# -- emulator side -------------------------------------------------------------


class _IssuedToken:
    """One access token issued by the emulated org, shared by the pipeline and the naive client."""

    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str) -> str:
        # The org's clock is frozen, so the token never expires during a run.
        return self.token


class CallMeter:
    """Counter of the API calls that the emulator records after the meter is created."""

    def __init__(self, org: Org) -> None:
        self.org = org
        self.start_total = org.data_api_calls
        self.start_kinds = Counter(org.calls)

    def calls(self) -> int:
        return self.org.data_api_calls - self.start_total

    def by_kind(self) -> dict[str, int]:
        now = Counter(self.org.calls)
        now.subtract(self.start_kinds)
        return {kind: count for kind, count in sorted(now.items()) if count}


def build_org(anchor: datetime) -> Org:
    clock = Clock(anchor, frozen=True)
    org = Org(
        clock=clock,
        integration_user_id=INTEGRATION_USER_ID,
        # Large enough that no step of this script meets the daily limit.
        daily_api_limit=1_000_000,
    )
    org.load(build_demo_records(anchor=anchor))
    return org


def stamps_by_object(org: Org) -> dict[str, list[datetime]]:
    return {
        sobject: [
            record["SystemModstamp"]
            for record in org.records(sobject, include_deleted=True)
        ]
        for sobject in EXTRACT_OBJECTS
    }


# -- minimum call counts -----------------------------------------------------------


def rest_pages(records: int) -> int:
    """Return the query pages that `records` records take. An empty result still takes one."""
    return max(1, math.ceil(records / PAGE_SIZE))


def composite_minimum(record_counts: list[int]) -> int:
    """Return the fewest Composite calls that read these query results, 5 pages per call."""
    return math.ceil(sum(rest_pages(n) for n in record_counts) / MAX_COMPOSITE_QUERIES)


def unchained_minimum(record_counts: list[int]) -> int:
    """Return the fewest Composite calls when each page must wait for the previous call.

    Page k of a query needs the nextRecordsUrl that came with page k - 1, so
    unless a subrequest can reference an earlier one's nextRecordsUrl in the
    same request, the largest query's page count is a lower bound too.
    """
    pages = [rest_pages(n) for n in record_counts]
    return max(math.ceil(sum(pages) / MAX_COMPOSITE_QUERIES), max(pages))


def bulk_aware_minimum(record_counts: list[int], chunk_rows: int) -> int:
    """Return the fewest calls when each query may go through REST or Bulk API 2.0.

    A Bulk query job costs one call to create it, at least one poll and one
    call per result chunk of `chunk_rows` rows. The REST queries share
    Composite calls as in unchained_minimum. Every split is tried, all-REST
    included.
    """
    best = math.inf
    for mask in itertools.product((False, True), repeat=len(record_counts)):
        rest = [n for n, bulk in zip(record_counts, mask, strict=True) if not bulk]
        bulk_calls = sum(
            2 + max(1, math.ceil(n / chunk_rows))
            for n, bulk in zip(record_counts, mask, strict=True)
            if bulk
        )
        best = min(best, (unchained_minimum(rest) if rest else 0) + bulk_calls)
    return int(best)


def backfill_minimums(
    stamps: dict[str, list[datetime]], months: list[MonthWindow]
) -> dict[str, Any]:
    """Compute the lower bounds for reading every record once, and for reading month by month."""
    totals = [len(values) for values in stamps.values()]
    per_month = per_month_unchained = 0
    for month in months:
        counts = [
            sum(1 for stamp in values if month.contains(stamp))
            for values in stamps.values()
        ]
        per_month += composite_minimum(counts)
        per_month_unchained += unchained_minimum(counts)
    pages = {sobject: rest_pages(len(values)) for sobject, values in stamps.items()}
    return {
        "rest_pages_by_object": pages,
        "rest_pages": sum(pages.values()),
        "composite_minimum": composite_minimum(totals),
        "unchained_composite_minimum": unchained_minimum(totals),
        "bulk_aware_minimum": bulk_aware_minimum(totals, BulkSettings().max_records),
        "per_month_composite_minimum": per_month,
        "per_month_unchained_composite_minimum": per_month_unchained,
    }


# -- the pipeline ------------------------------------------------------------------


def _plans(client: SalesforceClient, conn, now: datetime) -> list[FieldPlan]:
    describes = load_describes(client, conn, list(EXTRACT_OBJECTS), now=now)
    return [
        plan_fields(sobject, default_fields(sobject), describes.get(sobject))
        for sobject in EXTRACT_OBJECTS
    ]


@dataclass
class PassResult:
    """Outcomes of one extract run, and the API calls of each of its phases."""

    outcomes: dict[str, ObjectOutcome]
    calls: Counter


def pipeline_pass(
    org: Org,
    client: SalesforceClient,
    database: Path,
    windows: list[MonthWindow],
    run_start: datetime,
    *,
    delete_check: bool = True,
) -> PassResult:
    """Run what one extract run sends: describe (cached for a day), the pass, the delete check.

    Raises SystemExit when an sObject or its delete check fails, because the
    counts would then describe an incomplete read.
    """
    calls: Counter[str] = Counter()
    pass_started = datetime.now(UTC)
    with open_database(database) as conn:
        meter = CallMeter(org)
        plans = _plans(client, conn, run_start)
        calls["describe"] += meter.calls()
        meter = CallMeter(org)
        extract = ExtractPass(
            client, conn, tenant=TENANT, settings=ExtractSettings(), run_start=run_start
        )
        outcomes = extract.run(plans, windows)
        calls["extract"] += meter.calls()
        if delete_check:
            meter = CallMeter(org)
            checks = DeleteCheck(
                client,
                conn,
                tenant=TENANT,
                run_start=run_start,
                pass_started=pass_started,
            ).run(list(EXTRACT_OBJECTS))
            calls["delete_check"] += meter.calls()
            failed_checks = {s: c.error for s, c in checks.items() if c.error}
            if failed_checks:
                raise SystemExit(f"delete check failed: {failed_checks}")
    failed = {s: o.error for s, o in outcomes.items() if o.error or not o.done}
    if failed:
        raise SystemExit(f"pipeline pass over {windows} failed: {failed}")
    return PassResult(outcomes, calls)


def month_range(first: MonthWindow, last: MonthWindow) -> list[MonthWindow]:
    if first.start > last.start:
        raise SystemExit(
            f"--first-month {first.key[:7]} is after the anchor's month {last.key[:7]}. "
            "Pass an earlier month or a later --anchor."
        )
    months = [first]
    while months[-1].key != last.key:
        months.append(MonthWindow.from_key(months[-1].end.strftime("%Y-%m-01")))
    return months


def stored_rows(database: Path) -> dict[str, int]:
    with open_database(database, read_only=True) as conn:
        return {
            sobject: conn.execute(
                f"SELECT count(*) FROM {raw_table_name(sobject)}"
            ).fetchone()[0]
            for sobject in EXTRACT_OBJECTS
        }


def pipeline_backfill(
    org: Org,
    client: SalesforceClient,
    database: Path,
    months: list[MonthWindow],
    *,
    one_pass: bool,
) -> dict[str, Any]:
    """Backfill every month into a fresh file, as `routiine backfill` does.

    Without `one_pass`, each month is a run of its own, and the current
    month's run also reads the previous month until that is sealed. With
    `one_pass` (`routiine backfill --parallel N`, N at least the number of
    closed months), `backfill._read_group` first reads the closed months in
    one pass and records its delete check, because the pass has just read
    every deleted row through queryAll. Each month's run then finds its
    window sealed and its delete check current.
    """
    run_start = org.clock.now()
    current = MonthWindow.containing(run_start)
    closes_by = run_start - ExtractSettings().lag
    meter = CallMeter(org)
    started = time.perf_counter()
    runs: list[tuple[list[MonthWindow], bool]] = []
    if one_pass:
        closed = [month for month in months if month.end <= closes_by]
        if closed:
            runs.append((closed, True))
    for month in months:
        windows = [month.previous(), month] if month.key == current.key else [month]
        runs.append((windows, True))
    calls: Counter[str] = Counter()
    received: Counter[str] = Counter()
    read_methods: dict[str, set[str]] = {}
    for windows, delete_check in runs:
        result = pipeline_pass(
            org, client, database, windows, run_start, delete_check=delete_check
        )
        calls.update(result.calls)
        for sobject, outcome in result.outcomes.items():
            received[sobject] += outcome.received
            if outcome.soql is not None:
                read_methods.setdefault(sobject, set()).add(outcome.read_method)
    seconds = time.perf_counter() - started
    rows = stored_rows(database)
    return {
        "api_calls": meter.calls(),
        "api_calls_by_kind": meter.by_kind(),
        "api_calls_by_phase": dict(calls),
        "extract_runs": len(runs),
        "records_received": dict(received),
        "read_methods": {s: sorted(m) for s, m in read_methods.items()},
        "rows_stored": sum(rows.values()),
        "rows_stored_by_object": rows,
        "seconds": round(seconds, 2),
        "records_per_second": round(sum(rows.values()) / seconds),
    }


def pipeline_cycle(
    org: Org, client: SalesforceClient, database: Path
) -> dict[str, Any]:
    """Run one incremental cycle: the current month's run, which also reads an unsealed previous month."""
    run_start = org.clock.now()
    current = MonthWindow.containing(run_start)
    meter = CallMeter(org)
    started = time.perf_counter()
    result = pipeline_pass(
        org, client, database, [current.previous(), current], run_start
    )
    outcomes = result.outcomes
    received = {sobject: outcome.received for sobject, outcome in outcomes.items()}
    queried = [s for s, outcome in outcomes.items() if outcome.soql is not None]
    return {
        "api_calls": meter.calls(),
        "api_calls_by_kind": meter.by_kind(),
        "api_calls_by_phase": dict(result.calls),
        "records_received": received,
        "sobjects_queried": len(queried),
        "minimum": composite_minimum([received[s] for s in queried]),
        "seconds": round(time.perf_counter() - started, 2),
    }


def pipeline_writeback(
    org: Org, client: SalesforceClient, database: Path
) -> tuple[dict[str, Any], list[Change]]:
    """Send the scores that differ from the last written values, as the write-back asset does."""
    now = org.clock.now()
    with open_database(database) as conn:
        describe = load_describes(client, conn, ["Opportunity"], now=now)
        check_writable(describe.get("Opportunity"), TENANT)
        changes = pending_changes(conn)
        meter = CallMeter(org)
        started = time.perf_counter()
        report = send_changes(
            client, conn, changes, tenant=TENANT, run_id=None, now=now
        )
        seconds = time.perf_counter() - started
    if report.failures or report.stopped:
        raise SystemExit(
            f"pipeline write-back failed: {report.failures[:5]} {report.stopped or ''}"
        )
    return {
        "changed": len(changes),
        "succeeded": report.succeeded,
        "api_calls": meter.calls(),
        "api_calls_by_kind": meter.by_kind(),
        "minimum": math.ceil(len(changes) / MAX_COLLECTION_RECORDS),
        "seconds": round(seconds, 2),
    }, changes


# -- the naive integration -------------------------------------------------------------


class NaiveIntegration:
    """A baseline client as many integrations are written: one REST query per sObject, one PATCH per record.

    Queries go to /query (not queryAll). A full pull selects every record,
    and an incremental pull selects the records whose SystemModstamp is
    later than the newest stored one. Each record is stored as its JSON body, keyed by Id.
    """

    def __init__(
        self,
        instance_url: str,
        token: str,
        database: Path,
        fields: dict[str, list[str]],
    ) -> None:
        self.base = f"{instance_url}/services/data/v{DEFAULT_API_VERSION}"
        self.instance_url = instance_url
        self.session = requests.Session()
        # Never route loopback traffic through a proxy taken from the environment.
        self.session.trust_env = False
        self.session.headers.update(
            {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        )
        self.database = database
        self.fields = fields

    def table(self, sobject: str) -> str:
        return f"naive_{sobject.lower()}"

    def _get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        response = self.session.get(url, params=params, timeout=(5, 120))
        if response.status_code != 200:
            raise SystemExit(
                f"naive GET {url} failed with HTTP {response.status_code}: {response.text[:300]}"
            )
        return response.json()

    def pull(self, sobject: str, since: datetime | None, conn) -> int:
        """Read one sObject page by page, upsert each page and return the number of records read."""
        soql = f"SELECT {', '.join(self.fields[sobject])} FROM {sobject}"
        if since is not None:
            soql += f" WHERE SystemModstamp > {soql_datetime(since)}"
        table = self.table(sobject)
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(id VARCHAR PRIMARY KEY, systemmodstamp VARCHAR, record JSON)"
        )
        page = self._get(f"{self.base}/query", params={"q": soql})
        read = 0
        while True:
            records = page.get("records", [])
            read += len(records)
            if records:
                frame = pd.DataFrame(
                    {
                        "id": [record["Id"] for record in records],
                        "systemmodstamp": [
                            record["SystemModstamp"] for record in records
                        ],
                        "record": [json.dumps(record) for record in records],
                    }
                )
                conn.register("naive_page", frame)
                conn.execute(f"INSERT OR REPLACE INTO {table} SELECT * FROM naive_page")
                conn.unregister("naive_page")
            if page.get("done", True):
                return read
            page = self._get(self.instance_url + page["nextRecordsUrl"])

    def newest_stamp(self, sobject: str, conn) -> datetime | None:
        value = conn.execute(
            f"SELECT max(systemmodstamp) FROM {self.table(sobject)}"
        ).fetchone()[0]
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z") if value else None

    def cycle(self, *, full: bool) -> dict[str, int]:
        """Pull every sObject, in full or since its newest stored stamp, and return the records read per sObject."""
        read = {}
        with open_database(self.database) as conn:
            for sobject in EXTRACT_OBJECTS:
                since = None if full else self.newest_stamp(sobject, conn)
                read[sobject] = self.pull(sobject, since, conn)
        return read

    def stored_rows(self) -> dict[str, int]:
        with open_database(self.database, read_only=True) as conn:
            return {
                sobject: conn.execute(
                    f"SELECT count(*) FROM {self.table(sobject)}"
                ).fetchone()[0]
                for sobject in EXTRACT_OBJECTS
            }

    def patch(self, changes: list[Change]) -> int:
        """Send one PATCH per changed Opportunity and return how many succeeded (HTTP 204)."""
        succeeded = 0
        for change in changes:
            response = self.session.patch(
                f"{self.base}/sobjects/Opportunity/{change.record_id}",
                json=change.values,
                timeout=(5, 120),
            )
            if response.status_code == 204:
                succeeded += 1
            else:
                log.error(
                    "naive PATCH of Opportunity %s failed with HTTP %s: %s",
                    change.record_id,
                    response.status_code,
                    response.text[:300],
                )
        return succeeded


def deleted_ids(org: Org) -> dict[str, list[str]]:
    """Return the Ids of the org's soft-deleted records per sObject (still in the recycle bin)."""
    return {
        sobject: [
            record["Id"]
            for record in org.records(sobject, include_deleted=True)
            if record["IsDeleted"]
        ]
        for sobject in EXTRACT_OBJECTS
    }


def count_deletes_seen(
    pipeline_db: Path, naive: NaiveIntegration, deleted: dict[str, list[str]]
) -> dict[str, int]:
    """Count deleted records that the pipeline stores as tombstones and the naive copy keeps as live."""
    tombstones = kept_live = 0
    with open_database(pipeline_db, read_only=True) as conn:
        for sobject, ids in deleted.items():
            tombstones += conn.execute(
                f"SELECT count(*) FROM {raw_table_name(sobject)} "
                "WHERE _deleted_at IS NOT NULL AND list_contains(?, id)",
                [ids],
            ).fetchone()[0]
    with open_database(naive.database, read_only=True) as conn:
        for sobject, ids in deleted.items():
            kept_live += conn.execute(
                f"SELECT count(*) FROM {naive.table(sobject)} WHERE list_contains(?, id)",
                [ids],
            ).fetchone()[0]
    return {
        "deleted_in_org": sum(len(ids) for ids in deleted.values()),
        "pipeline_tombstones": tombstones,
        "naive_kept_as_live": kept_live,
    }


def naive_fields() -> dict[str, list[str]]:
    """Return the pipeline's default field list per sObject, fixed in code as a naive client would."""
    return {
        sobject: [
            spec.name
            for spec in plan_fields(sobject, default_fields(sobject), None).selected
        ]
        for sobject in EXTRACT_OBJECTS
    }


def naive_backfill(org: Org, naive: NaiveIntegration) -> dict[str, Any]:
    meter = CallMeter(org)
    started = time.perf_counter()
    read = naive.cycle(full=True)
    seconds = time.perf_counter() - started
    rows = naive.stored_rows()
    return {
        "api_calls": meter.calls(),
        "api_calls_by_kind": meter.by_kind(),
        "records_received": read,
        "rows_stored": sum(rows.values()),
        "rows_stored_by_object": rows,
        "seconds": round(seconds, 2),
        "records_per_second": round(sum(rows.values()) / seconds),
    }


def naive_cycle(org: Org, naive: NaiveIntegration) -> dict[str, Any]:
    meter = CallMeter(org)
    started = time.perf_counter()
    read = naive.cycle(full=False)
    return {
        "api_calls": meter.calls(),
        "api_calls_by_kind": meter.by_kind(),
        "records_received": read,
        "seconds": round(time.perf_counter() - started, 2),
    }


def naive_writeback(
    org: Org, naive: NaiveIntegration, changes: list[Change]
) -> dict[str, Any]:
    meter = CallMeter(org)
    started = time.perf_counter()
    succeeded = naive.patch(changes)
    return {
        "changed": len(changes),
        "succeeded": succeeded,
        "api_calls": meter.calls(),
        "api_calls_by_kind": meter.by_kind(),
        "seconds": round(time.perf_counter() - started, 2),
    }


# -- models and scores, in a child process ---------------------------------------------------


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    return 0


class PeakRss:
    """Sampler of this process's VmRSS, read in a thread so that each step gets its own peak.

    VmHWM only grows, so it gives the process peak but not the peak of a
    later, smaller step. Sampling every 50 ms misses shorter spikes.
    """

    def __init__(self) -> None:
        self.peak_kib = _status_kib("VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self.peak_kib = max(self.peak_kib, _status_kib("VmRSS"))

    def restart(self) -> None:
        self.peak_kib = _status_kib("VmRSS")

    def peak_mib(self) -> float:
        return round(max(self.peak_kib, _status_kib("VmRSS")) / 1024, 1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def transform_and_score(database: str, as_of: str, results) -> None:
    """Build every SQL model with its declared tests, then score and store, timing each step.

    Runs in a child process, so that the peak memory excludes the emulator's
    in-memory org. Puts a dict of figures, or an error message, on `results`.
    """
    try:
        results.put(_transform_and_score(Path(database), datetime.fromisoformat(as_of)))
    except Exception as error:  # the parent raises it, naming the error
        results.put({"error": f"{type(error).__name__}: {error}"})


def _transform_and_score(database: Path, as_of: datetime) -> dict[str, Any]:
    sampler = PeakRss()
    steps = []
    mapping = default_mapping()
    project = load_models()
    with open_database(database) as conn:
        rss_before_mib = round(_status_kib("VmRSS") / 1024, 1)
        sampler.restart()
        started = time.perf_counter()
        write_mapping_tables(conn, TENANT, mapping)
        failing_tests = 0
        for model in project.models.values():
            run_model(conn, model, TENANT, mapping)
            failing_tests += sum(
                1 for outcome in run_model_tests(conn, model) if not outcome.passed
            )
        steps.append(
            {
                "step": f"SQL models ({len(project.models)}) with their declared tests",
                "seconds": round(time.perf_counter() - started, 2),
                "peak_rss_mib": sampler.peak_mib(),
            }
        )
        rows = {
            name: conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            for name in ("deal", "event")
        }

        sampler.restart()
        started = time.perf_counter()
        scores = score_open_deals(conn, as_of)
        steps.append(
            {
                "step": "momentum_score: score open deals",
                "seconds": round(time.perf_counter() - started, 2),
                "peak_rss_mib": sampler.peak_mib(),
            }
        )

        sampler.restart()
        started = time.perf_counter()
        summary = write_scores(conn, scores, as_of)
        steps.append(
            {
                "step": "momentum_score: write scores and history",
                "seconds": round(time.perf_counter() - started, 2),
                "peak_rss_mib": sampler.peak_mib(),
            }
        )
    sampler.stop()
    return {
        "steps": steps,
        "seconds": round(sum(step["seconds"] for step in steps), 2),
        "model_rows": rows,
        "failing_model_tests": failing_tests,
        "deals_scored": summary.deals_scored,
        "changed_scores": summary.changed_scores,
        "rss_before_models_mib": rss_before_mib,
        "vm_hwm_mib": round(_status_kib("VmHWM") / 1024, 1),
    }


def run_transform(database: Path, as_of: datetime) -> dict[str, Any]:
    """Run transform_and_score in a fresh interpreter and return its figures."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    child = context.Process(
        target=transform_and_score, args=(str(database), as_of.isoformat(), results)
    )
    child.start()
    figures = None
    while figures is None:
        try:
            figures = results.get(timeout=1.0)
        except queue.Empty:
            if not child.is_alive():
                raise SystemExit(
                    f"models and scoring: the child process exited with code "
                    f"{child.exitcode} before reporting its figures"
                ) from None
    child.join()
    if "error" in figures:
        raise SystemExit(f"models and scoring failed: {figures['error']}")
    return figures


# -- the run ----------------------------------------------------------------------------------


def ratio(naive: int, pipeline: int) -> float | None:
    return round(naive / pipeline, 1) if pipeline else None


def machine() -> dict[str, Any]:
    with open("/proc/meminfo") as meminfo:
        total_kib = int(meminfo.readline().split()[1])
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(total_kib / 1024 / 1024, 1),
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def measure_backfills(
    org: Org,
    client: SalesforceClient,
    naive: NaiveIntegration,
    folder: Path,
    months: list[MonthWindow],
) -> dict[str, Any]:
    print(f"full backfill of {len(months)} months", flush=True)
    return {
        "pipeline_per_month": pipeline_backfill(
            org, client, folder / PIPELINE_FILE, months, one_pass=False
        ),
        "pipeline_one_pass": pipeline_backfill(
            org, client, folder / DATABASE_FILES[1], months, one_pass=True
        ),
        "naive": naive_backfill(org, naive),
        "minimum": backfill_minimums(stamps_by_object(org), months),
    }


def measure_quiet_cycle_and_scores(
    org: Org, client: SalesforceClient, naive: NaiveIntegration, database: Path
) -> dict[str, Any]:
    """Measure a quiet cycle, the first model and score run, and the initial write-back."""
    print("quiet cycle", flush=True)
    org.clock.advance(QUIET_CYCLE_AFTER_MINUTES * 60)
    result: dict[str, Any] = {
        "quiet_cycle": {
            "pipeline": pipeline_cycle(org, client, database),
            "naive": naive_cycle(org, naive),
            "minimum": math.ceil(len(EXTRACT_OBJECTS) / MAX_COMPOSITE_QUERIES),
        }
    }
    print("SQL models and momentum score (child process)", flush=True)
    result["transform"] = run_transform(database, org.clock.now())
    print("write-back of the initial scores", flush=True)
    pipeline_figures, changes = pipeline_writeback(org, client, database)
    result["writeback_initial"] = {
        "pipeline": pipeline_figures,
        "naive": naive_writeback(org, naive, changes),
    }
    return result


def measure_small_change(
    org: Org, client: SalesforceClient, naive: NaiveIntegration, database: Path
) -> dict[str, Any]:
    """Apply the demo's live changes, then measure the next cycle and the write-back of what changed."""
    print(
        "demo changes, incremental cycle, write-back of the changed scores", flush=True
    )
    org.clock.advance(CHANGES_AFTER_MINUTES * 60)
    demo_changes = apply_demo_changes(org)
    org.clock.advance(PASS_AFTER_CHANGES_MINUTES * 60)
    cycle = {
        "demo_changes": {
            "advanced": len(demo_changes["advanced"]),
            "closed_won": 1,
            "deleted": 1,
            "tasks": len(demo_changes["tasks"]),
            "events": len(demo_changes["events"]),
        },
        "pipeline": pipeline_cycle(org, client, database),
        "naive": naive_cycle(org, naive),
    }
    cycle["deletes"] = count_deletes_seen(database, naive, deleted_ids(org))
    result = {
        "incremental_after_changes": cycle,
        "transform_after_changes": run_transform(database, org.clock.now()),
    }
    pipeline_figures, changes = pipeline_writeback(org, client, database)
    result["writeback_small_change"] = {
        "pipeline": pipeline_figures,
        "naive": naive_writeback(org, naive, changes),
    }
    return result


def run(anchor: datetime, first_month: str | None, folder: Path) -> dict[str, Any]:
    """Run every measurement against one emulated demo org and return the figures."""
    started = time.perf_counter()
    print("building the demo org", flush=True)
    org = build_org(anchor)
    stamps = stamps_by_object(org)
    oldest = min(min(values) for values in stamps.values())
    first = (
        MonthWindow.from_key(f"{first_month}-01")
        if first_month
        else MonthWindow.containing(oldest)
    )
    months = month_range(first, MonthWindow.containing(anchor))

    result: dict[str, Any] = {
        "anchor": anchor.isoformat(),
        "machine": machine(),
        "org_records": {sobject: len(values) for sobject, values in stamps.items()},
        "months": {
            "first": months[0].key[:7],
            "last": months[-1].key[:7],
            "count": len(months),
        },
        "page_size": PAGE_SIZE,
    }

    with EmulatorServer(org, client_id=CLIENT_ID, page_size=PAGE_SIZE) as server:
        token = org.issue_tokens(CLIENT_ID)[0]
        client = SalesforceClient(server.url, _IssuedToken(token), tenant=TENANT)
        naive = NaiveIntegration(
            server.url, token, folder / DATABASE_FILES[2], naive_fields()
        )
        database = folder / PIPELINE_FILE
        result["backfill"] = measure_backfills(org, client, naive, folder, months)
        result.update(measure_quiet_cycle_and_scores(org, client, naive, database))
        result.update(measure_small_change(org, client, naive, database))

    result["machine"]["load_average_at_end"] = [
        round(value, 2) for value in os.getloadavg()
    ]
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["table"] = summary_rows(result)
    return result


def summary_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    backfill = result["backfill"]
    minimum = backfill["minimum"]
    naive_backfill_calls = backfill["naive"]["api_calls"]
    rows = [
        {
            "case": "full backfill, one pass per month",
            "pipeline": backfill["pipeline_per_month"]["api_calls"],
            # A page can be requested only once the page before it returned.
            "minimum": minimum["per_month_unchained_composite_minimum"],
            "naive": naive_backfill_calls,
        },
        {
            "case": "full backfill, closed months in one pass",
            "pipeline": backfill["pipeline_one_pass"]["api_calls"],
            "minimum": minimum["bulk_aware_minimum"],
            "naive": naive_backfill_calls,
        },
        {
            "case": "quiet cycle",
            "pipeline": result["quiet_cycle"]["pipeline"]["api_calls"],
            "minimum": result["quiet_cycle"]["minimum"],
            "naive": result["quiet_cycle"]["naive"]["api_calls"],
        },
        {
            "case": "incremental cycle after the demo changes",
            "pipeline": result["incremental_after_changes"]["pipeline"]["api_calls"],
            "minimum": result["incremental_after_changes"]["pipeline"]["minimum"],
            "naive": result["incremental_after_changes"]["naive"]["api_calls"],
        },
    ]
    for key, label in (
        ("writeback_initial", "write-back, initial scores"),
        ("writeback_small_change", "write-back, small change"),
    ):
        figures = result[key]
        rows.append(
            {
                "case": f"{label} ({figures['pipeline']['changed']:,} records)",
                "pipeline": figures["pipeline"]["api_calls"],
                "minimum": figures["pipeline"]["minimum"],
                "naive": figures["naive"]["api_calls"],
            }
        )
    for row in rows:
        row["naive_per_pipeline"] = ratio(row["naive"], row["pipeline"])
    return rows


def print_call_table(result: dict[str, Any]) -> None:
    header = f"{'case':<52} {'pipeline':>9} {'minimum':>8} {'naive':>7} {'naive/pipeline':>15}"
    print(header)
    print("-" * len(header))
    for row in result["table"]:
        share = row["naive_per_pipeline"]
        print(
            f"{row['case']:<52} {row['pipeline']:>9,} {row['minimum']:>8,} "
            f"{row['naive']:>7,} {share if share is not None else '-':>15}"
        )


def print_backfill_details(result: dict[str, Any]) -> None:
    backfill = result["backfill"]
    for key, label in (
        ("pipeline_per_month", "pipeline, one pass per month"),
        ("pipeline_one_pass", "pipeline, closed months in one pass"),
        ("naive", "naive full pull"),
    ):
        figures = backfill[key]
        phases = figures.get("api_calls_by_phase") or figures["api_calls_by_kind"]
        print(
            f"backfill, {label}: {figures['records_per_second']:,} records/s "
            f"({figures['rows_stored']:,} rows in {figures['seconds']} s); calls "
            + ", ".join(f"{name} {count}" for name, count in phases.items())
        )
    minimum = backfill["minimum"]
    print(
        f"backfill minimums: {minimum['rest_pages']} REST pages make "
        f"{minimum['composite_minimum']} Composite calls, "
        f"{minimum['unchained_composite_minimum']} when each page waits for the "
        f"previous response, {minimum['bulk_aware_minimum']} then with Bulk API 2.0 "
        "where cheaper; "
        f"{minimum['per_month_composite_minimum']} "
        f"({minimum['per_month_unchained_composite_minimum']} when each page waits) "
        "when each month is a query of its own"
    )

    deletes = result["incremental_after_changes"]["deletes"]
    print(
        f"after the demo changes: {deletes['deleted_in_org']} records deleted in the org, "
        f"{deletes['pipeline_tombstones']} stored as tombstones by the pipeline, "
        f"{deletes['naive_kept_as_live']} still stored as live by the naive pull"
    )


def print_transform(result: dict[str, Any]) -> None:
    for key in ("transform", "transform_after_changes"):
        figures = result[key]
        print(
            f"{key}: {figures['deals_scored']:,} open deals scored, RSS "
            f"{figures['rss_before_models_mib']:,} MiB before the models, process "
            f"peak (VmHWM) {figures['vm_hwm_mib']:,} MiB"
        )
        for step in figures["steps"]:
            print(
                f"  {step['step']:<48} {step['seconds']:>7.2f} s "
                f"{step['peak_rss_mib']:>8,.1f} MiB"
            )


def print_report(result: dict[str, Any]) -> None:
    print()
    print_call_table(result)
    print()
    print_backfill_details(result)
    print()
    print_transform(result)
    print(f"\ntotal {result['seconds']} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--anchor",
        default=DEFAULT_ANCHOR,
        help="emulated time of the backfill, ISO 8601 with a zone offset. The demo "
        f"org's data ends the day before it (default {DEFAULT_ANCHOR})",
    )
    parser.add_argument(
        "--first-month",
        default=None,
        metavar="YYYY-MM",
        help="first month to backfill (default: the month of the oldest record's "
        "SystemModstamp). Each earlier, empty month costs the per-month backfill "
        "two more calls",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the three DuckDB files, which are replaced at the start and "
        "kept afterwards (default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write every figure as JSON here"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="log the pipeline's INFO messages"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    anchor = datetime.fromisoformat(args.anchor)
    if anchor.tzinfo is None:
        parser.error(
            f"--anchor {args.anchor!r} has no zone offset. Add one, for example +00:00"
        )
    if args.first_month:
        try:
            datetime.strptime(args.first_month, "%Y-%m")
        except ValueError:
            parser.error(f"--first-month {args.first_month!r} is not YYYY-MM")

    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        for name in DATABASE_FILES:
            for stale in (args.workdir / name, args.workdir / f"{name}.wal"):
                stale.unlink(missing_ok=True)
        result = run(anchor.astimezone(UTC), args.first_month, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="routiine-naive-") as folder:
            result = run(anchor.astimezone(UTC), args.first_month, Path(folder))
    print_report(result)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str))
        print(f"figures written to {args.json}")


if __name__ == "__main__":
    main()
