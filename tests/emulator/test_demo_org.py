"""Tests of the demo org built from the bundled CRM sample data."""

from __future__ import annotations

import csv
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from routiine_pipeline.emulator.clock import Clock
from routiine_pipeline.emulator.demo_org import (
    DATA_DIR,
    DEMO_SEED,
    INTEGRATION_USER_ID,
    apply_demo_changes,
    build_demo_records,
)
from routiine_pipeline.emulator.org import Org
from routiine_pipeline.salesforce.ids import KEY_PREFIXES, is_valid_id
from routiine_pipeline.salesforce.schema import OPPORTUNITY_STAGES, STANDARD_SCHEMAS

ANCHOR = datetime(2025, 6, 15, 12, 30, 45, tzinfo=UTC)
ENGAGED_STAGES = (
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
)
PROBABILITIES = dict(zip(OPPORTUNITY_STAGES, (10, 20, 20, 75, 90, 100, 0)))
# Opportunity date fields that hold a planned, possibly future, close date.
FUTURE_DATE_FIELDS = {"CloseDate", "PrevCloseDate"}


def read_csv(name: str) -> list[dict[str, str]]:
    with open(DATA_DIR / name, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def records() -> dict[str, list[dict]]:
    return build_demo_records(ANCHOR)


@pytest.fixture(scope="module")
def pipeline() -> list[dict[str, str]]:
    return read_csv("sales_pipeline.csv")


def by_id(records: dict[str, list[dict]], sobject: str) -> dict[str, dict]:
    return {record["Id"]: record for record in records[sobject]}


def test_record_counts(records):
    teams = read_csv("sales_teams.csv")
    managers = {row["manager"] for row in teams}
    assert len(records["Opportunity"]) == 8_800
    assert len(records["Account"]) == 85
    assert len(teams) == 35
    assert len(managers) == 6
    assert len(records["User"]) == len(teams) + len(managers) + 1


def test_stage_counts_match_csv(records, pipeline):
    source = Counter(row["deal_stage"] for row in pipeline)
    stages = Counter(record["StageName"] for record in records["Opportunity"])
    assert stages["Closed Won"] == source["Won"] == 4_238
    assert stages["Closed Lost"] == source["Lost"] == 2_473
    assert stages["Prospecting"] == source["Prospecting"] == 500
    assert sum(stages[stage] for stage in ENGAGED_STAGES) == source["Engaging"] == 1_589
    for stage in ENGAGED_STAGES:
        assert stages[stage] > 100, stage


def test_opportunity_flags_follow_stage(records):
    for record in records["Opportunity"]:
        stage = record["StageName"]
        assert record["IsClosed"] is (stage in ("Closed Won", "Closed Lost")), record[
            "Id"
        ]
        assert record["IsWon"] is (stage == "Closed Won"), record["Id"]
        assert record["Probability"] == PROBABILITIES[stage], record["Id"]


def test_every_record_has_exactly_schema_fields(records):
    assert set(records) == set(STANDARD_SCHEMAS)
    for sobject, rows in records.items():
        expected = set(STANDARD_SCHEMAS[sobject].field_names)
        for record in rows:
            assert set(record) == expected, (sobject, record["Id"])


def test_field_values_have_python_types(records):
    allowed = {
        "currency": (float,),
        "double": (float,),
        "percent": (float,),
        "int": (int,),
        "boolean": (bool,),
    }
    for sobject, rows in records.items():
        specs = STANDARD_SCHEMAS[sobject].fields
        for record in rows:
            for spec in specs:
                value = record[spec.name]
                if value is None:
                    continue
                if spec.type == "datetime":
                    assert isinstance(value, datetime), (sobject, spec.name)
                    assert value.utcoffset() == timedelta(0), (sobject, spec.name)
                elif spec.type == "date":
                    assert type(value) is date, (sobject, spec.name)
                elif spec.type in allowed:
                    assert type(value) in allowed[spec.type], (
                        sobject,
                        spec.name,
                        value,
                    )
                else:
                    assert isinstance(value, str), (sobject, spec.name, value)


def test_ids_have_prefix_and_checksum(records):
    for sobject, rows in records.items():
        ids = [record["Id"] for record in rows]
        assert len(set(ids)) == len(ids), sobject
        for record_id in ids:
            assert len(record_id) == 18, record_id
            assert record_id.startswith(KEY_PREFIXES[sobject]), record_id
            assert is_valid_id(record_id), record_id


def test_ids_are_numbered_from_one(records):
    for sobject, rows in records.items():
        numbers = sorted(int(record["Id"][3:15]) for record in rows)
        assert numbers == list(range(1, len(rows) + 1)), sobject


def test_references_point_to_existing_records(records):
    known = {sobject: set(by_id(records, sobject)) for sobject in records}
    for sobject, rows in records.items():
        for spec in STANDARD_SCHEMAS[sobject].fields:
            if spec.type != "reference":
                continue
            targets = set().union(*(known[target] for target in spec.reference_to))
            for record in rows:
                value = record[spec.name]
                if value is not None:
                    assert value in targets, (sobject, record["Id"], spec.name, value)


def test_build_is_deterministic(records):
    assert build_demo_records(ANCHOR) == records
    later_same_day = ANCHOR.replace(hour=23, minute=59)
    assert build_demo_records(later_same_day, DEMO_SEED) == records


def test_other_seed_changes_generated_data(records):
    other = build_demo_records(ANCHOR, seed=DEMO_SEED + 1)
    assert len(other["Opportunity"]) == 8_800
    assert other["Task"] != records["Task"]


def test_naive_anchor_is_rejected():
    with pytest.raises(ValueError, match="timezone-aware"):
        build_demo_records(datetime(2025, 6, 15, 12, 0))


def test_system_stamps_are_ordered(records):
    for sobject, rows in records.items():
        for record in rows:
            created = record["CreatedDate"]
            modified = record.get("LastModifiedDate", created)
            assert record["SystemModstamp"] >= modified >= created, (
                sobject,
                record["Id"],
            )
            assert record["IsDeleted"] is False
            assert record["CreatedById"].startswith("005")


def test_nothing_dated_after_anchor_except_booked_events(records):
    latest_booking = ANCHOR + timedelta(days=14)
    booked = 0
    for sobject, rows in records.items():
        specs = STANDARD_SCHEMAS[sobject].fields
        for record in rows:
            for spec in specs:
                value = record[spec.name]
                if value is None or spec.name in FUTURE_DATE_FIELDS:
                    continue
                is_event_time = spec.name in ("StartDateTime", "EndDateTime")
                if spec.type == "datetime" and value > ANCHOR:
                    assert sobject == "Event", (sobject, spec.name)
                    assert is_event_time, (sobject, spec.name)
                    assert value <= latest_booking, record["Id"]
                    booked += spec.name == "StartDateTime"
                elif spec.type == "date":
                    assert value <= ANCHOR.date(), (sobject, record["Id"], spec.name)
    assert booked > 100


def test_dates_shift_to_day_before_anchor(records, pipeline):
    offset = ANCHOR.date() - timedelta(days=1) - date(2017, 12, 31)
    closed = [r for r in records["Opportunity"] if r["IsClosed"]]
    assert max(record["CloseDate"] for record in closed) == ANCHOR.date() - timedelta(
        days=1
    )
    for row, record in zip(pipeline, records["Opportunity"]):
        if row["engage_date"]:
            expected = date.fromisoformat(row["engage_date"]) + offset
            assert record["Engage_Date__c"] == expected, row["opportunity_id"]
        else:
            assert record["Engage_Date__c"] is None, row["opportunity_id"]
        if row["close_date"]:
            expected = date.fromisoformat(row["close_date"]) + offset
            assert record["CloseDate"] == expected, row["opportunity_id"]


def test_opportunities_map_pipeline_rows(records, pipeline):
    users = {user["Id"]: user["Name"] for user in records["User"]}
    accounts = {account["Id"]: account["Name"] for account in records["Account"]}
    prices = {
        row["product"]: float(row["sales_price"]) for row in read_csv("products.csv")
    }
    prices["GTXPro"] = prices["GTX Pro"]
    for row, record in zip(pipeline, records["Opportunity"]):
        assert users[record["OwnerId"]] == row["sales_agent"]
        assert record["Product__c"] == row["product"]
        if row["account"]:
            assert accounts[record["AccountId"]] == row["account"]
            assert record["Name"] == f"{row['account']} – {row['product']}"
        else:
            assert record["AccountId"] is None
            assert record["Name"] == f"{row['product']} deal"
        if row["deal_stage"] in ("Won", "Lost"):
            assert record["Amount"] == float(row["close_value"])
        else:
            assert record["Amount"] == prices[row["product"]]
            assert ANCHOR.date() + timedelta(days=7) <= record["CloseDate"]
            assert record["CloseDate"] <= ANCHOR.date() + timedelta(days=90)
        assert record["Momentum_Score__c"] is None
        assert record["Next_Best_Action__c"] is None


def test_opportunities_without_account(records):
    missing = [
        record for record in records["Opportunity"] if record["AccountId"] is None
    ]
    assert len(missing) == 1_425
    assert all(not record["IsClosed"] for record in missing)


def test_days_open_counts_to_close_or_anchor(records):
    for record in records["Opportunity"]:
        end = record["CloseDate"] if record["IsClosed"] else ANCHOR.date()
        expected = float((end - record["CreatedDate"].date()).days)
        assert record["Days_Open__c"] == expected, record["Id"]


def test_open_deals_created_recently(records):
    for record in records["Opportunity"]:
        if record["StageName"] == "Prospecting":
            age = ANCHOR - record["CreatedDate"]
            assert timedelta(0) < age <= timedelta(days=61), record["Id"]
        if record["Engage_Date__c"] is not None:
            lead_time = record["Engage_Date__c"] - record["CreatedDate"].date()
            assert timedelta(days=1) <= lead_time <= timedelta(days=14), record["Id"]


def test_users_follow_sales_teams(records):
    users = by_id(records, "User")
    by_name = {user["Name"]: user for user in users.values()}
    integration = users[INTEGRATION_USER_ID]
    assert integration["Name"] == "Routiine Integration"
    for row in read_csv("sales_teams.csv"):
        agent = by_name[row["sales_agent"]]
        manager = by_name[row["manager"]]
        assert agent["ManagerId"] == manager["Id"]
        assert agent["Department"] == row["regional_office"]
        assert manager["Department"] == row["regional_office"]
        assert f"{agent['FirstName']} {agent['LastName']}" == row["sales_agent"]
        assert agent["IsActive"] is True


def test_accounts_map_csv_columns(records):
    accounts = {account["Name"]: account for account in records["Account"]}
    ids = {name: account["Id"] for name, account in accounts.items()}
    for row in read_csv("accounts.csv"):
        account = accounts[row["account"]]
        assert account["NumberOfEmployees"] == int(row["employees"])
        assert account["BillingCountry"] == row["office_location"]
        assert account["YearStarted"] == row["year_established"]
        assert account["ParentId"] == (
            ids[row["subsidiary_of"]] if row["subsidiary_of"] else None
        )
    acme = accounts["Acme Corporation"]
    assert acme["Industry"] == "Technology"
    assert acme["AnnualRevenue"] == 1_100_040_000.0
    assert sum(1 for account in accounts.values() if account["ParentId"]) == 15


def test_contacts_per_account(records):
    per_account = Counter(contact["AccountId"] for contact in records["Contact"])
    assert set(per_account) == {account["Id"] for account in records["Account"]}
    assert min(per_account.values()) >= 2
    assert max(per_account.values()) <= 5
    emails = [contact["Email"] for contact in records["Contact"]]
    assert len(set(emails)) == len(emails)
    assert all(email.endswith(".example") for email in emails)


def test_history_ends_at_opportunity_values(records):
    rows = defaultdict(list)
    for row in records["OpportunityHistory"]:
        rows[row["OpportunityId"]].append(row)
    for record in records["Opportunity"]:
        history = sorted(rows[record["Id"]], key=lambda row: row["CreatedDate"])
        first, last = history[0], history[-1]
        assert first["StageName"] == "Prospecting", record["Id"]
        assert first["CreatedDate"] == record["CreatedDate"], record["Id"]
        assert first["PrevAmount"] is None
        assert last["StageName"] == record["StageName"], record["Id"]
        assert last["Amount"] == record["Amount"], record["Id"]
        assert last["CloseDate"] == record["CloseDate"], record["Id"]
        assert last["CreatedDate"] == record["LastModifiedDate"], record["Id"]
        for previous, row in pairwise(history):
            assert row["PrevAmount"] == previous["Amount"], row["Id"]
            assert row["PrevCloseDate"] == previous["CloseDate"], row["Id"]
            assert row["SystemModstamp"] == row["CreatedDate"], row["Id"]


def test_history_has_recent_pushes_and_amount_changes(records):
    opportunities = by_id(records, "Opportunity")
    recent = ANCHOR - timedelta(days=45)
    pushed, repriced = set(), set()
    for row in records["OpportunityHistory"]:
        if (
            opportunities[row["OpportunityId"]]["IsClosed"]
            or row["CreatedDate"] < recent
        ):
            continue
        if row["PrevCloseDate"] and row["CloseDate"] > row["PrevCloseDate"]:
            pushed.add(row["OpportunityId"])
        if row["PrevAmount"] is not None and row["Amount"] != row["PrevAmount"]:
            repriced.add(row["OpportunityId"])
    assert 100 < len(pushed) < 1_000
    assert 100 < len(repriced) < 1_000


def test_activities_fit_their_deals(records):
    opportunities = by_id(records, "Opportunity")
    contacts = by_id(records, "Contact")
    for sobject in ("Task", "Event"):
        for activity in records[sobject]:
            deal = opportunities[activity["WhatId"]]
            assert activity["AccountId"] == deal["AccountId"], activity["Id"]
            assert activity["OwnerId"] == deal["OwnerId"], activity["Id"]
            assert activity["CreatedDate"] >= deal["CreatedDate"], activity["Id"]
            if activity["WhoId"] is not None:
                assert contacts[activity["WhoId"]]["AccountId"] == deal["AccountId"]
            if deal["IsClosed"]:
                assert activity["CreatedDate"] <= deal["LastModifiedDate"], activity[
                    "Id"
                ]


def test_task_kinds(records):
    kinds = Counter((task["Type"], task["TaskSubtype"]) for task in records["Task"])
    assert set(kinds) == {("Call", "Call"), ("Email", "Email"), ("Other", "Task")}
    assert kinds[("Other", "Task")] < kinds[("Call", "Call")] / 2
    for task in records["Task"]:
        assert task["Status"] == "Completed"
        assert task["IsClosed"] is True
        assert task["ActivityDate"] == task["CompletedDateTime"].date()
        if task["Type"] == "Call":
            assert task["CallType"] in ("Inbound", "Outbound")
            assert 30 <= task["CallDurationInSeconds"] <= 3_600
        else:
            assert task["CallType"] is None
            assert task["CallDurationInSeconds"] is None


def test_events_are_meetings(records):
    for event in records["Event"]:
        assert event["Type"] == "Meeting"
        duration = event["EndDateTime"] - event["StartDateTime"]
        assert duration == timedelta(minutes=event["DurationInMinutes"])
        assert event["CreatedDate"] <= event["StartDateTime"]


def test_activity_volume(records):
    total = len(records["Task"]) + len(records["Event"])
    assert 40_000 <= total <= 70_000


def communication_times(records) -> dict[str, list[datetime]]:
    """Map each Opportunity Id to the times of its calls, emails and past meetings."""
    times = defaultdict(list)
    for task in records["Task"]:
        if task["Type"] != "Other":
            times[task["WhatId"]].append(task["CompletedDateTime"])
    for event in records["Event"]:
        if event["StartDateTime"] <= ANCHOR:
            times[event["WhatId"]].append(event["StartDateTime"])
    return times


def test_won_deals_busier_than_lost(records):
    times = communication_times(records)
    counts = defaultdict(list)
    for record in records["Opportunity"]:
        if record["IsClosed"]:
            counts[record["IsWon"]].append(len(times[record["Id"]]))
    won, lost = statistics.mean(counts[True]), statistics.mean(counts[False])
    assert won > lost * 1.3
    # The spread overlaps: many lost deals are busier than the median won deal.
    busy_lost = sum(
        1 for count in counts[False] if count > statistics.median(counts[True])
    )
    assert busy_lost > 100


def test_open_deals_vary_in_recency(records):
    times = communication_times(records)
    gaps = Counter()
    for record in records["Opportunity"]:
        if record["IsClosed"]:
            continue
        days = (ANCHOR - max(times[record["Id"]])).days
        if days <= 7:
            gaps["week"] += 1
        elif days <= 21:
            gaps["cooling"] += 1
        else:
            gaps["quiet"] += 1
    assert gaps["week"] > 500
    assert gaps["cooling"] > 300
    assert gaps["quiet"] > 300


def test_opportunity_modstamp_follows_latest_touch(records):
    latest = {}
    for row in records["OpportunityHistory"]:
        latest[row["OpportunityId"]] = max(
            latest.get(row["OpportunityId"], row["CreatedDate"]), row["CreatedDate"]
        )
    for activity in records["Task"] + records["Event"]:
        what = activity["WhatId"]
        latest[what] = max(latest[what], activity["CreatedDate"])
    for record in records["Opportunity"]:
        assert record["SystemModstamp"] == latest[record["Id"]], record["Id"]


def loaded_org(records: dict[str, list[dict]]) -> Org:
    org = Org(clock=Clock(ANCHOR, frozen=True), integration_user_id=INTEGRATION_USER_ID)
    org.load(records)
    return org


def test_demo_changes_update_org(records):
    org = loaded_org(records)
    history_before = len(org.records("OpportunityHistory"))
    changes = apply_demo_changes(org)
    at = changes["at"]
    assert at == ANCHOR

    assert len(changes["advanced"]) == 3
    for change in changes["advanced"]:
        record = org.get("Opportunity", change["Id"])
        before_stage = change["before"]["StageName"]
        expected = OPPORTUNITY_STAGES[OPPORTUNITY_STAGES.index(before_stage) + 1]
        assert before_stage in OPPORTUNITY_STAGES[:4]
        assert change["after"]["StageName"] == expected
        assert record["StageName"] == expected
        assert record["Probability"] == PROBABILITIES[expected]
        assert record["LastModifiedDate"] == at
        assert record["LastModifiedById"] == record["OwnerId"]

    won = org.get("Opportunity", changes["closed_won"]["Id"])
    assert changes["closed_won"]["before"]["StageName"] in OPPORTUNITY_STAGES[:5]
    assert won["StageName"] == "Closed Won"
    assert won["IsWon"] is True
    assert won["IsClosed"] is True
    assert won["CloseDate"] == at.date()

    deleted = org.get("Opportunity", changes["deleted"]["Id"])
    assert deleted["IsDeleted"] is True
    assert deleted["SystemModstamp"] == at
    assert changes["deleted"]["StageName"] in OPPORTUNITY_STAGES[:5]

    new_history = org.records("OpportunityHistory")[history_before:]
    assert len(new_history) == 4
    assert all(row["CreatedDate"] == at for row in new_history)


def test_demo_changes_log_activities(records):
    org = loaded_org(records)
    changes = apply_demo_changes(org)
    at = changes["at"]
    closed_or_deleted = {changes["closed_won"]["Id"], changes["deleted"]["Id"]}
    kinds = Counter(task["Type"] for task in changes["tasks"])
    assert kinds == {"Call": 5, "Email": 2}
    for task in changes["tasks"]:
        stored = org.get("Task", task["Id"])
        deal = org.get("Opportunity", task["WhatId"])
        assert task["WhatId"] not in closed_or_deleted
        assert deal["AccountId"] is not None
        assert stored["AccountId"] == deal["AccountId"]
        assert stored["OwnerId"] == deal["OwnerId"]
        assert stored["Status"] == "Completed"
        assert stored["ActivityDate"] == at.date()
        assert stored["CreatedDate"] == stored["SystemModstamp"] == at
        assert stored["TaskSubtype"] == task["Type"]
    assert len(changes["events"]) == 1
    event = org.get("Event", changes["events"][0]["Id"])
    assert event["Type"] == "Meeting"
    assert event["CreatedDate"] == at
    assert at < event["StartDateTime"] <= at + timedelta(days=2)


def test_demo_changes_are_deterministic(records):
    first = apply_demo_changes(loaded_org(records))
    second = apply_demo_changes(loaded_org(records))
    assert first == second
