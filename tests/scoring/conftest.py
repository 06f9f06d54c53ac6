"""Fixtures over the scenario in scoring_scenario.py."""

from pathlib import Path

import duckdb
import pytest
from scoring_scenario import TENANT, insert_scoring_scenario

from routiine_pipeline.mapping import default_mapping
from routiine_pipeline.models import load_models, run_models


@pytest.fixture
def scored_db(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """Return a connection to a tenant file with the scenario's model tables built."""
    conn = duckdb.connect(str(tmp_path / f"{TENANT}.duckdb"))
    conn.execute("SET TimeZone = 'UTC'")
    insert_scoring_scenario(conn)
    run_models(conn, load_models(), TENANT, default_mapping())
    yield conn
    conn.close()
