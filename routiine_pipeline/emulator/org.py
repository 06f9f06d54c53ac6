"""The emulated Salesforce org: records in memory plus the org-wide state the API exposes."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from routiine_pipeline.emulator import derived
from routiine_pipeline.emulator.clock import Clock
from routiine_pipeline.emulator.cursors import DEFAULT_LOCATOR_TTL, CursorStore
from routiine_pipeline.emulator.faults import FaultPlan
from routiine_pipeline.emulator.field_security import FieldSecurityMixin
from routiine_pipeline.emulator.org_control import OrgControlMixin
from routiine_pipeline.emulator.recycle_bin import RecycleBinMixin
from routiine_pipeline.emulator.soql_eval import CompiledQuery, compile_query
from routiine_pipeline.emulator.tokens import TokenStore
from routiine_pipeline.emulator.usage import ApiUsage
from routiine_pipeline.emulator.values import coerce_value, to_utc_millis
from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS, SObjectSchema

logger = logging.getLogger(__name__)

SYSTEM_STAMP_FIELDS = ("CreatedDate", "LastModifiedDate", "SystemModstamp")


class Org(RecycleBinMixin, OrgControlMixin, FieldSecurityMixin):
    """Records and org-wide state of one emulated org, safe to share between server threads.

    Stored values are str, float, int, bool, None, `datetime.date` or aware UTC
    `datetime`. Every method that touches records acquires `self.lock`. Reads return
    copies, so callers may change them freely.
    """

    def __init__(
        self,
        schemas: dict[str, SObjectSchema] = STANDARD_SCHEMAS,
        clock: Clock | None = None,
        daily_api_limit: int = 15_000,
        org_id: str | None = None,
        *,
        integration_user_id: str | None = None,
        access_token_lifetime: timedelta = timedelta(hours=2),
        refresh_token_policy: str = "valid_until_revoked",
        refresh_token_ttl: timedelta | None = None,
        rotate_refresh_tokens: bool = False,
        query_locator_ttl: timedelta = DEFAULT_LOCATOR_TTL,
    ) -> None:
        self.lock = threading.RLock()
        self.schemas = dict(schemas)
        self.clock = clock or Clock()
        self.org_id = org_id or make_id("Organization", 1)
        # The user the pipeline authenticates as. API writes set LastModifiedById to it.
        self.integration_user_id = integration_user_id or make_id(
            "User", 990_000_000_001
        )
        self.usage = ApiUsage(self.clock, daily_api_limit, self.lock)
        self.faults = FaultPlan(self.lock)
        self.cursors = CursorStore(self.clock, self.lock, query_locator_ttl)
        self.tokens = TokenStore(
            self.clock,
            self.lock,
            self.org_id,
            access_token_lifetime=access_token_lifetime,
            refresh_token_policy=refresh_token_policy,
            refresh_token_ttl=refresh_token_ttl,
            rotate_refresh_tokens=rotate_refresh_tokens,
        )
        self._records: dict[str, dict[str, dict[str, Any]]] = {
            name: {} for name in self.schemas
        }
        self._sequences: Counter[str] = Counter()
        self._init_field_security()
        self._init_recycle_bin()
        self._init_control_state()

    # -- schema ------------------------------------------------------------------

    def schema(self, sobject: str) -> SObjectSchema:
        """Return the schema of `sobject`, matched case-insensitively, or raise KeyError."""
        for schema in self.schemas.values():
            if schema.name.lower() == sobject.lower():
                return schema
        raise KeyError(f"unknown sObject type {sobject!r}")

    def _canonical_values(
        self, schema: SObjectSchema, values: dict[str, Any]
    ) -> dict[str, Any]:
        canonical: dict[str, Any] = {}
        for name, value in values.items():
            spec = schema.field_named(name)
            if spec is None:
                raise ValueError(f"no field {name!r} on {schema.name}")
            canonical[spec.name] = coerce_value(spec, value)
        return canonical

    # -- writes ------------------------------------------------------------------

    def load(self, records: dict[str, list[dict[str, Any]]]) -> None:
        """Bulk-load complete records, Ids and system fields included, without side effects."""
        with self.lock:
            for sobject, rows in records.items():
                schema = self.schema(sobject)
                table = self._records[schema.name]
                for row in rows:
                    record = {name: None for name in schema.field_names}
                    record["IsDeleted"] = False
                    record.update(self._canonical_values(schema, row))
                    if not record.get("Id"):
                        raise ValueError(
                            f"a loaded {schema.name} record has no Id: {row!r}"
                        )
                    table[record["Id"]] = record
                    self._note_sequence(schema.name, record["Id"])
            logger.info(
                "Loaded %s", {name: len(rows) for name, rows in records.items()}
            )

    def _note_sequence(self, sobject: str, record_id: str) -> None:
        digits = record_id[3:15]
        if digits.isdigit():
            self._sequences[sobject] = max(self._sequences[sobject], int(digits))

    def insert(
        self,
        sobject: str,
        values: dict[str, Any],
        *,
        at: datetime | None = None,
        by: str | None = None,
    ) -> str:
        """Insert a record with a new Id and system fields stamped `at` (default: now), and return the Id."""
        with self.lock:
            schema = self.schema(sobject)
            stamp = to_utc_millis(at) if at else to_utc_millis(self.clock.now())
            user = by or self.integration_user_id
            self._sequences[schema.name] += 1
            record_id = make_id(schema.name, self._sequences[schema.name])
            record = {name: None for name in schema.field_names}
            record.update(self._canonical_values(schema, values))
            record.update(Id=record_id, IsDeleted=False, CreatedById=user)
            for name in SYSTEM_STAMP_FIELDS:
                if name in record:
                    record[name] = stamp
            if "LastModifiedById" in record:
                record["LastModifiedById"] = user
            derived.apply_derived_fields(schema.name, record, stamp, self._account_of)
            self._records[schema.name][record_id] = record
            if schema.name == "Opportunity":
                self._add_history(record, None, stamp, user)
            return record_id

    def late_commit(
        self, sobject: str, values: dict[str, Any], *, stamp: datetime
    ) -> str:
        """Make a record visible now stamped with `stamp`, as a slow transaction would.

        Salesforce sets SystemModstamp when a transaction starts its write, so a
        long transaction can commit rows stamped earlier than rows already read.
        With an `Id` in `values` the existing record is updated instead of a new
        one being inserted.
        """
        values = dict(values)
        record_id = values.pop("Id", None)
        if record_id is None:
            return self.insert(sobject, values, at=stamp)
        self.update(sobject, record_id, values, at=stamp)
        return record_id

    def update(
        self,
        sobject: str,
        record_id: str,
        values: dict[str, Any],
        *,
        at: datetime | None = None,
        system_only: bool = False,
        by: str | None = None,
    ) -> None:
        """Update a live record, or raise KeyError when it does not exist and ValueError when deleted.

        A user change moves LastModifiedDate and SystemModstamp. With
        `system_only` only SystemModstamp moves, as for a picklist value rename
        or a roll-up recalculation, and no OpportunityHistory row is written.
        """
        with self.lock:
            schema = self.schema(sobject)
            record = self._live_record(schema.name, record_id)
            stamp = to_utc_millis(at) if at else to_utc_millis(self.clock.now())
            before = dict(record)
            record.update(self._canonical_values(schema, values))
            record["SystemModstamp"] = stamp
            if not system_only:
                if "LastModifiedDate" in record:
                    record["LastModifiedDate"] = stamp
                if by is not None and "LastModifiedById" in record:
                    record["LastModifiedById"] = by
            derived.apply_derived_fields(schema.name, record, stamp, self._account_of)
            if (
                schema.name == "Opportunity"
                and not system_only
                and derived.history_changed(before, record)
            ):
                self._add_history(record, before, stamp, by or self.integration_user_id)

    def _live_record(self, sobject: str, record_id: str) -> dict[str, Any]:
        record = self._find(sobject, record_id)
        if record is None:
            raise KeyError(f"no {sobject} record with Id {record_id}")
        if record["IsDeleted"]:
            raise ValueError(f"{sobject} {record_id} is deleted")
        return record

    def _find(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        table = self._records[sobject]
        record = table.get(record_id)
        if record is None and len(record_id) == 15:
            record = next(
                (r for key, r in table.items() if key[:15] == record_id), None
            )
        return record

    def _account_of(self, what_id: str | None) -> str | None:
        if not what_id:
            return None
        if what_id.startswith("001"):
            return what_id
        opportunity = (
            self._find("Opportunity", what_id)
            if "Opportunity" in self._records
            else None
        )
        return opportunity.get("AccountId") if opportunity else None

    def _add_history(
        self,
        opportunity: dict[str, Any],
        before: dict[str, Any] | None,
        stamp: datetime,
        user: str,
    ) -> None:
        if "OpportunityHistory" in self.schemas:
            self.insert(
                "OpportunityHistory",
                derived.history_row(opportunity, before, stamp, user),
                at=stamp,
                by=user,
            )

    # -- reads -------------------------------------------------------------------

    def get(self, sobject: str, record_id: str) -> dict[str, Any] | None:
        """Return a copy of the record, deleted or not, or None when it does not exist."""
        with self.lock:
            schema = self.schema(sobject)
            record = self._find(schema.name, record_id)
            if record is None:
                return None
            return derived.with_formula_fields(
                schema.name, record, self.clock.now().date()
            )

    def records(
        self, sobject: str, *, include_deleted: bool = False
    ) -> list[dict[str, Any]]:
        """Return copies of the records of `sobject` in insertion order."""
        with self.lock:
            schema = self.schema(sobject)
            today = self.clock.now().date()
            return [
                derived.with_formula_fields(schema.name, record, today)
                for record in self._records[schema.name].values()
                if include_deleted or not record["IsDeleted"]
            ]

    def run_query(
        self, soql: str, *, include_deleted: bool
    ) -> tuple[CompiledQuery, list[dict[str, Any]]]:
        """Compile and run `soql`, raising SoqlError for queries that Salesforce rejects.

        /query passes include_deleted=False and /queryAll passes True.
        """
        with self.lock:
            compiled = compile_query(soql, self.schemas, self.is_field_visible)
            # records() returns fresh copies, so the rows share no state with the stored records.
            rows = compiled.run(
                self.records(compiled.sobject, include_deleted=include_deleted)
            )
            return compiled, rows

    # -- all-or-none support -------------------------------------------------------

    def snapshot_state(self) -> dict[str, Any]:
        """Copy the record state, so that a failed all-or-none request can roll back."""
        with self.lock:
            return {
                "records": {
                    name: {key: dict(row) for key, row in table.items()}
                    for name, table in self._records.items()
                },
                "sequences": Counter(self._sequences),
                "delete_log": list(self._delete_log),
                "purged_ids": set(self._purged_ids),
                "cascaded_from": dict(self._cascaded_from),
            }

    def restore_state(self, state: dict[str, Any]) -> None:
        with self.lock:
            self._records = state["records"]
            self._sequences = state["sequences"]
            self._delete_log = state["delete_log"]
            self._purged_ids = state["purged_ids"]
            self._cascaded_from = state["cascaded_from"]
