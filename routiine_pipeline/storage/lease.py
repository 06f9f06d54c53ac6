"""One writer per tenant DuckDB file when run workers share it from several machines.

On one machine DuckDB's own file lock keeps a second process out. In a
cluster, run pods mount the tenant files from a ReadWriteMany volume (NFS,
EFS, Filestore, Azure Files), where POSIX locks are advisory at best and are
dropped on some client failures. There the lease is a PostgreSQL advisory
lock in the control store's database, held on a dedicated connection for as
long as the file is open. PostgreSQL releases it when that connection ends,
so a pod that dies frees its tenant without a timeout to tune.

The lease is used when the control store is PostgreSQL. With the SQLite
control store every process runs on one machine, so DuckDB's lock suffices.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import duckdb
import sqlalchemy as sa

from routiine_pipeline.control import tables
from routiine_pipeline.control.store import open_control_store

log = logging.getLogger(__name__)

# First key of the two-key advisory lock form, so these locks never meet
# advisory locks that other code takes in the same database ("RTWL").
LOCK_NAMESPACE = 0x5254574C

# Idle seconds before the first probe, seconds between probes, and probes
# lost before the server drops the connection (and the lock): about 60 s.
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": 30,
    "tcp_keepalives_interval": 10,
    "tcp_keepalives_count": 3,
}


class WarehouseLeaseError(RuntimeError):
    """Another worker kept the tenant's writer lease past the wait budget, or the lease was lost."""


def tenant_lock_key(tenant: str) -> int:
    """Return the second advisory-lock key of a tenant: a signed 32-bit hash of its id.

    Two tenants whose hashes collide only wait for each other, which costs
    time but never lets two writers into one file.
    """
    digest = hashlib.blake2b(tenant.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def default_holder() -> str:
    """Describe this process for the lease table: host name and process id."""
    return f"{socket.gethostname()} pid {os.getpid()}"


def lease_required(control_url: str) -> bool:
    """Tell whether runs must take the PostgreSQL lease before opening a tenant file."""
    return control_url.startswith(("postgresql", "postgres:"))


class TenantLease:
    """A held lease: the connection that owns the advisory lock.

    `check` and the watchdog of `watch` share the connection, so a lock
    serializes their use of it.
    """

    def __init__(self, tenant: str, connection: sa.Connection, holder: str) -> None:
        self.tenant = tenant
        self.holder = holder
        self._connection = connection
        self._guard = threading.Lock()
        self.lost: WarehouseLeaseError | None = None

    def check(self) -> None:
        """Raise WarehouseLeaseError unless the lock's connection is still alive and owns it."""
        if self.lost is not None:
            raise self.lost
        try:
            with self._guard:
                held = self._connection.execute(
                    sa.text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                        "AND classid = :namespace AND objid = :key AND objsubid = 2 "
                        "AND pid = pg_backend_pid() AND granted"
                    ),
                    {
                        "namespace": LOCK_NAMESPACE,
                        # pg_locks shows the keys as unsigned oids.
                        "key": tenant_lock_key(self.tenant) & 0xFFFFFFFF,
                    },
                ).scalar_one()
                self._connection.commit()
        except sa.exc.SQLAlchemyError as error:
            reason = type(getattr(error, "orig", None) or error).__name__
            self.lost = WarehouseLeaseError(
                f"tenant {self.tenant}: the writer lease's database connection failed "
                f"({reason}), so another worker may have taken the file. "
                "Rerun the run; its writes are idempotent."
            )
            raise self.lost from None
        if not held:
            self.lost = WarehouseLeaseError(
                f"tenant {self.tenant}: this worker no longer holds the writer lease. "
                "Rerun the run; its writes are idempotent."
            )
            raise self.lost

    @contextmanager
    def watch(
        self, every_seconds: float, on_lost: Callable[[], None]
    ) -> Iterator[None]:
        """Check the lease every `every_seconds` in a thread, calling `on_lost` once if it is gone.

        The caller passes DuckDB's `interrupt`, so a worker that lost its
        lease stops its running query instead of writing beside the new holder.
        """
        stop = threading.Event()

        def _watch() -> None:
            while not stop.wait(every_seconds):
                try:
                    self.check()
                except WarehouseLeaseError:
                    log.error(
                        "Tenant %s: writer lease lost, interrupting DuckDB", self.tenant
                    )
                    on_lost()
                    return

        thread = threading.Thread(
            target=_watch, name=f"lease-watch-{self.tenant}", daemon=True
        )
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


