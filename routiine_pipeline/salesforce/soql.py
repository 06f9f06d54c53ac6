"""SOQL building: field lists, SystemModstamp windows and datetime literals."""

from __future__ import annotations

from datetime import UTC, date, datetime


def soql_datetime(value: datetime) -> str:
    """Render a datetime as an unquoted SOQL literal in UTC, whole seconds.

    Salesforce compares datetimes at whole seconds, and a `Z` literal needs no
    URL escaping (a `+0000` offset turns into a space when a `+` is sent raw).

    >>> soql_datetime(datetime.fromisoformat("2024-03-01T05:00:00-05:00"))
    '2024-03-01T10:00:00Z'
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: pass a timezone-aware value")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def soql_date(value: date) -> str:
    return value.strftime("%Y-%m-%d")


def window_query(
    sobject: str,
    fields: list[str],
    *,
    lower: datetime | None,
    upper: datetime | None,
    include_upper: bool = False,
) -> str:
    """Build the incremental query of one sObject over a SystemModstamp window.

    The lower bound is inclusive (`>=`), so records sharing a timestamp with
    the watermark are read again rather than skipped. Ordering by
    SystemModstamp and then Id makes the pages deterministic.
    """
    selected = list(dict.fromkeys(["Id", "SystemModstamp", "IsDeleted", *fields]))
    conditions = []
    if lower is not None:
        conditions.append(f"SystemModstamp >= {soql_datetime(lower)}")
    if upper is not None:
        operator = "<=" if include_upper else "<"
        conditions.append(f"SystemModstamp {operator} {soql_datetime(upper)}")
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"SELECT {', '.join(selected)} FROM {sobject}{where} ORDER BY SystemModstamp ASC, Id ASC"
