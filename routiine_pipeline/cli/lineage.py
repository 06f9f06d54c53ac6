"""`routiine lineage MODEL.COLUMN | --diagram | --update-doc FILE`."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_lineage(args: argparse.Namespace) -> int:
    from routiine_pipeline.lineage import (
        build_lineage_graph,
        format_lineage,
        resolve_column,
    )
    from routiine_pipeline.models import load_models
    from routiine_pipeline.models.lineage_diagram import (
        lineage_markdown,
        replace_generated_block,
    )

    project = load_models()
    if args.update_doc:
        path = Path(args.update_doc)
        text = path.read_text()
        updated = replace_generated_block(text, lineage_markdown(project))
        path.write_text(updated)
        print(
            f"{path}: lineage diagrams {'updated' if updated != text else 'already current'}"
        )
        return 0
    if args.diagram:
        print(lineage_markdown(project))
        return 0
    if not args.column:
        raise ValueError("give MODEL.COLUMN, --diagram or --update-doc FILE")
    mapping = None
    if args.tenant:
        from routiine_pipeline.tenants import control_store

        mapping = control_store().mapping(
            control_store().get_tenant(args.tenant).tenant_id
        )
    graph = build_lineage_graph(project, mapping)
    print(format_lineage(graph, resolve_column(graph, args.column)))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "lineage",
        help="show where a model column comes from and what reads it",
        description=(
            "Print the path from a model column back to the Salesforce fields it is "
            "computed from, and forward to the momentum score and the write-back."
        ),
    )
    parser.add_argument(
        "column", nargs="?", help="MODEL.COLUMN, for example momentum_score.score"
    )
    parser.add_argument(
        "--tenant",
        help="show this tenant's Opportunity source fields from its mapping (default: standard fields)",
    )
    parser.add_argument(
        "--diagram",
        action="store_true",
        help="print the Mermaid diagrams of docs/models.md",
    )
    parser.add_argument(
        "--update-doc",
        metavar="FILE",
        help="rewrite the diagram block of FILE (docs/models.md)",
    )
    parser.set_defaults(handler=cmd_lineage)
