"""Per-record failures: retries on later cycles, permanent errors alerted once, deleted records dropped."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest
from sf_world import TENANT, load_opportunities, patches, set_scores, write_back

from routiine_pipeline.control.notify import tenant_status
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.defs.writeback import writeback_sensor
from routiine_pipeline.writeback.alerts import send_cycle_alert
from routiine_pipeline.writeback.queue import RetrySettings

LOCK = (
    "UNABLE_TO_LOCK_ROW",
    "unable to obtain exclusive access to this record or 1 records: 001000000000001AAA",
)
FAST = RetrySettings(base_backoff=timedelta(seconds=1))


def _log(world, record_id: str) -> list[tuple]:
    with world.duck() as conn:
        return conn.execute(
            "SELECT attempt, success, status_code, message, error_fields, errors FROM writeback_log "
            "WHERE record_id = ? ORDER BY logged_at, attempt",
            [record_id],
        ).fetchall()


def test_locked_record_retried_later(world):
    ids = load_opportunities(world, 3)
    set_scores(world, {deal: (61, "Confirm budget") for deal in ids})
    world.org.inject_record_fault(ids[1], *LOCK)

    first = write_back(world, run_id="c1", retry=FAST)
    world.clock.advance(0.5)
    early = write_back(world, run_id="c2", retry=FAST)
    world.clock.advance(1.5)
    later = write_back(world, run_id="c3", retry=FAST)

    assert patches(world) == [ids, [ids[1]]]
    log = world.org.write_log
    assert (log[1]["at"] - log[0]["at"]).total_seconds() >= 1
    assert (first.succeeded, first.transient, early.waiting_retry, later.succeeded) == (
        2,
        1,
        1,
        1,
    )
    with world.duck() as conn:
        assert conn.execute(
            "SELECT count(*) FROM writeback_log WHERE success"
        ).fetchone() == (3,)
        assert conn.execute("SELECT count(*) FROM writeback_queue").fetchone() == (0,)
    assert [row[:3] for row in _log(world, ids[1])] == [
        (1, False, "UNABLE_TO_LOCK_ROW"),
        (2, True, None),
    ]


def test_still_locked_left_pending(world):
    ids = load_opportunities(world, 3)
    set_scores(world, {deal: (61, "Confirm budget") for deal in ids})
    world.org.inject_record_fault(ids[1], *LOCK, count=5)

    reports = []
    for cycle, wait in enumerate([0, 1, 2], start=1):
        world.clock.advance(wait)
        reports.append(write_back(world, run_id=f"c{cycle}", retry=FAST))

    assert patches(world) == [ids, [ids[1]], [ids[1]]]
    assert [len(report.alerts) for report in reports] == [0, 0, 1]
    with world.duck() as conn:
        attempts, next_at = conn.execute(
            "SELECT attempts, next_attempt_at FROM writeback_queue WHERE record_id = ?",
            [ids[1]],
        ).fetchone()
    assert attempts == 3
    assert next_at == world.clock.now() + timedelta(seconds=4)
    assert tenant_status(world.store, TENANT)["pending_writeback_retries"] == 1


def test_validation_errors_all_stored(world):
    """One update trips two validation rules; both errors are stored and alerted with their fields."""
    ids = load_opportunities(world, 5)
    set_scores(world, {deal: (72, "Update close date") for deal in ids})
    errors = [
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
    world.org.inject_record_fault(ids[4], errors=errors, count=5)

    report = write_back(
        world, run_id="c1", retry=RetrySettings(max_permanent_attempts=1)
    )
    note = send_cycle_alert(world.store, TENANT, report.alerts, run_id="c1")

    assert len(patches(world)) == 1
    assert (report.succeeded, report.failed) == (4, 1)
    attempt, success, code, message, fields, stored = _log(world, ids[4])[0]
    assert (attempt, success, code, json.loads(fields)) == (
        1,
        False,
        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
        ["CloseDate"],
    )
    assert json.loads(stored) == errors
    with world.duck() as conn:
        assert conn.execute(
            "SELECT count(*) FROM writeback_state WHERE record_id = ?", [ids[4]]
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM writeback_state").fetchone() == (4,)
    assert (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Close Date cannot be in the past for open opportunities (fields: CloseDate)"
        in note.message
    )
    assert (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: Next Step is required in Proposal stage (fields: NextStep)"
        in note.message
    )


PERMANENT = [
    ("INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id", []),
    (
        "INVALID_FIELD",
        "No such column 'Momentum_Score__c' on sobject of type Opportunity",
        ["Momentum_Score__c"],
    ),
    (
        "STRING_TOO_LONG",
        "Next Best Action: data value too large: xxx (max length=255)",
        ["Next_Best_Action__c"],
    ),
    ("FIELD_CUSTOM_VALIDATION_EXCEPTION", "Amount must be positive", ["Amount"]),
]


@pytest.mark.parametrize(("code", "message", "fields"), PERMANENT)
def test_permanent_failure_retried_then_held(world, code, message, fields):
    ids = load_opportunities(world, 2)
    set_scores(world, {deal: (30, "Re-engage") for deal in ids})
    world.org.inject_record_fault(ids[0], code, message, fields, count=10)
    settings = RetrySettings(
        base_backoff=timedelta(seconds=1), max_permanent_attempts=2
    )

    first = write_back(world, run_id="c1", retry=settings)
    world.clock.advance(1)
    second = write_back(world, run_id="c2", retry=settings)
    world.clock.advance(3600)
    third = write_back(world, run_id="c3", retry=settings)

    assert patches(world) == [ids, [ids[0]]]
    assert (len(first.alerts), len(second.alerts), len(third.alerts)) == (0, 1, 0)
    assert second.alerts[0]["errors"] == [
        {"statusCode": code, "message": message, "fields": fields}
    ]
    assert third.held_after_failure == 1

    set_scores(world, {ids[0]: (31, "Re-engage")})  # a new value gets fresh attempts
    world.org.clear_faults()
    fourth = write_back(world, run_id="c4", retry=settings)
    assert fourth.succeeded == 1


def test_string_too_long_from_salesforce(world):
    ids = load_opportunities(world, 1)
    set_scores(world, {ids[0]: (50, "x" * 300)})
    report = write_back(
        world, run_id="c1", retry=RetrySettings(max_permanent_attempts=1)
    )
    assert report.alerts[0]["errors"][0]["statusCode"] == "STRING_TOO_LONG"
    assert report.alerts[0]["errors"][0]["fields"] == ["Next_Best_Action__c"]


def test_deleted_record_dropped(world, caplog):
    ids = load_opportunities(world, 2)
    set_scores(world, {deal: (45, "Qualify") for deal in ids})
    world.org.delete("Opportunity", ids[0])
    with caplog.at_level("INFO"):
        first = write_back(world, run_id="c1")
    world.clock.advance(7200)
    second = write_back(world, run_id="c2")
    assert patches(world) == [ids]
    assert (first.dropped_deleted, first.failed, first.alerts) == (1, 0, [])
    assert second.calls == 0
    assert (
        f"Opportunity {ids[0]} was deleted in Salesforce; its write-back is dropped"
        in caplog.text
    )


def test_server_error_retried_later(world):
    ids = load_opportunities(world, 2)
    set_scores(world, {deal: (45, "Qualify") for deal in ids})
    world.org.inject_fault("http_503", path_contains="/composite/sobjects", count=3)
    first = write_back(world, run_id="c1", retry=FAST)
    world.clock.advance(1)
    second = write_back(world, run_id="c2", retry=FAST)
    assert first.transient == 2
    assert second.succeeded == 2
    assert _log(world, ids[0])[0][2] == "SERVER_UNAVAILABLE"


def test_alerts_grouped_per_cycle(world):
    ids = load_opportunities(world, 4)
    set_scores(world, {deal: (20, "Escalate") for deal in ids})
    for record_id in ids[:3]:
        world.org.inject_record_fault(
            record_id,
            "INSUFFICIENT_ACCESS_OR_READONLY",
            "insufficient access rights on object id",
            count=10,
        )
    settings = RetrySettings(max_permanent_attempts=1)
    report = write_back(world, run_id="c1", retry=settings)
    send_cycle_alert(world.store, TENANT, report.alerts, run_id="c1")
    world.clock.advance(7200)
    again = write_back(world, run_id="c2", retry=settings)
    send_cycle_alert(world.store, TENANT, again.alerts, run_id="c2")

    notes = [
        n
        for n in world.store.notifications(TENANT)
        if n["kind"] == "writeback_failures"
    ]
    assert len(notes) == 1
    for record_id in ids[:3]:
        assert record_id in notes[0]["message"]
    status = tenant_status(world.store, TENANT)
    assert status["latest_alert"]["records"] == 3
    assert status["latest_alert"]["run_id"] == "c1"


def test_sensor_fires_for_due_retries(world):
    ids = load_opportunities(world, 2)
    set_scores(world, {deal: (45, "Qualify") for deal in ids})
    world.org.inject_record_fault(ids[0], *LOCK)
    # The emulator's clock is set in 2024, so a retry due one second later is due by the wall clock.
    write_back(world, run_id="c1", retry=FAST)
    calls = world.org.data_api_calls
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, [TENANT])
        result = writeback_sensor(dg.build_sensor_context(instance=instance))
    assert [request.partition_key for request in result] == [TENANT]
    assert result[0].run_key.startswith(f"writeback-retry-{TENANT}-")
    assert world.org.data_api_calls == calls


def test_sensor_skips_when_retry_not_due(world):
    ids = load_opportunities(world, 2)
    set_scores(world, {deal: (45, "Qualify") for deal in ids})
    world.org.inject_record_fault(ids[0], *LOCK)
    far = timedelta(days=365 * 50)  # due long after the wall clock's now
    write_back(
        world, run_id="c1", retry=RetrySettings(base_backoff=far, max_backoff=far)
    )
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(tenant_partitions.name, [TENANT])
        result = writeback_sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SkipReason)
