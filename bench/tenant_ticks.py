"""Time the sync schedule's tick, the write-back sensor's tick and the code location at 1,000 tenants.

The script measures two control stores: SQLite under a temporary
ROUTIINE_HOME, and a PostgreSQL database that it creates and drops. For each
it registers the tenants in the control store and as partitions of a
temporary Dagster instance and writes a day of API-call ledger. Then it:

- evaluates `tenant_sync_schedule` at successive 15-minute ticks as the
  daemon does, with `evaluate_tick`, which also resolves every run request's
  partition against the instance. Before each tick it adds the ledger rows of
  the runs the previous tick requested. It reports the median tick;
- does the same with the per-tenant loop the schedule used before its
  control-store reads were batched (`reference_due_tenants`), for comparison;
- evaluates `writeback_sensor` with new momentum_score materializations and
  due write-back retries, with the batched and the per-tenant look-up of
  earlier write-backs.

Then it starts the code location with `dagster api grpc` on a loopback port
and reports the time until `dagster api grpc-health-check` succeeds, the time
until the server responds to a ping polled from this process, and the server's
resident memory after start and after one schedule and one sensor tick
evaluated through it.

    python bench/tenant_ticks.py
    python bench/tenant_ticks.py --tenants 200 --runs 3 --skip-postgres --json /tmp/ticks.json

Only loopback addresses are contacted. No Salesforce org or emulator is
involved: a tick reads the control store and the Dagster instance only.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import platform
import random
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import sqlalchemy as sa

# Every setting is read from the environment when first used, so the
# temporary homes are set before the package is imported.
BENCH_ROOT = Path(tempfile.mkdtemp(prefix="routiine-ticks-"))
atexit.register(shutil.rmtree, BENCH_ROOT, ignore_errors=True)
os.environ["ROUTIINE_HOME"] = str(BENCH_ROOT / "routiine_home")
os.environ.pop("ROUTIINE_CONTROL_URL", None)
os.environ.pop("ROUTIINE_NOTIFY_WEBHOOK", None)

import dagster as dg  # noqa: E402

from routiine_pipeline import settings  # noqa: E402
from routiine_pipeline.budget_state import apply_decision, decide_interval  # noqa: E402
from routiine_pipeline.control import budget_tables, tables  # noqa: E402
from routiine_pipeline.control.store import (  # noqa: E402
    CONNECTED,
    NEEDS_REAUTHORIZATION,
    PAUSED,
    ControlStore,
    open_control_store,
)
from routiine_pipeline.definitions import defs  # noqa: E402
from routiine_pipeline.defs import automation, writeback  # noqa: E402
from routiine_pipeline.defs.partitions import tenant_partitions  # noqa: E402
from routiine_pipeline.defs.resources import ApiBudget, ControlPlane  # noqa: E402

START = datetime(2025, 6, 16, 0, 0, tzinfo=UTC)
DAILY_LIMIT = 15_000
CALLS_PER_SYNC = 3
TICK = timedelta(minutes=15)
# Kinds of tenant: (share of the tenants, status, usage fraction of the daily limit).
# 73% usage gives a 30-minute interval, 95% pauses the tenant for the API budget.
KINDS = {
    "normal": (0.70, CONNECTED, 0.30),
    "pressure": (0.10, CONNECTED, 0.73),
    "budget_paused": (0.05, CONNECTED, 0.95),
    "status_paused": (0.05, PAUSED, None),
    "needs_reauthorization": (0.05, NEEDS_REAUTHORIZATION, None),
    "pending_connection": (0.05, "pending_connection", None),
}
GRPC_TIMEOUT_SECONDS = 120.0
# Login and instance URL of every tenant. Ticks never call Salesforce; if one
# did, the call would go to the discard port on loopback and fail.
UNUSED_URL = "http://127.0.0.1:9"
REPOSITORY = defs.get_repository_def()


@dataclass
class Fleet:
    store: ControlStore
    instance: dg.DagsterInstance
    kinds: dict[str, str]
    ledger_rows: int = 0

    def of(self, *kinds: str) -> list[str]:
        return sorted(tenant for tenant, kind in self.kinds.items() if kind in kinds)


@dataclass
class TickFigures:
    """One tick: wall time of the whole evaluation, of the control-store part, and its statements."""

    seconds: float
    control_store_seconds: float
    statements: int
    run_requests: int


@dataclass
class StoreResult:
    store: str
    tenants: int
    ledger_rows: int
    setup_seconds: float
    first_tick: TickFigures
    schedule_ticks: list[TickFigures]
    reference_schedule_ticks: list[TickFigures]
    sensor_ticks: list[TickFigures]
    reference_sensor_ticks: list[TickFigures]
    summary: dict[str, float] = field(default_factory=dict)


# -- fleet -------------------------------------------------------------------------


def register_fleet(
    store: ControlStore,
    instance: dg.DagsterInstance,
    tenants: int,
    ledger_days: int,
) -> Fleet:
    """Register the tenants in both stores, with statuses, request times and a ledger."""
    kinds: list[str] = []
    for kind, (share, _, _) in KINDS.items():
        kinds += [kind] * round(share * tenants)
    kinds = (kinds + ["normal"] * tenants)[:tenants]
    random.Random(7).shuffle(kinds)
    fleet = Fleet(store, instance, {f"t{n:05d}": kind for n, kind in enumerate(kinds)})

    for tenant in fleet.kinds:
        store.add_tenant(tenant, org_type="production", login_url=UNUSED_URL)
    updates = [
        {
            "key": tenant,
            "status": KINDS[kind][1],
            "instance_url": UNUSED_URL,
            "last_requested_at": START - TICK,
        }
        for tenant, kind in fleet.kinds.items()
    ]
    with store.engine.begin() as conn:
        conn.execute(
            tables.tenants.update().where(
                tables.tenants.c.tenant_id == sa.bindparam("key")
            ),
            updates,
        )

    fleet.ledger_rows = _write_ledger(fleet, ledger_days)
    instance.add_dynamic_partitions(tenant_partitions.name, sorted(fleet.kinds))
    return fleet


def _write_ledger(fleet: Fleet, days: int) -> int:
    """Write `days` of syncs for every connected tenant, at its interval, in batches."""
    rows: list[dict] = []
    written = 0
    for tenant, kind in sorted(fleet.kinds.items()):
        usage = KINDS[kind][2]
        if usage is None:
            continue
        step = {"normal": 15, "pressure": 30}.get(kind, 60)
        for minutes in range(step, days * 24 * 60 + 1, step):
            rows += sync_rows(tenant, START - timedelta(minutes=minutes), usage)
        if len(rows) > 50_000:
            written += _insert(fleet.store, rows)
            rows = []
    return written + _insert(fleet.store, rows)


def sync_rows(tenant: str, at: datetime, usage: float) -> list[dict]:
    """Return the ledger rows of one sync. The readings drift by up to 96 calls
    with the time of day, so each tick refreshes the stored figures."""
    run_id = f"{tenant}-{at:%Y%m%dT%H%M}"
    used = round(usage * DAILY_LIMIT) + (at.hour * 4 + at.minute // 15)
    return [
        {
            "tenant_id": tenant,
            "at": at + timedelta(seconds=call),
            "run_id": run_id,
            "phase": "incremental",
            "kind": "composite",
            "status": 200,
            "org_used": used + call,
            "org_max": DAILY_LIMIT,
        }
        for call in range(CALLS_PER_SYNC)
    ]


def _insert(store: ControlStore, rows: list[dict]) -> int:
    if rows:
        with store.engine.begin() as conn:
            conn.execute(tables.api_calls.insert(), rows)
    return len(rows)


def record_runs(fleet: Fleet, tenants: list[str], at: datetime) -> None:
    """Add the ledger rows of one sync per tenant, as the runs a tick requested would."""
    rows = []
    for tenant in tenants:
        rows += sync_rows(tenant, at, KINDS[fleet.kinds[tenant]][2])
    fleet.ledger_rows += _insert(fleet.store, rows)


# -- timing helpers ----------------------------------------------------------------


@contextmanager
def counting_statements(engine: sa.Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@contextmanager
def timing_calls(module: Any, name: str, durations: list[float]) -> Iterator[None]:
    """Replace module.name with a wrapper that appends each call's wall time to `durations`."""
    original = getattr(module, name)

    def timed(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            durations.append(time.perf_counter() - started)

    setattr(module, name, timed)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextmanager
def replacing(module: Any, name: str, replacement: Callable) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, replacement)
    try:
        yield
    finally:
        setattr(module, name, original)


