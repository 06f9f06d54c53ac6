"""Loading model files: dependency order, lineage and the errors for broken folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from routiine_pipeline.models import (
    ColumnSource,
    ModelConfigError,
    ModelGraphError,
    ModelParseError,
    load_models,
)

HEADER = "-- description: Test model.\n-- grain: id\n"


def write_models(folder: Path, files: dict[str, str]) -> Path:
    for name, body in files.items():
        (folder / f"{name}.sql").write_text(body)
    return folder


def test_models_follow_their_upstreams(project):
    order = list(project.models)
    for name in order:
        for upstream in project.upstream_models(name):
            assert order.index(upstream) < order.index(name), (upstream, name)


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("stg_opportunity", ("map_settings", "map_stage", "raw_opportunity")),
        (
            "deal",
            (
                "deal_change",
                "deal_stage_history",
                "stg_account",
                "stg_opportunity",
                "stg_user",
            ),
        ),
        ("event", ("deal", "map_settings", "map_task_kind", "stg_event", "stg_task")),
        ("deal_stage_history", ("deal_change",)),
    ],
)
def test_upstream_tables_from_sql(project, model, expected):
    assert project.models[model].upstream_tables == expected


def test_config_header_parsed(project):
    config = project.models["deal"].config
    assert config.grain == "deal_id"
    assert config.blocking is True
    assert config.tests.unique == ("deal_id",)
    assert config.tests.accepted_values == {"stage_category": ("open", "won", "lost")}
    assert [
        (r.column, r.to_table, r.to_column) for r in config.tests.relationships
    ] == [
        ("account_id", "stg_account", "account_id"),
        ("owner_id", "stg_user", "user_id"),
    ]


def test_deal_amount_lineage(project):
    assert project.models["deal"].column_lineage["amount"] == (
        ColumnSource("stg_opportunity", "amount"),
    )
    assert project.trace_column("deal", "amount") == {
        ColumnSource("raw_opportunity", "amount")
    }


def test_event_occurred_at_lineage(project):
    assert project.trace_column("event", "occurred_at") == {
        ColumnSource("raw_event", "createddate"),
        ColumnSource("raw_event", "startdatetime"),
        ColumnSource("raw_task", "activitydate"),
        ColumnSource("raw_task", "completeddatetime"),
        ColumnSource("raw_task", "createddate"),
    }


def test_parse_error_names_file_line_model(tmp_path):
    bad = HEADER + "select id,\n  from raw_account\n where (\n"
    write_models(tmp_path, {"broken": bad})
    with pytest.raises(ModelParseError) as raised:
        load_models(tmp_path)
    message = str(raised.value)
    assert f"{tmp_path / 'broken.sql'}:" in message
    assert "model broken" in message
    line = int(message.split(".sql:")[1].split(":")[0])
    assert line >= 3


def test_unknown_table_rejected(tmp_path):
    write_models(tmp_path, {"orphan": HEADER + "select x.id from raw_nothing as x"})
    with pytest.raises(
        ModelGraphError, match=r"model orphan .* reads unknown tables \['raw_nothing'\]"
    ):
        load_models(tmp_path)


def test_cycle_rejected(tmp_path):
    write_models(
        tmp_path,
        {
            "first": HEADER + "select s.id from second as s",
            "second": HEADER + "select f.id from first as f",
        },
    )
    with pytest.raises(ModelGraphError, match="cycle"):
        load_models(tmp_path)


def test_unknown_column_rejected(tmp_path):
    write_models(tmp_path, {"typo": HEADER + "select a.nmae from raw_account as a"})
    with pytest.raises(ModelParseError, match="model typo"):
        load_models(tmp_path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", "missing config header"),
        ("-- description: x\n-- grian: id\n", r"unknown header keys \['grian'\]"),
        (
            "-- description: x\n-- tests:\n--   uniq: [id]\n",
            r"unknown tests \['uniq'\]",
        ),
        (
            "-- description: x\n-- materialized: view\n",
            "materialized='view' is not supported",
        ),
        (
            "-- description: x\n-- tests:\n--   relationships: {id: stg_account}\n",
            "table.column",
        ),
    ],
)
def test_bad_header_rejected(tmp_path, header, message):
    write_models(tmp_path, {"m": header + "select a.id from raw_account as a"})
    with pytest.raises(ModelConfigError, match=message):
        load_models(tmp_path)


def test_cte_names_are_not_dependencies(tmp_path):
    write_models(
        tmp_path,
        {
            "m": HEADER
            + "with raw_x as (select a.id from raw_account as a) select raw_x.id from raw_x"
        },
    )
    assert load_models(tmp_path).models["m"].upstream_tables == ("raw_account",)
