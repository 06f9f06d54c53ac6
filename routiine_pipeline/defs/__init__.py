"""Dagster definitions: a thin layer over the plain modules of the package."""