# -- schedule ----------------------------------------------------------------------


def reference_due_tenants(
    now: datetime,
    known_partitions: set[str],
    budget: ApiBudget | None = None,
    *,
    mark_requested: bool = False,
) -> tuple[list[str], list[str]]:
    """Split the tenants with the schedule's previous loop, which sends several statements per connected tenant.

    It is kept to measure what batching saved. Its skip reasons are shortened.
    """
    budget = budget or ApiBudget(control=ControlPlane())
    store = open_control_store(settings.control_store_url())
    interval_policy = budget.interval_policy()
    due, skipped = [], []
    for tenant in store.list_tenants():
        if tenant.tenant_id not in known_partitions or tenant.status != CONNECTED:
            skipped.append(f"{tenant.tenant_id}: status {tenant.status}")
            continue
        decision = decide_interval(
            store,
            tenant.tenant_id,
            now=now,
            policy=budget.policy(tenant.tenant_id),
            interval_policy=interval_policy,
        )
        apply_decision(store, tenant.tenant_id, decision, at=now)
        last = tenant.last_requested_at
        next_at = last + timedelta(minutes=decision.interval_minutes) if last else now
        if next_at > now + automation.DUE_TOLERANCE:
            skipped.append(f"{tenant.tenant_id}: not due until {next_at}")
            continue
        due.append(tenant.tenant_id)
        if mark_requested:
            store.update_tenant(tenant.tenant_id, last_requested_at=now)
    return due, skipped


