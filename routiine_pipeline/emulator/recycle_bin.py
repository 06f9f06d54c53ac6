"""Soft deletes, undeletes, recycle-bin purges and the delete log behind /deleted."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from routiine_pipeline.emulator.values import to_utc_millis

if TYPE_CHECKING:
    from routiine_pipeline.emulator.clock import Clock
    from routiine_pipeline.salesforce.schema import SObjectSchema

logger = logging.getLogger(__name__)

# Salesforce keeps deleted records in the recycle bin, and in the delete log, for 15 days.
DELETE_LOG_WINDOW = timedelta(days=15)
# Deleting one of these parents also deletes its activities (Task and Event, by WhatId).
CASCADING_PARENTS = {"Opportunity": ("Task", "Event")}


@dataclass(frozen=True)
class DeleteLogEntry:
    sobject: str
    record_id: str
    deleted_date: datetime


class RecycleBinMixin:
    """Delete operations of `Org`, kept apart so that org.py stays about records."""

    lock: threading.RLock
    clock: Clock
    schemas: dict[str, SObjectSchema]
    _records: dict[str, dict[str, dict[str, Any]]]

    def _init_recycle_bin(self) -> None:
        self._delete_log: list[DeleteLogEntry] = []
        self._purged_ids: set[str] = set()
        # child Id -> parent Id, for activities deleted together with their Opportunity
        self._cascaded_from: dict[str, str] = {}
        # per sObject: the delete log contains nothing older than this instant
        self._delete_log_floor: dict[str, datetime] = {}

    if TYPE_CHECKING:  # provided by Org

        def schema(self, sobject: str) -> SObjectSchema: ...

        def _find(self, sobject: str, record_id: str) -> dict[str, Any] | None: ...

    def delete(
        self, sobject: str, record_id: str, *, at: datetime | None = None
    ) -> None:
        """Soft-delete a record: IsDeleted becomes true and SystemModstamp becomes `at`.

        Deleting an Opportunity also deletes its live Tasks and Events with the same stamp.
        Raises KeyError when the record does not exist and ValueError when already deleted.
        """
        with self.lock:
            schema = self.schema(sobject)
            record = self._find(schema.name, record_id)
            if record is None:
                raise KeyError(f"no {schema.name} record with Id {record_id}")
            if record["IsDeleted"]:
                raise ValueError(f"{schema.name} {record_id} is already deleted")
            stamp = to_utc_millis(at or self.clock.now())
            self._soft_delete(schema.name, record, stamp)
            for child_type in CASCADING_PARENTS.get(schema.name, ()):
                for child in self._records.get(child_type, {}).values():
                    if child.get("WhatId") == record["Id"] and not child["IsDeleted"]:
                        self._soft_delete(child_type, child, stamp)
                        self._cascaded_from[child["Id"]] = record["Id"]

    def _soft_delete(
        self, sobject: str, record: dict[str, Any], stamp: datetime
    ) -> None:
        record["IsDeleted"] = True
        record["SystemModstamp"] = stamp
        self._delete_log.append(DeleteLogEntry(sobject, record["Id"], stamp))

    def undelete(
        self, sobject: str, record_id: str, *, at: datetime | None = None
    ) -> None:
        """Restore a soft-deleted record, and the activities deleted with it, with a new SystemModstamp."""
        with self.lock:
            schema = self.schema(sobject)
            record = self._find(schema.name, record_id)
            if record is None:
                raise KeyError(
                    f"no {schema.name} record with Id {record_id} in the recycle bin"
                )
            if not record["IsDeleted"]:
                raise ValueError(f"{schema.name} {record_id} is not deleted")
            stamp = to_utc_millis(at or self.clock.now())
            self._restore(schema.name, record, stamp)
            for child_id, parent_id in list(self._cascaded_from.items()):
                if parent_id != record["Id"]:
                    continue
                del self._cascaded_from[child_id]
                for child_type in CASCADING_PARENTS.get(schema.name, ()):
                    child = self._records.get(child_type, {}).get(child_id)
                    if child is not None and child["IsDeleted"]:
                        self._restore(child_type, child, stamp)

    def _restore(self, sobject: str, record: dict[str, Any], stamp: datetime) -> None:
        record["IsDeleted"] = False
        record["SystemModstamp"] = stamp
        self._delete_log = [
            entry
            for entry in self._delete_log
            if not (entry.sobject == sobject and entry.record_id == record["Id"])
        ]

    def purge_recycle_bin(
        self, sobject: str | None = None, *, at: datetime | None = None
    ) -> int:
        """Hard-delete records soft-deleted at or before `at` (default: now), and return the count.

        Purged records vanish from /queryAll, but the delete log keeps them for /deleted.
        """
        with self.lock:
            cutoff = to_utc_millis(at or self.clock.now())
            names = [self.schema(sobject).name] if sobject else list(self._records)
            purged = 0
            for name in names:
                table = self._records[name]
                doomed = [
                    key
                    for key, row in table.items()
                    if row["IsDeleted"] and row["SystemModstamp"] <= cutoff
                ]
                for key in doomed:
                    del table[key]
                    self._purged_ids.add(key)
                    self._cascaded_from.pop(key, None)
                purged += len(doomed)
            logger.info("Purged %d records from the recycle bin", purged)
            return purged

    def purge_delete_log(self, before: datetime, sobject: str | None = None) -> None:
        """Drop delete-log entries older than `before`, as Salesforce's cleanup job does.

        /deleted then reports an earliestDateAvailable of at least `before`, which
        signals to a client that it must resynchronise the object in full.
        """
        with self.lock:
            before = to_utc_millis(before)
            names = [self.schema(sobject).name] if sobject else list(self._records)
            for name in names:
                self._delete_log_floor[name] = max(
                    before, self._delete_log_floor.get(name, before)
                )
            self._delete_log = [
                entry
                for entry in self._delete_log
                if entry.sobject not in names or entry.deleted_date >= before
            ]

    def is_purged(self, record_id: str) -> bool:
        with self.lock:
            return record_id in self._purged_ids or any(
                key[:15] == record_id[:15] for key in self._purged_ids
            )

    def deleted_records(
        self, sobject: str, start: datetime, end: datetime
    ) -> dict[str, Any]:
        """Build the /sobjects/{type}/deleted result for [start, end], or raise ValueError on invalid dates.

        Salesforce reports coverage at whole-minute granularity.
        """
        with self.lock:
            schema = self.schema(sobject)
            now = self.clock.now()
            if end - start <= timedelta(minutes=1):
                raise ValueError(
                    "start date must be at least one minute before the end date"
                )
            if start < now - DELETE_LOG_WINDOW:
                # NOTE: the error code and the 15-day rule come from Salesforce's getDeleted
                # documentation, but this message text is not confirmed.
                raise ValueError("start date cannot be more than 15 days ago")
            earliest = max(
                now - DELETE_LOG_WINDOW,
                self._delete_log_floor.get(schema.name, now - DELETE_LOG_WINDOW),
            )
            latest = min(end, now)
            entries = [
                {"id": entry.record_id, "deletedDate": entry.deleted_date}
                for entry in self._delete_log
                if entry.sobject == schema.name
                and start <= entry.deleted_date <= latest
            ]
            return {
                "deletedRecords": entries,
                "earliestDateAvailable": earliest.replace(second=0, microsecond=0),
                "latestDateCovered": latest.replace(second=0, microsecond=0),
            }
