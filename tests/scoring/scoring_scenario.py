"""A tenant with three won deals (the stage benchmarks) and open deals that differ in one way each."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import duckdb

from routiine_pipeline.models.raw_rows import create_raw_tables, insert_raw

TENANT = "globex"
AS_OF = datetime(2025, 6, 1, 12, tzinfo=UTC)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def days_before(days: float) -> datetime:
    return AS_OF - timedelta(days=days)


def won_deal(index: int) -> tuple[dict, list[dict]]:
    """A deal won in April: 5 days in Prospecting, 10 in Qualification."""
    deal_id = f"006W{index}"
    start = utc(2025, 4, 1)
    opportunity = {
        "Id": deal_id,
        "Name": f"Won {index}",
        "StageName": "Closed Won",
        "Amount": 1000.0,
        "CloseDate": date(2025, 4, 16),
        "CreatedDate": start,
        "IsClosed": True,
        "IsWon": True,
    }
    stages = [("Prospecting", 0), ("Qualification", 5), ("Closed Won", 15)]
    history = [
        {
            "Id": f"008W{index}{n}",
            "OpportunityId": deal_id,
            "StageName": stage,
            "Amount": 1000.0,
            "CloseDate": date(2025, 4, 16),
            "CreatedDate": start + timedelta(days=offset),
        }
        for n, (stage, offset) in enumerate(stages)
    ]
    return opportunity, history


def open_deal(
    deal_id: str,
    amount: float | None = 2000.0,
    close: date | None = date(2025, 7, 31),
    pushes: int = 0,
) -> tuple[dict, list[dict]]:
    """An open deal created 12 days before AS_OF, in Qualification for the last 6 days."""
    created = days_before(12)
    opportunity = {
        "Id": deal_id,
        "Name": f"Deal {deal_id}",
        "StageName": "Qualification",
        "Amount": amount,
        "CloseDate": close,
        "CreatedDate": created,
    }
    history = [
        {
            "Id": f"008{deal_id}0",
            "OpportunityId": deal_id,
            "StageName": "Prospecting",
            "Amount": amount,
            "CloseDate": close,
            "CreatedDate": created,
        },
        {
            "Id": f"008{deal_id}1",
            "OpportunityId": deal_id,
            "StageName": "Qualification",
            "Amount": amount,
            "CloseDate": close,
            "CreatedDate": days_before(6),
        },
    ]
    for n in range(pushes):
        earlier = close - timedelta(days=10 * (pushes - n))
        later = close - timedelta(days=10 * (pushes - n - 1))
        history.append(
            {
                "Id": f"008{deal_id}P{n}",
                "OpportunityId": deal_id,
                "StageName": "Qualification",
                "Amount": amount,
                "CloseDate": later,
                "PrevCloseDate": earlier,
                "CreatedDate": days_before(5 - n),
            }
        )
    return opportunity, history


def busy_activity(deal_id: str) -> tuple[list[dict], list[dict]]:
    """Three contacts in the last week: an inbound call, an outbound email and a meeting."""
    tasks = [
        {
            "Id": f"00T{deal_id}1",
            "WhatId": deal_id,
            "WhoId": "003C1",
            "Type": "Call",
            "TaskSubtype": "Call",
            "CallType": "Inbound",
            "Status": "Completed",
            "IsClosed": True,
            "CompletedDateTime": days_before(1),
        },
        {
            "Id": f"00T{deal_id}2",
            "WhatId": deal_id,
            "WhoId": "003C2",
            "Type": "Email",
            "TaskSubtype": "Email",
            "Status": "Completed",
            "IsClosed": True,
            "CompletedDateTime": days_before(3),
        },
    ]
    events = [
        {
            "Id": f"00U{deal_id}1",
            "WhatId": deal_id,
            "WhoId": "003C3",
            "StartDateTime": days_before(2),
            "DurationInMinutes": 45,
        },
    ]
    return tasks, events


def insert_scoring_scenario(conn: duckdb.DuckDBPyConnection) -> None:
    create_raw_tables(conn)
    opportunities, history, tasks, events = [], [], [], []
    for index in range(1, 4):
        opportunity, rows = won_deal(index)
        opportunities.append(opportunity)
        history += rows
    specs = {
        "006ACTIVE": {},
        "006QUIET": {},
        "006NULLS": {"amount": None, "close": None},
        "006PUSHED": {"pushes": 3},
    }
    for deal_id, options in specs.items():
        opportunity, rows = open_deal(deal_id, **options)
        opportunities.append(opportunity)
        history += rows
        if deal_id != "006QUIET":
            deal_tasks, deal_events = busy_activity(deal_id)
            tasks += deal_tasks
            events += deal_events
    insert_raw(conn, "Opportunity", opportunities)
    insert_raw(conn, "OpportunityHistory", history)
    insert_raw(conn, "Task", tasks)
    insert_raw(conn, "Event", events)
