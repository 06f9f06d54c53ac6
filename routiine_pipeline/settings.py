"""Paths and switches shared by the CLI, the Dagster definitions and the tests.

Everything comes from environment variables so that the Dagster webserver,
the daemon, run workers and the CLI agree without passing flags around.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "ROUTIINE_HOME"
CONTROL_URL_ENV = "ROUTIINE_CONTROL_URL"
HISTORY_START_ENV = "ROUTIINE_HISTORY_START"
ALLOW_LOOPBACK_ENV = "ROUTIINE_ALLOW_LOOPBACK"

DEFAULT_HISTORY_START = "2025-01-01"


def routiine_home() -> Path:
    """Return the folder holding tenant DuckDB files, the control store and the vault key."""
    home = Path(os.environ.get(HOME_ENV, ".routiine")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def tenant_database_path(tenant: str) -> Path:
    """Return the DuckDB file of one tenant: raw rows, models, scores and watermarks."""
    folder = routiine_home() / "tenants"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{tenant}.duckdb"


def control_store_url() -> str:
    """Return the SQLAlchemy URL of the control store (SQLite under the home folder by default)."""
    return (
        os.environ.get(CONTROL_URL_ENV) or f"sqlite:///{routiine_home() / 'control.db'}"
    )


def history_start() -> str:
    """Return the first month (YYYY-MM-DD) of the tenant x month partitions."""
    return os.environ.get(HISTORY_START_ENV, DEFAULT_HISTORY_START)


def loopback_allowed() -> bool:
    """Tell whether tokens may be sent to a loopback host, which only the emulator uses."""
    return os.environ.get(ALLOW_LOOPBACK_ENV, "").lower() in ("1", "true", "yes")
