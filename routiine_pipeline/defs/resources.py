"""Dagster resources: the tenant warehouse, the control store, the API budget, Salesforce."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import dagster as dg
import duckdb

from routiine_pipeline import settings
from routiine_pipeline.budget import BudgetGuard, BudgetPolicy
from routiine_pipeline.budget_interval import IntervalPolicy
from routiine_pipeline.budget_state import apply_overrides
from routiine_pipeline.control.store import ControlStore, open_control_store, utcnow
from routiine_pipeline.control.tokens import StoredTokens
from routiine_pipeline.control.vault import TokenVault, load_keys
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.salesforce.client import DEFAULT_API_VERSION, SalesforceClient
from routiine_pipeline.salesforce.errors import ReauthorizationRequiredError
from routiine_pipeline.salesforce.oauth import OAuthApp, check_salesforce_url
from routiine_pipeline.storage.lease import (
    FencedConnection,
    WarehouseLeaseError,
    default_holder,
    hold_tenant_lease,
    lease_required,
)
from routiine_pipeline.storage.warehouse import open_database


class TenantWarehouse(dg.ConfigurableResource):
    """The per-tenant DuckDB files under ROUTIINE_HOME/tenants.

    When the control store is PostgreSQL, run workers may sit on several
    machines that share the files over a network volume, so each open first
    takes the tenant's writer lease (storage/lease.py). Every COMMIT checks the
    lease first, and a watchdog checks it while the file is open. Once it is
    lost, the running statement is interrupted, every later use of the
    connection raises, and the run fails.
    """

    # Model and score runs started by the automation sensor carry no
    # routiine/tenant tag, so the run queue cannot keep them apart from a sync
    # of the same tenant. They wait here until the sync releases the file.
    lock_wait_seconds: float = 300.0
    lease_check_seconds: float = 10.0
    """Seconds between checks that this worker still holds the tenant's writer lease."""
    control_url: str = ""
    """Control-store URL that decides whether a lease is needed; ROUTIINE_CONTROL_URL when empty."""

    @contextmanager
    def connect(
        self,
        tenant: str,
        *,
        read_only: bool = False,
        holder: str | None = None,
        instance: dg.DagsterInstance | None = None,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open the tenant's DuckDB file; `holder` (a run id) names this worker in the lease table.

        With `instance`, the tenant's partition is checked once the file is
        open, so a run that waited while the tenant was removed fails with
        TenantRemovedError, and the empty file its open created is deleted.
        """
        path = settings.tenant_database_path(tenant)
        control_url = self.control_url or settings.control_store_url()
        try:
            if not lease_required(control_url):
                with open_database(
                    path, read_only=read_only, lock_wait_seconds=self.lock_wait_seconds
                ) as connection:
                    _check_tenant_exists(instance, tenant, connection)
                    yield connection
                return
            label = f"run {holder} on {default_holder()}" if holder else None
            with hold_tenant_lease(
                control_url, tenant, holder=label, wait_seconds=self.lock_wait_seconds
            ) as lease:
                with open_database(
                    path, read_only=read_only, lock_wait_seconds=self.lock_wait_seconds
                ) as connection:
                    _check_tenant_exists(instance, tenant, connection)
                    try:
                        with lease.watch(
                            self.lease_check_seconds, connection.interrupt
                        ):
                            try:
                                yield FencedConnection(connection, lease)
                            except duckdb.InterruptException:
                                if lease.lost is not None:
                                    # Unchained, so a run's failure shows the lease advice, not "Interrupted!".
                                    raise lease.lost from None
                                raise
                        lease.check()
                    except WarehouseLeaseError:
                        # Closing would checkpoint the write-ahead log into the file,
                        # which the new lease holder may have open by now.
                        connection.execute("PRAGMA disable_checkpoint_on_shutdown")
                        raise
        except TenantRemovedError as error:
            if error.created_file:
                for leftover in (path, path.with_name(f"{path.name}.wal")):
                    leftover.unlink(missing_ok=True)
            raise


class TenantRemovedError(RuntimeError):
    """The tenant was removed while this run waited for its file; the run wrote nothing."""

    def __init__(self, message: str, *, created_file: bool) -> None:
        super().__init__(message)
        self.created_file = created_file


def _check_tenant_exists(
    instance: dg.DagsterInstance | None,
    tenant: str,
    connection: duckdb.DuckDBPyConnection,
) -> None:
    if instance is None or instance.has_dynamic_partition(
        tenant_partitions.name, tenant
    ):
        return
    # A file without tables was created by this open, after removal deleted the tenant's file.
    tables = connection.execute(
        "SELECT count(*) FROM information_schema.tables"
    ).fetchone()[0]
    raise TenantRemovedError(
        f"tenant {tenant} no longer exists: it was removed while this run waited for "
        "its file, so the run wrote nothing",
        created_file=tables == 0,
    )


class ControlPlane(dg.ConfigurableResource):
    """The control store (tenants, tokens, usage ledger), from ROUTIINE_CONTROL_URL or SQLite."""

    url: str = ""

    def store(self) -> ControlStore:
        return open_control_store(self.url or settings.control_store_url())


class ApiBudget(dg.ConfigurableResource):
    """The API budget every Salesforce call passes through.

    share, ceiling and run_cap are defaults; a tenant's row in the control
    store's `budget_settings` table overrides them (`set_budget_overrides`).
    The interval thresholds are explained in routiine_pipeline/budget_interval.py.
    """

    share: float = 0.25
    """Fraction of the org's daily API limit this pipeline may use in 24 hours."""
    ceiling: float = 0.90
    """Fraction of the daily limit the whole org may reach before this pipeline stops calling."""
    run_cap: int = 2_000
    """Maximum API calls in one run."""
    stale_after_minutes: float = 15.0
    """Age in minutes after which a run starts with a /limits call to refresh the usage reading."""
    normal_max: float = 0.70
    """Highest projected usage (fraction of the daily limit) at which a tenant syncs every 15 minutes."""
    pressure_max: float = 0.80
    """Highest projected usage at which a tenant syncs every 30 minutes; above it, every 60."""
    hysteresis: float = 0.05
    """Margin under a threshold that usage must reach before the interval speeds up again."""
    default_calls_per_run: float = 3.0
    """Calls per sync cycle assumed until the ledger contains a sync from the last 24 hours."""
    control: ControlPlane

    def default_policy(self) -> BudgetPolicy:
        """Return the caps of a tenant without control-store overrides."""
        return BudgetPolicy(
            share=self.share,
            ceiling=self.ceiling,
            run_cap=self.run_cap,
            stale_after=timedelta(minutes=self.stale_after_minutes),
        )

    def policy(self, tenant: str) -> BudgetPolicy:
        """Return the tenant's caps: these defaults with its control-store overrides applied."""
        return apply_overrides(self.control.store(), tenant, self.default_policy())

    def interval_policy(self) -> IntervalPolicy:
        return IntervalPolicy(
            normal_max=self.normal_max,
            pressure_max=self.pressure_max,
            hysteresis=self.hysteresis,
            default_calls_per_run=self.default_calls_per_run,
        )

    def guard(
        self,
        tenant: str,
        *,
        run_id: str | None,
        phase: str,
        clock: Callable[[], datetime] | None = None,
    ) -> BudgetGuard:
        store = self.control.store()
        return BudgetGuard(
            store,
            tenant,
            self.policy(tenant),
            run_id=run_id,
            phase=phase,
            clock=clock or utcnow,
        )


class SalesforceConnection(dg.ConfigurableResource):
    """Builds an authenticated REST client per tenant from the control store and the vault.

    The client secret comes from ROUTIINE_SF_CLIENT_SECRET through EnvVar, so
    the Dagster UI shows the variable's name, never its value.
    """

    client_id: str = "routiine-demo-client"
    client_secret: str = ""
    redirect_uri: str = "http://127.0.0.1:8717/oauth/callback"
    api_version: str = DEFAULT_API_VERSION
    allow_loopback: bool = False
    budget: ApiBudget

    def oauth_app(self) -> OAuthApp:
        return OAuthApp(self.client_id, self.client_secret, self.redirect_uri)

    def vault(self) -> TokenVault:
        return TokenVault(load_keys(settings.routiine_home()))

    def client(
        self, tenant: str, *, run_id: str | None, phase: str
    ) -> tuple[SalesforceClient, BudgetGuard]:
        store = self.budget.control.store()
        record = store.get_tenant(tenant)
        allow_loopback = self.allow_loopback or settings.loopback_allowed()
        tokens = StoredTokens(
            store, self.vault(), self.oauth_app(), tenant, allow_loopback=allow_loopback
        )
        guard = self.budget.guard(tenant, run_id=run_id, phase=phase)
        if not record.instance_url:
            raise ReauthorizationRequiredError(
                f"tenant {tenant} has no instance URL: connect it with `routiine tenants connect {tenant}`",
                tenant=tenant,
            )
        instance_url = check_salesforce_url(
            record.instance_url, allow_loopback=allow_loopback
        )
        client = SalesforceClient(
            instance_url=instance_url,
            tokens=tokens,
            guard=guard,
            api_version=self.api_version,
            tenant=tenant,
        )
        return client, guard
