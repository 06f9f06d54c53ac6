"""Hard deletes through /deleted and full Id reconciliation, soft deletes and undeletes.

Each test extracts from the emulator over HTTP into a real DuckDB file, changes
the org, moves the frozen clock and runs the delete check, then reads the raw
table and the emulator's call counts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from emulated_org import START, emulated_org, record, record_id, utc

from routiine_pipeline.extract.deletes import DeleteCheck
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.storage.warehouse import open_database

OPPORTUNITY = "Opportunity"
NO_LAG = ExtractSettings(lag=timedelta(0), restart_backoff=0.0)
WINDOWS = (MonthWindow.from_key("2024-02-01"), MonthWindow.from_key("2024-03-01"))
DAY = timedelta(days=1)


def _load(env, count: int = 4) -> None:
    env.org.load(
        {
            OPPORTUNITY: [
                record(OPPORTUNITY, n, utc(2024, 2, 29, 12, n))
                for n in range(1, count + 1)
            ]
        }
    )


def _extract(env, run_start: datetime, windows=WINDOWS):
    return env.extract(run_start, windows=windows, settings=NO_LAG)[OPPORTUNITY]


def _check(
    env,
    run_start: datetime,
    pass_started: datetime | None = None,
    sobjects=(OPPORTUNITY,),
):
    with open_database(env.database) as conn:
        check = DeleteCheck(
            env.client(),
            conn,
            tenant="acme",
            run_start=run_start,
            pass_started=pass_started or datetime.now(UTC),
        )
        return check.run(list(sobjects))


def _row(env, number: int) -> tuple:
    return env.rows(
        "SELECT isdeleted, _deleted_at, systemmodstamp FROM raw_opportunity WHERE id = ?",
        [record_id(OPPORTUNITY, number)],
    )[0]


def _first_pass(env) -> None:
    """Extract at START and run the first check, which only sets the baseline."""
    _load(env)
    started = datetime.now(UTC)
    _extract(env, START)
    outcome = _check(env, START, started)[OPPORTUNITY]
    assert outcome.method == "baseline"


def test_first_check_sets_baseline_without_call(tmp_path):
    with emulated_org(tmp_path) as env:
        _load(env)
        started = datetime.now(UTC)
        _extract(env, START)
        calls = env.calls()
        outcome = _check(env, START, started)[OPPORTUNITY]
        assert outcome.method == "baseline"
        assert env.calls() == calls
        assert env.rows("SELECT method, checked_through FROM _delete_checks") == [
            ("baseline", START)
        ]


def test_rows_older_than_first_check_reconciled(tmp_path):
    with emulated_org(tmp_path) as env:
        _load(env)
        _extract(env, START)
        env.org.delete(
            OPPORTUNITY, record_id(OPPORTUNITY, 2), at=START + timedelta(minutes=5)
        )
        env.org.purge_recycle_bin(OPPORTUNITY, at=START + timedelta(minutes=6))
        env.clock.set(START + timedelta(hours=1))
        outcome = _check(env, START + timedelta(hours=1))[OPPORTUNITY]
        assert outcome.method == "reconcile"
        assert outcome.reason == "rows stored before any delete check"
        assert outcome.tombstoned == 1
        assert _row(env, 2)[:2] == (True, START + timedelta(hours=1))


@pytest.mark.parametrize(
    ("soft_deleted", "purged", "tombstoned", "deleted_at"),
    [
        ((1,), (1,), 1, {1: START + timedelta(hours=2)}),
        (
            (1, 2),
            (1, 2),
            2,
            {1: START + timedelta(hours=2), 2: START + timedelta(hours=2, minutes=1)},
        ),
        ((3,), (), 1, {3: START + timedelta(hours=2, minutes=2)}),
        ((), (), 0, {}),
    ],
)
def test_deleted_log_tombstones_rows(
    tmp_path, soft_deleted, purged, tombstoned, deleted_at
):
    with emulated_org(tmp_path) as env:
        _first_pass(env)
        for number in soft_deleted:
            env.org.delete(
                OPPORTUNITY,
                record_id(OPPORTUNITY, number),
                at=START + timedelta(hours=2, minutes=number - 1),
            )
        for number in purged:
            env.org.purge_recycle_bin(OPPORTUNITY, at=START + timedelta(hours=3))
        now = START + DAY + timedelta(hours=1)
        env.clock.set(now)
        calls = env.calls()

        outcome = _check(env, now)[OPPORTUNITY]

        assert env.calls() == calls + 1
        assert outcome.method == "deleted"
        assert outcome.start == "2024-03-01T09:55:00Z"
        assert outcome.end == "2024-03-02T11:00:00Z"
        assert outcome.reported == len(soft_deleted)
        assert outcome.tombstoned == tombstoned
        for number, moment in deleted_at.items():
            assert _row(env, number) == (True, moment, moment)
        live = {1, 2, 3, 4} - set(deleted_at)
        for number in live:
            assert _row(env, number)[:2] == (False, None)
        assert env.rows("SELECT method, checked_through FROM _delete_checks") == [
            ("deleted", now.replace(second=0))
        ]


def test_check_runs_once_per_day(tmp_path):
    with emulated_org(tmp_path) as env:
        _first_pass(env)
        calls = env.calls()
        for hours, method in (
            (1, "not_due"),
            (23, "not_due"),
            (24, "deleted"),
            (30, "not_due"),
            (48, "deleted"),
        ):
            now = START + timedelta(hours=hours)
            env.clock.set(now)
            assert _check(env, now)[OPPORTUNITY].method == method
        assert env.calls() == calls + 2


def test_seven_objects_share_one_call(tmp_path):
    sobjects = (
        "User",
        "Account",
        "Contact",
        "Opportunity",
        "OpportunityHistory",
        "Task",
        "Event",
    )
    with emulated_org(tmp_path) as env:
        started = datetime.now(UTC)
        env.extract(START, sobjects=sobjects, settings=NO_LAG)
        _check(env, START, started, sobjects)
        now = START + DAY
        env.clock.set(now)
        calls = env.calls()
        outcomes = _check(env, now, sobjects=sobjects)
        assert env.calls() == calls + 1
        assert {outcome.method for outcome in outcomes.values()} == {"deleted"}
        assert [outcome.error for outcome in outcomes.values()] == [None] * 7


@pytest.mark.parametrize(
    ("gap", "log_purged", "reason"),
    [
        (
            timedelta(days=16),
            False,
            "last check through 2024-03-01T10:00:00Z is beyond the 15-day delete log",
        ),
        (
            timedelta(days=2),
            True,
            "delete log starts at 2024-03-02T09:00:00Z, after the requested 2024-03-01T09:55:00Z: entries were purged",
        ),
    ],
)
def test_gap_triggers_id_reconciliation(tmp_path, gap, log_purged, reason):
    with emulated_org(tmp_path) as env:
        _first_pass(env)
        env.org.delete(
            OPPORTUNITY, record_id(OPPORTUNITY, 1), at=START + timedelta(hours=1)
        )
        env.org.delete(
            OPPORTUNITY, record_id(OPPORTUNITY, 4), at=START + timedelta(hours=1)
        )
        env.org.purge_recycle_bin(OPPORTUNITY, at=START + timedelta(hours=2))
        env.org.delete(
            OPPORTUNITY, record_id(OPPORTUNITY, 2), at=START + timedelta(hours=3)
        )
        if log_purged:
            env.org.purge_delete_log(START + timedelta(hours=23), OPPORTUNITY)
        now = START + gap
        env.clock.set(now)
        calls = env.calls()

        outcome = _check(env, now)[OPPORTUNITY]

        assert outcome.method == "reconcile"
        assert outcome.reason == reason
        assert outcome.error is None
        assert outcome.tombstoned == 2
        assert _row(env, 1)[:2] == (True, now)
        assert _row(env, 4)[:2] == (True, now)
        # Record 2 is still in the recycle bin, so queryAll returns its Id; the next pass reads its soft delete.
        assert _row(env, 2)[:2] == (False, None)
        assert env.calls() == calls + (2 if log_purged else 1)
        assert env.rows("SELECT method, checked_through FROM _delete_checks") == [
            ("reconcile", now)
        ]


def test_id_reconciliation_pages_and_batches(tmp_path):
    with emulated_org(tmp_path, page_size=200) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, n, utc(2024, 2, 29, 12, 0))
                    for n in range(1, 1_001)
                ]
            }
        )
        _extract(env, START)
        for number in (5, 500, 1_000):
            env.org.delete(
                OPPORTUNITY,
                record_id(OPPORTUNITY, number),
                at=START + timedelta(minutes=1),
            )
        env.org.purge_recycle_bin(OPPORTUNITY, at=START + timedelta(minutes=2))
        env.clock.set(START + timedelta(hours=1))
        calls = env.calls()
        outcome = _check(env, START + timedelta(hours=1))[OPPORTUNITY]
        assert outcome.tombstoned == 3
        assert env.calls() == calls + 5
        assert env.rows(
            "SELECT count(*) FROM raw_opportunity WHERE _deleted_at IS NOT NULL"
        ) == [(3,)]


def test_incomplete_id_scan_tombstones_nothing(tmp_path):
    with emulated_org(tmp_path, page_size=200) as env:
        env.org.load(
            {
                OPPORTUNITY: [
                    record(OPPORTUNITY, n, utc(2024, 2, 29, 12, 0))
                    for n in range(1, 601)
                ]
            }
        )
        _extract(env, START)
        env.org.inject_fault("skip_page", path_contains="/query/")
        env.clock.set(START + timedelta(hours=1))
        outcome = _check(env, START + timedelta(hours=1))[OPPORTUNITY]
        assert outcome.tombstoned == 0
        assert (
            "Id scan read 400 distinct Ids but the query reported totalSize 600"
            in outcome.error
        )
        assert env.rows(
            "SELECT count(*) FROM raw_opportunity WHERE _deleted_at IS NOT NULL"
        ) == [(0,)]
        assert env.rows("SELECT method, checked_through FROM _delete_checks") == [
            ("failed", None)
        ]


@pytest.mark.parametrize("tombstoned_by", ["queryAll", "deleted"])
def test_undeleted_record_comes_back(tmp_path, tombstoned_by):
    with emulated_org(tmp_path) as env:
        _first_pass(env)
        deleted_at = START + timedelta(minutes=30)
        env.org.delete(OPPORTUNITY, record_id(OPPORTUNITY, 3), at=deleted_at)
        env.clock.set(START + DAY)
        if tombstoned_by == "queryAll":
            assert _extract(env, START + DAY).deleted == 1
        else:
            assert _check(env, START + DAY)[OPPORTUNITY].tombstoned == 1
        assert _row(env, 3) == (True, deleted_at, deleted_at)

        restored_at = START + DAY + timedelta(minutes=10)
        env.org.undelete(OPPORTUNITY, record_id(OPPORTUNITY, 3), at=restored_at)
        env.clock.set(START + DAY + timedelta(hours=1))
        outcome = _extract(env, START + DAY + timedelta(hours=1))

        assert outcome.received >= 1
        assert _row(env, 3) == (False, None, restored_at)


def test_stale_log_entry_ignored_after_undelete(tmp_path):
    with emulated_org(tmp_path) as env:
        _first_pass(env)
        from routiine_pipeline.storage.raw_writer import tombstone_rows

        with open_database(env.database) as conn:
            changed = tombstone_rows(
                conn, OPPORTUNITY, {record_id(OPPORTUNITY, 1): utc(2024, 2, 29, 11, 0)}
            )
        assert changed == 0
        assert _row(env, 1)[:2] == (False, None)


@pytest.mark.parametrize(
    ("start", "end", "status", "body"),
    [
        (
            "2024-02-14T10:00:00Z",
            "2024-03-01T10:00:00Z",
            400,
            "start date cannot be more than 15 days ago",
        ),
        (
            "2024-03-01T09:59:30Z",
            "2024-03-01T10:00:00Z",
            400,
            "start date must be at least one minute before the end date",
        ),
        ("2024-02-15T10:30:00Z", "2024-03-01T12:00:00Z", 200, None),
    ],
)
def test_emulator_deleted_window_rules(tmp_path, start, end, status, body):
    with emulated_org(tmp_path) as env:
        _load(env)
        env.org.delete(
            OPPORTUNITY, record_id(OPPORTUNITY, 1), at=START - timedelta(hours=1)
        )
        env.org.purge_recycle_bin(OPPORTUNITY)
        client = env.client()
        path = f"{client.data_path}/sobjects/Opportunity/deleted/"
        response = env.sessions[-1].get(
            env.url + path,
            params={"start": start, "end": end},
            headers={"Authorization": f"Bearer {client.tokens.access_token()}"},
        )
        assert response.status_code == status
        if status != 200:
            assert response.json() == [
                {"message": body, "errorCode": "INVALID_REPLICATION_DATE"}
            ]
            return
        assert response.json() == {
            "deletedRecords": [
                {
                    "id": record_id(OPPORTUNITY, 1),
                    "deletedDate": "2024-03-01T09:00:00.000+0000",
                }
            ],
            "earliestDateAvailable": "2024-02-15T10:00:00.000+0000",
            "latestDateCovered": "2024-03-01T10:00:00.000+0000",
        }
        assert env.org.get(OPPORTUNITY, record_id(OPPORTUNITY, 1)) is None
