"""The Dagster instance the CLI works on, and the error that explains how to choose it."""

from __future__ import annotations

import os

import dagster as dg

PG_URL_ENV = "DAGSTER_PG_URL"


def dagster_instance() -> dg.DagsterInstance:
    """Return the instance under DAGSTER_HOME, or raise a message naming the demo's folder."""
    if not os.environ.get("DAGSTER_HOME"):
        raise RuntimeError(
            "DAGSTER_HOME is not set: export DAGSTER_HOME=$PWD/.dagster_home (and "
            "ROUTIINE_HOME=$PWD/.routiine) from the repository root to use the instance "
            "of `make demo` and `make ui`, or point it at your deployment's instance"
        )
    check_postgres_url(os.environ.get(PG_URL_ENV, ""))
    return dg.DagsterInstance.get()


def check_postgres_url(url: str) -> None:
    """Reject a DAGSTER_PG_URL without a driver, which SQLAlchemy 2.1 would load psycopg 3 for.

    dagster-postgres installs psycopg2 only, so such a URL fails deep inside
    instance creation with "No module named 'psycopg'".
    """
    scheme = url.split("://", 1)[0]
    if scheme in ("postgres", "postgresql"):
        raise RuntimeError(
            f"{PG_URL_ENV} starts with {scheme}://, which SQLAlchemy 2.1 maps to the psycopg 3 "
            "driver that is not installed: write postgresql+psycopg2:// instead"
        )
