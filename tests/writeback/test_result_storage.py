"""Stored SaveResults: exact table contents for mixed batches, and a fixed statement count per batch."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import duckdb
import pytest
from sf_world import (
    TENANT,
    load_opportunities,
    patches,
    set_scores,
    start_world,
    write_back,
)

from routiine_pipeline.writeback.changes import Change, ensure_tables, pending_changes
from routiine_pipeline.writeback.queue import RetrySettings, ensure_queue
from routiine_pipeline.writeback.results import (
    BATCH_VIEW,
    RecordResult,
    decide_result,
    store_results,
)
from routiine_pipeline.writeback.writer import send_changes

LOCK_ERRORS = [
    {
        "statusCode": "UNABLE_TO_LOCK_ROW",
        "message": "unable to obtain exclusive access to this record",
        "fields": [],
    }
]
VALIDATION_ERRORS = [
    {
        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "Close Date cannot be in the past for open opportunities",
        "fields": ["CloseDate"],
    },
    {
        "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        "message": "Next Step is required in Proposal stage",
        "fields": ["NextStep"],
    },
]
DELETED_ERRORS = [
    {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}
]
SETTINGS = RetrySettings(
    base_backoff=timedelta(seconds=1), alert_after=2, max_permanent_attempts=2
)


# Errors the emulator returns on the first attempt of each kind of record.
FIRST_ERRORS = {
    "success": [],
    "lock_once": LOCK_ERRORS,
    "lock_stubborn": LOCK_ERRORS,
    "validation": VALIDATION_ERRORS,
    "deleted": DELETED_ERRORS,
}
KINDS = {
    "lock_once": "transient",
    "lock_stubborn": "transient",
    "validation": "permanent",
    "deleted": "deleted",
}


def _case(number: int) -> str:
    """Return what happens to the record at this position of the mixed cycle."""
    return {1: "lock_once", 3: "lock_stubborn", 5: "validation", 7: "deleted"}.get(
        number % 10, "success"
    )


def _values(number: int) -> str:
    """Return the JSON the log and the queue store for this record's values."""
    return (
        f'{{"Momentum_Score__c": {float(number % 101)}, '
        f'"Next_Best_Action__c": "Action {number % 7}"}}'
    )


def _log_row(run_id, record_id, number, attempt, errors, at) -> tuple:
    first = errors[0] if errors else {}
    return (
        TENANT,
        run_id,
        record_id,
        _values(number),
        attempt,
        not errors,
        first.get("statusCode"),
        first.get("message"),
        json.dumps(first.get("fields", [])),
        json.dumps(errors),
        at,
    )


def _state_row(record_id, number, at) -> tuple:
    return (record_id, float(number % 101), f"Action {number % 7}", at)


def _queue_row(record_id, number, case, attempts, next_at, updated_at) -> tuple:
    errors = FIRST_ERRORS[case]
    return (
        record_id,
        _values(number),
        attempts,
        KINDS[case],
        errors[0]["statusCode"],
        json.dumps(errors),
        next_at,
        updated_at,
    )


def _tables(world) -> dict[str, list[tuple]]:
    # rowid follows insertion order, so the log rows show the order they were stored in.
    with world.duck(read_only=True) as conn:
        return {
            "log": conn.execute(
                "SELECT * FROM writeback_log ORDER BY rowid"
            ).fetchall(),
            "state": conn.execute(
                "SELECT * FROM writeback_state ORDER BY record_id"
            ).fetchall(),
            "queue": conn.execute(
                "SELECT * FROM writeback_queue ORDER BY record_id"
            ).fetchall(),
        }


