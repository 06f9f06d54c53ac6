"""A small tenant of hand-written raw rows: deleted records, an unknown stage, an alias, every task kind."""

from __future__ import annotations

from datetime import UTC, date, datetime

import duckdb

from routiine_pipeline.mapping import StageCategory, TenantMapping, default_mapping
from routiine_pipeline.models.raw_rows import create_raw_tables, insert_raw

TENANT = "acme"


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def scenario_mapping() -> TenantMapping:
    """The default mapping plus an alias, an inbound email type and a fallback of open/1."""
    mapping = default_mapping()
    mapping.stage_aliases = {"Won": "Closed Won"}
    mapping.task_kinds = {**mapping.task_kinds, "Inbound Email|*": "email"}
    mapping.fallback_stage_category = StageCategory("open", 1)
    return mapping


def insert_scenario(conn: duckdb.DuckDBPyConnection) -> None:
    create_raw_tables(conn)
    insert_raw(
        conn,
        "User",
        [{"Id": "005U1", "Name": "Ann Lee", "LastName": "Lee", "IsActive": True}],
    )
    insert_raw(
        conn,
        "Account",
        [
            {"Id": "001A1", "Name": "Acme", "CreatedDate": utc(2025, 1, 2)},
            {"Id": "001A2", "Name": "Gone Ltd", "_deleted_at": utc(2025, 2, 1)},
        ],
    )
    insert_raw(
        conn,
        "Contact",
        [
            {"Id": "003C1", "AccountId": "001A1", "LastName": "One"},
            {"Id": "003C2", "AccountId": "001A1", "LastName": "Two"},
            {
                "Id": "003C3",
                "AccountId": "001A1",
                "LastName": "Deleted",
                "IsDeleted": True,
            },
        ],
    )
    opportunity = {
        "AccountId": "001A1",
        "OwnerId": "005U1",
        "CreatedDate": utc(2025, 3, 1),
    }
    insert_raw(
        conn,
        "Opportunity",
        [
            {
                **opportunity,
                "Id": "006D1",
                "Name": "Acme expansion",
                "StageName": "Proposal/Price Quote",
                "Amount": 5000.0,
                "CloseDate": date(2025, 6, 30),
                "Product__c": "Platform",
                "Engage_Date__c": date(2025, 3, 3),
                "Momentum_Score__c": 61.0,
                "Next_Best_Action__c": "Keep momentum",
            },
            {
                **opportunity,
                "Id": "006D2",
                "Name": "Tombstoned",
                "StageName": "Prospecting",
                "_deleted_at": utc(2025, 3, 5),
            },
            {
                **opportunity,
                "Id": "006D3",
                "Name": "Soft deleted",
                "StageName": "Prospecting",
                "IsDeleted": True,
            },
            {
                **opportunity,
                "Id": "006D4",
                "Name": "Odd stage",
                "StageName": "Verbal Commit",
                "Amount": None,
                "CloseDate": None,
            },
            {
                **opportunity,
                "Id": "006D5",
                "Name": "Aliased win",
                "StageName": "Won",
                "Amount": 900.0,
                "CloseDate": date(2025, 3, 20),
                "IsClosed": True,
                "IsWon": True,
            },
        ],
    )
    history = {"OpportunityId": "006D1"}
    insert_raw(
        conn,
        "OpportunityHistory",
        [
            {
                **history,
                "Id": "008H1",
                "StageName": "Prospecting",
                "Amount": 4000.0,
                "CloseDate": date(2025, 5, 31),
                "CreatedDate": utc(2025, 3, 1),
            },
            {
                **history,
                "Id": "008H2",
                "StageName": "Qualification",
                "Amount": 4000.0,
                "CloseDate": date(2025, 5, 31),
                "CreatedDate": utc(2025, 3, 5),
            },
            {
                **history,
                "Id": "008H3",
                "StageName": "Qualification",
                "Amount": 4000.0,
                "CloseDate": date(2025, 6, 15),
                "PrevCloseDate": date(2025, 5, 31),
                "CreatedDate": utc(2025, 3, 8),
            },
            {
                **history,
                "Id": "008H4",
                "StageName": "Proposal/Price Quote",
                "Amount": 5000.0,
                "PrevAmount": 4000.0,
                "CloseDate": date(2025, 6, 30),
                "PrevCloseDate": date(2025, 6, 15),
                "CreatedDate": utc(2025, 3, 12),
            },
            {
                "Id": "008H5",
                "OpportunityId": "006D2",
                "StageName": "Prospecting",
                "CreatedDate": utc(2025, 3, 1),
            },
        ],
    )
    task = {"WhatId": "006D1", "OwnerId": "005U1", "CreatedDate": utc(2025, 3, 19)}
    insert_raw(
        conn,
        "Task",
        [
            {
                **task,
                "Id": "00T1",
                "WhoId": "003C1",
                "Type": "Call",
                "TaskSubtype": "Call",
                "CallType": "Inbound",
                "CallDurationInSeconds": 300,
                "Status": "Completed",
                "IsClosed": True,
                "CompletedDateTime": utc(2025, 3, 20, 10),
            },
            {
                **task,
                "Id": "00T2",
                "WhoId": "003C2",
                "Type": "Email",
                "TaskSubtype": "Email",
                "ActivityDate": date(2025, 3, 21),
                "Status": "Completed",
                "IsClosed": True,
            },
            {
                **task,
                "Id": "00T3",
                "Type": "Other",
                "TaskSubtype": "Task",
                "Status": "Completed",
                "IsClosed": True,
            },
            {
                **task,
                "Id": "00T4",
                "Type": None,
                "TaskSubtype": "ListEmail",
                "Status": "Completed",
                "IsClosed": True,
                "CompletedDateTime": utc(2025, 3, 23, 9),
            },
            {
                **task,
                "Id": "00T5",
                "WhoId": "003C1",
                "Type": "Inbound Email",
                "TaskSubtype": "Task",
                "Status": "Completed",
                "IsClosed": True,
                "CompletedDateTime": utc(2025, 3, 24, 8),
            },
            {
                **task,
                "Id": "00T6",
                "Type": "Call",
                "TaskSubtype": "Call",
                "IsDeleted": True,
            },
            {
                **task,
                "Id": "00T7",
                "Type": "Call",
                "TaskSubtype": "Task",
                "Status": "Not Started",
                "IsClosed": False,
            },
            {
                **task,
                "Id": "00T8",
                "WhatId": "006D2",
                "Type": "Call",
                "TaskSubtype": "Call",
                "CallType": "Internal",
                "Status": "Completed",
                "IsClosed": True,
                "CompletedDateTime": utc(2025, 3, 4, 16),
            },
        ],
    )
    insert_raw(
        conn,
        "Event",
        [
            {
                "Id": "00U1",
                "WhatId": "006D1",
                "WhoId": "003C2",
                "OwnerId": "005U1",
                "StartDateTime": utc(2025, 3, 22, 15),
                "EndDateTime": utc(2025, 3, 22, 15, 30),
                "DurationInMinutes": 30,
                "CreatedDate": utc(2025, 3, 18),
            },
            {
                "Id": "00U2",
                "WhatId": "001A1",
                "WhoId": "00Q000000000001",
                "OwnerId": "005U1",
                "StartDateTime": utc(2025, 3, 25, 9),
                "DurationInMinutes": 60,
                "CreatedDate": utc(2025, 3, 18),
            },
            {
                "Id": "00U3",
                "WhatId": "006D1",
                "StartDateTime": utc(2025, 3, 26, 9),
                "_deleted_at": utc(2025, 3, 20),
            },
        ],
    )
