"""`routiine backfill` in-process, on a temporary Dagster instance, against the emulator over HTTP.

The tenant is connected through the OAuth flow, the runs land in a SQLite
instance under a temporary DAGSTER_HOME, and rows land in the tenant's real
DuckDB file.
"""

from __future__ import annotations

import secrets
import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest
from emulated_org import (
    RecordingOrg,
    connect_tenant,
    oauth_environment,
    record,
    record_id,
    utc,
)

from routiine_pipeline import settings
from routiine_pipeline.backfill import backfill_tenant
from routiine_pipeline.cli import main
from routiine_pipeline.cli.backfill import EXIT_STOPPED
from routiine_pipeline.emulator import Clock, EmulatorServer
from routiine_pipeline.mapping import EXTRACT_OBJECTS
from routiine_pipeline.storage.warehouse import open_database

REPO = Path(__file__).resolve().parents[2]
TENANT = "acme"
JANUARY, FEBRUARY, MARCH = "2025-01-01", "2025-02-01", "2025-03-01"
# Records per month, so each month's rows are known exactly.
RECORDS = {
    JANUARY: {"Account": 3, "Opportunity": 5},
    FEBRUARY: {"Account": 2, "Opportunity": 4, "Task": 6},
    MARCH: {"Opportunity": 7},
}


def _org_records() -> dict[str, list[dict]]:
    records: dict[str, list[dict]] = {}
    number = 0
    for month, counts in RECORDS.items():
        year, month_number = int(month[:4]), int(month[5:7])
        for sobject, count in counts.items():
            for index in range(count):
                number += 1
                stamp = utc(year, month_number, 10 + index, 9, 0)
                records.setdefault(sobject, []).append(record(sobject, number, stamp))
    return records


@pytest.fixture
def backfill_env(tmp_path, routiine_home, monkeypatch):
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster-local.yaml", dagster_home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    client_secret = secrets.token_urlsafe(16)
    for name, value in oauth_environment(client_secret).items():
        monkeypatch.setenv(name, value)

    org = RecordingOrg(clock=Clock(utc(2025, 3, 20, 12, 0), frozen=True))
    org.load(_org_records())
    server = EmulatorServer(org, client_secret=client_secret, auto_approve=True).start()
    instance = dg.DagsterInstance.get()
    try:
        connect_tenant(instance, TENANT, server.url)
        yield org, instance
    finally:
        server.stop()


def _rows_by_month() -> dict[str, int]:
    with open_database(settings.tenant_database_path(TENANT), read_only=True) as conn:
        counts: dict[str, int] = {}
        for table in ("raw_account", "raw_opportunity", "raw_task"):
            for window, count in conn.execute(
                f"SELECT _window, count(*) FROM {table} GROUP BY 1"
            ).fetchall():
                counts[window] = counts.get(window, 0) + count
    return counts


def _expected_rows(*months: str) -> dict[str, int]:
    return {month: sum(RECORDS[month].values()) for month in months}


def _lower_bounds(soql_log: list[tuple[str, bool]]) -> set[str]:
    """Return the SystemModstamp lower bounds of the window queries (the hard-delete Id scans have none)."""
    marker = "SystemModstamp >= "
    return {soql.split(marker)[1][:20] for soql, _ in soql_log if marker in soql}


def _backfill_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(reversed(instance.get_runs()))


def test_backfill_months_then_rerun_skips(backfill_env, capsys):
    org, instance = backfill_env

    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-02"]) == 0
    first = capsys.readouterr().out
    assert "month 2025-01 (1/2): 8 rows" in first
    assert "month 2025-02 (2/2): 12 rows" in first
    assert _rows_by_month() == _expected_rows(JANUARY, FEBRUARY)
    runs = _backfill_runs(instance)
    assert [run.tags["dagster/partition"] for run in runs] == [
        f"{JANUARY}|{TENANT}",
        f"{FEBRUARY}|{TENANT}",
    ]
    for run in runs:
        assert run.is_success
        assert run.tags["routiine/tenant"] == TENANT
        assert run.tags["routiine/phase"] == "backfill"
        assert run.tags["dagster/partition/tenant"] == TENANT

    calls_before = org.data_api_calls
    queries_before = len(org.soql_log)
    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-03"]) == 0
    second = capsys.readouterr().out
    assert "month 2025-01 (1/3): already extracted, skipped" in second
    assert "month 2025-02 (2/3): already extracted, skipped" in second
    assert "month 2025-03 (3/3): 7 rows" in second
    assert len(_backfill_runs(instance)) == 3
    assert _rows_by_month() == _expected_rows(JANUARY, FEBRUARY, MARCH)
    assert _lower_bounds(org.soql_log[queries_before:]) == {"2025-03-01T00:00:00Z"}
    # Seven objects need two composite calls; the describe results are cached for a day.
    assert org.data_api_calls - calls_before == 2