def test_mixed_cycles_stored_exactly(world):
    """450 records in three calls mix successes, lock errors, validation errors and deleted records.

    A second cycle retries the due records: one-off locks succeed, stubborn
    locks fail again, validation errors run out of attempts and deleted
    records stay held.
    """
    ids = load_opportunities(world, 450)
    set_scores(
        world, {deal: (n % 101, f"Action {n % 7}") for n, deal in enumerate(ids)}
    )
    cases = {deal: _case(n) for n, deal in enumerate(ids)}
    numbers = {deal: n for n, deal in enumerate(ids)}
    for deal, case in cases.items():
        if case == "lock_once":
            world.org.inject_record_fault(deal, errors=LOCK_ERRORS, count=1)
        elif case == "lock_stubborn":
            world.org.inject_record_fault(deal, errors=LOCK_ERRORS, count=10)
        elif case == "validation":
            world.org.inject_record_fault(deal, errors=VALIDATION_ERRORS, count=10)
        elif case == "deleted":
            world.org.delete("Opportunity", deal)
    failing = [deal for deal in ids if cases[deal] != "success"]
    first_at = world.clock.now()

    first = write_back(world, run_id="c1", retry=SETTINGS)

    assert [len(batch) for batch in patches(world)] == [200, 200, 50]
    assert (first.sent, first.calls, first.succeeded) == (450, 3, 270)
    assert (first.transient, first.failed, first.dropped_deleted) == (90, 45, 45)
    assert first.alerts == []
    expected_log = [
        _log_row("c1", deal, numbers[deal], 1, FIRST_ERRORS[cases[deal]], first_at)
        for deal in ids
    ]
    expected_state = [
        _state_row(deal, numbers[deal], first_at)
        for deal in ids
        if cases[deal] == "success"
    ]
    retry_at = first_at + timedelta(seconds=1)
    first_queue = {
        "lock_once": (1, retry_at, first_at),
        "lock_stubborn": (1, retry_at, first_at),
        "validation": (1, retry_at, first_at),
        "deleted": (1, None, first_at),
    }
    expected_queue = [
        _queue_row(deal, numbers[deal], cases[deal], *first_queue[cases[deal]])
        for deal in failing
    ]
    tables = _tables(world)
    assert tables["log"] == expected_log
    assert tables["state"] == expected_state
    assert tables["queue"] == expected_queue

    world.clock.advance(1)
    second_at = world.clock.now()
    world.org.clear_write_log()
    second = write_back(world, run_id="c2", retry=SETTINGS)

    retried = [deal for deal in failing if cases[deal] != "deleted"]
    assert patches(world) == [retried]
    assert (second.sent, second.succeeded, second.held_after_failure) == (135, 45, 45)
    assert (second.transient, second.failed, second.dropped_deleted) == (45, 45, 0)
    assert [alert["record_id"] for alert in second.alerts] == [
        deal for deal in retried if cases[deal] != "lock_once"
    ]
    retry_from = f"{second_at + timedelta(seconds=2):%Y-%m-%d %H:%M:%S}"
    expected_outcomes = {
        "lock_stubborn": f"still failing after 2 attempts; retried from {retry_from} UTC",
        "validation": "gave up after 2 attempts; sent again only when the value changes",
    }
    for alert in second.alerts:
        assert alert["outcome"] == expected_outcomes[cases[alert["record_id"]]]
        assert alert["attempt"] == 2

    second_errors = dict(FIRST_ERRORS, lock_once=[])
    expected_log += [
        _log_row("c2", deal, numbers[deal], 2, second_errors[cases[deal]], second_at)
        for deal in retried
    ]
    expected_state = sorted(
        expected_state
        + [
            _state_row(deal, numbers[deal], second_at)
            for deal in ids
            if cases[deal] == "lock_once"
        ]
    )
    second_queue = {
        "lock_stubborn": (2, second_at + timedelta(seconds=2), second_at),
        "validation": (2, None, second_at),
        "deleted": (1, None, first_at),
    }
    expected_queue = [
        _queue_row(deal, numbers[deal], cases[deal], *second_queue[cases[deal]])
        for deal in failing
        if cases[deal] in second_queue
    ]
    tables = _tables(world)
    assert tables["log"] == expected_log
    assert tables["state"] == expected_state
    assert tables["queue"] == expected_queue


