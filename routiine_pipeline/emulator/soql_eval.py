"""Check a parsed SOQL query against an object's fields, then run it over records."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from routiine_pipeline.emulator.soql import (
    BooleanGroup,
    Comparison,
    Condition,
    Literal,
    Negation,
    ParsedQuery,
    parse_soql,
)
from routiine_pipeline.emulator.soql_lexer import located_error
from routiine_pipeline.salesforce.ids import checksum_suffix
from routiine_pipeline.salesforce.schema import FieldSpec, SObjectSchema

STRING_TYPES = {
    "string",
    "picklist",
    "combobox",
    "email",
    "textarea",
    "phone",
    "url",
    "multipicklist",
}
ID_TYPES = {"id", "reference"}
NUMBER_TYPES = {"currency", "double", "percent", "int"}
# The literal kind each field type accepts, and the type name Salesforce's message uses.
_EXPECTED_LITERAL = {
    "datetime": ("DATETIME", "dateTime"),
    "date": ("DATE", "date"),
    "boolean": ("BOOLEAN", "boolean"),
}
_IN_OPERATORS = {"IN", "NOT IN"}


@dataclass
class CompiledQuery:
    """A query whose field names are resolved to the schema's spelling and types."""

    parsed: ParsedQuery
    schema: SObjectSchema
    select: list[FieldSpec]
    order_by: list[tuple[FieldSpec, bool, bool]]  # field, descending, nulls_last

    @property
    def sobject(self) -> str:
        return self.schema.name

    @property
    def is_count(self) -> bool:
        return self.parsed.is_count

    def run(self, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Filter, sort, offset and limit `records` as the query specifies, and return the matches."""
        where = self.parsed.where
        matched = [
            record
            for record in records
            if where is None or self._matches(where, record)
        ]
        # Sort by the last key first, so that stable sorts compose into a multi-key order.
        for spec, descending, nulls_last in reversed(self.order_by):
            present = [r for r in matched if r.get(spec.name) is not None]
            absent = [r for r in matched if r.get(spec.name) is None]
            present.sort(
                key=lambda r, s=spec: _sort_key(s, r[s.name]), reverse=descending
            )
            matched = present + absent if nulls_last else absent + present
        start = self.parsed.offset or 0
        end = None if self.parsed.limit is None else start + self.parsed.limit
        return matched[start:end]

    def _matches(self, condition: Condition, record: dict[str, Any]) -> bool:
        if isinstance(condition, Negation):
            return not self._matches(condition.child, record)
        if isinstance(condition, BooleanGroup):
            results = (self._matches(child, record) for child in condition.children)
            return all(results) if condition.operator == "AND" else any(results)
        spec = self.schema.field_named(condition.field)
        assert spec is not None  # compile_query resolved every field
        return _compare(spec, record.get(spec.name), condition)


def compile_query(
    soql: str,
    schemas: dict[str, SObjectSchema],
    is_visible: Callable[[str, str], bool],
) -> CompiledQuery:
    """Parse `soql` and resolve it against `schemas`, raising SoqlError as Salesforce would.

    `is_visible(sobject, field)` hides fields from the integration user, so a
    hidden field fails with INVALID_FIELD exactly like a missing one.
    """
    parsed = parse_soql(soql)
    schema = _find_schema(schemas, parsed.sobject)
    if schema is None:
        raise located_error(
            "INVALID_TYPE",
            soql,
            parsed.sobject_position,
            f"sObject type '{parsed.sobject}' is not supported. If you are attempting to use a "
            "custom object, be sure to append the '__c' after the entity name. Please reference "
            "your WSDL or the describe call for the appropriate names.",
        )

    def resolve(name: str, position: int) -> FieldSpec:
        spec = schema.field_named(name)
        if spec is None or not is_visible(schema.name, spec.name):
            raise located_error(
                "INVALID_FIELD",
                soql,
                position,
                f"No such column '{name}' on entity '{schema.name}'. If you are attempting to use "
                "a custom field, be sure to append the '__c' after the custom field name. Please "
                "reference your WSDL or the describe call for the appropriate names.",
            )
        return spec

    select: list[FieldSpec] = []
    for name, position in parsed.fields:
        spec = resolve(name, position)
        if spec in select:
            raise located_error(
                "MALFORMED_QUERY",
                soql,
                position,
                f"duplicate field selected: {spec.name}",
            )
        select.append(spec)
    if parsed.where is not None:
        _check_condition(parsed.where, soql, resolve)
    order_by = [
        (resolve(item.field, item.position), item.descending, item.nulls_last)
        for item in parsed.order_by
    ]
    return CompiledQuery(parsed, schema, select, order_by)


def _find_schema(schemas: dict[str, SObjectSchema], name: str) -> SObjectSchema | None:
    for schema in schemas.values():
        if schema.name.lower() == name.lower():
            return schema
    return None


def _check_condition(
    condition: Condition, soql: str, resolve: Callable[[str, int], FieldSpec]
) -> None:
    if isinstance(condition, Negation):
        _check_condition(condition.child, soql, resolve)
        return
    if isinstance(condition, BooleanGroup):
        for child in condition.children:
            _check_condition(child, soql, resolve)
        return
    spec = resolve(condition.field, condition.position)
    for literal in condition.literals:
        _check_literal(spec, literal, soql)


def _check_literal(spec: FieldSpec, literal: Literal, soql: str) -> None:
    """Raise the error Salesforce gives when a literal does not fit the field's type."""
    if literal.kind == "NULL":
        return
    if spec.type in _EXPECTED_LITERAL:
        expected_kind, type_name = _EXPECTED_LITERAL[spec.type]
        fits = literal.kind == expected_kind
        quoting = "should not be enclosed in quotes"
    elif spec.type in NUMBER_TYPES:
        fits = literal.kind == "NUMBER"
        type_name = "double" if spec.type != "int" else "int"
        quoting = "should not be enclosed in quotes"
    else:
        fits = literal.kind == "STRING"
        type_name = "string"
        quoting = "should be enclosed in quotes"
    if not fits:
        raise located_error(
            "INVALID_FIELD",
            soql,
            literal.position,
            f"value of filter criterion for field '{spec.name}' must be of type {type_name} and {quoting}",
        )
    if spec.type in ID_TYPES and not _is_id_shaped(str(literal.value)):
        raise located_error(
            "INVALID_QUERY_FILTER_OPERATOR",
            soql,
            literal.position,
            f"invalid ID field: {literal.value}",
        )


def _is_id_shaped(value: str) -> bool:
    return len(value) in (15, 18) and value.isalnum()


def _normalize(spec: FieldSpec, value: Any) -> Any:
    """Map a value to the form SOQL compares: whole seconds, case-folded text, 18-character Ids."""
    if value is None:
        return None
    if isinstance(value, datetime):
        # Salesforce compares datetimes at whole-second granularity.
        return value.replace(microsecond=0)
    if spec.type in ID_TYPES and isinstance(value, str):
        if len(value) == 15:
            value = value + checksum_suffix(value)
        return value.upper()
    if spec.type in STRING_TYPES and isinstance(value, str):
        return value.casefold()
    if isinstance(value, (bool, date)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return value


def _compare(spec: FieldSpec, stored: Any, condition: Comparison) -> bool:
    left = _normalize(spec, stored)
    rights = [_normalize(spec, literal.value) for literal in condition.literals]
    operator = condition.operator
    if operator in _IN_OPERATORS:
        found = left is not None and left in rights
        return found if operator == "IN" else not found
    right = rights[0]
    if operator == "=":
        return left == right
    if operator in ("!=", "<>"):
        return left != right
    if left is None or right is None:
        return False
    if operator == "<":
        return left < right
    if operator == "<=":
        return left <= right
    if operator == ">":
        return left > right
    return left >= right


def _sort_key(spec: FieldSpec, value: Any) -> Any:
    if isinstance(value, str) and spec.type not in ID_TYPES:
        return value.casefold()
    return value
