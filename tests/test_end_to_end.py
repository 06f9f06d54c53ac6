"""The whole main job on the demo org, checked against the emulator's own records.

Runs `routiine demo` in-process on a real Dagster instance (SQLite under a
temporary DAGSTER_HOME), the emulator over real HTTP and real DuckDB files,
then compares every figure with what the emulated org holds.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import dagster as dg
import pytest
import sqlalchemy as sa

from routiine_pipeline import settings
from routiine_pipeline.demo import DemoResult
from routiine_pipeline.storage.warehouse import open_database

REPO = Path(__file__).resolve().parents[1]
KEPT_TASK_KINDS = {("Call", "Call"), ("Email", "Email")}


class DemoRun(NamedTuple):
    result: DemoResult
    root: Path
    records: list[logging.LogRecord]
    backend: str
    # SQLAlchemy URLs of the PostgreSQL databases, empty on the SQLite backend.
    control_url: str
    dagster_url: str


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def demo_run(request, tmp_path_factory):
    """Run the demo once per backend: SQLite files, or the Dagster instance and control store on PostgreSQL."""
    backend = request.param
    root = tmp_path_factory.mktemp(f"demo_{backend}")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    saved = dict(os.environ)
    os.environ.update(
        {"DAGSTER_HOME": str(dagster_home), "ROUTIINE_HOME": str(root / "home")}
    )
    os.environ.pop("ROUTIINE_CONTROL_URL", None)
    os.environ.pop("ROUTIINE_VAULT_KEYS", None)
    control_url = dagster_url = ""
    if backend == "postgres":
        server = request.getfixturevalue("postgres_server")
        control_url = server.create_database("routiine_control")
        dagster_url = server.create_database("routiine_dagster")
        shutil.copy(REPO / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        os.environ["ROUTIINE_CONTROL_URL"] = control_url
        os.environ["DAGSTER_PG_URL"] = dagster_url
    else:
        shutil.copy(
            REPO / "deploy" / "dagster-local.yaml", dagster_home / "dagster.yaml"
        )
    from routiine_pipeline.control.store import open_control_store

    open_control_store.cache_clear()
    capture = logging.Handler()
    capture.records = []
    capture.emit = capture.records.append
    logging.getLogger().addHandler(capture)
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        from routiine_pipeline.demo import run_demo

        result = run_demo(summary_json=root / "summary.json")
        yield DemoRun(result, root, capture.records, backend, control_url, dagster_url)
    finally:
        logging.getLogger().removeHandler(capture)
        os.environ.clear()
        os.environ.update(saved)
        open_control_store.cache_clear()


def _query(sql: str, tenant: str = "demo"):
    with open_database(settings.tenant_database_path(tenant), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_deal_rows_equal_live_opportunities(demo_run):
    result = demo_run.result
    live = {record["Id"] for record in result.org.records("Opportunity")}
    deals = {row[0] for row in _query("SELECT deal_id FROM deal")}
    assert deals == live
    assert len(deals) == 8_799


def test_event_rows_equal_kept_activities(demo_run):
    result = demo_run.result
    kept_tasks = {
        record["Id"]
        for record in result.org.records("Task")
        if (record["Type"], record["TaskSubtype"]) in KEPT_TASK_KINDS
    }
    meetings = {record["Id"] for record in result.org.records("Event")}
    events = dict(_query("SELECT event_id, kind FROM event"))
    assert set(events) == kept_tasks | meetings
    assert {events[i] for i in meetings} == {"meeting"}


def test_moved_stages_visible_after_cycle(demo_run):
    result = demo_run.result
    moved = result.changes["advanced"] + [result.changes["closed_won"]]
    stages = dict(_query("SELECT deal_id, stage_name FROM deal"))
    for change in moved:
        assert stages[change["Id"]] == change["after"]["StageName"]


def test_deleted_opportunity_gone_from_models(demo_run):
    result = demo_run.result
    deleted_id = result.changes["deleted"]["Id"]
    assert _query(f"SELECT count(*) FROM deal WHERE deal_id = '{deleted_id}'") == [(0,)]
    assert _query(
        f"SELECT count(*) FROM momentum_score WHERE deal_id = '{deleted_id}'"
    ) == [(0,)]
    assert _query(
        f"SELECT _deleted_at IS NOT NULL FROM raw_opportunity WHERE id = '{deleted_id}'"
    ) == [(True,)]
    sent_after_delete = {
        record["id"]
        for entry in result.org.write_log
        if entry["at"] > result.changes["at"]
        for record in entry["body"]["records"]
    }
    assert deleted_id not in sent_after_delete


def test_written_values_present_in_salesforce(demo_run):
    result = demo_run.result
    state = _query(
        "SELECT record_id, momentum_score__c, next_best_action__c FROM writeback_state"
    )
    assert len(state) == result.summary["scores_written_back"]["initial"]
    for record_id, score, action in state:
        record = result.org.get("Opportunity", record_id)
        if record is None or record["IsDeleted"]:
            continue
        assert record["Momentum_Score__c"] == score
        assert record["Next_Best_Action__c"] == action


def test_unchanged_scores_not_sent(demo_run):
    result = demo_run.result
    written = result.summary["scores_written_back"]
    changed = dict(
        _query(
            """
            SELECT phase, count(*) FROM (
              SELECT deal_id, score, next_best_action, computed_at,
                     lag(score) OVER w AS previous_score, lag(next_best_action) OVER w AS previous_action,
                     dense_rank() OVER (ORDER BY computed_at) AS phase
              FROM momentum_score_history WINDOW w AS (PARTITION BY deal_id ORDER BY computed_at)
            ) WHERE phase > 1 AND (previous_score IS NULL OR score <> previous_score
                                   OR next_best_action <> previous_action)
            GROUP BY phase
            """
        )
    )
    assert written["incremental"] == changed.get(2, 0)
    assert written["quiet"] == changed.get(3, 0)
    assert 0 < written["incremental"] < 50
    records_sent = [len(entry["body"]["records"]) for entry in result.org.write_log]
    assert sum(records_sent) == sum(written.values())
    assert max(records_sent) <= 200


def test_only_routiine_fields_written(demo_run):
    result = demo_run.result
    for entry in result.org.write_log:
        assert entry["body"]["allOrNone"] is False
        for record in entry["body"]["records"]:
            assert set(record) == {
                "attributes",
                "id",
                "Momentum_Score__c",
                "Next_Best_Action__c",
            }
            assert record["attributes"] == {"type": "Opportunity"}


def test_api_calls_agree_with_emulator(demo_run):
    result = demo_run.result
    calls = result.summary["api_calls"]
    assert calls["total_counted_by_budget"] == calls["total_counted_by_emulator"]
    assert calls["by_phase"]["quiet"] == 2
    assert calls["by_phase"]["incremental"] == 2
    assert calls["by_phase"]["connect"] == 1


def test_summary_json_has_every_section(demo_run):
    root = demo_run.root
    summary = json.loads((root / "summary.json").read_text())
    assert set(summary["api_calls"]["by_phase"]) == {
        "connect",
        "backfill",
        "writeback",
        "incremental",
        "quiet",
    }
    assert summary["rows"]["deal"]["rows"] == 8_799
    assert set(summary["watermarks"]) == {
        "Account",
        "Contact",
        "Event",
        "Opportunity",
        "OpportunityHistory",
        "Task",
        "User",
    }
    assert len(summary["top_deals"]) == 5
    assert all(0 <= deal["score"] <= 100 for deal in summary["top_deals"])


def test_runs_recorded_in_instance(demo_run):
    instance = dg.DagsterInstance.from_config(str(demo_run.root / "dagster_home"))
    runs = instance.get_runs()
    assert {run.job_name for run in runs} == {
        "tenant_sync_job",
        "tenant_models_job",
        "opportunity_writeback_job",
    }
    assert all(run.is_success for run in runs)
    materialized = instance.get_materialized_partitions(
        dg.AssetKey(["raw", "opportunity"])
    )
    assert any(key.endswith("|demo") for key in materialized)


def test_no_secret_in_logs_or_files(demo_run):
    result, root, records = demo_run.result, demo_run.root, demo_run.records
    home = root / "home"
    tokens = set(result.org.tokens._access) | set(result.org.tokens._refresh)
    assert len(result.org.tokens._access) >= 1
    assert len(result.org.tokens._refresh) >= 1
    # The demo's client secret stays in the environment while the module's fixture is open.
    client_secret = os.environ["ROUTIINE_SF_CLIENT_SECRET"]
    vault_keys = [
        line.split(":", 1)[1] for line in (home / "vault.keys").read_text().split()
    ]
    assert len(vault_keys) == 1
    secrets = {
        "token": tokens,
        "client secret": {client_secret},
        "vault key": set(vault_keys),
    }

    sources = {"summary.json": (root / "summary.json").read_text()}
    for index, record in enumerate(records):
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        sources[f"log record {index} ({record.name})"] = text + repr(record.args)
    scanned = {"duckdb": 0, "control store": 0, "dagster storage": 0}
    for path in [*home.rglob("*"), *(root / "dagster_home").rglob("*")]:
        if not path.is_file() or path.name == "vault.keys":
            continue
        sources[str(path)] = path.read_bytes().decode("latin-1")
        if path.suffix == ".duckdb":
            scanned["duckdb"] += 1
        elif path.name.startswith("control.db"):
            scanned["control store"] += 1
        elif "dagster_home" in path.parts:
            scanned["dagster storage"] += 1
    if demo_run.backend == "postgres":
        for label, url in (
            ("control store", demo_run.control_url),
            ("dagster storage", demo_run.dagster_url),
        ):
            tables = _postgres_table_text(url)
            scanned[label] += len(tables)
            sources.update(
                {f"{label} table {name}": text for name, text in tables.items()}
            )
    assert all(count >= 1 for count in scanned.values()), scanned
    assert len(records) > 100

    for kind, values in secrets.items():
        for value in values:
            leaks = [name for name, text in sources.items() if value in text]
            assert leaks == [], f"a {kind} appears in {leaks[:5]}"


def _postgres_table_text(url: str) -> dict[str, str]:
    """Return every table of a PostgreSQL database as text, one string per table."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {
                name: "\n".join(
                    conn.execute(
                        sa.text(f'SELECT t::text FROM "{name}" AS t')
                    ).scalars()
                )
                for name in names
            }
    finally:
        engine.dispose()


