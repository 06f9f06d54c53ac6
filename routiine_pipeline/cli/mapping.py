"""`routiine mapping show | set | validate | alias-stage | set-stage | set-task-kind | set-field | ...`.

Every change is checked against the describe results cached in the tenant's
DuckDB file by the last sync (no Salesforce call), and saved to the control
store only when the check finds no error. Warnings are printed and do not
block. `--no-validate` saves without the check, for a tenant that has not
synced yet.

NOTE: there is no option to fetch a fresh describe from Salesforce here, so a
field created in the org after the last sync is reported missing until the
next sync refreshes the cache.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from routiine_pipeline.mapping import DEAL_SOURCE_DEFAULTS, StageCategory, TenantMapping


def _store():
    from routiine_pipeline.tenants import control_store

    return control_store()


def check_against_describe(tenant: str, mapping: TenantMapping) -> list[str]:
    """Validate a mapping against the tenant's cached describe results.

    Args:
        tenant: The tenant id.
        mapping: The mapping to check.

    Returns:
        The warnings.

    Raises:
        MappingValidationError: the mapping has errors; the message lists all of them.
    """
    from routiine_pipeline import settings
    from routiine_pipeline.models.mapping_validation import (
        MappingValidationError,
        read_cached_describes,
        validate_mapping,
    )
    from routiine_pipeline.storage.warehouse import open_database

    path = settings.tenant_database_path(tenant)
    describes = {}
    if path.exists():
        with open_database(path, read_only=True) as conn:
            describes = read_cached_describes(conn)
    report = validate_mapping(tenant, mapping, describes)
    if report.errors:
        raise MappingValidationError(
            f"mapping of tenant {tenant} not saved, {len(report.errors)} error(s):\n  "
            + "\n  ".join(report.errors)
        )
    return report.warnings


def _save(args: argparse.Namespace, mapping: TenantMapping) -> int:
    warnings: list[str] = []
    if args.no_validate:
        print(
            f"warning: tenant {args.tenant}: mapping saved without checking it against describe",
            file=sys.stderr,
        )
    else:
        warnings = check_against_describe(args.tenant, mapping)
    for message in warnings:
        print(f"warning: {message}", file=sys.stderr)
    _store().set_mapping(args.tenant, mapping)
    print(f"Saved the mapping of tenant {args.tenant}.")
    return 0


def _edit(change: Callable[[TenantMapping, argparse.Namespace], None]):
    """Wrap an edit: load the tenant's mapping, apply `change`, check and save it."""

    def handler(args: argparse.Namespace) -> int:
        store = _store()
        store.get_tenant(args.tenant)
        mapping = store.mapping(args.tenant)
        change(mapping, args)
        return _save(args, mapping)

    return handler


def cmd_show(args: argparse.Namespace) -> int:
    store = _store()
    store.get_tenant(args.tenant)
    print(json.dumps(store.mapping(args.tenant).to_dict(), indent=2, sort_keys=True))
    return 0


def cmd_set(args: argparse.Namespace) -> int:
    store = _store()
    store.get_tenant(args.tenant)
    path = Path(args.file)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read mapping file {path}: {error}") from error
    try:
        mapping = TenantMapping.from_dict(raw)
    except (TypeError, AttributeError) as error:
        raise ValueError(
            f"mapping file {path} does not have the layout of `routiine mapping show`: {error}"
        ) from error
    return _save(args, mapping)


def cmd_validate(args: argparse.Namespace) -> int:
    store = _store()
    store.get_tenant(args.tenant)
    for message in check_against_describe(args.tenant, store.mapping(args.tenant)):
        print(f"warning: {message}", file=sys.stderr)
    print(f"The mapping of tenant {args.tenant} matches the cached describe.")
    return 0


def _alias_stage(mapping: TenantMapping, args: argparse.Namespace) -> None:
    mapping.stage_aliases[args.old] = args.new


def _set_stage(mapping: TenantMapping, args: argparse.Namespace) -> None:
    mapping.stages[args.value] = StageCategory(args.category, args.order)


def _remove_stage(mapping: TenantMapping, args: argparse.Namespace) -> None:
    if args.value not in mapping.stages and args.value not in mapping.stage_aliases:
        raise ValueError(
            f"tenant {args.tenant}: {args.value!r} is neither a mapped stage nor an alias"
        )
    mapping.stages.pop(args.value, None)
    mapping.stage_aliases.pop(args.value, None)


