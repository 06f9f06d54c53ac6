"""The config header of a SQL model: YAML written in the file's leading `--` comments.

A model file starts with a block of comment lines. Removing `--` and one
following space from each line gives a YAML mapping:

    -- description: One row per live Salesforce Opportunity.
    -- grain: deal_id
    -- materialized: table
    -- partitioned_by: tenant
    -- blocking: true
    -- tests:
    --   unique: [deal_id]
    --   not_null: [deal_id, stage_category]
    --   accepted_values: {stage_category: [open, won, lost]}
    --   relationships: {account_id: stg_account.account_id}
    -- unmapped_values:
    --   - {object: Opportunity, field: StageName, id_column: deal_id,
    --      value_column: stage_name, mapped_column: is_stage_mapped}

The header ends at the first line that is not a comment. Keys other than the
ones below are rejected, so a typo cannot silently switch a test off.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

SUPPORTED_MATERIALIZATIONS = ("table",)
SUPPORTED_PARTITIONS = ("tenant",)
_HEADER_KEYS = {
    "description",
    "grain",
    "materialized",
    "partitioned_by",
    "blocking",
    "tests",
    "unmapped_values",
    "columns",
}
_TEST_KEYS = {"unique", "not_null", "accepted_values", "relationships"}
_UNMAPPED_KEYS = {"object", "field", "id_column", "value_column", "mapped_column"}


class ModelConfigError(ValueError):
    """A model's config header is missing, is not valid YAML or has invalid keys."""


@dataclass(frozen=True)
class Relationship:
    """A foreign key test: every non-null `column` value exists in `to_table.to_column`."""

    column: str
    to_table: str
    to_column: str


@dataclass(frozen=True)
class ModelTests:
    """Data tests declared in the header, run after the model's table is built."""

    unique: tuple[str, ...] = ()
    not_null: tuple[str, ...] = ()
    accepted_values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    relationships: tuple[Relationship, ...] = ()


@dataclass(frozen=True)
class UnmappedValueReport:
    """The columns through which a model reports picklist values missing from the tenant mapping."""

    object: str
    field: str
    id_column: str
    value_column: str
    mapped_column: str


@dataclass(frozen=True)
class ModelConfig:
    """The parsed header of one model."""

    description: str
    grain: str | None = None
    materialized: str = "table"
    partitioned_by: str = "tenant"
    # Failed tests of a blocking model stop downstream assets in the same run.
    blocking: bool = False
    tests: ModelTests = field(default_factory=ModelTests)
    unmapped_values: tuple[UnmappedValueReport, ...] = ()
    column_descriptions: dict[str, str] = field(default_factory=dict)


def split_header(text: str) -> tuple[str, int]:
    """Return the YAML text of the leading comment block and its number of lines.

    Args:
        text: The whole model file.

    Returns:
        The header with comment markers removed, and how many lines it spans.
    """
    yaml_lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        body = stripped[2:]
        yaml_lines.append(body.removeprefix(" "))
    return "\n".join(yaml_lines), len(yaml_lines)


def parse_config(text: str, model_name: str) -> ModelConfig:
    """Parse and validate the config header of a model file.

    Args:
        text: The whole model file.
        model_name: Used in error messages.

    Returns:
        The model's ModelConfig.

    Raises:
        ModelConfigError: the header is missing, not YAML, or has an invalid key or value.
    """
    header, _ = split_header(text)
    try:
        raw = yaml.safe_load(header) if header.strip() else None
    except yaml.YAMLError as error:
        raise ModelConfigError(
            f"model {model_name}: config header is not valid YAML: {error}"
        ) from error
    if not isinstance(raw, dict) or not raw.get("description"):
        raise ModelConfigError(
            f"model {model_name}: missing config header; start the file with "
            "'-- description: ...' comment lines"
        )
    unknown = set(raw) - _HEADER_KEYS
    if unknown:
        raise ModelConfigError(
            f"model {model_name}: unknown header keys {sorted(unknown)}; "
            f"expected some of {sorted(_HEADER_KEYS)}"
        )
    materialized = raw.get("materialized", "table")
    if materialized not in SUPPORTED_MATERIALIZATIONS:
        raise ModelConfigError(
            f"model {model_name}: materialized={materialized!r} is not supported; "
            f"use one of {SUPPORTED_MATERIALIZATIONS}"
        )
    partitioned_by = raw.get("partitioned_by", "tenant")
    if partitioned_by not in SUPPORTED_PARTITIONS:
        raise ModelConfigError(
            f"model {model_name}: partitioned_by={partitioned_by!r} is not supported; "
            f"use one of {SUPPORTED_PARTITIONS}"
        )
    return ModelConfig(
        description=" ".join(str(raw["description"]).split()),
        grain=raw.get("grain"),
        materialized=materialized,
        partitioned_by=partitioned_by,
        blocking=bool(raw.get("blocking", False)),
        tests=_parse_tests(raw.get("tests") or {}, model_name),
        unmapped_values=_parse_unmapped(raw.get("unmapped_values") or [], model_name),
        column_descriptions={
            str(k): str(v) for k, v in (raw.get("columns") or {}).items()
        },
    )


def _parse_tests(raw: dict, model_name: str) -> ModelTests:
    if not isinstance(raw, dict):
        raise ModelConfigError(f"model {model_name}: 'tests' must be a mapping")
    unknown = set(raw) - _TEST_KEYS
    if unknown:
        raise ModelConfigError(
            f"model {model_name}: unknown tests {sorted(unknown)}; "
            f"expected some of {sorted(_TEST_KEYS)}"
        )
    relationships = []
    for column, target in (raw.get("relationships") or {}).items():
        table, dot, target_column = str(target).partition(".")
        if not dot or not table or not target_column:
            raise ModelConfigError(
                f"model {model_name}: relationship of {column} must read "
                f"'table.column', got {target!r}"
            )
        relationships.append(Relationship(str(column), table, target_column))
    return ModelTests(
        unique=tuple(raw.get("unique") or ()),
        not_null=tuple(raw.get("not_null") or ()),
        accepted_values={
            str(column): tuple(str(v) for v in values)
            for column, values in (raw.get("accepted_values") or {}).items()
        },
        relationships=tuple(relationships),
    )


def _parse_unmapped(raw: list, model_name: str) -> tuple[UnmappedValueReport, ...]:
    reports = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != _UNMAPPED_KEYS:
            raise ModelConfigError(
                f"model {model_name}: each unmapped_values entry needs exactly "
                f"the keys {sorted(_UNMAPPED_KEYS)}, got {entry!r}"
            )
        reports.append(UnmappedValueReport(**{k: str(v) for k, v in entry.items()}))
    return tuple(reports)
