"""Tenant lifecycle shared by the CLI and the demo: add, connect, list, remove.

A tenant lives in two places that must agree: the control store (status,
tokens, mapping) and the Dagster instance (its key in the dynamic tenant
partitions). These functions change both.
"""

from __future__ import annotations

import errno
import fcntl
import html
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import dagster as dg

from routiine_pipeline import oauth_settings, settings
from routiine_pipeline.control.connect import ConnectError, TenantConnector
from routiine_pipeline.control.store import (
    ControlStore,
    Tenant,
    TenantNotFoundError,
    check_tenant_id,
    open_control_store,
)
from routiine_pipeline.control.vault import TokenVault, load_keys
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.salesforce.oauth import (
    ORG_TYPES,
    check_salesforce_url,
    login_url,
)
from routiine_pipeline.storage.lease import (
    WarehouseLeaseError,
    default_holder,
    hold_tenant_lease,
    lease_required,
)

log = logging.getLogger(__name__)


def control_store() -> ControlStore:
    return open_control_store(settings.control_store_url())


def connector() -> TenantConnector:
    vault = TokenVault(load_keys(settings.routiine_home()))
    return TenantConnector(
        control_store(),
        vault,
        oauth_settings.oauth_app(),
        allow_loopback=settings.loopback_allowed(),
    )


def add_tenant(
    instance: dg.DagsterInstance,
    tenant_id: str,
    *,
    org_type: str,
    my_domain: str | None = None,
    login: str | None = None,
    reuse_history: bool = False,
) -> Tenant:
    """Register a tenant and its Dagster partition; `login` overrides the host (emulator only).

    Raises ValueError when the id belonged to a removed tenant whose
    materializations remain in the instance's event log, unless
    `reuse_history` (the demo, which rebuilds everything itself). A new
    tenant under such an id would look backfilled to Dagster's automation,
    which could then score and write back deals from one month of data.
    """
    check_tenant_id(tenant_id)
    store = control_store()
    try:
        store.get_tenant(tenant_id)
    except TenantNotFoundError:
        pass
    else:
        raise ValueError(
            f"tenant {tenant_id!r} already exists; remove it first or pick another id"
        )
    if not reuse_history and _has_materializations(instance, tenant_id):
        raise ValueError(
            f"tenant id {tenant_id!r} was used by a removed tenant, and its materializations "
            "remain in this Dagster instance's event log: add the tenant under another id"
        )
    if org_type not in ORG_TYPES:
        raise ValueError(
            f"unknown org type {org_type!r}: use one of {', '.join(ORG_TYPES)}"
        )
    if my_domain and org_type != "my_domain":
        raise ValueError(
            f"a My Domain ({my_domain!r}) was given for org type {org_type!r}: use org type my_domain, "
            "or leave the domain out"
        )
    domain = None
    if org_type == "my_domain":
        host = login_url(org_type, my_domain)
        domain = host.removeprefix("https://").removesuffix(".my.salesforce.com")
    if login:
        host = check_salesforce_url(login, allow_loopback=settings.loopback_allowed())
    elif org_type != "my_domain":
        host = login_url(org_type)
    tenant = store.add_tenant(
        tenant_id, org_type=org_type, login_url=host, my_domain=domain
    )
    instance.add_dynamic_partitions(tenant_partitions.name, [tenant_id])
    log.info("Added tenant %s (%s, login %s)", tenant_id, org_type, host)
    return tenant


def _has_materializations(instance: dg.DagsterInstance, tenant_id: str) -> bool:
    """Tell whether the event log contains a materialization of any partition of the tenant."""
    from routiine_pipeline.defs.extract import RAW_ASSET_KEYS

    for key in RAW_ASSET_KEYS.values():
        for partition in instance.get_materialized_partitions(key):
            if tenant_id in partition.split("|"):
                return True
    return tenant_id in instance.get_materialized_partitions(
        dg.AssetKey("momentum_score")
    )


# How long removal waits for another process to close the tenant's DuckDB file.
REMOVE_LOCK_WAIT_SECONDS = 10.0


class TenantFileInUseError(RuntimeError):
    """The tenant's DuckDB file stayed open in another process, so removal changed nothing."""


@dataclass(frozen=True)
class TenantRemoval:
    """Outcome of `remove_tenant`: the revocation, the deleted rows, partition and files, and the kept files."""

    tenant_id: str
    revoked: bool
    """Whether a refresh token was revoked at Salesforce."""
    control_rows: dict[str, int]
    """Deleted control-store rows per table."""
    partition_deleted: bool
    deleted_files: list[Path]
    kept_files: list[Path]
    canceled_runs: list[str]
    """Ids of the tenant's queued runs that were canceled."""
    revocation_failed: bool = False
    """Whether Salesforce could not be reached or rejected the revocation."""