def _set_task_kind(mapping: TenantMapping, args: argparse.Namespace) -> None:
    key = f"{args.type}|{args.subtype}"
    if args.kind == "none":
        mapping.task_kinds.pop(key, None)
    else:
        mapping.task_kinds[key] = args.kind


def _set_field(mapping: TenantMapping, args: argparse.Namespace) -> None:
    names = [name.strip() for name in args.fields.split(",") if name.strip()]
    if not names:
        raise ValueError("give at least one field name, for example Id,Name,Amount")
    mapping.fields[args.sobject] = names


def _set_deal_source(mapping: TenantMapping, args: argparse.Namespace) -> None:
    if args.field == DEAL_SOURCE_DEFAULTS[args.column]:
        mapping.deal_sources.pop(args.column, None)
    else:
        mapping.deal_sources[args.column] = args.field
    read = mapping.fields.setdefault("Opportunity", [])
    if read and args.field.lower() not in {name.lower() for name in read}:
        read.append(args.field)


def _set_record_types(mapping: TenantMapping, args: argparse.Namespace) -> None:
    ids = (
        []
        if args.ids == "all"
        else [i.strip() for i in args.ids.split(",") if i.strip()]
    )
    # RecordTypeId is not added to the extracted fields here: orgs without
    # record types lack the field, and the check then warns instead of failing.
    mapping.record_types = ids


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "mapping",
        help="show and edit a tenant's field, stage, record type and task mapping",
        description=(
            "Edit the tenant mapping in the control store. Changes are checked against the "
            "describe results the last sync cached in the tenant's DuckDB file (offline)."
        ),
    )
    sub = parser.add_subparsers(dest="mapping_command", required=True)

    def add(
        name: str, help_text: str, handler, validated: bool = True
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.add_argument("tenant", help="tenant id")
        if validated:
            command.add_argument(
                "--no-validate",
                action="store_true",
                help="save without checking against the cached describe",
            )
        command.set_defaults(handler=handler)
        return command

    add("show", "print the tenant's mapping as JSON", cmd_show, validated=False)
    add(
        "validate",
        "check the stored mapping against the cached describe",
        cmd_validate,
        validated=False,
    )
    command = add(
        "set", "replace the mapping with a JSON file in the layout of `show`", cmd_set
    )
    command.add_argument("file", help="path of the JSON file")
    command = add(
        "alias-stage",
        "read StageName value OLD as the mapped stage NEW (after a rename)",
        _edit(_alias_stage),
    )
    command.add_argument("old", help="the StageName value records still carry")
    command.add_argument("new", help="a stage already in the mapping")
    command = add(
        "set-stage",
        "add or change the category and order of a StageName value",
        _edit(_set_stage),
    )
    command.add_argument("value", help="the StageName picklist value")
    command.add_argument("--category", required=True, choices=("open", "won", "lost"))
    command.add_argument(
        "--order",
        required=True,
        type=int,
        help="position in the sales process, 1 for the first stage",
    )
    command = add(
        "remove-stage",
        "remove a stage or an alias from the mapping",
        _edit(_remove_stage),
    )
    command.add_argument("value", help="the StageName value or alias")
    command = add(
        "set-task-kind",
        "map Tasks of a Type and TaskSubtype ('*' for any) to an event kind",
        _edit(_set_task_kind),
    )
    command.add_argument("type", help="Task.Type value, or '*'")
    command.add_argument("subtype", help="Task.TaskSubtype value, or '*'")
    command.add_argument(
        "kind",
        choices=("call", "email", "meeting", "none"),
        help="event kind; 'none' removes the key",
    )
    command = add(
        "set-field",
        "set the fields the extract reads from an sObject",
        _edit(_set_field),
    )
    command.add_argument("sobject", help="sObject name, for example Opportunity")
    command.add_argument(
        "fields", help="comma-separated field API names, custom fields included"
    )
    command = add(
        "set-deal-source",
        "read a deal column from another Opportunity field",
        _edit(_set_deal_source),
    )
    command.add_argument(
        "column", choices=sorted(DEAL_SOURCE_DEFAULTS), help="deal column"
    )
    command.add_argument(
        "field", help="Opportunity field API name, for example Amount_USD__c"
    )
    command = add(
        "set-record-types",
        "include only Opportunities of these record types in deal",
        _edit(_set_record_types),
    )
    command.add_argument("ids", help="comma-separated RecordTypeIds, or 'all'")
