from datetime import timedelta

import pytest

from routiine_pipeline.control.store import (
    CONNECTED,
    NEEDS_REAUTHORIZATION,
    ControlStore,
    TenantNotFoundError,
    check_tenant_id,
)
from routiine_pipeline.mapping import StageCategory


def _exercise(store: ControlStore) -> None:
    store.add_tenant(
        "acme", org_type="production", login_url="https://login.salesforce.com"
    )
    tenant = store.get_tenant("acme")
    assert tenant.status == "pending_connection"
    assert tenant.interval_minutes == 15
    assert tenant.created_at.tzinfo is not None

    store.set_status("acme", CONNECTED)
    store.update_tenant("acme", interval_minutes=30)
    assert store.get_tenant("acme").interval_minutes == 30

    mapping = store.mapping("acme")
    mapping.stage_aliases["Negotiation/Review"] = "Negotiation"
    mapping.stages["Negotiation"] = StageCategory("open", 5)
    store.set_mapping("acme", mapping)
    assert store.mapping("acme").stage_aliases == {"Negotiation/Review": "Negotiation"}

    store.record_call(
        "acme",
        kind="query",
        status=200,
        org_used=10,
        org_max=15000,
        run_id="r1",
        phase="backfill",
    )
    store.record_call(
        "acme",
        kind="composite",
        status=200,
        org_used=11,
        org_max=15000,
        run_id="r1",
        phase="backfill",
    )
    store.record_call(
        "acme",
        kind="limits",
        status=200,
        org_used=None,
        org_max=None,
        run_id=None,
        phase="connect",
    )
    assert store.calls_by_phase("acme") == {"backfill": 2, "connect": 1}
    assert store.latest_usage("acme")[:2] == (11, 15000)
    later = store.get_tenant("acme").updated_at + timedelta(days=1)
    assert store.calls_by_phase("acme", since=later) == {}

    store.set_status("acme", NEEDS_REAUTHORIZATION, "refresh token revoked")
    store.notify("acme", "needs_reauthorization", "reconnect")
    assert [n["kind"] for n in store.notifications("acme")] == ["needs_reauthorization"]

    with pytest.raises(ValueError, match="already exists"):
        store.add_tenant(
            "acme", org_type="production", login_url="https://login.salesforce.com"
        )
    store.remove_tenant("acme")
    with pytest.raises(TenantNotFoundError, match="acme"):
        store.get_tenant("acme")


def test_control_store_on_sqlite(tmp_path):
    _exercise(ControlStore(f"sqlite:///{tmp_path / 'control.db'}"))


def test_control_store_on_postgres(postgres_url):
    _exercise(ControlStore(postgres_url))


@pytest.mark.parametrize(
    "bad", ["Acme", "a|b", "", "-x", "x" * 64, "a,b", "a b", "../etc"]
)
def test_tenant_id_rejects_unsafe_values(bad):
    with pytest.raises(ValueError, match="invalid tenant id"):
        check_tenant_id(bad)


def test_ledger_pruned_per_tenant(routiine_home):
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa

    from routiine_pipeline.budget import LEDGER_RETENTION, BudgetGuard, BudgetPolicy
    from routiine_pipeline.control import tables
    from routiine_pipeline.settings import control_store_url

    store = ControlStore(control_store_url())
    now = datetime.now(UTC)
    for tenant in ("acme", "globex"):
        store.add_tenant(
            tenant, org_type="production", login_url="https://login.salesforce.com"
        )
        with store.engine.begin() as conn:
            for age in (timedelta(days=1), LEDGER_RETENTION + timedelta(days=1)):
                conn.execute(
                    tables.api_calls.insert().values(
                        tenant_id=tenant, at=now - age, kind="composite", status=200
                    )
                )
    guard = BudgetGuard(store, "acme", BudgetPolicy(), clock=lambda: now)
    guard.last_usage_at = now  # a fresh reading: start_run makes no /limits call
    guard.start_run(client=None)
    with store.engine.connect() as conn:
        counts = dict(
            conn.execute(
                sa.select(tables.api_calls.c.tenant_id, sa.func.count()).group_by(
                    tables.api_calls.c.tenant_id
                )
            ).all()
        )
    assert counts == {"acme": 1, "globex": 2}
    indexes = {
        index["name"] for index in sa.inspect(store.engine).get_indexes("api_calls")
    }
    assert "ix_api_calls_tenant_at" in indexes
