"""Column lineage from Salesforce fields through the SQL models to the score and write-back.

The SQL part comes from sqlglot (ModelProject.column_lineage). The momentum
score part comes from the declaration in scoring/inputs.py, and the raw
tables map to Salesforce fields by the extract's naming rule (the field
name lower-cased). Open-source Dagster does not draw column lineage, so
`routiine lineage` and the diagram in docs/models.md make it readable.

NOTE: sqlglot lineage follows SELECT expressions only, so columns used only
in JOIN or WHERE conditions (Task.WhatId behind event.deal_id) do not appear.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from routiine_pipeline.mapping import EXTRACT_OBJECTS, TenantMapping
from routiine_pipeline.models.loader import ModelProject
from routiine_pipeline.models.tenant_sql import source_renames
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.scoring.inputs import WRITEBACK_COLUMNS, score_column_inputs
from routiine_pipeline.scoring.store import SCORE_TABLE
from routiine_pipeline.storage.raw_tables import column_name, raw_table_name

SALESFORCE_PREFIX = "Salesforce "
WRITEBACK_SUFFIX = " (write-back)"


class LineageError(ValueError):
    """A lineage request names a table or column that does not exist."""


@dataclass
class LineageGraph:
    """Direct column dependencies, both ways, between nodes named "table.column".

    Salesforce fields are named "Salesforce Object.Field", and the fields the
    write-back sets carry the suffix " (write-back)".
    """

    upstream: dict[str, set[str]] = field(default_factory=dict)
    downstream: dict[str, set[str]] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)

    def add_edge(self, source: str, target: str) -> None:
        self.upstream.setdefault(target, set()).add(source)
        self.downstream.setdefault(source, set()).add(target)
        self.upstream.setdefault(source, set())
        self.downstream.setdefault(target, set())

    def walk(self, node: str, direction: str) -> list[tuple[int, str, bool]]:
        """List the nodes reachable from `node`, depth first, sorted by name at each level.

        Args:
            node: The starting node.
            direction: "upstream" or "downstream".

        Returns:
            (depth, node, repeated) rows. A node reached a second time is
            listed with repeated=True and not expanded again.
        """
        edges = self.upstream if direction == "upstream" else self.downstream
        rows: list[tuple[int, str, bool]] = []
        seen: set[str] = set()

        def visit(current: str, depth: int) -> None:
            repeated = current in seen
            rows.append((depth, current, repeated))
            if repeated:
                return
            seen.add(current)
            for child in sorted(edges.get(current, ())):
                visit(child, depth + 1)

        visit(node, 0)
        return rows

    def reachable(self, node: str, direction: str) -> set[str]:
        """Return every node reachable from `node` in one direction, `node` excluded."""
        return {name for _, name, _ in self.walk(node, direction)} - {node}


def salesforce_node(sobject: str, field_name: str) -> str:
    return f"{SALESFORCE_PREFIX}{sobject}.{field_name}"


def _raw_sources(
    mapping: TenantMapping | None,
) -> dict[str, tuple[str, dict[str, tuple[str, str]]]]:
    """Map each raw table to its sObject and {model-read column: (read column, field)}.

    A tenant whose mapping reads another Opportunity field gets that field's
    column in place of the standard column the SQL files name.
    """
    renamed = source_renames(mapping) if mapping is not None else {}
    custom = {}
    if mapping is not None:
        custom = {column_name(name): name for name in mapping.deal_sources.values()}
    tables = {}
    for sobject in EXTRACT_OBJECTS:
        fields = {
            column_name(spec.name): (column_name(spec.name), spec.name)
            for spec in STANDARD_SCHEMAS[sobject].fields
        }
        if sobject == "Opportunity":
            for standard, tenant_column in renamed.items():
                fields[standard] = (
                    tenant_column,
                    custom.get(tenant_column, tenant_column),
                )
        tables[raw_table_name(sobject)] = (sobject, fields)
    return tables


def build_lineage_graph(
    project: ModelProject, mapping: TenantMapping | None = None
) -> LineageGraph:
    """Build the column graph of every model, the momentum score and the write-back.

    Args:
        project: The loaded SQL models.
        mapping: A tenant mapping whose Opportunity source fields replace the
            standard ones; None shows the standard fields.

    Returns:
        The graph, with each table's columns in `columns`.
    """
    graph = LineageGraph()
    raw_sources = _raw_sources(mapping)
    for name, model in project.models.items():
        graph.columns[name] = list(model.output_columns)
        for column in model.output_columns:
            target = f"{name}.{column}"
            graph.upstream.setdefault(target, set())
            graph.downstream.setdefault(target, set())
            for source in model.column_lineage.get(column, ()):
                source_column = source.column
                if source.table in raw_sources:
                    sobject, fields = raw_sources[source.table]
                    source_column, field_name = fields.get(
                        source.column, (source.column, source.column)
                    )
                    graph.add_edge(
                        salesforce_node(sobject, field_name),
                        f"{source.table}.{source_column}",
                    )
                    read = graph.columns.setdefault(source.table, [])
                    if source_column not in read:
                        read.append(source_column)
                graph.add_edge(f"{source.table}.{source_column}", target)
    score_inputs = score_column_inputs()
    graph.columns[SCORE_TABLE] = list(score_inputs)
    for column, inputs in score_inputs.items():
        target = f"{SCORE_TABLE}.{column}"
        graph.upstream.setdefault(target, set())
        graph.downstream.setdefault(target, set())
        for source in inputs:
            graph.add_edge(f"{source.table}.{source.column}", target)
    for column, field_name in WRITEBACK_COLUMNS.items():
        graph.add_edge(
            f"{SCORE_TABLE}.{column}",
            salesforce_node("Opportunity", field_name) + WRITEBACK_SUFFIX,
        )
    return graph


def resolve_column(graph: LineageGraph, reference: str) -> str:
    """Check a "MODEL.COLUMN" reference and return its node name.

    Args:
        graph: The lineage graph.
        reference: For example "deal.amount".

    Returns:
        The node name, equal to the reference.

    Raises:
        LineageError: the reference has no dot, or names an unknown table or
            column; the message lists close matches.
    """
    table, dot, column = reference.partition(".")
    if not dot or not table or not column:
        raise LineageError(
            f"invalid column reference {reference!r}: write MODEL.COLUMN, "
            "for example deal.amount or momentum_score.score"
        )
    if table not in graph.columns:
        matches = difflib.get_close_matches(table, graph.columns, n=5, cutoff=0.5)
        hint = (
            f"close matches: {', '.join(matches)}"
            if matches
            else (f"known models: {', '.join(sorted(graph.columns))}")
        )
        raise LineageError(f"unknown model {table!r}; {hint}")
    if column not in graph.columns[table]:
        matches = difflib.get_close_matches(
            column, graph.columns[table], n=5, cutoff=0.5
        )
        hint = (
            f"close matches: {', '.join(matches)}"
            if matches
            else (f"its columns: {', '.join(graph.columns[table])}")
        )
        raise LineageError(f"model {table} has no column {column!r}; {hint}")
    return reference


def salesforce_sources(graph: LineageGraph, node: str) -> list[str]:
    """Return the Salesforce fields a column is computed from, as "Object.Field"."""
    return sorted(
        name.removeprefix(SALESFORCE_PREFIX)
        for name in graph.reachable(node, "upstream")
        if name.startswith(SALESFORCE_PREFIX)
    )


def writeback_targets(graph: LineageGraph, node: str) -> list[str]:
    """Return the Salesforce fields the write-back sets from a column, as "Object.Field"."""
    reached = graph.reachable(node, "downstream") | {node}
    return sorted(
        name.removeprefix(SALESFORCE_PREFIX).removesuffix(WRITEBACK_SUFFIX)
        for name in reached
        if name.endswith(WRITEBACK_SUFFIX)
    )


def format_lineage(graph: LineageGraph, node: str) -> str:
    """Render the upstream and downstream trees of one column as text.

    Args:
        graph: The lineage graph.
        node: A node name from resolve_column.

    Returns:
        Two indented trees, then the Salesforce fields read and written.
    """
    lines = [node, "", "upstream (computed from):"]
    lines += _tree_lines(graph.walk(node, "upstream"), "<-")
    lines += ["", "downstream (read by):"]
    lines += _tree_lines(graph.walk(node, "downstream"), "->")
    sources = salesforce_sources(graph, node)
    targets = writeback_targets(graph, node)
    lines += [
        "",
        "Salesforce fields read: " + (", ".join(sources) or "none"),
        "Salesforce fields written: " + (", ".join(targets) or "none"),
    ]
    return "\n".join(lines)


def _tree_lines(rows: list[tuple[int, str, bool]], arrow: str) -> list[str]:
    if len(rows) == 1:
        return ["  (none)"]
    lines = []
    for depth, name, repeated in rows[1:]:
        suffix = " (listed above)" if repeated else ""
        lines.append(f"{'   ' * depth}{arrow} {name}{suffix}")
    return lines
