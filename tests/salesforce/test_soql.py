from datetime import UTC, datetime, timedelta, timezone

import pytest

from routiine_pipeline.salesforce.soql import soql_datetime, window_query

NEW_YORK = timezone(timedelta(hours=-5))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 3, 1, 10, 0, tzinfo=UTC), "2024-03-01T10:00:00Z"),
        (datetime(2024, 3, 1, 5, 0, tzinfo=NEW_YORK), "2024-03-01T10:00:00Z"),
        (datetime(2021, 8, 11, 12, 52, 8, 62712, tzinfo=UTC), "2021-08-11T12:52:08Z"),
        (
            datetime.fromisoformat("2024-03-01T10:00:00.000+00:00"),
            "2024-03-01T10:00:00Z",
        ),
    ],
)
def test_soql_datetime_is_utc_whole_seconds(value, expected):
    assert soql_datetime(value) == expected


def test_soql_datetime_rejects_naive_values():
    with pytest.raises(ValueError, match="naive datetime"):
        soql_datetime(datetime(2024, 3, 1, 10, 0))


def test_window_query_shape():
    soql = window_query(
        "Opportunity",
        ["Name", "StageName", "Id"],
        lower=datetime(2024, 3, 1, 9, 55, tzinfo=UTC),
        upper=datetime(2024, 3, 1, 10, 14, tzinfo=UTC),
    )
    assert soql == (
        "SELECT Id, SystemModstamp, IsDeleted, Name, StageName FROM Opportunity "
        "WHERE SystemModstamp >= 2024-03-01T09:55:00Z AND SystemModstamp < 2024-03-01T10:14:00Z "
        "ORDER BY SystemModstamp ASC, Id ASC"
    )


def test_window_query_without_bounds():
    assert window_query("Account", ["Name"], lower=None, upper=None) == (
        "SELECT Id, SystemModstamp, IsDeleted, Name FROM Account ORDER BY SystemModstamp ASC, Id ASC"
    )
