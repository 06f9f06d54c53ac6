"""Fields that Salesforce computes itself: stage flags, task closure, formulas, stage history."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

# Default OpportunityStage definitions: which stage names close a deal, and which win it.
CLOSED_STAGES = {"Closed Won": True, "Closed Lost": False}
COMPLETED_TASK_STATUSES = {"Completed"}
# A change to one of these Opportunity fields adds an OpportunityHistory row.
HISTORY_TRACKED_FIELDS = ("StageName", "Amount", "CloseDate", "Probability")


def apply_derived_fields(
    sobject: str, record: dict[str, Any], stamp: datetime, lookup_account: Any = None
) -> None:
    """Recompute the read-only fields that follow from `record`'s own values, in place.

    `lookup_account(what_id)` returns the AccountId behind an activity's WhatId.
    """
    if sobject == "Opportunity":
        stage = record.get("StageName")
        record["IsClosed"] = stage in CLOSED_STAGES
        record["IsWon"] = CLOSED_STAGES.get(stage, False)
    elif sobject == "Task":
        closed = record.get("Status") in COMPLETED_TASK_STATUSES
        record["IsClosed"] = closed
        if closed and record.get("CompletedDateTime") is None:
            record["CompletedDateTime"] = stamp
        if not closed:
            record["CompletedDateTime"] = None
    elif sobject == "User" and record.get("LastName"):
        record["Name"] = " ".join(
            part for part in (record.get("FirstName"), record["LastName"]) if part
        )
    if sobject in ("Task", "Event") and lookup_account is not None:
        record["AccountId"] = lookup_account(record.get("WhatId"))


def with_formula_fields(
    sobject: str, record: dict[str, Any], today: date
) -> dict[str, Any]:
    """Return a copy of `record` with formula fields evaluated as of `today`.

    Formula values are computed at read time and never move SystemModstamp.
    Days_Open__c counts days from creation to today, or to CloseDate once closed.
    """
    copy = dict(record)
    if sobject == "Opportunity" and "Days_Open__c" in copy:
        created = copy.get("CreatedDate")
        if created is None:
            copy["Days_Open__c"] = None
        else:
            end = (
                copy.get("CloseDate")
                if copy.get("IsClosed") and copy.get("CloseDate")
                else today
            )
            copy["Days_Open__c"] = float((end - created.date()).days)
    return copy


def history_changed(before: dict[str, Any] | None, after: dict[str, Any]) -> bool:
    """Tell whether an Opportunity change needs a new OpportunityHistory row."""
    if before is None:
        return True
    return any(before.get(name) != after.get(name) for name in HISTORY_TRACKED_FIELDS)


def history_row(
    opportunity: dict[str, Any],
    before: dict[str, Any] | None,
    stamp: datetime,
    user_id: str,
) -> dict[str, Any]:
    """Build the OpportunityHistory values that record `opportunity`'s current stage and amounts."""
    return {
        "OpportunityId": opportunity["Id"],
        "StageName": opportunity.get("StageName"),
        "Amount": opportunity.get("Amount"),
        "CloseDate": opportunity.get("CloseDate"),
        "Probability": opportunity.get("Probability"),
        "PrevAmount": before.get("Amount") if before else None,
        "PrevCloseDate": before.get("CloseDate") if before else None,
        "CreatedById": user_id,
    }
