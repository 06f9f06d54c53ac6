"""The emulator's demo org, built from Maven Analytics' "CRM Sales Opportunities" data.

The CSV files in `data/` supply users, accounts and 8,800 opportunities.
demo_activities generates the rest from a seed: contacts, stage history,
calls, emails and meetings. apply_demo_changes makes the live changes of
`routiine demo`. docs/demo-org.md gives the column-to-field mapping and the
generation rules.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from routiine_pipeline.emulator.demo_activities import (
    CALL_SUBJECTS,
    CLOSED_STAGES,
    DAY,
    EMAIL_SUBJECTS,
    MEETING_SUBJECTS,
    OPEN_STAGES,
    PROBABILITIES,
    Deal,
    StageChange,
    build_contacts,
    business_time,
    deal_activities,
    full_record,
    history_values,
    plan_closed_deal,
    plan_open_deal,
    system_values,
)
from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.salesforce.schema import INDUSTRIES

DATA_DIR = Path(__file__).with_name("data")
DEMO_SEED = 2017
# The last close_date in sales_pipeline.csv. It maps to the day before the anchor.
DATA_LAST_DATE = date(2017, 12, 31)
INTEGRATION_USER_ID = make_id("User", 1)
USER_EMAIL_DOMAIN = "routiine-demo.example"

# sales_pipeline.csv spells one product differently from products.csv.
PRODUCT_ALIASES = {"GTXPro": "GTX Pro"}
# accounts.csv misspells one sector.
SECTOR_ALIASES = {"technolgy": "Technology"}
# The data has a single "Engaging" stage. It is spread over these stages.
ENGAGED_STAGES = OPEN_STAGES[1:]
ENGAGED_STAGE_WEIGHTS = (0.35, 0.30, 0.22, 0.13)


@dataclass(frozen=True)
class DemoCalendar:
    """The start of the anchor's UTC day, and the whole-day shift from data dates to org dates."""

    cutoff: datetime
    offset: timedelta

    @classmethod
    def for_anchor(cls, anchor: datetime) -> DemoCalendar:
        """Raise ValueError on a naive anchor, because the shift depends on its UTC date."""
        if anchor.tzinfo is None or anchor.utcoffset() is None:
            raise ValueError(f"anchor must be timezone-aware, got {anchor!r}")
        day = anchor.astimezone(UTC).date()
        cutoff = datetime.combine(day, time(0), tzinfo=UTC)
        return cls(cutoff, day - DAY - DATA_LAST_DATE)

    def day(self, iso: str) -> date:
        """Shift a YYYY-MM-DD date of the data into the org's timeline."""
        return date.fromisoformat(iso) + self.offset


