"""Shared fixtures: an isolated ROUTIINE_HOME per test, and PostgreSQL databases per test run.

PostgreSQL tests use a database created for this test run (`routiine_test_*`)
and dropped when the run ends. Each test gets its own schema in it for the
control store, and a Dagster instance test gets a database of its own,
because dagster-postgres keeps its tables in the default schema. Without a
server the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_SERVER_URL = os.environ.get(
    "ROUTIINE_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
REPO = Path(__file__).resolve().parents[1]


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


class PostgresServer:
    """Creates and drops databases on the test server through an autocommit connection."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self.admin = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def create_database(self, prefix: str = "routiine_test") -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, name: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        if name in self.created:
            self.created.remove(name)

    def drop_all(self) -> None:
        for name in list(self.created):
            self.drop_database(name)
        self.admin.dispose()


def _reach_postgres() -> PostgresServer:
    server = PostgresServer(POSTGRES_SERVER_URL)
    try:
        with server.admin.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        server.admin.dispose()
        message = f"PostgreSQL is not reachable at {POSTGRES_SERVER_URL}: {error.orig}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(
                message
                + " (CI=true: start it with pg_ctlcluster before running the tests)",
                pytrace=False,
            )
        pytest.skip(message)
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The test PostgreSQL server; databases made through it are dropped at the end of the run."""
    server = _reach_postgres()
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: PostgresServer) -> str:
    """URL of the database created for this test run."""
    return postgres_server.create_database()


@pytest.fixture
def postgres_url(postgres_database: str) -> Iterator[str]:
    """A control-store URL on PostgreSQL with a fresh schema of its own."""
    engine = sa.create_engine(postgres_database)
    schema = f"routiine_test_{uuid.uuid4().hex[:8]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    yield f"{postgres_database}?options=-csearch_path%3D{schema}"
    from routiine_pipeline.control.store import open_control_store

    # Pooled connections of a cached store would keep the schema busy.
    open_control_store.cache_clear()
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
    engine.dispose()


@pytest.fixture
def postgres_dagster_home(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch
) -> Iterator[Path]:
    """A DAGSTER_HOME with deploy/dagster.yaml, whose storage is a fresh PostgreSQL database."""
    url = postgres_server.create_database("routiine_dagster")
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_PG_URL", url)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    yield home
    postgres_server.drop_database(sa.make_url(url).database)