class FencedConnection:
    """A DuckDB connection whose statements run only while the writer lease is held.

    The watchdog's interrupt stops only a statement that is running at that
    moment, and an asset is often between statements. So each call of a
    connection method first checks the lease: text that may commit always
    with a round trip to PostgreSQL, other statements at most every
    `check_every_seconds`, and every use raises once a check has seen the loss.

    NOTE: relation objects (`conn.table(...)`, `conn.sql(...)`) and what they
    write are not fenced, and the watchdog interrupts the main connection
    only, not its cursors. The pipeline writes through `execute` alone.
    """

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        lease: TenantLease,
        *,
        check_every_seconds: float = 0.5,
    ) -> None:
        self._connection = connection
        self._lease = lease
        self._check_every = check_every_seconds
        self._checked_at = time.monotonic()

    def _check(self, method: str, args: tuple, kwargs: dict) -> None:
        statement = args[0] if args else kwargs.get("query", "")
        # Any text that may commit gets the round trip: a COMMIT anywhere in it
        # (after a comment, say), or several statements in one string.
        text = statement.upper() if isinstance(statement, str) else ""
        committing = (
            method == "commit" or "COMMIT" in text or ";" in text.rstrip("; \n")
        )
        now = time.monotonic()
        if committing or now - self._checked_at >= self._check_every:
            self._lease.check()
            self._checked_at = now

    def __getattr__(self, name: str):
        if self._lease.lost is not None:
            raise self._lease.lost
        attribute = getattr(self._connection, name)
        if not callable(attribute):
            return attribute

        def fenced(*args, **kwargs):
            self._check(name, args, kwargs)
            result = attribute(*args, **kwargs)
            # execute() returns the connection itself, and a cursor is another
            # connection to the same file: both stay fenced.
            if result is self._connection:
                return self
            if name == "cursor":
                return FencedConnection(
                    result, self._lease, check_every_seconds=self._check_every
                )
            return result

        return fenced


def _current_holder(engine: sa.Engine, tenant: str) -> str:
    column = tables.warehouse_leases.c
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(column.holder, column.acquired_at).where(
                column.tenant_id == tenant
            )
        ).first()
    if row is None:
        return "an unknown worker"
    return f"{row.holder} since {row.acquired_at:%Y-%m-%d %H:%M:%S} UTC"


@contextmanager
def hold_tenant_lease(
    control_url: str,
    tenant: str,
    *,
    holder: str | None = None,
    wait_seconds: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[TenantLease]:
    """Hold the tenant's writer lease for the block, waiting up to `wait_seconds` for it.

    Raises WarehouseLeaseError, naming the current holder, when the wait runs out.
    """
    holder = holder or default_holder()
    engine = open_control_store(control_url).engine
    key = tenant_lock_key(tenant)
    connection = engine.connect()
    try:
        _detect_dead_peer_quickly(connection)
        deadline = time.monotonic() + wait_seconds
        delay = 0.2
        waited = False
        while True:
            acquired = connection.execute(
                sa.text("SELECT pg_try_advisory_lock(:namespace, :key)"),
                {"namespace": LOCK_NAMESPACE, "key": key},
            ).scalar_one()
            connection.commit()
            if acquired:
                break
            current = _current_holder(engine, tenant)
            if time.monotonic() >= deadline:
                raise WarehouseLeaseError(
                    f"tenant {tenant}: the writer lease is held by {current}, and it was not "
                    f"released within {wait_seconds:.0f} s. Wait for that run to finish, or "
                    "cancel it in the Dagster UI, then retry."
                )
            if not waited:
                log.info(
                    "Tenant %s: waiting for the writer lease held by %s",
                    tenant,
                    current,
                )
                waited = True
            sleep(delay)
            delay = min(delay * 2, 5.0)
        _record_holder(engine, tenant, holder)
        log.info("Tenant %s: writer lease taken by %s", tenant, holder)
        try:
            yield TenantLease(tenant, connection, holder)
        finally:
            _clear_holder(engine, tenant, holder)
            try:
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:namespace, :key)"),
                    {"namespace": LOCK_NAMESPACE, "key": key},
                )
                connection.commit()
            except sa.exc.SQLAlchemyError:
                # A dead connection already released the lock on the server.
                log.warning(
                    "Tenant %s: the lease connection was gone at release", tenant
                )
    finally:
        connection.close()


def _detect_dead_peer_quickly(connection: sa.Connection) -> None:
    """Make the server notice a vanished worker within about a minute.

    A pod on a lost node closes no socket, so without keepalives the server
    would keep its lock for the operating system's default of two hours.
    These are per-session settings that any user may change; over a Unix
    socket PostgreSQL ignores them.
    """
    for name, seconds in KEEPALIVE_SETTINGS.items():
        connection.execute(sa.text(f"SET {name} = {seconds}"))
    connection.commit()


def _record_holder(engine: sa.Engine, tenant: str, holder: str) -> None:
    leases = tables.warehouse_leases
    with engine.begin() as conn:
        conn.execute(leases.delete().where(leases.c.tenant_id == tenant))
        conn.execute(
            leases.insert().values(
                tenant_id=tenant, holder=holder, acquired_at=datetime.now(UTC)
            )
        )


def _clear_holder(engine: sa.Engine, tenant: str, holder: str) -> None:
    leases = tables.warehouse_leases
    with engine.begin() as conn:
        conn.execute(
            leases.delete().where(
                leases.c.tenant_id == tenant, leases.c.holder == holder
            )
        )