def schedule_tick(fleet: Fleet, at: datetime) -> TickFigures:
    durations: list[float] = []
    with (
        timing_calls(automation, "due_tenants", durations),
        counting_statements(fleet.store.engine) as statements,
        dg.build_schedule_context(
            instance=fleet.instance,
            instance_ref=fleet.instance.get_ref(),
            scheduled_execution_time=at,
            resources={"budget": ApiBudget(control=ControlPlane())},
            repository_def=REPOSITORY,
        ) as context,
    ):
        started = time.perf_counter()
        data = automation.tenant_sync_schedule.evaluate_tick(context)
        seconds = time.perf_counter() - started
    requested = [request.tags["routiine/tenant"] for request in data.run_requests]
    record_runs(fleet, requested, at + timedelta(minutes=5))
    return TickFigures(seconds, sum(durations), len(statements), len(requested))


def run_schedule_ticks(
    fleet: Fleet, runs: int, first_at: datetime
) -> list[TickFigures]:
    return [schedule_tick(fleet, first_at + TICK * k) for k in range(runs)]


# -- sensor ------------------------------------------------------------------------


def prepare_sensor(fleet: Fleet, scored: int, retried: int) -> None:
    """Record momentum_score materializations and due write-back retries for known tenants."""
    tenants = sorted(fleet.kinds)
    random.Random(11).shuffle(tenants)
    for tenant in tenants[:scored]:
        fleet.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                writeback.MOMENTUM_KEY, partition=tenant, metadata={"changed_scores": 5}
            )
        )
    now = datetime.now(UTC)
    rows = [
        {
            "tenant_id": tenant,
            "pending": 2,
            "next_attempt_at": now - timedelta(minutes=5),
            "updated_at": now,
        }
        for tenant in tenants[scored : scored + retried]
    ]
    if rows:
        with fleet.store.engine.begin() as conn:
            conn.execute(budget_tables.writeback_retries.insert(), rows)


