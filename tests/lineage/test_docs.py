"""docs/models.md stays in step with the SQL: lineage diagrams and documented columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from routiine_pipeline.models import load_models
from routiine_pipeline.models.lineage_diagram import (
    END_MARKER,
    START_MARKER,
    lineage_markdown,
    replace_generated_block,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "models.md"


def documented_columns(text: str, model: str) -> list[str]:
    """Return the column names in the first column of the table under '### <model>'."""
    section = text.split(f"\n### {model}\n", 1)[1].split("\n#", 1)[0]
    names = []
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or cells[0] in ("column", "---"):
            continue
        names += [name.strip() for name in cells[0].split(",")]
    return names


def test_diagram_matches_sql():
    text = DOC.read_text()
    expected = replace_generated_block(text, lineage_markdown(load_models()))
    assert text == expected, "run `routiine lineage --update-doc docs/models.md`"


def test_diagram_has_three_column_views():
    block = lineage_markdown(load_models())
    assert block.startswith(START_MARKER)
    assert block.endswith(END_MARKER)
    assert block.count("```mermaid") == 4
    assert (
        'Salesforce_Opportunity_Amount(["Opportunity.Amount"]) --> deal_amount' in block
    )
    assert "momentum_score_score --> Opportunity_Momentum_Score__c" in block


def test_missing_markers_rejected():
    with pytest.raises(ValueError, match="no lineage block"):
        replace_generated_block("# models\n", "block")


@pytest.mark.parametrize("model", ["deal", "event"])
def test_documented_columns_match_model(model):
    documented = documented_columns(DOC.read_text(), model)
    output = list(load_models().models[model].output_columns)
    assert sorted(documented) == sorted(output)
    assert len(documented) == len(set(documented))