def tenant_files(tenant_id: str) -> list[Path]:
    """Return the tenant's files under ROUTIINE_HOME that exist.

    Those are the DuckDB file, its write-ahead log (`.wal`) and the folder
    DuckDB spills to (`.tmp`), which a crashed process leaves behind.
    """
    database = settings.tenant_database_path(check_tenant_id(tenant_id))
    candidates = [database, Path(f"{database}.wal"), Path(f"{database}.tmp")]
    return [path for path in candidates if path.exists()]


def remove_tenant(
    instance: dg.DagsterInstance,
    tenant_id: str,
    *,
    keep_data: bool = False,
    lock_wait_seconds: float = REMOVE_LOCK_WAIT_SECONDS,
) -> TenantRemoval:
    """Revoke the tenant's tokens, then delete its partition, files and control-store rows.

    The control-store rows are those of every table keyed by tenant_id
    (`ControlStore.remove_tenant`). The files are those of `tenant_files`.
    With `keep_data`, the files stay in place for an operator to archive.

    A tenant that is gone from the control store but still has a partition
    or files (a removal that stopped half-way, or one made before files were
    deleted) has those removed. Raises TenantNotFoundError when nothing of
    the tenant exists. Raises TenantFileInUseError, before any change, when
    another process keeps the DuckDB file open or a run on any machine holds
    the tenant's writer lease.
    """
    check_tenant_id(tenant_id)
    store = control_store()
    try:
        store.get_tenant(tenant_id)
        registered = True
    except TenantNotFoundError:
        registered = False
    files = tenant_files(tenant_id)
    has_partition = instance.has_dynamic_partition(tenant_partitions.name, tenant_id)
    if not (registered or has_partition or files):
        raise TenantNotFoundError(
            f"tenant {tenant_id!r} not found in the control store, the Dagster instance "
            f"or {settings.tenant_database_path(tenant_id).parent}"
        )

    with ExitStack() as stack:
        if files:
            # Held until the partition (and without keep_data the files) is gone,
            # so that no run opens the file meanwhile.
            _lock_tenant_files(stack, tenant_id, lock_wait_seconds)
        # Runs are canceled only now, when nothing can stop the removal, because
        # their cancellation message states that the tenant is gone.
        canceled = _cancel_queued_runs(instance, tenant_id)
        revoked, revocation_failed = (
            _revoke(tenant_id) if registered else (False, False)
        )
        if has_partition:
            instance.delete_dynamic_partition(tenant_partitions.name, tenant_id)
        deleted, kept_files = ([], files) if keep_data else (_delete_files(files), [])
    # After the lease is released, so that its own row is not counted.
    rows = store.remove_tenant(tenant_id)

    removal = TenantRemoval(
        tenant_id,
        revoked,
        rows,
        has_partition,
        deleted,
        kept_files,
        canceled,
        revocation_failed,
    )
    log.info(
        "Removed tenant %s: %d queued runs canceled, %d control-store rows (%s), "
        "Dagster partition %s, files deleted: %s, files kept: %s",
        tenant_id,
        len(canceled),
        sum(rows.values()),
        ", ".join(f"{table} {count}" for table, count in sorted(rows.items()))
        or "none",
        "deleted" if has_partition else "absent",
        ", ".join(str(path) for path in deleted) or "none",
        ", ".join(str(path) for path in kept_files) or "none",
    )
    return removal


# Tags that carry the tenant of a queued run. The CLI, the schedule and the
# sensors set routiine/tenant. Backfills of raw assets from the UI set the
# tenant dimension's partition tag. Runs of tenant-partitioned assets (models,
# scores, write-backs requested by automation or the UI) set dagster/partition.
_TENANT_RUN_TAGS = ("routiine/tenant", "dagster/partition/tenant", "dagster/partition")


def _cancel_queued_runs(instance: dg.DagsterInstance, tenant_id: str) -> list[str]:
    """Cancel the tenant's runs that have not started, so none starts after its partition is gone.

    A run that already started keeps the tenant's file lock or writer lease,
    and removal then stops with TenantFileInUseError.
    """
    waiting = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]
    runs = {}
    for tag in _TENANT_RUN_TAGS:
        for run in instance.get_runs(
            filters=dg.RunsFilter(statuses=waiting, tags={tag: tenant_id})
        ):
            runs[run.run_id] = run
    message = (
        f"tenant {tenant_id} no longer exists: it was removed with `routiine tenants "
        "remove`, so this run was canceled before it started and wrote nothing"
    )
    for run in runs.values():
        instance.report_run_canceled(run, message=message)
        log.info("Tenant %s: canceled queued run %s", tenant_id, run.run_id)
    return sorted(runs)


def _revoke(tenant_id: str) -> tuple[bool, bool]:
    """Revoke the tenant's refresh token; return (revoked, failed)."""
    try:
        return connector().revoke(tenant_id), False
    except Exception as error:  # noqa: BLE001 - removal goes on; the operator is told
        log.warning(
            "Tenant %s: token revocation failed (%s); revoke the app's access in Salesforce Setup",
            tenant_id,
            type(error).__name__,
        )
        return False, True