def test_backend_holds_instance_and_control_store(demo_run):
    """Runs, events and tenants live where the backend puts them; on PostgreSQL every lease was released."""
    instance = dg.DagsterInstance.from_config(str(demo_run.root / "dagster_home"))
    control_file = demo_run.root / "home" / "control.db"
    if demo_run.backend == "sqlite":
        assert type(instance.run_storage).__name__ == "SqliteRunStorage"
        assert control_file.exists()
        return
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert len(instance.get_runs()) >= 10
    assert not control_file.exists()
    engine = sa.create_engine(demo_run.control_url)
    with engine.connect() as conn:
        tenants = conn.execute(sa.text("SELECT tenant_id, status FROM tenants")).all()
        leases = conn.execute(sa.text("SELECT count(*) FROM warehouse_leases")).scalar()
        calls = conn.execute(sa.text("SELECT count(*) FROM api_calls")).scalar()
    engine.dispose()
    assert tenants == [("demo", "connected")]
    assert leases == 0
    assert calls == demo_run.result.summary["api_calls"]["total_counted_by_emulator"]


def test_definitions_validate():
    env = {**os.environ, "ROUTIINE_SF_CLIENT_SECRET": "validate-only"}
    completed = subprocess.run(
        [
            str(Path(sys.executable).parent / "dagster"),
            "definitions",
            "validate",
            "-w",
            "workspace.yaml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