class CountingConnection:
    """A DuckDB connection that records every statement executed through it."""

    def __init__(self, conn: duckdb.DuckDBPyConnection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def execute(self, query, parameters=None):
        self.statements.append(query)
        return self.conn.execute(query, parameters)

    def __getattr__(self, name):
        return getattr(self.conn, name)


def _send_counting(world, run_id: str):
    client, _ = world.client(run_id=run_id, phase="writeback")
    with world.duck() as conn:
        counting = CountingConnection(conn)
        report = send_changes(
            client,
            counting,
            pending_changes(conn),
            tenant=TENANT,
            run_id=run_id,
            now=world.clock.now(),
            retry=SETTINGS,
        )
    return report, counting.statements


def test_statements_independent_of_batch_size(routiine_home):
    """Storing 200 mixed results runs as many DuckDB statements as storing one."""
    world = start_world()
    try:
        ids = load_opportunities(world, 201)
        set_scores(world, {ids[0]: (10, "Call")})
        single, single_statements = _send_counting(world, "one")

        set_scores(world, {deal: (10, "Call") for deal in ids})
        for deal in ids[1::4]:
            world.org.inject_record_fault(deal, errors=LOCK_ERRORS)
        for deal in ids[2::4]:
            world.org.inject_record_fault(deal, errors=VALIDATION_ERRORS)
        world.org.delete("Opportunity", ids[3])
        full, full_statements = _send_counting(world, "full")
    finally:
        world.server.stop()

    assert (single.sent, single.calls) == (1, 1)
    assert (full.sent, full.calls) == (200, 1)
    assert (full.succeeded, full.transient, full.failed) == (99, 50, 50)
    assert full.dropped_deleted == 1
    assert len(full_statements) == len(single_statements)


NOW = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


def _result(record_id: str, score: float, errors: list[dict], attempt: int = 1):
    change = Change(
        record_id,
        {"Momentum_Score__c": score, "Next_Best_Action__c": "Call"},
        restores_edit=False,
    )
    result = {"id": record_id, "success": not errors, "errors": errors}
    return decide_result(change, attempt, result, now=NOW, retry=SETTINGS)


@pytest.fixture
def duck():
    conn = duckdb.connect()
    ensure_tables(conn)
    ensure_queue(conn)
    yield conn
    conn.close()


def test_repeated_record_last_result_wins(duck):
    """A record twice in one batch ends as if its results were stored one at a time."""
    results: list[RecordResult] = [
        _result("A", 1.0, LOCK_ERRORS),
        _result("A", 2.0, []),
        _result("B", 3.0, []),
        _result("B", 4.0, VALIDATION_ERRORS),
        _result("C", 5.0, []),
        _result("C", 6.0, []),
    ]
    store_results(duck, results, tenant=TENANT, run_id="r", now=NOW)

    logged = duck.execute(
        "SELECT record_id, field_values, success FROM writeback_log ORDER BY rowid"
    ).fetchall()
    assert [(row[0], json.loads(row[1])["Momentum_Score__c"]) for row in logged] == [
        ("A", 1.0),
        ("A", 2.0),
        ("B", 3.0),
        ("B", 4.0),
        ("C", 5.0),
        ("C", 6.0),
    ]
    assert [row[2] for row in logged] == [False, True, True, False, True, True]
    assert duck.execute(
        "SELECT * FROM writeback_state ORDER BY record_id"
    ).fetchall() == [
        ("A", 2.0, "Call", NOW),
        ("B", 3.0, "Call", NOW),
        ("C", 6.0, "Call", NOW),
    ]
    queued = duck.execute(
        "SELECT record_id, field_values, attempts, failure_kind, next_attempt_at "
        "FROM writeback_queue"
    ).fetchall()
    assert queued == [
        (
            "B",
            '{"Momentum_Score__c": 4.0, "Next_Best_Action__c": "Call"}',
            1,
            "permanent",
            NOW + timedelta(seconds=1),
        )
    ]


def test_success_clears_earlier_entry(duck):
    store_results(
        duck, [_result("A", 1.0, LOCK_ERRORS)], tenant=TENANT, run_id="r1", now=NOW
    )
    assert duck.execute("SELECT count(*) FROM writeback_queue").fetchone() == (1,)
    store_results(
        duck, [_result("A", 1.0, [], attempt=2)], tenant=TENANT, run_id="r2", now=NOW
    )
    assert duck.execute("SELECT count(*) FROM writeback_queue").fetchone() == (0,)
    assert duck.execute("SELECT record_id FROM writeback_state").fetchall() == [("A",)]


def test_failed_statement_stores_nothing(duck):
    """A batch whose queue statement fails leaves the log and the state untouched."""
    duck.execute("DROP TABLE writeback_queue")
    results = [_result("A", 1.0, []), _result("B", 2.0, LOCK_ERRORS)]

    with pytest.raises(duckdb.CatalogException, match="writeback_queue"):
        store_results(duck, results, tenant=TENANT, run_id="r", now=NOW)

    assert duck.execute("SELECT count(*) FROM writeback_log").fetchone() == (0,)
    assert duck.execute("SELECT count(*) FROM writeback_state").fetchone() == (0,)
    views = duck.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = ?", [BATCH_VIEW]
    ).fetchone()
    assert views == (0,)


def test_store_after_unfetched_result(duck):
    """A result the caller left unfetched on the connection does not block storing."""
    duck.execute("SELECT * FROM range(10)").fetchone()
    store_results(duck, [_result("A", 1.0, [])], tenant=TENANT, run_id="r", now=NOW)
    assert duck.execute("SELECT record_id FROM writeback_state").fetchall() == [("A",)]
