"""The writer lease on real PostgreSQL, with a second process standing in for another run pod.

Both "pods" share one tenant folder, as run pods share a ReadWriteMany volume.
On one machine DuckDB's file lock would also keep them apart, so the holder
process here takes only the lease and never opens the file: a worker that is
then kept out is kept out by the lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from routiine_pipeline import settings
from routiine_pipeline.defs.resources import TenantWarehouse
from routiine_pipeline.storage.lease import (
    LOCK_NAMESPACE,
    WarehouseLeaseError,
    hold_tenant_lease,
    lease_required,
    tenant_lock_key,
)

HOLDER_SCRIPT = Path(__file__).with_name("lease_holder.py")


@pytest.fixture
def shared_volume(routiine_home, postgres_url, monkeypatch):
    """ROUTIINE_HOME as the shared volume, with the control store on PostgreSQL."""
    monkeypatch.setenv("ROUTIINE_CONTROL_URL", postgres_url)
    return routiine_home


def _start_holder(control_url: str, tenant: str, holder: str, tmp_path: Path):
    ready = tmp_path / f"{holder}.ready"
    process = subprocess.Popen(
        [sys.executable, str(HOLDER_SCRIPT), control_url, tenant, holder, str(ready)],
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"lease holder exited with {process.returncode}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("lease holder did not take the lease within 60 s")
        time.sleep(0.1)
    return process


def test_lease_only_for_postgres():
    assert lease_required("postgresql+psycopg2://db/routiine")
    assert not lease_required("sqlite:////var/lib/routiine/control.db")


def test_lock_keys_are_stable_and_signed_32_bit():
    assert tenant_lock_key("acme") == tenant_lock_key("acme")
    assert tenant_lock_key("acme") != tenant_lock_key("acme-2")
    for tenant in ("acme", "demo", "z" * 63):
        assert -(2**31) <= tenant_lock_key(tenant) < 2**31


def test_second_worker_waits_then_fails(shared_volume, postgres_url, tmp_path):
    holder = _start_holder(postgres_url, "acme", "pod-a", tmp_path)
    try:
        warehouse = TenantWarehouse(lock_wait_seconds=1.0)
        started = time.monotonic()
        with pytest.raises(WarehouseLeaseError) as raised:
            with warehouse.connect("acme", holder="run-b"):
                pytest.fail(
                    "a second worker opened a file whose lease another process holds"
                )
        assert time.monotonic() - started >= 1.0
        message = str(raised.value)
        assert "tenant acme" in message
        assert "pod-a since" in message
        assert "cancel it in the Dagster UI" in message
        # The file was free all along: only the lease kept the worker out.
        duckdb.connect(str(settings.tenant_database_path("acme"))).close()
    finally:
        holder.kill()
        holder.wait()


def test_lease_of_a_killed_worker_is_released(shared_volume, postgres_url, tmp_path):
    holder = _start_holder(postgres_url, "acme", "pod-a", tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    warehouse = TenantWarehouse(lock_wait_seconds=30.0)
    started = time.monotonic()
    with warehouse.connect("acme", holder="run-b") as conn:
        conn.execute("CREATE TABLE written_by (run VARCHAR)")
        conn.execute("INSERT INTO written_by VALUES ('run-b')")
    # PostgreSQL ends the dead process's session when its socket closes.
    assert time.monotonic() - started < 15
    with duckdb.connect(str(settings.tenant_database_path("acme"))) as conn:
        assert conn.execute("SELECT run FROM written_by").fetchall() == [("run-b",)]


def test_other_tenants_are_not_blocked(shared_volume, postgres_url, tmp_path):
    holder = _start_holder(postgres_url, "acme", "pod-a", tmp_path)
    try:
        with TenantWarehouse(lock_wait_seconds=1.0).connect(
            "globex", holder="run-c"
        ) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        holder.kill()
        holder.wait()


def test_holder_row_is_cleared_on_release(shared_volume, postgres_url):
    engine = sa.create_engine(postgres_url)
    query = sa.text("SELECT holder FROM warehouse_leases WHERE tenant_id = 'acme'")
    with TenantWarehouse().connect("acme", holder="run-1"):
        with engine.connect() as conn:
            holder = conn.execute(query).scalar_one()
        assert holder.startswith("run run-1 on ")
    with engine.connect() as conn:
        assert conn.execute(query).first() is None
    engine.dispose()


def test_lost_lease_fails_the_worker(shared_volume, postgres_url):
    """A worker whose lease connection was cut must not finish as if it still owned the file."""
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with pytest.raises(
        WarehouseLeaseError,
        match="tenant acme: the writer lease's database connection failed",
    ):
        with TenantWarehouse().connect("acme", holder="run-1"):
            with engine.connect() as conn:
                terminated = conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_locks "
                        "WHERE locktype = 'advisory' AND classid = :namespace "
                        "AND objid = :key AND objsubid = 2"
                    ),
                    {
                        "namespace": LOCK_NAMESPACE,
                        "key": tenant_lock_key("acme") & 0xFFFFFFFF,
                    },
                ).fetchall()
            assert terminated == [(True,)]
    engine.dispose()
    # Another worker can take the tenant straight away.
    with hold_tenant_lease(postgres_url, "acme", holder="run-2", wait_seconds=5):
        pass


def test_sqlite_control_store_takes_no_lease(routiine_home):
    with TenantWarehouse().connect("acme") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    control = sa.create_engine(settings.control_store_url())
    with control.connect() as conn:
        assert not sa.inspect(conn).has_table("warehouse_leases") or (
            conn.execute(sa.text("SELECT count(*) FROM warehouse_leases")).scalar_one()
            == 0
        )
    control.dispose()


def _terminate_lease_session(postgres_url: str, tenant: str) -> list:
    engine = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND classid = :namespace "
                    "AND objid = :key AND objsubid = 2"
                ),
                {
                    "namespace": LOCK_NAMESPACE,
                    "key": tenant_lock_key(tenant) & 0xFFFFFFFF,
                },
            ).fetchall()
    finally:
        engine.dispose()


def test_watchdog_interrupts_query_on_loss(shared_volume, postgres_url):
    """A worker that loses its lease mid-query stops writing within a check interval."""
    warehouse = TenantWarehouse(lease_check_seconds=0.5)
    timer = threading.Timer(1.0, _terminate_lease_session, args=(postgres_url, "acme"))
    started = time.monotonic()
    with pytest.raises(WarehouseLeaseError, match="tenant acme"):
        with warehouse.connect("acme", holder="run-1") as conn:
            timer.start()
            # Runs for minutes unless interrupted.
            conn.execute(
                "SELECT count(*) FROM range(100000000000) AS r(i) WHERE i % 7 = 3"
            ).fetchall()
    timer.join()
    assert time.monotonic() - started < 10


def test_no_statement_after_lease_loss(shared_volume, postgres_url):
    """Between statements when its lease is lost, a worker cannot run another one."""
    warehouse = TenantWarehouse(lease_check_seconds=0.2)
    with pytest.raises(WarehouseLeaseError, match="tenant acme"):
        with warehouse.connect("acme", holder="run-1") as conn:
            conn.execute("CREATE TABLE rows_written (n INTEGER)")
            _terminate_lease_session(postgres_url, "acme")
            for number in range(100):
                conn.execute("INSERT INTO rows_written VALUES (?)", [number])
                time.sleep(0.05)
            pytest.fail("the worker kept writing for 5 s after losing its lease")
    with duckdb.connect(str(settings.tenant_database_path("acme"))) as conn:
        written = conn.execute("SELECT count(*) FROM rows_written").fetchone()[0]
    # The watchdog checks every 0.2 s and a write takes 0.05 s, so a few rows at most.
    assert written <= 10


def test_commit_checks_lease_first(shared_volume, postgres_url):
    """A transaction cannot commit after the lease is lost, even before the watchdog's next check."""
    warehouse = TenantWarehouse(lease_check_seconds=60)
    with pytest.raises(WarehouseLeaseError, match="tenant acme"):
        with warehouse.connect("acme", holder="run-1") as conn:
            conn.execute("CREATE TABLE rows_written (n INTEGER)")
            conn.execute("BEGIN TRANSACTION")
            conn.execute("INSERT INTO rows_written VALUES (1)")
            _terminate_lease_session(postgres_url, "acme")
            conn.execute("COMMIT")
    with duckdb.connect(str(settings.tenant_database_path("acme"))) as conn:
        assert conn.execute("SELECT count(*) FROM rows_written").fetchone() == (0,)


