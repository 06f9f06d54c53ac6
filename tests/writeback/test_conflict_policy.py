"""The writer can only send Routiine-owned fields: generated payloads and a full run's write log."""

from __future__ import annotations

import random

import pytest
from sf_world import load_opportunities, set_scores, write_back

from routiine_pipeline.mapping import WRITEBACK_FIELDS
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.writeback.changes import (
    Change,
    ConflictPolicyError,
    build_payload,
    check_payload,
)

ALLOWED = {"attributes", "id", *WRITEBACK_FIELDS}
OPPORTUNITY_FIELDS = [spec.name for spec in STANDARD_SCHEMAS["Opportunity"].fields]


def _random_values(rng: random.Random) -> dict:
    names = rng.sample(
        OPPORTUNITY_FIELDS + ["Foo__c", "momentum_score__c", "ID"], rng.randint(1, 6)
    )
    return {name: rng.choice([1.5, "text", None, True]) for name in names}


def test_generated_payloads_never_leak():
    rng = random.Random(20240301)
    for _ in range(2_000):
        values = _random_values(rng)
        record = {
            "attributes": {"type": "Opportunity"},
            "id": "006000000000001AAA",
            **values,
        }
        if set(values) <= set(WRITEBACK_FIELDS):
            check_payload(record)
            continue
        with pytest.raises(ConflictPolicyError) as raised:
            check_payload(record)
        for name in sorted(set(values) - set(WRITEBACK_FIELDS)):
            assert name in str(raised.value)


def test_built_payload_keys_exact():
    rng = random.Random(7)
    for number in range(500):
        change = Change(
            f"006{number:012d}AAA",
            {
                "Momentum_Score__c": float(rng.randint(0, 100)),
                "Next_Best_Action__c": "Call",
            },
            False,
        )
        assert set(build_payload(change)) == ALLOWED


def test_change_with_foreign_field_rejected():
    change = Change(
        "006000000000001AAA",
        {"Momentum_Score__c": 1.0, "StageName": "Closed Won"},
        False,
    )
    with pytest.raises(ConflictPolicyError, match="StageName"):
        build_payload(change)


def test_write_log_only_routiine_fields(world):
    ids = load_opportunities(world, 250)
    set_scores(
        world, {deal: (n % 101, f"Action {n % 7}") for n, deal in enumerate(ids)}
    )
    write_back(world, run_id="full")
    log = world.org.write_log
    assert len(log) == 2
    for entry in log:
        assert entry["body"]["allOrNone"] is False
        for record in entry["body"]["records"]:
            assert set(record) == ALLOWED
            assert record["attributes"] == {"type": "Opportunity"}
