"""The Dagster instance the CLI works on, and the error that explains how to choose it."""

from __future__ import annotations

import os

import dagster as dg


def dagster_instance() -> dg.DagsterInstance:
    """Return the instance under DAGSTER_HOME, or raise a message naming the demo's folder."""
    if not os.environ.get("DAGSTER_HOME"):
        raise RuntimeError(
            "DAGSTER_HOME is not set: export DAGSTER_HOME=$PWD/.dagster_home (and "
            "ROUTIINE_HOME=$PWD/.routiine) from the repository root to use the instance "
            "of `make demo` and `make ui`, or point it at your deployment's instance"
        )
    return dg.DagsterInstance.get()