def read_csv(name: str) -> list[dict[str, str]]:
    with open(DATA_DIR / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def build_demo_records(
    anchor: datetime, seed: int = DEMO_SEED
) -> dict[str, list[dict]]:
    """Build every record of the demo org, keyed by sObject name.

    All data dates move by whole days so that the data's last day,
    2017-12-31, falls on the day before `anchor`. Generated times fall
    before the start of the anchor's UTC day, except meetings booked for
    the next 13 days, so the same anchor date and seed give the same
    records. Records carry every schema field, with None where a field is
    empty.
    """
    calendar = DemoCalendar.for_anchor(anchor)
    pipeline = read_csv("sales_pipeline.csv")
    prices = {
        row["product"]: float(row["sales_price"]) for row in read_csv("products.csv")
    }

    users, user_ids = build_users(read_csv("sales_teams.csv"), calendar)
    accounts, account_ids = build_accounts(
        read_csv("accounts.csv"), pipeline, user_ids, calendar, seed
    )
    contacts, contact_ids = build_contacts(accounts, seed)
    opportunities, deals = [], []
    for number, row in enumerate(pipeline, start=1):
        rng = random.Random(f"{seed}:opportunity:{row['opportunity_id']}")
        account_id = account_ids.get(row["account"])
        deal = Deal(
            opportunity_id=make_id("Opportunity", number),
            account_id=account_id,
            owner_id=user_ids[row["sales_agent"]],
            contact_ids=contact_ids.get(account_id, []),
            changes=plan_stage_changes(row, calendar, prices, rng),
        )
        deals.append(deal)
        opportunities.append(opportunity_record(row, deal, calendar, rng))

    history = number_records(
        "OpportunityHistory",
        [values for deal in deals for values in history_values(deal)],
    )
    tasks, events = build_activities(deals, calendar.cutoff, seed)
    touch_opportunities(opportunities, tasks + events)
    return {
        "User": users,
        "Account": accounts,
        "Contact": contacts,
        "Opportunity": opportunities,
        "OpportunityHistory": history,
        "Task": tasks,
        "Event": events,
    }


def number_records(sobject: str, values: list[dict]) -> list[dict]:
    """Assign Ids in CreatedDate order, as Salesforce would, and fill in the missing fields."""
    ordered = sorted(values, key=lambda record: record["CreatedDate"])
    return [
        full_record(sobject, {"Id": make_id(sobject, number), **record})
        for number, record in enumerate(ordered, start=1)
    ]


def build_users(
    teams: list[dict[str, str]], calendar: DemoCalendar
) -> tuple[list[dict], dict[str, str]]:
    """Build the integration user, one User per manager and one per agent.

    Returns the records and the User Id of each manager and agent name.
    """
    created = datetime.combine(calendar.day("2016-09-01"), time(8), tzinfo=UTC)
    integration = user_record(1, "Routiine Integration", None, None, None, created)
    offices: dict[str, str] = {}
    for row in teams:
        offices.setdefault(row["manager"], row["regional_office"])
    users, ids = [integration], {}
    for name, office in offices.items():
        ids[name] = make_id("User", len(users) + 1)
        users.append(user_record(len(users) + 1, name, office, None, "Sales", created))
    for row in teams:
        ids[row["sales_agent"]] = make_id("User", len(users) + 1)
        manager_id = ids[row["manager"]]
        office = row["regional_office"]
        users.append(
            user_record(
                len(users) + 1, row["sales_agent"], office, manager_id, "Sales", created
            )
        )
    return users, ids


def user_record(
    number: int,
    name: str,
    department: str | None,
    manager_id: str | None,
    division: str | None,
    created: datetime,
) -> dict:
    first_name, last_name = name.rsplit(" ", 1)
    created += timedelta(minutes=number)
    return full_record(
        "User",
        {
            "Id": make_id("User", number),
            "Name": name,
            "FirstName": first_name,
            "LastName": last_name,
            "Email": f"{first_name}.{last_name}@{USER_EMAIL_DOMAIN}".lower(),
            "ManagerId": manager_id,
            "Department": department,
            "Division": division,
            "IsActive": True,
            **system_values(created, INTEGRATION_USER_ID),
        },
    )


def build_accounts(
    rows: list[dict[str, str]],
    pipeline: list[dict[str, str]],
    user_ids: dict[str, str],
    calendar: DemoCalendar,
    seed: int,
) -> tuple[list[dict], dict[str, str]]:
    """Build one Account per row, owned by the agent with the most deals on it.

    Returns the records and the Account Id of each account name.
    """
    ids = {row["account"]: make_id("Account", n) for n, row in enumerate(rows, start=1)}
    deal_counts = Counter((row["account"], row["sales_agent"]) for row in pipeline)
    rng = random.Random(f"{seed}:accounts")
    accounts = []
    for row in rows:
        name, sector, parent = row["account"], row["sector"], row["subsidiary_of"]
        industry = SECTOR_ALIASES.get(sector, sector.title())
        if industry not in INDUSTRIES:
            raise ValueError(
                f"sector {sector!r} of account {name!r} is not an Industry value"
            )
        if parent and parent not in ids:
            raise ValueError(
                f"parent {parent!r} of account {name!r} is not in accounts.csv"
            )
        agents = [
            (-count, agent)
            for (account, agent), count in deal_counts.items()
            if account == name
        ]
        owner_id = user_ids[min(agents)[1]] if agents else INTEGRATION_USER_ID
        created = business_time(
            calendar.day("2016-09-05") + rng.randint(0, 10) * DAY, rng
        )
        values = {
            "Id": ids[name],
            "Name": name,
            "Industry": industry,
            "AnnualRevenue": float(Decimal(row["revenue"]) * 1_000_000),
            "NumberOfEmployees": int(row["employees"]),
            "BillingCountry": row["office_location"],
            "ParentId": ids[parent] if parent else None,
            "OwnerId": owner_id,
            "YearStarted": row["year_established"],
            **system_values(created, owner_id),
        }
        accounts.append(full_record("Account", values))
    return accounts, ids


def plan_stage_changes(
    row: dict[str, str],
    calendar: DemoCalendar,
    prices: dict[str, float],
    rng: random.Random,
) -> list[StageChange]:
    """Plan a pipeline row's stage history on the org's timeline.

    Won and lost deals close on their shifted close_date. Engaging deals
    were created 1-14 days before engage_date and sit in one of
    ENGAGED_STAGES. Prospecting deals have no dates in the data, so they were
    created 1-60 days before the anchor's date.
    """
    stage, cutoff = row["deal_stage"], calendar.cutoff
    price = prices[PRODUCT_ALIASES.get(row["product"], row["product"])]
    if stage == "Prospecting":
        created = business_time(cutoff.date() - rng.randint(1, 60) * DAY, rng)
        return plan_open_deal(rng, "Prospecting", created, None, cutoff, price)

    engaged_at = business_time(calendar.day(row["engage_date"]), rng)
    if stage == "Engaging":
        current = rng.choices(ENGAGED_STAGES, ENGAGED_STAGE_WEIGHTS)[0]
        created = engaged_at - rng.randint(1, 14) * DAY
        return plan_open_deal(rng, current, created, engaged_at, cutoff, price)
    if stage in ("Won", "Lost"):
        closed_at = business_time(calendar.day(row["close_date"]), rng)
        close_value = float(row["close_value"])
        return plan_closed_deal(
            rng, stage == "Won", engaged_at, closed_at, price, close_value
        )
    raise ValueError(
        f"deal_stage {stage!r} of opportunity {row['opportunity_id']} is not one of "
        "Prospecting, Engaging, Won, Lost"
    )


def opportunity_record(
    row: dict[str, str], deal: Deal, calendar: DemoCalendar, rng: random.Random
) -> dict:
    """Build the Opportunity with the values of the last stage change of `deal`.

    SystemModstamp starts at LastModifiedDate. touch_opportunities moves it later.
    """
    final = deal.changes[-1]
    account, product = row["account"], row["product"]
    engage_date = calendar.day(row["engage_date"]) if row["engage_date"] else None
    if account:
        deal_type = rng.choices(("New Business", "Existing Business"), (0.65, 0.35))[0]
    else:
        deal_type = "New Business"
    lead_sources = ("Web", "Phone Inquiry", "Partner Referral", "Other")
    end = final.close_date if final.stage in CLOSED_STAGES else calendar.cutoff.date()
    days_open = (end - deal.created.date()).days
    values = {
        "Id": deal.opportunity_id,
        "Name": f"{account} – {product}" if account else f"{product} deal",
        "AccountId": deal.account_id,
        "OwnerId": deal.owner_id,
        "StageName": final.stage,
        "Amount": final.amount,
        "CloseDate": final.close_date,
        "Probability": PROBABILITIES[final.stage],
        "IsClosed": final.stage in CLOSED_STAGES,
        "IsWon": final.stage == "Closed Won",
        "Type": deal_type,
        "LeadSource": rng.choices(lead_sources, (0.40, 0.25, 0.25, 0.10))[0],
        "Product__c": product,
        "Engage_Date__c": engage_date,
        # A formula field in Salesforce, so its value never moves SystemModstamp.
        "Days_Open__c": float(days_open),
        **system_values(deal.created, deal.owner_id, modified=final.at),
    }
    return full_record("Opportunity", values)


def build_activities(
    deals: list[Deal], cutoff: datetime, seed: int
) -> tuple[list[dict], list[dict]]:
    """Generate the Tasks and Events of every deal."""
    tasks, events = [], []
    for deal in deals:
        rng = random.Random(f"{seed}:activities:{deal.opportunity_id}")
        for sobject, values in deal_activities(deal, cutoff, rng):
            (tasks if sobject == "Task" else events).append(values)
    return number_records("Task", tasks), number_records("Event", events)


def touch_opportunities(opportunities: list[dict], activities: list[dict]) -> None:
    """Move each Opportunity's SystemModstamp to its latest logged activity, if later.

    LastModifiedDate stays at the last user edit, the last stage change.
    """
    by_id = {record["Id"]: record for record in opportunities}
    for activity in activities:
        opportunity = by_id[activity["WhatId"]]
        touched_at = max(opportunity["SystemModstamp"], activity["CreatedDate"])
        opportunity["SystemModstamp"] = touched_at


def apply_demo_changes(org: Any, seed: int = DEMO_SEED) -> dict:
    """Make the org changes that `routiine demo` shows between the backfill and the next cycle.

    The changes go to open deals that have an account, so that the demo
    shows company names. Sorted by Id and drawn with `seed`, 3 of them move
    one stage forward, 1 is Closed Won and 1 is deleted. The deals that stay
    open get 5 completed calls and 2 emails logged today and 1 meeting booked
    for tomorrow. Every change happens at the org clock's current time, by
    the deal's owner, so that an incremental read after the backfill
    returns it. Returns what changed, with Ids and before and after values.
    """
    rng = random.Random(f"{seed}:changes")
    # Salesforce stores milliseconds, so the returned time equals the stored stamps.
    now = org.clock.now()
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    open_deals = sorted(
        (
            record
            for record in org.records("Opportunity")
            if record["StageName"] in OPEN_STAGES and record["AccountId"]
        ),
        key=lambda record: record["Id"],
    )
    movable = [
        record for record in open_deals if record["StageName"] != OPEN_STAGES[-1]
    ]
    advanced = rng.sample(movable, 3)
    advanced_ids = {record["Id"] for record in advanced}
    others = [record for record in open_deals if record["Id"] not in advanced_ids]
    won, deleted = rng.sample(others, 2)
    still_open = [
        record
        for record in open_deals
        if record["Id"] not in (won["Id"], deleted["Id"])
    ]

    changes: dict[str, Any] = {"at": now, "advanced": []}
    for record in advanced:
        stage = OPEN_STAGES[OPEN_STAGES.index(record["StageName"]) + 1]
        after = {"StageName": stage, "Probability": PROBABILITIES[stage]}
        changes["advanced"].append(update_and_describe(org, record, after, now))
    closed = {"StageName": "Closed Won", "Probability": 100.0, "CloseDate": now.date()}
    changes["closed_won"] = update_and_describe(org, won, closed, now)

    contacts: dict[str | None, list[str]] = {}
    for contact in sorted(org.records("Contact"), key=lambda record: record["Id"]):
        contacts.setdefault(contact["AccountId"], []).append(contact["Id"])
    changes["tasks"] = []
    for kind in ["call"] * 5 + ["email"] * 2:
        deal = rng.choice(still_open)
        values = demo_task_values(
            deal, kind, contacts.get(deal["AccountId"], []), now, rng
        )
        task_id = org.insert("Task", values, at=now, by=deal["OwnerId"])
        changes["tasks"].append({"Id": task_id, **values})
    deal = rng.choice(still_open)
    values = demo_meeting_values(deal, contacts.get(deal["AccountId"], []), now, rng)
    event_id = org.insert("Event", values, at=now, by=deal["OwnerId"])
    changes["events"] = [{"Id": event_id, **values}]

    org.delete("Opportunity", deleted["Id"], at=now)
    changes["deleted"] = {
        field: deleted[field] for field in ("Id", "Name", "StageName")
    }
    return changes


def update_and_describe(org: Any, record: dict, after: dict, at: datetime) -> dict:
    org.update("Opportunity", record["Id"], after, at=at, by=record["OwnerId"])
    before = {field: record[field] for field in after}
    return {"Id": record["Id"], "before": before, "after": dict(after)}


def demo_task_values(
    deal: dict, kind: str, contact_ids: list[str], now: datetime, rng: random.Random
) -> dict:
    """Build the createable fields of a call or email logged on `deal` today."""
    call = kind == "call"
    values = {
        "Subject": rng.choice(CALL_SUBJECTS if call else EMAIL_SUBJECTS),
        "WhoId": rng.choice(contact_ids) if contact_ids else None,
        "WhatId": deal["Id"],
        "OwnerId": deal["OwnerId"],
        "ActivityDate": now.date(),
        "Status": "Completed",
        "Type": "Call" if call else "Email",
        "TaskSubtype": "Call" if call else "Email",
    }
    if call:
        values["CallType"] = rng.choice(("Inbound", "Outbound"))
        values["CallDurationInSeconds"] = rng.randint(120, 1800)
    return values


def demo_meeting_values(
    deal: dict, contact_ids: list[str], now: datetime, rng: random.Random
) -> dict:
    """Build the createable fields of a 60-minute meeting on `deal` booked for tomorrow."""
    start = business_time(now.date() + DAY, rng)
    return {
        "Subject": rng.choice(MEETING_SUBJECTS),
        "WhoId": rng.choice(contact_ids) if contact_ids else None,
        "WhatId": deal["Id"],
        "OwnerId": deal["OwnerId"],
        "StartDateTime": start,
        "EndDateTime": start + timedelta(minutes=60),
        "DurationInMinutes": 60,
        "Type": "Meeting",
        "EventSubtype": "Event",
        "IsAllDayEvent": False,
    }
