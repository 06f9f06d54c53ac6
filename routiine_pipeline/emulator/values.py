"""Conversion between Python record values and Salesforce's JSON encodings."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from routiine_pipeline.salesforce.schema import FieldSpec

# Salesforce accepts these input forms: 2024-03-01T10:00:00Z, ...00.000Z, ...00+00:00, ...00.000+0000.
_DATETIME_INPUT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})$"
)
_DATE_INPUT = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER_TYPES = {"currency", "double", "percent"}


def to_utc_millis(moment: datetime) -> datetime:
    """Convert an aware datetime to UTC and drop sub-millisecond digits, as Salesforce stores it."""
    if moment.tzinfo is None:
        raise ValueError(f"record datetimes must be timezone-aware, got {moment!r}")
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_datetime(moment: datetime) -> str:
    """Format like Salesforce's REST output: 2024-03-01T10:00:00.000+0000."""
    moment = moment.astimezone(UTC)
    return (
        moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"
    )


def encode_value(value: Any) -> Any:
    """Convert one stored value to its JSON form: datetimes and dates become strings."""
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def parse_datetime(text: str) -> datetime:
    """Parse a datetime in one of the input forms Salesforce accepts, or raise ValueError."""
    match = _DATETIME_INPUT.match(text)
    if not match:
        raise ValueError(
            f"invalid datetime {text!r}; expected a form like 2024-03-01T10:00:00.000Z"
        )
    zone = match.group(8)
    if zone == "Z":
        zone = "+00:00"
    elif ":" not in zone:
        zone = f"{zone[:3]}:{zone[3:]}"
    fraction = (match.group(7) or ".000").ljust(4, "0")
    iso = f"{text[:19]}{fraction}{zone}"
    return to_utc_millis(datetime.fromisoformat(iso))


def parse_date(text: str) -> date:
    if not _DATE_INPUT.match(text):
        raise ValueError(f"invalid date {text!r}; expected YYYY-MM-DD")
    return date.fromisoformat(text)


def coerce_value(spec: FieldSpec, value: Any) -> Any:
    """Convert a JSON value sent for `spec` to the stored Python value.

    Raises ValueError with a message naming the field when the JSON type does
    not fit, which the API reports as JSON_PARSER_ERROR.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        return to_utc_millis(value)
    if isinstance(value, date):
        return value
    kind = spec.type
    if kind == "datetime":
        if isinstance(value, str):
            return parse_datetime(value)
    elif kind == "date":
        if isinstance(value, str):
            return parse_date(value)
    elif kind == "boolean":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind in _NUMBER_TYPES:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif isinstance(value, str):
        return value
    raise ValueError(
        f"Cannot deserialize value {value!r} for field {spec.name} of type {kind}"
    )
