"""Tenant registry fields, schema upgrade, and readers that a long write never blocks."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from routiine_pipeline.control.store import ControlStore


@pytest.mark.parametrize(
    ("org_type", "my_domain", "login_url"),
    [
        ("production", None, "https://login.salesforce.com"),
        ("sandbox", None, "https://test.salesforce.com"),
        (
            "my_domain",
            "acme--uat.sandbox",
            "https://acme--uat.sandbox.my.salesforce.com",
        ),
    ],
)
def test_registry_keeps_org_fields(tmp_path, org_type, my_domain, login_url):
    store = ControlStore(f"sqlite:///{tmp_path / 'control.db'}")
    store.add_tenant(
        "acme", org_type=org_type, login_url=login_url, my_domain=my_domain
    )
    tenant = store.get_tenant("acme")
    assert (tenant.org_type, tenant.my_domain, tenant.login_url) == (
        org_type,
        my_domain,
        login_url,
    )
    assert tenant.status == "pending_connection"
    assert tenant.interval_minutes == 15
    assert tenant.connected_at is None
    assert tenant.created_at == tenant.updated_at


def test_registry_on_postgres(postgres_url):
    store = ControlStore(postgres_url)
    store.add_tenant(
        "acme",
        org_type="my_domain",
        login_url="https://acme.my.salesforce.com",
        my_domain="acme",
    )
    assert store.get_tenant("acme").my_domain == "acme"
    assert store.mark_needs_reauthorization("acme", "refresh token revoked") is True
    assert store.mark_needs_reauthorization("acme", "refresh token revoked") is False
    assert len(store.notifications("acme")) == 1
    store.engine.dispose()


def test_old_schema_upgraded(tmp_path):
    url = f"sqlite:///{tmp_path / 'control.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "CREATE TABLE tenants (tenant_id VARCHAR(64) PRIMARY KEY, org_type VARCHAR(16) NOT NULL, "
                "login_url VARCHAR(255) NOT NULL, instance_url VARCHAR(255), status VARCHAR(32) NOT NULL, "
                "status_reason TEXT, interval_minutes INTEGER NOT NULL, mapping_json TEXT, last_sync_at DATETIME, "
                "created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO tenants VALUES ('old', 'production', 'https://login.salesforce.com', NULL, "
                "'connected', NULL, 15, NULL, NULL, '2024-03-01 10:00:00', '2024-03-01 10:00:00')"
            )
        )
    store = ControlStore(url)
    tenant = store.get_tenant("old")
    assert tenant.my_domain is None
    assert tenant.connected_at is None
    assert tenant.last_requested_at is None
    assert tenant.status == "connected"


def test_sqlite_uses_wal(tmp_path):
    store = ControlStore(f"sqlite:///{tmp_path / 'control.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(sa.text("PRAGMA busy_timeout")).scalar() == 30_000


def _read_during_write(store: ControlStore) -> tuple[str, float]:
    """Hold an uncommitted write in one thread while another reads; return what it read and how long."""
    written, release = threading.Event(), threading.Event()

    def writer() -> None:
        with store.engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE tenants SET status = 'paused' WHERE tenant_id = 'acme'")
            )
            written.set()
            release.wait(10)

    thread = threading.Thread(target=writer)
    thread.start()
    assert written.wait(10)
    started = time.monotonic()
    status = store.get_tenant("acme").status
    elapsed = time.monotonic() - started
    release.set()
    thread.join()
    return status, elapsed


def test_read_not_blocked_by_write_sqlite(tmp_path):
    store = ControlStore(f"sqlite:///{tmp_path / 'control.db'}")
    store.add_tenant(
        "acme", org_type="production", login_url="https://login.salesforce.com"
    )
    status, elapsed = _read_during_write(store)
    assert status == "pending_connection"
    assert elapsed < 1.0
    assert store.get_tenant("acme").status == "paused"


def test_read_not_blocked_by_write_postgres(postgres_url):
    store = ControlStore(postgres_url)
    store.add_tenant(
        "acme", org_type="production", login_url="https://login.salesforce.com"
    )
    status, elapsed = _read_during_write(store)
    assert status == "pending_connection"
    assert elapsed < 1.0
    store.engine.dispose()
