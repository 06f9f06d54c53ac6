"""Conversion of malformed JSON values: NULL and a problem, never a failed pass."""

from datetime import UTC, datetime

import pytest

from routiine_pipeline.extract.records import convert_record
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS

OPPORTUNITY = STANDARD_SCHEMAS["Opportunity"]
FIELDS = [
    OPPORTUNITY.field_named(name)
    for name in (
        "Id",
        "SystemModstamp",
        "LastModifiedDate",
        "Amount",
        "CloseDate",
        "Probability",
        "IsClosed",
    )
]
STAMP = "2024-03-01T10:00:00.000+0000"


def _record(**values) -> dict:
    return {"Id": "006000000000001AAA", "SystemModstamp": STAMP, **values}


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("LastModifiedDate", 1709287200, "is not a datetime string"),
        ("CloseDate", 20240301, "is not a date string"),
        ("CloseDate", "2024-13-45", "month must be in 1..12"),
        ("Amount", "12abc", "could not convert string to float: '12abc'"),
        ("Amount", True, "is a boolean where a number was expected"),
        ("Amount", 1e400, "is not a finite number"),
        (
            "Probability",
            {"nested": 1},
            "float() argument must be a string or a real number, not 'dict'",
        ),
        ("IsClosed", "yes", "is not a boolean"),
    ],
)
def test_bad_value_becomes_null_and_problem(field, value, reason):
    row, problems = convert_record("Opportunity", _record(**{field: value}), FIELDS)
    assert row[field.lower()] is None
    assert [(p.field, p.value, p.reason) for p in problems] == [(field, value, reason)]
    assert row["systemmodstamp"] == datetime(2024, 3, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("stamp", [1709287200, "yesterday", None])
def test_unreadable_systemmodstamp_skips_record(stamp):
    with pytest.raises(ValueError, match="SystemModstamp"):
        convert_record("Opportunity", _record(SystemModstamp=stamp), FIELDS)


def test_fifteen_character_id_stored_as_eighteen():
    row, problems = convert_record("Opportunity", _record(Id="006000000000001"), FIELDS)
    assert row["id"] == "006000000000001AAA"
    assert problems == []


@pytest.mark.parametrize(
    "bad_id", ["006000000000001ZZZ", "006-00000000001", "", None, 6]
)
def test_invalid_id_skips_record(bad_id):
    with pytest.raises(ValueError, match="without a valid Id"):
        convert_record("Opportunity", _record(Id=bad_id), FIELDS)
