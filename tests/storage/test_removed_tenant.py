"""A run that opens a tenant file after the tenant was removed writes nothing and leaves no file."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from routiine_pipeline import settings
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.defs.resources import TenantRemovedError, TenantWarehouse


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_removed_tenant_gets_no_new_file(
    routiine_home, instance, backend, request, monkeypatch
):
    if backend == "postgres":
        monkeypatch.setenv(
            "ROUTIINE_CONTROL_URL", request.getfixturevalue("postgres_url")
        )
    path = settings.tenant_database_path("acme")
    with pytest.raises(TenantRemovedError, match="tenant acme no longer exists"):
        with TenantWarehouse().connect("acme", instance=instance) as conn:
            conn.execute("CREATE TABLE written (n INTEGER)")
    assert not path.exists()


def test_kept_file_of_removed_tenant_stays(routiine_home, instance):
    path = settings.tenant_database_path("acme")
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE TABLE kept AS SELECT 1 AS n")
    with pytest.raises(TenantRemovedError):
        with TenantWarehouse().connect("acme", instance=instance):
            pass
    with duckdb.connect(str(path)) as conn:
        assert conn.execute("SELECT n FROM kept").fetchall() == [(1,)]


def test_registered_tenant_opens(routiine_home, instance):
    instance.add_dynamic_partitions(tenant_partitions.name, ["acme"])
    with TenantWarehouse().connect("acme", instance=instance) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