def _lock_tenant_files(stack: ExitStack, tenant_id: str, wait_seconds: float) -> None:
    """Take the tenant's writer lease (PostgreSQL control store) and a lock on its DuckDB file.

    Runs on other machines hold the lease while they have the file open, and
    local processes hold DuckDB's lock. Raises TenantFileInUseError when
    either stays taken for `wait_seconds`.
    """
    control_url = settings.control_store_url()
    if lease_required(control_url):
        try:
            stack.enter_context(
                hold_tenant_lease(
                    control_url,
                    tenant_id,
                    holder=f"removal of tenant {tenant_id} on {default_holder()}",
                    wait_seconds=wait_seconds,
                )
            )
        except WarehouseLeaseError as error:
            raise TenantFileInUseError(
                f"{error} Nothing was removed. Run the same `routiine tenants remove` "
                "command again once the run has ended"
            ) from None
    database = settings.tenant_database_path(tenant_id)
    if database.exists():
        stack.enter_context(_exclusive_lock(database, tenant_id, wait_seconds))


@contextmanager
def _exclusive_lock(path: Path, tenant_id: str, wait_seconds: float) -> Iterator[None]:
    """Hold an exclusive POSIX lock on the DuckDB file, which DuckDB's own locks respect.

    DuckDB (checked with 2.0.1) takes a POSIX record lock on its file, shared
    when read-only and exclusive otherwise. So this lock fails while any
    process has the file open, and DuckDB fails to open the file while this
    lock is held. tests/scale/test_remove.py checks the first of these.
    """
    deadline = time.monotonic() + wait_seconds
    descriptor = os.open(path, os.O_RDWR)
    try:
        while True:
            try:
                fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise TenantFileInUseError(
                        f"tenant {tenant_id}: {path} is still open in another process after "
                        f"{wait_seconds:g} s (a run of the tenant, or a DuckDB session). "
                        "Nothing was removed. Wait for the run to end or stop that process, "
                        "then run the same `routiine tenants remove` command again"
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(descriptor)


def _delete_files(files: list[Path]) -> list[Path]:
    for path in files:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return files


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.callback_path:
            self.send_error(404)
            return
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if "error" in params:
            self.server.outcome = ConnectError(
                f"Salesforce returned {params['error']}: {params.get('error_description', '')}"
            )
        else:
            try:
                self.server.outcome = self.server.connector.complete(
                    state=params.get("state", ""),
                    code=params.get("code", ""),
                    tenant_id=self.server.tenant_id,
                )
            except ConnectError as error:
                self.server.outcome = error
        ok = isinstance(self.server.outcome, Tenant)
        body = (
            "<h1>Connected</h1><p>You can close this window.</p>"
            if ok
            else f"<h1>Connection failed</h1><p>{html.escape(str(self.server.outcome))}</p>"
        ).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        # The callback URL carries the code and state: keep it out of Referer headers and caches.
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.done.set()

    def log_message(self, format: str, *args) -> None:
        return


class _CallbackServer(ThreadingHTTPServer):
    def __init__(
        self,
        address,
        connector: TenantConnector,
        callback_path: str,
        tenant_id: str | None,
    ) -> None:
        super().__init__(address, _CallbackHandler)
        self.connector = connector
        self.tenant_id = tenant_id
        self.callback_path = callback_path
        self.outcome: Tenant | Exception | None = None
        self.done = threading.Event()


class LoopbackCallback:
    """Receives the OAuth redirect on the loopback address named by the redirect URI.

    With `tenant_id` set, a callback whose state belongs to another tenant is rejected.
    """

    def __init__(
        self, connector: TenantConnector, tenant_id: str | None = None
    ) -> None:
        parts = urlsplit(connector.app.redirect_uri)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(
                f"the redirect URI {connector.app.redirect_uri} is not a loopback address; "
                "`routiine tenants connect` can only receive callbacks on 127.0.0.1"
            )
        try:
            self.server = _CallbackServer(
                ("127.0.0.1", parts.port or 80), connector, parts.path or "/", tenant_id
            )
        except OSError as error:
            raise ConnectError(
                f"cannot listen on 127.0.0.1:{parts.port or 80} for the OAuth callback ({error.strerror}); "
                "stop what uses that port or set ROUTIINE_SF_REDIRECT_URI to a free loopback port "
                "registered as a callback URL of the connected app"
            ) from None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackCallback:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, timeout: float) -> Tenant:
        if not self.server.done.wait(timeout):
            raise ConnectError(
                f"no OAuth callback within {timeout:.0f} seconds; run the connect command again"
            )
        if isinstance(self.server.outcome, Exception):
            raise self.server.outcome
        return self.server.outcome