def test_chained_calls_and_cursors_stay_fenced(shared_volume, postgres_url):
    warehouse = TenantWarehouse(lease_check_seconds=60)
    with pytest.raises(WarehouseLeaseError) as raised:
        with warehouse.connect("acme", holder="run-1") as conn:
            chained = conn.execute("CREATE TABLE t (n INTEGER)")
            cursor = conn.cursor()
            _terminate_lease_session(postgres_url, "acme")
            time.sleep(0.6)  # past the per-statement check interval
            for target in (chained, cursor):
                with pytest.raises(WarehouseLeaseError):
                    target.execute("INSERT INTO t VALUES (1)")
    # The run's failure shows the lease message, not an exception it chains.
    assert raised.value.__cause__ is None
    with duckdb.connect(str(settings.tenant_database_path("acme"))) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_worker_waiting_through_removal_leaves_no_file(
    shared_volume, postgres_url, tmp_path
):
    """Removal deletes the file while a worker waits for the lease: the worker's open leaves nothing."""
    import dagster as dg

    from routiine_pipeline.defs.resources import TenantRemovedError

    path = settings.tenant_database_path("acme")
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE raw_account AS SELECT 1 AS n")
    holder = _start_holder(postgres_url, "acme", "removal", tmp_path)
    outcome: list[BaseException] = []

    def wait_and_open() -> None:
        try:
            with dg.instance_for_test() as instance:
                with TenantWarehouse().connect("acme", instance=instance):
                    pass
        except BaseException as error:  # noqa: BLE001 - the test inspects it
            outcome.append(error)

    worker = threading.Thread(target=wait_and_open)
    worker.start()
    time.sleep(1.0)  # the worker is now waiting for the lease
    path.unlink()  # the removal deletes the file, then releases the lease
    holder.kill()
    holder.wait()
    worker.join(timeout=60)
    assert len(outcome) == 1
    assert isinstance(outcome[0], TenantRemovedError)
    assert not path.exists()


def test_lost_lease_skips_checkpoint_on_close(shared_volume, postgres_url):
    """Closing after a loss must not merge the write-ahead log into a file another worker may hold."""
    path = settings.tenant_database_path("acme")
    with pytest.raises(WarehouseLeaseError):
        with TenantWarehouse(lease_check_seconds=60).connect(
            "acme", holder="run-1"
        ) as conn:
            conn.execute(
                "CREATE TABLE committed AS SELECT range AS n FROM range(100000)"
            )
            size_before = path.stat().st_size
            _terminate_lease_session(postgres_url, "acme")
    assert path.stat().st_size == size_before
    assert Path(f"{path}.wal").exists()
    # Rows committed while the lease was held are kept: the next open replays the log.
    with duckdb.connect(str(path)) as conn:
        assert conn.execute("SELECT count(*) FROM committed").fetchone() == (100000,)
