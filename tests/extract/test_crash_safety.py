"""Crash safety, measured: SIGKILL the extracting process at many points, rerun, compare.

A clean single pass in a subprocess records every crash point it reaches
(ROUTIINE_CRASH_TRACE). For each chosen point, a fresh DuckDB file gets a
pass that kills itself there with SIGKILL, then a pass that runs to
completion. The final raw tables must equal the clean pass's tables in every
column except `_extracted_at` (the commit time, which differs by nature), and
the watermarks (value, Id, sealed flag) must be equal too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from emulated_org import emulated_org, record, record_id, utc

from routiine_pipeline.extract.crashpoints import (
    CRASH_AFTER_ENV,
    CRASH_POINT_ENV,
    CRASH_TRACE_ENV,
)
from routiine_pipeline.mapping import EXTRACT_OBJECTS
from routiine_pipeline.storage.raw_tables import raw_table_name
from routiine_pipeline.storage.warehouse import open_database

DRIVER = Path(__file__).with_name("crash_driver.py")
RUN_START = utc(2024, 3, 10, 12, 0)
MIN_CRASH_POINTS = 30
MAX_CRASH_POINTS = 32
# Record counts per sObject, spread over February and March 2024.
ORG_SIZE = {
    "User": 40,
    "Account": 300,
    "Contact": 450,
    "Opportunity": 700,
    "OpportunityHistory": 400,
    "Task": 500,
    "Event": 200,
}


def build_org_records() -> dict[str, list[dict]]:
    """Build records over 38 days, with 250 Opportunities sharing one stamp across page boundaries."""
    start = utc(2024, 2, 1)
    records: dict[str, list[dict]] = {}
    for sobject, count in ORG_SIZE.items():
        rows = []
        for number in range(1, count + 1):
            stamp = start + timedelta(minutes=(number * 7919) % (38 * 24 * 60))
            if sobject == "Opportunity" and 100 <= number < 350:
                stamp = utc(2024, 2, 29, 23, 59, 59)
            rows.append(record(sobject, number, stamp))
        records[sobject] = rows
    return records


def _environment(token: str, **extra: str) -> dict[str, str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ROUTIINE_CRASH")
    }
    environment["ROUTIINE_TEST_ACCESS_TOKEN"] = token
    environment.update(extra)
    return environment


def _run_driver(
    url: str, database: Path, token: str, **extra: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(DRIVER), url, str(database), RUN_START.isoformat()],
        env=_environment(token, **extra),
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _snapshot(database: Path) -> dict[str, list[tuple]]:
    """Read every raw table (all columns but `_extracted_at`) and the watermarks, sorted."""
    tables = {}
    with open_database(database, read_only=True) as conn:
        for sobject in EXTRACT_OBJECTS:
            table = raw_table_name(sobject)
            columns = [
                row[0]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = ? ORDER BY ordinal_position",
                    [table],
                ).fetchall()
                if row[0] != "_extracted_at"
            ]
            quoted = ", ".join(f'"{name}"' for name in columns)
            tables[table] = conn.execute(
                f"SELECT {quoted} FROM {table} ORDER BY id"
            ).fetchall()
        tables["_watermarks"] = conn.execute(
            "SELECT sobject, window_key, watermark, watermark_id, sealed FROM _watermarks ORDER BY 1, 2"
        ).fetchall()
    return tables


def choose_crash_points(trace: list[str]) -> list[tuple[str, int]]:
    """Pick (point, occurrence) pairs spread evenly over the pass, always including every point name."""
    occurrences: list[tuple[str, int]] = []
    seen: dict[str, int] = {}
    for name in trace:
        seen[name] = seen.get(name, 0) + 1
        occurrences.append((name, seen[name]))
    step = max(1, len(occurrences) // MAX_CRASH_POINTS)
    chosen = set(occurrences[::step][:MAX_CRASH_POINTS])
    chosen |= {(name, 1) for name in seen}
    chosen |= {(name, count) for name, count in seen.items()}
    return sorted(chosen)


@pytest.fixture(scope="module")
def crash_org(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    with emulated_org(root, page_size=200) as env:
        env.org.load(build_org_records())
        for number in (5, 17, 420):
            env.org.delete(
                "Opportunity",
                record_id("Opportunity", number),
                at=utc(2024, 3, 9, 8, 0),
            )
        env.clock.set(RUN_START)
        token = env.org.issue_tokens(env.server.client.client_id)[0]
        yield env, token, root


def test_sigkill_at_crash_points_then_rerun(crash_org):
    env, token, root = crash_org
    started = time.monotonic()

    trace_file = root / "trace.txt"
    clean_database = root / "clean.duckdb"
    clean = _run_driver(
        env.url, clean_database, token, **{CRASH_TRACE_ENV: str(trace_file)}
    )
    assert clean.returncode == 0, clean.stderr
    expected = _snapshot(clean_database)
    assert sum(
        len(rows) for name, rows in expected.items() if name != "_watermarks"
    ) == sum(ORG_SIZE.values())

    points = choose_crash_points(trace_file.read_text().split())
    assert len(points) >= MIN_CRASH_POINTS
    assert {name for name, _ in points} == {
        "cycle.tables_ready",
        "cycle.before_composite",
        "cycle.after_composite",
        "cycle.page_committed",
        "commit.begun",
        "commit.rows_written",
        "commit.watermarks_written",
    }

    def crash_and_rerun(
        point: tuple[str, int],
    ) -> tuple[tuple[str, int], int, int, dict]:
        name, occurrence = point
        database = root / f"crash-{name}-{occurrence}.duckdb"
        killed = _run_driver(
            env.url,
            database,
            token,
            **{CRASH_POINT_ENV: name, CRASH_AFTER_ENV: str(occurrence)},
        )
        rerun = _run_driver(env.url, database, token)
        return point, killed.returncode, rerun.returncode, _snapshot(database)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(crash_and_rerun, points))

    for point, killed_code, rerun_code, tables in results:
        assert killed_code == -signal.SIGKILL, f"{point}: the pass was not killed there"
        assert rerun_code == 0, f"{point}: the rerun failed"
        for table, rows in expected.items():
            assert tables[table] == rows, (
                f"{point}: {table} differs from the clean pass"
            )

    elapsed = time.monotonic() - started
    print(f"\n{len(points)} crash points, {elapsed:.1f} s including the clean pass")
