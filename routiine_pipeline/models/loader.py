"""Load `dbt_like_sql/*.sql` into SqlModel objects, in dependency order.

Dependencies come from the tables each query reads, never from a hand-kept
list, so a model cannot read a table that its asset does not depend on.
Column lineage comes from sqlglot (DuckDB dialect) after qualifying each
query against the columns of the tables it reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.lineage import lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope

from routiine_pipeline.models.config import ModelConfig, ModelConfigError, parse_config
from routiine_pipeline.models.sources import source_schemas

log = logging.getLogger(__name__)

DIALECT = "duckdb"

# NOTE: the folder sits at the repository root, beside the package, so it is
# found in a source checkout or an editable install but not in a built wheel.
DEFAULT_MODELS_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql"


class ModelError(Exception):
    """A SQL model could not be loaded or run."""


class ModelParseError(ModelError):
    """The SQL of a model file is not valid DuckDB SQL."""


class ModelGraphError(ModelError):
    """The models read an unknown table or depend on each other in a cycle."""


@dataclass(frozen=True)
class ColumnSource:
    """One upstream column that an output column is computed from."""

    table: str
    column: str


@dataclass
class SqlModel:
    """One SQL model: a SELECT whose result becomes the table `name` in the tenant's DuckDB."""

    name: str
    path: Path
    sql: str
    config: ModelConfig
    upstream_tables: tuple[str, ...]
    output_columns: tuple[str, ...] = ()
    column_lineage: dict[str, tuple[ColumnSource, ...]] = field(default_factory=dict)


@dataclass
class ModelProject:
    """Every model of a folder, keyed by name in dependency order (upstream first)."""

    models: dict[str, SqlModel]
    sources: dict[str, dict[str, str]]

    def upstream_models(self, name: str) -> list[str]:
        """Return the models that `name` reads directly."""
        return [t for t in self.models[name].upstream_tables if t in self.models]

    def upstream_sources(self, name: str) -> list[str]:
        """Return the raw and mapping tables that `name` reads directly."""
        return [t for t in self.models[name].upstream_tables if t not in self.models]

    def trace_column(self, model: str, column: str) -> set[ColumnSource]:
        """Follow a column's lineage through upstream models down to raw or mapping tables.

        Args:
            model: A model name.
            column: One of its output columns.

        Returns:
            The source-table columns the value is computed from.
        """
        found: set[ColumnSource] = set()
        pending = list(self.models[model].column_lineage.get(column, ()))
        while pending:
            source = pending.pop()
            if source.table in self.models:
                pending.extend(
                    self.models[source.table].column_lineage.get(source.column, ())
                )
            else:
                found.add(source)
        return found


def parse_model_file(path: Path) -> SqlModel:
    """Parse one model file: its header, its single SELECT and the tables it reads.

    Args:
        path: A `.sql` file whose stem is the model name.

    Returns:
        The SqlModel without output columns and lineage, which need the upstream schemas.

    Raises:
        ModelParseError: the SQL does not parse, naming the file, line and model.
    """
    name = path.stem
    text = path.read_text()
    try:
        config = parse_config(text, name)
    except ModelConfigError as error:
        raise ModelConfigError(f"{path}: {error}") from error
    try:
        statements = [s for s in sqlglot.parse(text, dialect=DIALECT) if s is not None]
    except ParseError as error:
        detail = error.errors[0] if error.errors else {}
        line = detail.get("line", "?")
        description = detail.get("description") or str(error)
        raise ModelParseError(
            f"{path}:{line}: invalid SQL in model {name}: {description}"
        ) from error
    except TokenError as error:
        raise ModelParseError(
            f"{path}: invalid SQL in model {name}: {error}"
        ) from error
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise ModelParseError(
            f"{path}: model {name} must contain exactly one SELECT statement, "
            f"found {len(statements)} statement(s)"
        )
    query = statements[0]
    return SqlModel(
        name=name,
        path=path,
        sql=text.strip().rstrip(";").strip(),
        config=config,
        upstream_tables=tuple(sorted(_tables_read(query))),
    )


def load_models(folder: Path = DEFAULT_MODELS_DIR) -> ModelProject:
    """Load every model in a folder, check its dependencies and compute column lineage.

    Args:
        folder: The folder of `.sql` model files.

    Returns:
        A ModelProject with models in dependency order.

    Raises:
        ModelParseError: a file does not parse.
        ModelGraphError: a model reads a table that is neither a model nor a source,
            or models form a cycle.
    """
    paths = sorted(folder.glob("*.sql"))
    if not paths:
        raise ModelGraphError(f"no .sql model files found in {folder}")
    parsed = {path.stem: parse_model_file(path) for path in paths}
    sources = source_schemas()
    order = _dependency_order(parsed, sources)

    schema: dict[str, dict[str, str]] = dict(sources)
    models: dict[str, SqlModel] = {}
    for name in order:
        model = parsed[name]
        _add_lineage(model, schema)
        schema[name] = {column: "VARCHAR" for column in model.output_columns}
        models[name] = model
    log.debug("loaded %d SQL models from %s", len(models), folder)
    return ModelProject(models=models, sources=sources)


def _tables_read(query: exp.Expr) -> set[str]:
    cte_names = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
    return {
        table.name
        for table in query.find_all(exp.Table)
        if table.name and table.name not in cte_names
    }


def _dependency_order(
    parsed: dict[str, SqlModel], sources: dict[str, dict[str, str]]
) -> list[str]:
    graph: dict[str, set[str]] = {}
    for name, model in parsed.items():
        if name in sources:
            raise ModelGraphError(
                f"model {name} ({model.path}) has the name of a source table; rename the file"
            )
        unknown = [
            t for t in model.upstream_tables if t not in parsed and t not in sources
        ]
        if unknown:
            raise ModelGraphError(
                f"model {name} ({model.path}) reads unknown tables {unknown}: "
                "each must be another model file, a raw_* table or a map_* table"
            )
        graph[name] = {t for t in model.upstream_tables if t in parsed}
    try:
        return list(TopologicalSorter(graph).static_order())
    except CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise ModelGraphError(
            f"SQL models depend on each other in a cycle: {cycle}"
        ) from error


def _add_lineage(model: SqlModel, schema: dict[str, dict[str, str]]) -> None:
    """Qualify the model's query, then record its output columns and their sources."""
    expression = sqlglot.parse_one(model.sql, dialect=DIALECT)
    try:
        qualified = qualify(
            expression,
            dialect=DIALECT,
            schema=schema,
            validate_qualify_columns=True,
            identify=False,
        )
    except SqlglotError as error:
        raise ModelParseError(
            f"{model.path}: model {model.name} reads a column that its tables do not "
            f"have, or has an ambiguous column: {error}"
        ) from error
    scope = build_scope(qualified)
    model.output_columns = tuple(qualified.named_selects)
    nodes = lineage(None, qualified, schema=schema, dialect=DIALECT, scope=scope)
    for column, node in nodes.items():
        sources = set()
        for leaf in node.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            sources.add(ColumnSource(leaf.source.name, leaf.name.split(".")[-1]))
        model.column_lineage[column] = tuple(
            sorted(sources, key=lambda s: (s.table, s.column))
        )
