"""Fixtures over the scenario in model_scenario.py."""

from pathlib import Path

import duckdb
import pytest
from model_scenario import TENANT, insert_scenario, scenario_mapping

from routiine_pipeline.models import (
    ModelProject,
    ModelRunResult,
    load_models,
    run_models,
)


@pytest.fixture(scope="session")
def project() -> ModelProject:
    return load_models()


@pytest.fixture
def built(tmp_path: Path, project: ModelProject):
    """Return (connection, run results) after building every model for the scenario."""
    conn = duckdb.connect(str(tmp_path / f"{TENANT}.duckdb"))
    conn.execute("SET TimeZone = 'UTC'")
    insert_scenario(conn)
    results: dict[str, ModelRunResult] = run_models(
        conn, project, TENANT, scenario_mapping()
    )
    yield conn, results
    conn.close()
