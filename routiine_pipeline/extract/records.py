"""Conversion of Salesforce JSON records into typed raw-table rows."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from routiine_pipeline.salesforce.ids import is_valid_id, to_18_characters
from routiine_pipeline.salesforce.schema import FieldSpec
from routiine_pipeline.storage.raw_tables import column_name


@dataclass(frozen=True)
class RecordProblem:
    """A value that could not be stored as its field type; the row keeps NULL there."""

    sobject: str
    record_id: str
    field: str
    value: Any
    reason: str

    def describe(self, tenant: str) -> str:
        return (
            f"tenant {tenant}, {self.sobject} {self.record_id}, field {self.field}: "
            f"value {self.value!r} {self.reason}; stored as NULL. Check the field's type in describe "
            "or the tenant's mapping."
        )


def parse_datetime(value: str) -> datetime:
    """Parse Salesforce's `2024-03-01T10:00:00.000+0000` (or a `Z` / `+00:00` form) into UTC."""
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) >= 5 and text[-5] in "+-" and text[-3] != ":":
        text = f"{text[:-2]}:{text[-2:]}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError("datetime without a UTC offset")
    return parsed.astimezone(UTC)


# Every exception a malformed JSON value can raise while it is converted: one bad
# value becomes NULL and a reported problem, never a failed pass.
CONVERSION_ERRORS = (TypeError, ValueError, AttributeError, OverflowError)


def convert_value(spec: FieldSpec, value: Any) -> Any:
    """Convert one JSON value to the Python value stored for the field's describe type."""
    if value is None:
        return None
    kind = spec.type
    if kind in ("datetime", "date") and not isinstance(value, str):
        raise ValueError(f"is not a {kind} string")
    if kind == "datetime":
        return parse_datetime(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError("is not a boolean")
    if kind in ("currency", "double", "percent", "int") and isinstance(value, bool):
        raise ValueError("is a boolean where a number was expected")
    if kind in ("currency", "double", "percent"):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("is not a finite number")
        return number
    if kind == "int":
        if isinstance(value, bool) or float(value) != int(float(value)):
            raise ValueError("is not an integer")
        return int(float(value))
    if isinstance(value, (dict, list)):
        raise ValueError("is a nested object where a scalar was expected")
    return str(value)


def convert_record(
    sobject: str, record: dict[str, Any], fields: list[FieldSpec]
) -> tuple[dict[str, Any], list[RecordProblem]]:
    """Convert a record to a row keyed by raw-table column; bad values become NULL and a problem.

    Raises ValueError when the record has no usable Id or SystemModstamp,
    because such a row can neither be upserted nor windowed.
    """
    record_id = record.get("Id")
    if not isinstance(record_id, str) or not is_valid_id(record_id):
        raise ValueError(f"{sobject} record without a valid Id: {record_id!r}")
    # Salesforce accepts both forms; storing the 18-character one keeps one row per record.
    record_id = to_18_characters(record_id)
    record = {**record, "Id": record_id}
    row: dict[str, Any] = {}
    problems: list[RecordProblem] = []
    for spec in fields:
        raw_value = record.get(spec.name)
        try:
            row[column_name(spec.name)] = convert_value(spec, raw_value)
        except CONVERSION_ERRORS as error:
            if spec.name == "SystemModstamp":
                raise ValueError(
                    f"{sobject} {record_id}: unreadable SystemModstamp {raw_value!r}"
                ) from None
            row[column_name(spec.name)] = None
            problems.append(
                RecordProblem(sobject, record_id, spec.name, raw_value, str(error))
            )
    if row.get("systemmodstamp") is None:
        raise ValueError(f"{sobject} {record_id}: missing SystemModstamp")
    return row, problems


def value_from_csv(spec: FieldSpec, text: str | None) -> Any:
    """Turn one Bulk API CSV cell into the JSON value REST would send, for `convert_value`.

    CSV has no null, so an empty cell is None (Salesforce stores no empty
    strings). Booleans arrive as `true`/`false`; every other type keeps its
    text, which `convert_value` parses as it parses REST strings.
    """
    if text is None or text == "":
        return None
    if spec.type == "boolean":
        lowered = text.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
    return text


def records_from_csv(csv_text: str, fields: list[FieldSpec]) -> list[dict[str, Any]]:
    """Parse Bulk API CSV results (header row first) into REST-shaped records keyed by field name."""
    reader = csv.reader(io.StringIO(csv_text, newline=""))
    header = next(reader, None)
    if header is None:
        return []
    by_header = {spec.name.lower(): spec for spec in fields}
    columns = [
        (index, by_header.get(name.lower()), name) for index, name in enumerate(header)
    ]
    records = []
    for cells in reader:
        if not cells:
            continue
        record: dict[str, Any] = {}
        for index, spec, name in columns:
            text = cells[index] if index < len(cells) else None
            record[spec.name if spec else name] = (
                value_from_csv(spec, text) if spec else text
            )
        records.append(record)
    return records
