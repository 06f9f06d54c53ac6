"""Column lineage from Salesforce fields to the score and the write-back, and the CLI over it."""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

from routiine_pipeline.cli import main
from routiine_pipeline.lineage import (
    LineageError,
    build_lineage_graph,
    resolve_column,
    salesforce_sources,
    writeback_targets,
)
from routiine_pipeline.mapping import default_mapping
from routiine_pipeline.models import ColumnSource, load_models
from routiine_pipeline.scoring import signals
from routiine_pipeline.scoring.inputs import UNSCORED_INPUTS, score_column_inputs

SCORE_SOURCES = [
    "Event.CreatedDate",
    "Event.StartDateTime",
    "Event.WhoId",
    "Opportunity.Amount",
    "Opportunity.CloseDate",
    "Opportunity.CreatedDate",
    "Opportunity.Id",
    "Opportunity.IsClosed",
    "Opportunity.StageName",
    "OpportunityHistory.Amount",
    "OpportunityHistory.CloseDate",
    "OpportunityHistory.CreatedDate",
    "OpportunityHistory.OpportunityId",
    "OpportunityHistory.PrevCloseDate",
    "OpportunityHistory.StageName",
    "Task.ActivityDate",
    "Task.CallType",
    "Task.CompletedDateTime",
    "Task.CreatedDate",
    "Task.IsClosed",
    "Task.TaskSubtype",
    "Task.Type",
    "Task.WhoId",
]
# The action rules do not read the amount.
ACTION_SOURCES = [
    name
    for name in SCORE_SOURCES
    if name not in ("Opportunity.Amount", "OpportunityHistory.Amount")
]


@pytest.fixture(scope="module")
def project():
    return load_models()


@pytest.fixture(scope="module")
def graph(project):
    return build_lineage_graph(project)


@pytest.mark.parametrize(
    ("reference", "sources", "written"),
    [
        (
            "raw_opportunity.amount",
            ["Opportunity.Amount"],
            ["Opportunity.Momentum_Score__c"],
        ),
        ("deal.amount", ["Opportunity.Amount"], ["Opportunity.Momentum_Score__c"]),
        (
            "deal.close_date",
            ["Opportunity.CloseDate"],
            ["Opportunity.Momentum_Score__c", "Opportunity.Next_Best_Action__c"],
        ),
        ("deal.account_name", ["Account.Name"], []),
        (
            "event.contact_id",
            ["Event.WhoId", "Task.WhoId"],
            ["Opportunity.Momentum_Score__c", "Opportunity.Next_Best_Action__c"],
        ),
        (
            "deal_change.is_close_date_push",
            ["OpportunityHistory.CloseDate", "OpportunityHistory.PrevCloseDate"],
            ["Opportunity.Momentum_Score__c", "Opportunity.Next_Best_Action__c"],
        ),
        ("momentum_score.score", SCORE_SOURCES, ["Opportunity.Momentum_Score__c"]),
        (
            "momentum_score.next_best_action",
            ACTION_SOURCES,
            ["Opportunity.Next_Best_Action__c"],
        ),
    ],
)
def test_column_traces_both_ways(graph, reference, sources, written):
    node = resolve_column(graph, reference)
    assert salesforce_sources(graph, node) == sources
    assert writeback_targets(graph, node) == written


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("dael.amount", "unknown model 'dael'; close matches: deal"),
        ("deal.amout", "model deal has no column 'amout'; close matches: amount"),
        (
            "momentum_score.scor",
            "model momentum_score has no column 'scor'; close matches: score",
        ),
        ("deal", "invalid column reference 'deal': write MODEL.COLUMN"),
    ],
)
def test_unknown_reference_rejected(graph, reference, message):
    with pytest.raises(LineageError) as caught:
        resolve_column(graph, reference)
    assert str(caught.value).startswith(message)


def test_tenant_source_field_shown(project):
    mapping = default_mapping()
    mapping.deal_sources = {"amount": "Amount_USD__c"}
    graph = build_lineage_graph(project, mapping)
    assert salesforce_sources(graph, "deal.amount") == ["Opportunity.Amount_USD__c"]
    assert "raw_opportunity.amount_usd__c" in graph.upstream["stg_opportunity.amount"]


def test_cli_prints_score_lineage(capsys):
    assert main(["lineage", "momentum_score.score"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("momentum_score.score\n")
    assert "<- Salesforce Opportunity.Amount" in output
    assert "-> Salesforce Opportunity.Momentum_Score__c (write-back)" in output
    assert "Salesforce fields written: Opportunity.Momentum_Score__c" in output


def test_cli_unknown_column_fails(capsys):
    assert main(["lineage", "deal.amout"]) == 1
    error = capsys.readouterr().err
    assert (
        error
        == "error: model deal has no column 'amout'; close matches: amount, account_id, product\n"
    )


def _columns_read(sql: str, schema: dict[str, dict[str, str]]) -> set[ColumnSource]:
    """Return the model columns a query reads, through CTEs and subqueries."""
    query = sqlglot.parse_one(sql, dialect="duckdb")
    found = set()
    for scope in traverse_scope(query):
        for column in scope.columns:
            source = scope.sources.get(column.table)
            if isinstance(source, Scope) and source.expression.is_star:
                # A CTE such as `select * from deal_change where ...` passes
                # its table's columns through unchanged.
                tables = [
                    s for s in source.sources.values() if isinstance(s, exp.Table)
                ]
                source = tables[0] if len(tables) == 1 else None
            if isinstance(source, exp.Table) and source.name in schema:
                found.add(ColumnSource(source.name, column.name))
    return found


def test_declared_inputs_cover_signal_queries(project):
    schema = {
        name: dict.fromkeys(model.output_columns, "VARCHAR")
        for name, model in project.models.items()
    }
    queries = [
        signals._CURRENT_STATE_SQL,
        signals._ACTIVITY_SQL,
        signals._HISTORY_SQL,
        signals._FIRST_ENTRY_SQL,
        signals._BENCHMARK_SQL,
    ]
    read = set().union(*(_columns_read(sql, schema) for sql in queries))
    declared = {
        source for inputs in score_column_inputs().values() for source in inputs
    }
    assert read - declared - set(UNSCORED_INPUTS) == set()
    assert declared - read == set()
    for source in declared:
        assert source.column in project.models[source.table].output_columns