def reference_latest_writeback_ids(
    instance: dg.DagsterInstance, tenants: set[str]
) -> dict[str, int]:
    """Look up each tenant's newest write-back with one event-log query per tenant, as the sensor did before."""
    latest = {}
    for tenant in tenants:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=writeback.WRITEBACK_KEY, asset_partitions=[tenant]
            ),
            limit=1,
            ascending=False,
        ).records
        if records:
            latest[tenant] = records[0].storage_id
    return latest


def sensor_tick(fleet: Fleet) -> TickFigures:
    durations: list[float] = []
    context = dg.build_sensor_context(
        instance=fleet.instance,
        instance_ref=fleet.instance.get_ref(),
        repository_def=REPOSITORY,
    )
    with (
        timing_calls(writeback, "_latest_writeback_ids", durations),
        counting_statements(fleet.store.engine) as statements,
    ):
        started = time.perf_counter()
        data = writeback.writeback_sensor.evaluate_tick(context)
        seconds = time.perf_counter() - started
    return TickFigures(seconds, sum(durations), len(statements), len(data.run_requests))


# -- one control store -------------------------------------------------------------


def measure_store(name: str, url: str, args: argparse.Namespace) -> StoreResult:
    """Register the fleet on the store at `url` and time its ticks."""
    dagster_home = BENCH_ROOT / f"dagster_home_{name}"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").touch()
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    if name == "sqlite":
        os.environ.pop("ROUTIINE_CONTROL_URL", None)
    else:
        os.environ["ROUTIINE_CONTROL_URL"] = url
    open_control_store.cache_clear()
    store = open_control_store(settings.control_store_url())
    instance = dg.DagsterInstance.get()
    started = time.perf_counter()
    fleet = register_fleet(store, instance, args.tenants, args.ledger_days)
    prepare_sensor(fleet, args.scored, args.retried)
    setup_seconds = time.perf_counter() - started
    print(
        f"[{name}] {args.tenants} tenants, {fleet.ledger_rows:,} ledger rows, "
        f"set up in {setup_seconds:.1f} s",
        flush=True,
    )

    first = schedule_tick(fleet, START)
    ticks = run_schedule_ticks(fleet, args.runs, START + TICK)
    with replacing(automation, "due_tenants", reference_due_tenants):
        reference = run_schedule_ticks(fleet, args.runs, START + TICK * (args.runs + 1))
    sensor = [sensor_tick(fleet) for _ in range(args.runs)]
    with replacing(writeback, "_latest_writeback_ids", reference_latest_writeback_ids):
        reference_sensor = [sensor_tick(fleet) for _ in range(args.runs)]
    result = StoreResult(
        name,
        args.tenants,
        fleet.ledger_rows,
        setup_seconds,
        first,
        ticks,
        reference,
        sensor,
        reference_sensor,
    )
    result.summary = summarize(result)
    for key, value in result.summary.items():
        print(f"[{name}] {key}: {value:g}", flush=True)
    return result


def summarize(result: StoreResult) -> dict[str, float]:
    def median(ticks: list[TickFigures], field_name: str) -> float:
        return round(statistics.median(getattr(t, field_name) for t in ticks), 4)

    summary = {}
    for label, ticks in (
        ("schedule", result.schedule_ticks),
        ("schedule_per_tenant_reference", result.reference_schedule_ticks),
        ("sensor", result.sensor_ticks),
        ("sensor_per_tenant_reference", result.reference_sensor_ticks),
    ):
        summary[f"{label}_tick_seconds"] = median(ticks, "seconds")
        summary[f"{label}_own_part_seconds"] = median(ticks, "control_store_seconds")
        summary[f"{label}_statements"] = median(ticks, "statements")
        summary[f"{label}_run_requests"] = median(ticks, "run_requests")
    return summary


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """Create a database for this run on the server and drop it afterwards."""
    name = f"routiine_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        f"{server_url}/postgres".replace("postgresql://", "postgresql+psycopg2://", 1),
        isolation_level="AUTOCOMMIT",
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{server_url}/{name}".replace("postgresql://", "postgresql+psycopg2://", 1)
    try:
        yield url
    finally:
        open_control_store.cache_clear()
        # FORCE (PostgreSQL 13+) ends the connections still pooled by the control store.
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- code location -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