def test_lost_file_is_extracted_again(backfill_env, capsys):
    """The event log marks the months done, but the file is new (tenant re-added, file lost), so they are read again."""
    org, instance = backfill_env
    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-02"]) == 0
    capsys.readouterr()
    database = settings.tenant_database_path(TENANT)
    for path in (database, Path(f"{database}.wal")):
        path.unlink(missing_ok=True)

    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-02"]) == 0
    output = capsys.readouterr().out
    assert "already extracted" not in output
    assert "month 2025-01 (1/2): 8 rows" in output
    assert "month 2025-02 (2/2): 12 rows" in output
    assert _rows_by_month() == _expected_rows(JANUARY, FEBRUARY)


def test_half_extracted_month_is_read_again(backfill_env, capsys):
    """A window that lacks one sObject's watermark (a run killed part-way) is not skipped."""
    org, instance = backfill_env
    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-02"]) == 0
    capsys.readouterr()
    with open_database(settings.tenant_database_path(TENANT)) as conn:
        conn.execute(
            "DELETE FROM _watermarks WHERE sobject = 'Task' AND window_key = ?",
            [JANUARY],
        )

    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-02"]) == 0
    output = capsys.readouterr().out
    assert "month 2025-01 (1/2): already extracted" not in output
    assert "month 2025-02 (2/2): already extracted, skipped" in output
    assert _rows_by_month() == _expected_rows(JANUARY, FEBRUARY)


def test_only_month_half_extracted_is_read_again(backfill_env, capsys):
    """The file contains one month, which lacks an sObject, so the month is not done."""
    org, instance = backfill_env
    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-01"]) == 0
    capsys.readouterr()
    with open_database(settings.tenant_database_path(TENANT)) as conn:
        conn.execute("DELETE FROM _watermarks WHERE sobject = 'Task'")

    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-01"]) == 0
    output = capsys.readouterr().out
    assert "already extracted" not in output
    assert "month 2025-01 (1/1): 8 rows" in output


