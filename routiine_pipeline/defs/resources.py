"""Dagster resources: the tenant warehouse, the control store and Salesforce access."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb

from routiine_pipeline import settings
from routiine_pipeline.storage.warehouse import open_database


class TenantWarehouse(dg.ConfigurableResource):
    """The per-tenant DuckDB files under ROUTIINE_HOME/tenants."""

    lock_wait_seconds: float = 30.0

    @contextmanager
    def connect(
        self, tenant: str, *, read_only: bool = False
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        path = settings.tenant_database_path(tenant)
        with open_database(
            path, read_only=read_only, lock_wait_seconds=self.lock_wait_seconds
        ) as connection:
            yield connection