def dagster_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


@contextmanager
def code_server(port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    """Run `dagster api grpc` for the package's definitions on 127.0.0.1:`port`."""
    from dagster._grpc.client import DagsterGrpcClient

    with log_path.open("w") as log:
        process = subprocess.Popen(
            [
                dagster_bin("dagster"),
                "api",
                "grpc",
                "-m",
                "routiine_pipeline.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--location-name",
                "routiine_pipeline",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )
    try:
        yield process
    finally:
        # The gRPC shutdown call works even when this process was started with
        # SIGTERM ignored, which its children inherit. SIGTERM and SIGKILL follow.
        try:
            DagsterGrpcClient(port=port, host="127.0.0.1").shutdown_server()
            process.wait(timeout=30)
        except Exception as error:  # noqa: BLE001 - the signals below stop it
            print(f"code server shutdown call failed ({error}); sending SIGTERM")
        for stop in (process.terminate, process.kill):
            if process.poll() is not None:
                break
            stop()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=30)


def wait_with_health_check_cli(port: int, started: float) -> float:
    while time.perf_counter() - started < GRPC_TIMEOUT_SECONDS:
        check = subprocess.run(
            [
                dagster_bin("dagster"),
                "api",
                "grpc-health-check",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            capture_output=True,
        )
        if check.returncode == 0:
            return time.perf_counter() - started
        time.sleep(0.1)
    raise TimeoutError(
        f"code server on port {port} not healthy after {GRPC_TIMEOUT_SECONDS} s"
    )


def wait_with_ping(port: int, started: float) -> float:
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    while time.perf_counter() - started < GRPC_TIMEOUT_SECONDS:
        try:
            client.ping("")
            return time.perf_counter() - started
        except Exception:  # noqa: BLE001 - not listening yet
            time.sleep(0.05)
    raise TimeoutError(
        f"code server on port {port} did not respond to a ping within {GRPC_TIMEOUT_SECONDS} s"
    )


def ticks_through_server(port: int, instance: dg.DagsterInstance, at: datetime) -> dict:
    """Evaluate one schedule tick and one sensor tick in the code server, as the daemon does."""
    from dagster._core.definitions.timestamp import TimestampWithTimezone
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin

    origin = GrpcServerCodeLocationOrigin(
        host="127.0.0.1", port=port, location_name="routiine_pipeline"
    )
    figures = {}
    with origin.create_location(instance) as location:
        repository = next(iter(location.get_repositories().values()))
        started = time.perf_counter()
        schedule = location.get_schedule_execution_data(
            instance,
            repository.handle,
            "tenant_sync_schedule",
            TimestampWithTimezone(at.timestamp(), "UTC"),
            log_key=None,
        )
        figures["schedule_tick_seconds"] = round(time.perf_counter() - started, 3)
        figures["schedule_run_requests"] = len(schedule.run_requests or [])
        started = time.perf_counter()
        sensor = location.get_sensor_execution_data(
            instance,
            repository.handle,
            "writeback_sensor",
            None,
            None,
            None,
            None,
            None,
        )
        figures["sensor_tick_seconds"] = round(time.perf_counter() - started, 3)
        figures["sensor_run_requests"] = len(sensor.run_requests or [])
    return figures


def measure_code_location(args: argparse.Namespace) -> dict:
    """Start the code server `--startup-runs` times per readiness check, then tick it once."""
    os.environ["DAGSTER_HOME"] = str(BENCH_ROOT / "dagster_home_sqlite")
    os.environ.pop("ROUTIINE_CONTROL_URL", None)
    instance = dg.DagsterInstance.get()
    result: dict[str, Any] = {"cli_health_check_seconds": [], "ping_seconds": []}
    for run in range(args.startup_runs):
        for key, wait in (
            ("cli_health_check_seconds", wait_with_health_check_cli),
            ("ping_seconds", wait_with_ping),
        ):
            port = free_port()
            with code_server(port, BENCH_ROOT / f"grpc-{key}-{run}.log"):
                started = time.perf_counter()
                result[key].append(round(wait(port, started), 3))
    port = free_port()
    with code_server(port, BENCH_ROOT / "grpc-ticks.log") as process:
        wait_with_ping(port, time.perf_counter())
        time.sleep(1.0)
        result["rss_after_start_mib"] = rss_mib(process.pid)
        at = START + TICK * (2 * args.runs + 1)
        result.update(ticks_through_server(port, instance, at))
        result["rss_after_ticks_mib"] = rss_mib(process.pid)
    for key in ("cli_health_check_seconds", "ping_seconds"):
        result[f"{key}_median"] = round(statistics.median(result[key]), 3)
    for key, value in result.items():
        print(f"[code location] {key}: {value}", flush=True)
    return result


# -- machine and main --------------------------------------------------------------


def machine(postgres_url: str | None) -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    description = {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dagster": dg.__version__,
        "sqlalchemy": sa.__version__,
        "sqlite": sqlite3.sqlite_version,
        "duckdb": duckdb.__version__,
        "load_average_at_start": os.getloadavg(),
    }
    if postgres_url:
        engine = sa.create_engine(
            f"{postgres_url}/postgres".replace(
                "postgresql://", "postgresql+psycopg2://", 1
            )
        )
        with engine.connect() as conn:
            description["postgresql"] = conn.execute(
                sa.text("SHOW server_version")
            ).scalar()
        engine.dispose()
    return description


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )

    parser.add_argument(
        "--tenants", type=int, default=1000, help="tenants to register (default 1000)"
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=5,
        help="ticks measured per variant; the median is reported (default 5)",
    )
    parser.add_argument(
        "--ledger-days",
        type=int,
        default=1,
        help="days of API-call ledger written per connected tenant before the first tick (default 1)",
    )
    parser.add_argument(
        "--scored",
        type=int,
        default=300,
        help="tenants with a new momentum_score materialization (default 300)",
    )
    parser.add_argument(
        "--retried",
        type=int,
        default=100,
        help="other tenants with a due write-back retry (default 100)",
    )
    parser.add_argument(
        "--postgres-url",
        default="postgresql://postgres@127.0.0.1:5432",
        help="PostgreSQL server, without a database; a database is created there and dropped "
        "(default postgresql://postgres@127.0.0.1:5432)",
    )
    parser.add_argument(
        "--skip-postgres",
        action="store_true",
        help="measure the SQLite control store only",
    )
    parser.add_argument(
        "--startup-runs",
        type=int,
        default=3,
        help="code server starts per readiness check (default 3)",
    )
    parser.add_argument(
        "--skip-code-location",
        action="store_true",
        help="skip the code server measurements",
    )
    parser.add_argument(
        "--json", type=Path, help="also write the figures to this JSON file"
    )
    args = parser.parse_args(argv)

    for name in ("tenants", "runs", "startup_runs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("ledger_days", "scored", "retried"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    host = urlsplit(args.postgres_url).hostname
    if not args.skip_postgres and host not in ("127.0.0.1", "localhost", "::1"):
        parser.error(f"--postgres-url must name a loopback host, got {host!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report: dict[str, Any] = {
        "command": " ".join(
            ["python", "bench/tenant_ticks.py", *(argv or sys.argv[1:])]
        ),
        "machine": machine(None if args.skip_postgres else args.postgres_url),
        "settings": {
            key: (str(value) if isinstance(value, Path) else value)
            for key, value in vars(args).items()
        },
        "stores": [],
    }
    report["stores"].append(asdict(measure_store("sqlite", "", args)))
    if not args.skip_postgres:
        with postgres_database(args.postgres_url) as url:
            report["stores"].append(asdict(measure_store("postgresql", url, args)))
    if not args.skip_code_location:
        report["code_location"] = measure_code_location(args)
    # Other processes on the machine slow every figure; the load shows how busy it was.
    report["machine"]["load_average_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
        print(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
