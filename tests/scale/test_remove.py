"""`routiine tenants remove`: tokens revoked, every tenant-keyed row, the partition and the files deleted.

Tenants are added and connected through the CLI and the emulator's OAuth
flow, on a control store in SQLite or PostgreSQL and a Dagster instance
under a temporary DAGSTER_HOME. The DuckDB file of the removed tenant is
left by a process that crashed after a write and a spill to disk, so its
.wal and .tmp leftovers are real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from auth.helpers import CLIENT_ID, CLIENT_SECRET, AuthSetup, free_port, make_setup

from routiine_pipeline import settings
from routiine_pipeline.budget_state import pause_for_limit, set_budget_overrides
from routiine_pipeline.cli import main
from routiine_pipeline.control import tables
from routiine_pipeline.control.notify import record_alert
from routiine_pipeline.control.store import ControlStore
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.emulator import Clock, Org
from routiine_pipeline.salesforce.limits import ApiUsage
from routiine_pipeline.storage.lease import hold_tenant_lease
from routiine_pipeline.storage.warehouse import open_database
from routiine_pipeline.tenants import (
    TenantFileInUseError,
    remove_tenant,
    tenant_files,
)
from routiine_pipeline.writeback.queue import ensure_queue, publish_due_time

# Tables that the setup below fills for each tenant. Removal must empty them all.
FILLED_TABLES = {
    "tenants",
    "tokens",
    "oauth_states",
    "api_calls",
    "notifications",
    "budget_settings",
    "budget_state",
    "interval_history",
    "tenant_alerts",
    "writeback_retries",
}

# Writes a table, spills a sort to disk and exits without closing, as a
# killed run would: DuckDB leaves the .wal and the .tmp spill folder behind.
CRASHED_WRITER = """
import os, sys
import duckdb
conn = duckdb.connect(sys.argv[1])
conn.execute("SET memory_limit = '32MB'")
conn.execute("SET threads = 1")
conn.execute("CREATE TABLE raw_opportunity AS SELECT range AS id FROM range(1000)")
conn.execute(
    "SELECT count(*) FROM (SELECT range, md5(range::VARCHAR) AS h FROM range(1500000) ORDER BY h)"
).fetchall()
os._exit(0)
"""

# Opens the file, read-only when a third argument is given, and keeps it open
# until its standard input closes.
HOLDER = """
import sys
import duckdb
conn = duckdb.connect(sys.argv[1], read_only=len(sys.argv) > 2)
print("open", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def cli_env(control_url, routiine_home, tmp_path, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.setenv("ROUTIINE_ALLOW_LOOPBACK", "1")
    monkeypatch.setenv("ROUTIINE_SF_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ROUTIINE_SF_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv(
        "ROUTIINE_SF_REDIRECT_URI", f"http://127.0.0.1:{free_port()}/oauth/callback"
    )
    return control_url


@pytest.fixture
def setup(cli_env, routiine_home):
    running = make_setup(
        Org(clock=Clock()),
        routiine_home,
        os.environ["ROUTIINE_SF_REDIRECT_URI"],
        store_url=cli_env,
    )
    yield running
    running.server.stop()


def add_and_connect(setup: AuthSetup, tenant: str) -> None:
    assert main(["tenants", "add", tenant, "--login-url", setup.server.url]) == 0
    state, code = setup.authorize(tenant)
    setup.connector.complete(state=state, code=code, tenant_id=tenant)


def fill_control_rows(store: ControlStore, tenant: str) -> None:
    """Give the tenant a row in each table of FILLED_TABLES, through the code that writes them."""
    now = datetime.now(UTC)
    store.record_call(
        tenant,
        kind="composite",
        status=200,
        org_used=900,
        org_max=15_000,
        run_id="run-1",
        phase="incremental",
    )
    store.notify(tenant, "test", "a notification")
    set_budget_overrides(store, tenant, share=0.1)
    pause_for_limit(store, tenant, at=now, usage=ApiUsage(15_000, 15_000), kind="query")
    record_alert(
        store,
        tenant,
        kind="writeback_failures",
        run_id="run-1",
        details=[{"record": "006000000000001AAA"}],
        message="one record failed",
    )
    with open_database(settings.tenant_database_path(tenant)) as conn:
        ensure_queue(conn)
        conn.execute(
            "INSERT INTO writeback_queue VALUES ('006000000000001AAA', '{}', 1, "
            "'transient', 'UNABLE_TO_LOCK_ROW', '[]', ?, ?)",
            [now + timedelta(minutes=5), now],
        )
        publish_due_time(store, conn, tenant, now)


def rows_by_table(store: ControlStore, tenant: str) -> dict[str, int]:
    """Count the tenant's rows in every control-store table that has a tenant_id column."""
    counts = {}
    with store.engine.connect() as conn:
        for table in tables.metadata.sorted_tables:
            if "tenant_id" in table.c:
                counts[table.name] = conn.execute(
                    sa.select(sa.func.count()).where(table.c.tenant_id == tenant)
                ).scalar_one()
    return counts


NO_ROWS = {
    table.name: 0 for table in tables.metadata.sorted_tables if "tenant_id" in table.c
}


def crash_while_writing(path: Path) -> None:
    subprocess.run([sys.executable, "-c", CRASHED_WRITER, str(path)], check=True)


def test_remove_deletes_rows_partition_and_files(setup, capsys):
    add_and_connect(setup, "acme")
    add_and_connect(setup, "other")
    setup.connector.start("acme")  # a flow never completed leaves an OAuth state
    for tenant in ("acme", "other"):
        fill_control_rows(setup.store, tenant)
    database = settings.tenant_database_path("acme")
    crash_while_writing(database)
    leftovers = [database, Path(f"{database}.wal"), Path(f"{database}.tmp")]
    assert tenant_files("acme") == leftovers
    before = rows_by_table(setup.store, "acme")
    assert {table for table, count in before.items() if count} >= FILLED_TABLES
    other_before = rows_by_table(setup.store, "other")
    access = setup.tokens("acme").access_token()
    capsys.readouterr()

    assert main(["tenants", "remove", "acme"]) == 0

    out = capsys.readouterr().out
    assert "Removed tenant acme and revoked its tokens" in out
    assert f"control store: {sum(before.values())} rows deleted (" in out
    assert "Dagster partition: deleted" in out
    for path in leftovers:
        assert f"deleted {path}" in out
        assert not path.exists(), path
    assert rows_by_table(setup.store, "acme") == NO_ROWS
    assert rows_by_table(setup.store, "other") == other_before
    assert settings.tenant_database_path("other").exists()
    instance = dg.DagsterInstance.get()
    assert instance.get_dynamic_partitions(tenant_partitions.name) == ["other"]
    assert setup.org.usage.calls["revoke"] == 1
    assert setup.org.tokens.is_valid_access_token(access) is False


def test_remove_keep_data_leaves_file(setup, capsys):
    add_and_connect(setup, "acme")
    fill_control_rows(setup.store, "acme")
    database = settings.tenant_database_path("acme")
    capsys.readouterr()

    assert main(["tenants", "remove", "acme", "--keep-data"]) == 0

    out = capsys.readouterr().out
    assert f"kept {database}" in out
    assert "Archive or delete the kept files" in out
    assert rows_by_table(setup.store, "acme") == NO_ROWS
    assert dg.DagsterInstance.get().get_dynamic_partitions(tenant_partitions.name) == []
    with open_database(database, read_only=True) as conn:
        queued = conn.execute("SELECT count(*) FROM writeback_queue").fetchone()[0]
    assert queued == 1


@pytest.mark.parametrize("read_only", [False, True])
def test_remove_waits_for_open_file(setup, read_only):
    add_and_connect(setup, "acme")
    fill_control_rows(setup.store, "acme")
    database = settings.tenant_database_path("acme")
    before = rows_by_table(setup.store, "acme")
    instance = dg.DagsterInstance.get()
    queued = _queued_run(instance, {"routiine/tenant": "acme"})
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(database)]
        + (["read-only"] if read_only else []),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(TenantFileInUseError, match="Nothing was removed"):
            remove_tenant(instance, "acme", lock_wait_seconds=0.5)
        assert rows_by_table(setup.store, "acme") == before
        assert instance.has_dynamic_partition(tenant_partitions.name, "acme")
        assert database.exists()
        assert setup.org.usage.calls["revoke"] == 0
        # The tenant still exists, so its queued run stays queued.
        assert instance.get_run_by_id(queued).status == dg.DagsterRunStatus.QUEUED
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    removal = remove_tenant(instance, "acme", lock_wait_seconds=0.5)

    assert removal.revoked is True
    assert removal.deleted_files == [database]
    assert not database.exists()
    assert sum(removal.control_rows.values()) == sum(before.values())
    assert removal.canceled_runs == [queued]


@pytest.mark.parametrize("control_url", ["postgresql"], indirect=True)
def test_remove_waits_for_writer_lease(setup, control_url):
    """Removal waits for the lease of a run on another machine, which DuckDB's local lock cannot see."""
    add_and_connect(setup, "acme")
    fill_control_rows(setup.store, "acme")
    database = settings.tenant_database_path("acme")
    before = rows_by_table(setup.store, "acme")
    instance = dg.DagsterInstance.get()
    queued = _queued_run(instance, {"routiine/tenant": "acme"})

    with hold_tenant_lease(control_url, "acme", holder="run r-1 on worker-2"):
        with pytest.raises(TenantFileInUseError, match="held by run r-1 on worker-2"):
            remove_tenant(instance, "acme", lock_wait_seconds=0.5)
        assert rows_by_table(setup.store, "acme") == {**before, "warehouse_leases": 1}
        assert instance.has_dynamic_partition(tenant_partitions.name, "acme")
        assert database.exists()
        assert setup.org.usage.calls["revoke"] == 0
        # The tenant still exists, so its queued run stays queued.
        assert instance.get_run_by_id(queued).status == dg.DagsterRunStatus.QUEUED

    removal = remove_tenant(instance, "acme", lock_wait_seconds=0.5)

    assert removal.deleted_files == [database]
    assert removal.canceled_runs == [queued]
    assert "warehouse_leases" not in removal.control_rows
    assert rows_by_table(setup.store, "acme") == NO_ROWS


def test_remove_finishes_half_removed_tenant(setup, capsys):
    """A tenant removed before files and ledger rows were deleted can be removed again."""
    add_and_connect(setup, "acme")
    fill_control_rows(setup.store, "acme")
    instance = dg.DagsterInstance.get()
    # What removal used to delete: tokens, OAuth states, the tenant row and the partition.
    with setup.store.engine.begin() as conn:
        for table in (tables.tokens, tables.oauth_states, tables.tenants):
            conn.execute(table.delete().where(table.c.tenant_id == "acme"))
    instance.delete_dynamic_partition(tenant_partitions.name, "acme")
    left = rows_by_table(setup.store, "acme")
    assert left["api_calls"] == 1
    assert left["budget_state"] == 1
    capsys.readouterr()

    assert main(["tenants", "remove", "acme"]) == 0

    out = capsys.readouterr().out
    assert "Removed tenant acme (no token to revoke)" in out
    assert "Dagster partition: none was registered" in out
    assert rows_by_table(setup.store, "acme") == NO_ROWS
    assert tenant_files("acme") == []


def _queued_run(instance: dg.DagsterInstance, tags: dict[str, str]) -> str:
    """Record a QUEUED sync run of the real code location; no daemon runs here, so it stays queued."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import create_run_for_test
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="routiine_pipeline.definitions"),
        location_name="routiine_pipeline",
    )
    with origin.create_location(instance) as location:
        (repository,) = location.get_repositories().values()
        job = repository.get_full_job("tenant_sync_job")
        run = create_run_for_test(
            instance,
            job_name="tenant_sync_job",
            status=dg.DagsterRunStatus.QUEUED,
            tags=tags,
            remote_job_origin=job.get_remote_origin(),
            job_code_origin=job.get_python_origin(),
        )
    return run.run_id


def test_remove_cancels_queued_runs_of_tenant(setup, capsys):
    """A tenant removed while its runs wait in the queue: they end canceled, naming the tenant."""
    add_and_connect(setup, "acme")
    add_and_connect(setup, "globex")
    instance = dg.DagsterInstance.get()
    sync = _queued_run(instance, {"routiine/tenant": "acme"})
    backfill = _queued_run(instance, {"dagster/partition/tenant": "acme"})
    models = _queued_run(instance, {"dagster/partition": "acme"})
    other = _queued_run(instance, {"routiine/tenant": "globex"})

    assert main(["tenants", "remove", "acme"]) == 0

    for run_id in (sync, backfill, models):
        run = instance.get_run_by_id(run_id)
        assert run.status == dg.DagsterRunStatus.CANCELED
        messages = [
            entry.dagster_event.message
            for entry in instance.all_logs(run_id)
            if entry.dagster_event and entry.dagster_event.message
        ]
        assert any(
            "tenant acme no longer exists" in message and "wrote nothing" in message
            for message in messages
        ), messages
    assert instance.get_run_by_id(other).status == dg.DagsterRunStatus.QUEUED
    assert "canceled 3 queued runs" in capsys.readouterr().out
    assert not settings.tenant_database_path("acme").exists()


def test_readding_removed_id_rejected(setup, capsys):
    """An id whose materializations remain would look backfilled; adding it again is rejected."""
    add_and_connect(setup, "acme")
    instance = dg.DagsterInstance.get()
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            dg.AssetKey(["raw", "opportunity"]),
            partition=dg.MultiPartitionKey({"tenant": "acme", "month": "2025-01-01"}),
        )
    )
    assert main(["tenants", "remove", "acme"]) == 0
    capsys.readouterr()

    assert main(["tenants", "add", "acme", "--login-url", setup.server.url]) != 0
    error = capsys.readouterr().err
    assert "tenant id 'acme' was used by a removed tenant" in error
    assert "add the tenant under another id" in error
    assert not instance.has_dynamic_partition(tenant_partitions.name, "acme")
    # A fresh id works.
    assert main(["tenants", "add", "acme-2", "--login-url", setup.server.url]) == 0


def test_adding_existing_tenant_says_it_exists(setup, capsys):
    add_and_connect(setup, "acme")
    capsys.readouterr()
    assert main(["tenants", "add", "acme", "--login-url", setup.server.url]) != 0
    assert "tenant 'acme' already exists" in capsys.readouterr().err
