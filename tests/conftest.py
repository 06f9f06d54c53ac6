"""Shared fixtures: an isolated ROUTIINE_HOME per test, and PostgreSQL when present."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "ROUTIINE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def routiine_home(tmp_path, monkeypatch):
    """Point ROUTIINE_HOME, the control store and the vault at a fresh folder."""
    home = tmp_path / "routiine_home"
    home.mkdir()
    monkeypatch.setenv("ROUTIINE_HOME", str(home))
    monkeypatch.delenv("ROUTIINE_CONTROL_URL", raising=False)
    monkeypatch.delenv("ROUTIINE_VAULT_KEYS", raising=False)
    from routiine_pipeline.control.store import open_control_store

    open_control_store.cache_clear()
    yield home
    open_control_store.cache_clear()


@pytest.fixture
def postgres_url():
    """A PostgreSQL URL with a fresh schema; fails loudly in CI when the server is absent."""
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        message = f"PostgreSQL is not reachable at {POSTGRES_URL}: {error.orig}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                message
                + " (CI=true: start it with pg_ctlcluster before running the tests)"
            )
        pytest.skip(message)
    schema = f"routiine_test_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()
