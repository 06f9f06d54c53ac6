from __future__ import annotations

import pytest
from sf_world import start_world


@pytest.fixture(params=["sqlite", "postgres"])
def world(request, routiine_home, monkeypatch):
    """An emulated org and a connected tenant, with the control store on SQLite or PostgreSQL.

    The write-back publishes due retries and alerts to the control store, so
    every write-back test runs against both stores.
    """
    if request.param == "postgres":
        monkeypatch.setenv(
            "ROUTIINE_CONTROL_URL", request.getfixturevalue("postgres_url")
        )
    running = start_world()
    yield running
    running.server.stop()
