"""Time the SQL models and the momentum score on a large generated tenant.

Generates opportunities, their history and activities (Tasks and Events)
directly into the raw tables of a DuckDB file with DuckDB SQL, then builds
every model and scores the open deals, the same code the Dagster assets
run. It prints one row per step with wall time and peak resident memory.

    python bench/scale.py                      # 1,000,000 opportunities, 10,000,000 activities
    python bench/scale.py --opportunities 10000 --activities 100000

Values are pseudo-random from DuckDB's hash() of the row number, so a run
with the same sizes writes the same rows. They exercise the queries at
volume, but carry no sales pattern, so the scores themselves mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from routiine_pipeline.mapping import default_mapping
from routiine_pipeline.models import load_models, run_model, write_mapping_tables
from routiine_pipeline.models.raw_rows import create_raw_tables
from routiine_pipeline.scoring import score_open_deals, write_scores

ANCHOR = datetime(2025, 1, 1, tzinfo=UTC)
TENANT = "scale"
# Share of activities that are Tasks; Events make up the rest.
TASK_SHARE = 0.7
HISTORY_ROWS_PER_DEAL = 3
SAMPLE_SECONDS = 0.05


@dataclass
class StepResult:
    """Wall time and peak resident memory of one benchmark step."""

    step: str
    rows: int | None
    seconds: float
    peak_rss_mib: float


class MemorySampler:
    """Track the peak VmRSS of this process between reset() calls, from /proc/self/status.

    ru_maxrss only ever grows, so it cannot give the peak of a later step
    that uses less memory than an earlier one. A thread reading VmRSS every
    50 ms can, at the cost of missing spikes shorter than that.
    """

    def __init__(self) -> None:
        self._peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._peak_kib = max(self._peak_kib, _status_kib("VmRSS"))
            time.sleep(SAMPLE_SECONDS)

    def reset(self) -> None:
        self._peak_kib = _status_kib("VmRSS")

    def peak_mib(self) -> float:
        return max(self._peak_kib, _status_kib("VmRSS")) / 1024.0


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _generate_sql(opportunities: int, tasks: int, events: int) -> list[tuple[str, str]]:
    """Return (raw table, INSERT statement) pairs that generate the tenant's rows."""
    accounts = max(opportunities // 10, 1)
    contacts = accounts * 3
    users = max(opportunities // 1000, 1)
    anchor = f"TIMESTAMPTZ '{ANCHOR.isoformat()}'"
    stages = (
        "['Prospecting', 'Qualification', 'Needs Analysis', 'Proposal/Price Quote', "
        "'Negotiation/Review', 'Closed Won', 'Closed Lost']"
    )
    return [
        (
            "raw_user",
            f"""
            INSERT INTO raw_user (id, name, lastname, isactive, isdeleted, _extracted_at, _window)
            SELECT '005' || lpad(i::VARCHAR, 15, '0'), 'User ' || i, 'User ' || i, true,
                   false, {anchor}, 'bench'
            FROM range({users}) AS t(i)
            """,
        ),
        (
            "raw_account",
            f"""
            INSERT INTO raw_account (id, name, ownerid, createddate, isdeleted, _extracted_at, _window)
            SELECT '001' || lpad(i::VARCHAR, 15, '0'), 'Account ' || i,
                   '005' || lpad((rnd(i, 1) * {users})::BIGINT::VARCHAR, 15, '0'),
                   {anchor} - to_days(1000), false, {anchor}, 'bench'
            FROM range({accounts}) AS t(i)
            """,
        ),
        (
            "raw_contact",
            f"""
            INSERT INTO raw_contact (id, accountid, lastname, isdeleted, _extracted_at, _window)
            SELECT '003' || lpad(i::VARCHAR, 15, '0'),
                   '001' || lpad((i // 3)::VARCHAR, 15, '0'), 'Contact ' || i,
                   false, {anchor}, 'bench'
            FROM range({contacts}) AS t(i)
            """,
        ),
        (
            "raw_opportunity",
            f"""
            INSERT INTO raw_opportunity (id, name, accountid, ownerid, stagename, amount,
                closedate, isclosed, iswon, createddate, isdeleted, _extracted_at, _window)
            SELECT id, 'Deal ' || i, account_id, owner_id, {stages}[stage],
                   amount, close_date, stage >= 6, stage = 6, created_at, false,
                   {anchor}, 'bench'
            FROM deal_plan
            """,
        ),
        (
            "raw_opportunity_history",
            f"""
            INSERT INTO raw_opportunity_history (id, opportunityid, stagename, amount,
                closedate, prevclosedate, createddate, isdeleted, _extracted_at, _window)
            SELECT '008' || lpad((d.i * {HISTORY_ROWS_PER_DEAL} + h)::VARCHAR, 15, '0'), d.id,
                   {stages}[CASE WHEN h = 2 THEN d.stage ELSE least(h + 1, d.stage) END],
                   d.amount,
                   CASE WHEN h = 2 AND d.pushed THEN d.close_date ELSE d.close_date - 14 END,
                   CASE WHEN h = 2 AND d.pushed THEN d.close_date - 14 END,
                   d.created_at + to_days((d.life_days * h * 0.3)::INTEGER),
                   false, {anchor}, 'bench'
            FROM deal_plan AS d, range({HISTORY_ROWS_PER_DEAL}) AS r(h)
            """,
        ),
        (
            "raw_task",
            f"""
            INSERT INTO raw_task (id, whatid, whoid, ownerid, type, tasksubtype, calltype,
                status, completeddatetime, isclosed, createddate, isdeleted, _extracted_at, _window)
            SELECT '00T' || lpad(i::VARCHAR, 15, '0'),
                   '006' || lpad((rnd(i, 11) * {opportunities})::BIGINT::VARCHAR, 15, '0'),
                   '003' || lpad((rnd(i, 12) * {contacts})::BIGINT::VARCHAR, 15, '0'),
                   '005' || lpad((rnd(i, 13) * {users})::BIGINT::VARCHAR, 15, '0'),
                   CASE WHEN k < 0.40 THEN 'Call' WHEN k < 0.85 THEN 'Email' ELSE 'Other' END,
                   CASE WHEN k < 0.40 THEN 'Call' WHEN k < 0.85 THEN 'Email' ELSE 'Task' END,
                   CASE WHEN k < 0.40 THEN (CASE WHEN rnd(i, 14) < 0.3 THEN 'Inbound'
                        ELSE 'Outbound' END) END,
                   'Completed', done_at, true, done_at, false, {anchor}, 'bench'
            FROM (
                SELECT i, rnd(i, 10) AS k, {anchor} - to_seconds((rnd(i, 15) * 365 * 86400)::BIGINT)
                    AS done_at
                FROM range({tasks}) AS t(i)
            )
            """,
        ),
        (
            "raw_event",
            f"""
            INSERT INTO raw_event (id, whatid, whoid, ownerid, startdatetime, enddatetime,
                durationinminutes, createddate, isdeleted, _extracted_at, _window)
            SELECT '00U' || lpad(i::VARCHAR, 15, '0'),
                   '006' || lpad((rnd(i, 21) * {opportunities})::BIGINT::VARCHAR, 15, '0'),
                   '003' || lpad((rnd(i, 22) * {contacts})::BIGINT::VARCHAR, 15, '0'),
                   '005' || lpad((rnd(i, 23) * {users})::BIGINT::VARCHAR, 15, '0'),
                   start_at, start_at + INTERVAL 30 MINUTE, 30, start_at - INTERVAL 7 DAY,
                   false, {anchor}, 'bench'
            FROM (
                SELECT i, {anchor} - to_seconds(((rnd(i, 24) * 1.05 - 0.05) * 365 * 86400)::BIGINT)
                    AS start_at
                FROM range({events}) AS t(i)
            )
            """,
        ),
    ]


def _deal_plan_sql(opportunities: int) -> str:
    """Build the per-deal plan that raw_opportunity and its history read: stage, dates, amount."""
    accounts = max(opportunities // 10, 1)
    users = max(opportunities // 1000, 1)
    anchor = f"TIMESTAMPTZ '{ANCHOR.isoformat()}'"
    return f"""
    CREATE OR REPLACE TEMP TABLE deal_plan AS
    SELECT i, id, account_id, owner_id, stage, amount, created_at, pushed,
        CASE WHEN stage >= 6 THEN (created_at + to_days(life_days))::DATE
             ELSE ({anchor} + to_days(10 + (rnd(i, 6) * 80)::INTEGER))::DATE END AS close_date,
        life_days
    FROM (
        SELECT i,
            '006' || lpad(i::VARCHAR, 15, '0') AS id,
            '001' || lpad((rnd(i, 2) * {accounts})::BIGINT::VARCHAR, 15, '0') AS account_id,
            '005' || lpad((rnd(i, 3) * {users})::BIGINT::VARCHAR, 15, '0') AS owner_id,
            CASE WHEN rnd(i, 4) < 0.5 THEN 1 + (rnd(i, 5) * 5)::INTEGER % 5
                 WHEN rnd(i, 4) < 0.7 THEN 6 ELSE 7 END AS stage,
            round(1000 + rnd(i, 7) * 99000, 2) AS amount,
            {anchor} - to_days(30 + (rnd(i, 8) * 700)::INTEGER) AS created_at,
            rnd(i, 9) < 0.2 AS pushed,
            20 + (rnd(i, 16) * 100)::INTEGER AS life_days
        FROM range({opportunities}) AS t(i)
    )
    """


def _timed(
    results: list[StepResult],
    sampler: MemorySampler,
    step: str,
    action: Callable[[], int | None],
) -> Any:
    sampler.reset()
    start = time.perf_counter()
    rows = action()
    seconds = time.perf_counter() - start
    result = StepResult(step, rows, round(seconds, 2), round(sampler.peak_mib(), 1))
    results.append(result)
    print(
        f"{step:<28} {rows if rows is not None else '':>12} {seconds:9.2f} s "
        f"{result.peak_rss_mib:9.1f} MiB",
        flush=True,
    )
    return rows


def run(opportunities: int, activities: int, path: Path) -> list[StepResult]:
    """Generate the tenant, build the models and score it, timing each step.

    Args:
        opportunities: Opportunities to generate.
        activities: Tasks plus Events to generate.
        path: The DuckDB file to write; replaced if it exists.

    Returns:
        One StepResult per step, in run order.
    """
    path.unlink(missing_ok=True)
    tasks = int(activities * TASK_SHARE)
    events = activities - tasks
    results: list[StepResult] = []
    conn = duckdb.connect(str(path))
    conn.execute("SET TimeZone = 'UTC'")
    conn.execute(
        "CREATE MACRO rnd(i, salt) AS (hash(i * 7919 + salt) % 1000000) / 1000000.0"
    )
    create_raw_tables(conn)
    mapping = default_mapping()
    project = load_models()
    with MemorySampler() as sampler:
        conn.execute(_deal_plan_sql(opportunities))
        for table, sql in _generate_sql(opportunities, tasks, events):

            def insert(sql: str = sql, table: str = table) -> int:
                conn.execute(sql)
                return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

            _timed(results, sampler, f"generate {table}", insert)
        conn.execute("DROP TABLE deal_plan")
        conn.execute("CHECKPOINT")
        write_mapping_tables(conn, TENANT, mapping)
        for name, model in project.models.items():
            _timed(
                results,
                sampler,
                f"model {name}",
                lambda model=model: run_model(conn, model, TENANT, mapping).row_count,
            )
        holder: dict[str, list] = {}

        def score() -> int:
            holder["scores"] = score_open_deals(conn, ANCHOR)
            return len(holder["scores"])

        def store() -> int:
            write_scores(conn, holder["scores"], ANCHOR)
            return len(holder["scores"])

        _timed(results, sampler, "momentum_score: score", score)
        _timed(results, sampler, "momentum_score: write", store)
        holder.clear()
    conn.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--opportunities",
        type=int,
        default=1_000_000,
        help="opportunities to generate (default 1,000,000)",
    )
    parser.add_argument(
        "--activities",
        type=int,
        default=10_000_000,
        help="Tasks plus Events to generate (default 10,000,000)",
    )
    parser.add_argument(
        "--database",
        type=Path,
        default=None,
        help="DuckDB file to write (default: a file in a temporary folder)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the results as JSON here"
    )
    args = parser.parse_args()
    database = (
        args.database
        or Path(tempfile.mkdtemp(prefix="routiine-scale-")) / f"{TENANT}.duckdb"
    )
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs; database {database}")
    start = time.perf_counter()
    results = run(args.opportunities, args.activities, database)
    total = time.perf_counter() - start
    print(
        f"total {total:.1f} s, process peak (VmHWM) {_status_kib('VmHWM') / 1024:.1f} MiB"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "opportunities": args.opportunities,
                    "activities": args.activities,
                    "total_seconds": round(total, 1),
                    "vm_hwm_mib": round(_status_kib("VmHWM") / 1024, 1),
                    "steps": [asdict(r) for r in results],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