def test_full_refresh_reads_every_month_again(backfill_env, capsys):
    org, instance = backfill_env
    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-03"]) == 0
    capsys.readouterr()

    queries_before = len(org.soql_log)
    assert (
        main(
            [
                "backfill",
                TENANT,
                "--from",
                "2025-01",
                "--to",
                "2025-03",
                "--full-refresh",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    assert "already extracted" not in output
    assert "3 months extracted, 0 skipped" in output
    lowers = sorted(_lower_bounds(org.soql_log[queries_before:]))
    assert lowers == [
        "2025-01-01T00:00:00Z",
        "2025-02-01T00:00:00Z",
        "2025-03-01T00:00:00Z",
    ]
    assert _rows_by_month() == _expected_rows(JANUARY, FEBRUARY, MARCH)
    assert len(_backfill_runs(instance)) == 6


def test_parallel_reads_months_in_one_pass(backfill_env, capsys):
    org, instance = backfill_env
    assert (
        main(
            [
                "backfill",
                TENANT,
                "--from",
                "2025-01",
                "--to",
                "2025-03",
                "--parallel",
                "3",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    # One describe call and two composite query calls for seven objects.
    assert "months 2025-01 to 2025-03: read in one pass, 3 API calls" in output
    assert _rows_by_month() == _expected_rows(JANUARY, FEBRUARY, MARCH)
    # The month runs find their windows sealed and query nothing: one window query per object in all.
    window_queries = [soql for soql, _ in org.soql_log if "SystemModstamp >= " in soql]
    assert len(window_queries) == 7
    assert _lower_bounds(org.soql_log) == {"2025-01-01T00:00:00Z"}
    assert all(
        "SystemModstamp < 2025-04-01T00:00:00Z" in soql for soql in window_queries
    )
    runs = _backfill_runs(instance)
    assert len(runs) == 3
    assert all(run.is_success for run in runs)
    materialized = instance.get_materialized_partitions(
        dg.AssetKey(["raw", "opportunity"])
    )
    assert {f"{month}|{TENANT}" for month in (JANUARY, FEBRUARY, MARCH)} <= materialized


def test_api_limit_stops_cleanly(backfill_env, capsys):
    org, instance = backfill_env
    assert main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-01"]) == 0
    capsys.readouterr()

    org.add_other_app_usage(org.daily_api_limit)
    assert (
        main(["backfill", TENANT, "--from", "2025-01", "--to", "2025-03"])
        == EXIT_STOPPED
    )
    output = capsys.readouterr().out
    assert "month 2025-01 (1/3): already extracted, skipped" in output
    assert "month 2025-02 (2/3): stopped" in output
    assert "2025-03 (3/3)" not in output
    assert "Stopped at the API limit with 2 month(s) left" in output
    assert len(_backfill_runs(instance)) == 2
    assert _rows_by_month() == _expected_rows(JANUARY)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["backfill", "globex"],
            "tenant globex is not a partition of this Dagster instance",
        ),
        (
            ["backfill", TENANT, "--from", "2025-03", "--to", "2025-01"],
            "--from 2025-03 is after --to 2025-01",
        ),
        (
            ["backfill", TENANT, "--from", "2019-01"],
            "month 2019-01 is outside the partitions",
        ),
        (
            ["backfill", TENANT, "--from", "March"],
            "invalid month 'March'; expected YYYY-MM",
        ),
    ],
)
def test_invalid_requests_rejected(backfill_env, capsys, arguments, message):
    assert main(arguments) == 1
    assert message in capsys.readouterr().err


def test_partition_tags_of_backfill_runs():
    """Runs that Dagster creates per partition (UI backfills too) carry the tenant only as a partition tag.

    The tag limit on `routiine/tenant` in deploy/dagster-local.yaml therefore covers
    the CLI's runs and the schedule's runs, but not the runs of a backfill
    launched from the asset page.
    """
    from routiine_pipeline.defs.partitions import tenant_month_partitions

    tags = tenant_month_partitions.get_tags_for_partition_key(f"{JANUARY}|{TENANT}")
    assert tags["dagster/partition/tenant"] == TENANT
    assert tags["dagster/partition/month"] == JANUARY
    assert "routiine/tenant" not in tags


def _id_scans(soql_log: list[tuple[str, bool]]) -> list[str]:
    """Return the queries of full Id reconciliations, which read every Id of an sObject."""
    return [soql for soql, _ in soql_log if soql.startswith("SELECT Id FROM ")]


def test_parallel_backfill_records_delete_check(backfill_env, capsys):
    org, instance = backfill_env
    calls_before = org.data_api_calls
    assert (
        main(
            [
                "backfill",
                TENANT,
                "--from",
                "2025-01",
                "--to",
                "2025-02",
                "--parallel",
                "2",
            ]
        )
        == 0
    )
    output = capsys.readouterr().out
    assert "months 2025-01 to 2025-02: read in one pass, 3 API calls" in output
    with open_database(settings.tenant_database_path(TENANT), read_only=True) as conn:
        checks = conn.execute(
            "SELECT sobject, method FROM _delete_checks ORDER BY 1"
        ).fetchall()
    assert checks == [(sobject, "baseline") for sobject in sorted(EXTRACT_OBJECTS)]

    assert main(["backfill", TENANT, "--from", "2025-03", "--to", "2025-03"]) == 0
    assert "month 2025-03 (1/1): 7 rows, 2 API calls" in capsys.readouterr().out
    assert _id_scans(org.soql_log) == []
    # One describe and two query calls for the pass, two query calls for March.
    assert org.data_api_calls - calls_before == 5


def test_delete_after_parallel_read_caught(backfill_env):
    """A record hard-deleted after the one-pass read is tombstoned by the next /deleted check."""
    org, instance = backfill_env
    read_at = org.clock.now()
    report = backfill_tenant(
        instance,
        TENANT,
        [JANUARY, FEBRUARY],
        parallel=2,
        run_start=read_at,
        progress=lambda line: None,
    )
    assert [result.status for result in report.months] == ["extracted", "extracted"]

    deleted = record_id("Opportunity", 4)
    org.clock.set(read_at + timedelta(minutes=1))
    org.delete("Opportunity", deleted)
    org.purge_recycle_bin("Opportunity")
    # The delete check is due once a day.
    org.clock.set(read_at + timedelta(hours=25))
    report = backfill_tenant(
        instance,
        TENANT,
        [MARCH],
        run_start=org.clock.now(),
        progress=lambda line: None,
    )
    assert [result.status for result in report.months] == ["extracted"]

    assert _id_scans(org.soql_log) == []
    with open_database(settings.tenant_database_path(TENANT), read_only=True) as conn:
        assert conn.execute(
            "SELECT isdeleted, _deleted_at FROM raw_opportunity WHERE id = ?",
            [deleted],
        ).fetchall() == [(True, read_at + timedelta(minutes=1))]
        assert conn.execute(
            "SELECT method, checked_through FROM _delete_checks WHERE sobject = 'Opportunity'"
        ).fetchall() == [("deleted", read_at + timedelta(hours=25))]
