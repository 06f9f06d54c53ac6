"""Run the data tests declared in a model header against its built table."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from routiine_pipeline.models.loader import SqlModel


@dataclass(frozen=True)
class TestOutcome:
    """The result of one data test: the count of offending rows and a few examples."""

    __test__ = False  # not a pytest test class

    name: str
    description: str
    failing_rows: int
    examples: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return self.failing_rows == 0


def _test_queries(model: SqlModel) -> list[tuple[str, str, str]]:
    """Build (test name, description, query returning offending values) for each test."""
    table = model.name
    tests = model.config.tests
    queries = []
    for column in tests.unique:
        queries.append(
            (
                f"unique_{column}",
                f"{column} is unique",
                (
                    f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL "
                    f"GROUP BY {column} HAVING count(*) > 1"
                ),
            )
        )
    for column in tests.not_null:
        grain = model.config.grain or column
        queries.append(
            (
                f"not_null_{column}",
                f"{column} is never NULL",
                f"SELECT {grain} FROM {table} WHERE {column} IS NULL",
            )
        )
    for column, values in tests.accepted_values.items():
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
        queries.append(
            (
                f"accepted_values_{column}",
                f"{column} is one of {', '.join(values)}",
                (
                    f"SELECT DISTINCT {column} FROM {table} "
                    f"WHERE {column} IS NOT NULL AND {column} NOT IN ({listed})"
                ),
            )
        )
    for rel in tests.relationships:
        queries.append(
            (
                f"relationships_{rel.column}",
                f"every {rel.column} exists in {rel.to_table}.{rel.to_column}",
                (
                    f"SELECT DISTINCT child.{rel.column} FROM {table} AS child "
                    f"WHERE child.{rel.column} IS NOT NULL AND NOT EXISTS "
                    f"(SELECT 1 FROM {rel.to_table} AS parent "
                    f"WHERE parent.{rel.to_column} = child.{rel.column})"
                ),
            )
        )
    return queries


def check_names(model: SqlModel) -> list[str]:
    """Return the names of the data tests declared for a model."""
    return [name for name, _, _ in _test_queries(model)]


def check_descriptions(model: SqlModel) -> dict[str, str]:
    """Return a description of each data test, keyed by test name."""
    return {name: description for name, description, _ in _test_queries(model)}


def run_model_tests(
    conn: duckdb.DuckDBPyConnection, model: SqlModel, max_examples: int = 5
) -> list[TestOutcome]:
    """Run every data test declared for a model.

    Args:
        conn: The tenant's DuckDB connection holding the built model table.
        model: The model whose header declares the tests.
        max_examples: How many offending values to keep per test.

    Returns:
        One TestOutcome per declared test, in header order.
    """
    outcomes = []
    for name, description, query in _test_queries(model):
        rows = conn.execute(query).fetchall()
        examples = tuple(str(row[0]) for row in rows[:max_examples])
        outcomes.append(TestOutcome(name, description, len(rows), examples))
    return outcomes
