"""Org behaviour (deletes, late commits, system-only updates, clock) and the /_emulator/ admin routes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from routiine_pipeline.emulator import Clock
from routiine_pipeline.salesforce.ids import make_id
from tests.emulator.conftest import API, START, Emulator, opportunity

OPP1, OPP2 = make_id("Opportunity", 1), make_id("Opportunity", 2)


def load_two_with_task(emulator: Emulator) -> str:
    emulator.org.load({"Opportunity": [opportunity(1, START), opportunity(2, START)]})
    return emulator.org.insert(
        "Task", {"WhatId": OPP2, "Status": "Not Started", "Subject": "Call"}
    )


def test_delete_cascades_to_activities(emulator: Emulator) -> None:
    task_id = load_two_with_task(emulator)
    deleted_at = START + timedelta(hours=1)
    emulator.org.delete("Opportunity", OPP2, at=deleted_at)
    assert [
        r["Id"] for r in emulator.query("SELECT Id FROM Opportunity").json()["records"]
    ] == [OPP1]
    assert emulator.query("SELECT Id FROM Task").json()["totalSize"] == 0
    rows = emulator.query(
        "SELECT Id, IsDeleted, SystemModstamp FROM Task", all_rows=True
    ).json()["records"]
    assert rows[0]["Id"] == task_id
    assert rows[0]["IsDeleted"] is True
    assert rows[0]["SystemModstamp"] == "2024-03-01T11:00:00.000+0000"
    emulator.org.undelete("Opportunity", OPP2)
    assert emulator.query("SELECT Id FROM Task").json()["totalSize"] == 1


def test_deleted_resource_and_purge(emulator: Emulator) -> None:
    load_two_with_task(emulator)
    emulator.org.delete("Opportunity", OPP2, at=START + timedelta(minutes=30))
    emulator.clock.advance(3600)
    emulator.org.purge_recycle_bin()
    assert (
        emulator.query("SELECT Id FROM Opportunity", all_rows=True).json()["totalSize"]
        == 1
    )
    params = {"start": "2024-03-01T00:00:00+00:00", "end": "2024-03-01T12:00:00Z"}
    response = emulator.get(f"{API}/sobjects/Opportunity/deleted/", params=params)
    assert response.status_code == 200
    assert response.json() == {
        "deletedRecords": [{"id": OPP2, "deletedDate": "2024-03-01T10:30:00.000+0000"}],
        "earliestDateAvailable": "2024-02-15T11:00:00.000+0000",
        "latestDateCovered": "2024-03-01T11:00:00.000+0000",
    }
    assert emulator.org.calls["deleted"] == 1
    too_old = emulator.get(
        f"{API}/sobjects/Opportunity/deleted/",
        params={"start": "2024-02-01T00:00:00Z", "end": "2024-03-01T00:00:00Z"},
    )
    assert too_old.status_code == 400
    assert too_old.json()[0]["errorCode"] == "INVALID_REPLICATION_DATE"
    # A purged record cannot be written any more.
    body = {
        "records": [
            {"attributes": {"type": "Opportunity"}, "id": OPP2, "Momentum_Score__c": 1}
        ]
    }
    assert (
        emulator.patch(f"{API}/composite/sobjects", body).json()[0]["errors"][0][
            "statusCode"
        ]
        == "ENTITY_IS_DELETED"
    )


def test_late_commit_is_found_by_overlapping_window(emulator: Emulator) -> None:
    emulator.org.load(
        {
            "Opportunity": [
                opportunity(1, START + timedelta(seconds=298)),
                opportunity(2, START + timedelta(seconds=299)),
            ]
        }
    )
    late_stamp = START + timedelta(seconds=297)
    late_id = emulator.org.late_commit(
        "Opportunity",
        {"Name": "Late", "StageName": "Negotiation/Review", "CloseDate": "2024-05-01"},
        stamp=late_stamp,
    )
    after_watermark = emulator.query(
        "SELECT Id FROM Opportunity WHERE SystemModstamp > 2024-03-01T10:04:59Z"
    ).json()
    assert after_watermark["totalSize"] == 0
    overlap = emulator.query(
        "SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp >= 2024-03-01T10:03:59Z ORDER BY SystemModstamp"
    ).json()
    assert overlap["records"][0]["Id"] == late_id
    assert overlap["records"][0]["SystemModstamp"] == "2024-03-01T10:04:57.000+0000"


def test_system_only_update_keeps_last_modified(emulator: Emulator) -> None:
    emulator.org.load({"Opportunity": [opportunity(1, START - timedelta(days=1))]})
    emulator.org.update(
        "Opportunity", OPP1, {"StageName": "Negotiation/Review"}, system_only=True
    )
    record = emulator.org.get("Opportunity", OPP1)
    assert record["SystemModstamp"] == START
    assert record["LastModifiedDate"] == START - timedelta(days=1)
    assert emulator.org.records("OpportunityHistory") == []


def test_insert_ids_continue_after_loaded(emulator: Emulator) -> None:
    emulator.org.load({"Opportunity": [opportunity(7, START)]})
    new_id = emulator.org.insert(
        "Opportunity",
        {"Name": "New", "StageName": "Closed Lost", "CloseDate": "2024-03-01"},
    )
    assert new_id == make_id("Opportunity", 8)
    record = emulator.org.get("Opportunity", new_id)
    assert record["IsClosed"] is True
    assert record["IsWon"] is False
    assert record["CreatedDate"] == START
    history = emulator.org.records("OpportunityHistory")
    assert [row["OpportunityId"] for row in history] == [new_id]


def test_clock_controls() -> None:
    clock = Clock(START, frozen=True)
    assert clock.now() == START
    clock.advance(90)
    assert clock.now() == START + timedelta(seconds=90)
    clock.unfreeze()
    assert clock.frozen is False
    assert clock.now() >= START + timedelta(seconds=90)
    clock.set(datetime(2025, 1, 1, tzinfo=UTC))
    assert clock.now().year == 2025


def admin(
    emulator: Emulator, action: str, body: dict | None = None
) -> requests.Response:
    url = f"{emulator.url}/_emulator/{action}"
    if body is None:
        return requests.get(url, timeout=10)
    return requests.post(url, json=body, timeout=10)


def test_admin_routes(emulator: Emulator) -> None:
    inserted = admin(
        emulator,
        "mutate",
        {
            "op": "insert",
            "sobject": "Opportunity",
            "values": {
                "Name": "A",
                "StageName": "Prospecting",
                "CloseDate": "2024-06-01",
                "Amount": 10,
            },
            "at": "2024-03-01T09:00:00Z",
        },
    )
    assert inserted.status_code == 200
    record_id = inserted.json()["id"]
    assert (
        admin(
            emulator,
            "mutate",
            {
                "op": "update",
                "sobject": "Opportunity",
                "id": record_id,
                "values": {"StageName": "Qualification"},
                "system_only": True,
            },
        ).status_code
        == 200
    )
    clock = admin(emulator, "clock", {"advance": 60}).json()
    assert clock == {"now": "2024-03-01T10:01:00.000+0000", "frozen": True}
    assert (
        admin(
            emulator,
            "mutate",
            {"op": "delete", "sobject": "Opportunity", "id": record_id},
        ).status_code
        == 200
    )
    rows = admin(emulator, "records/Opportunity?include_deleted=true").json()
    assert rows[0]["IsDeleted"] is True
    assert rows[0]["SystemModstamp"] == "2024-03-01T10:01:00.000+0000"
    assert rows[0]["CreatedDate"] == "2024-03-01T09:00:00.000+0000"
    assert (
        admin(
            emulator, "fault", {"kind": "http_503", "path_contains": "/limits"}
        ).status_code
        == 200
    )
    assert emulator.get(f"{API}/limits").status_code == 503
    assert (
        admin(
            emulator,
            "record-fault",
            {
                "record_id": record_id,
                "status_code": "UNABLE_TO_LOCK_ROW",
                "message": "locked",
            },
        ).status_code
        == 200
    )
    assert admin(emulator, "expire-tokens", {}).json() == {"expired": 1}
    assert emulator.get(f"{API}/limits").status_code == 401
    stats = admin(emulator, "stats").json()
    assert stats["calls"]["limits"] == 1
    assert stats["data_api_calls"] == 1
    assert stats["records"]["Opportunity"] == 1
    assert admin(emulator, "write-log").json() == []
    bad = admin(emulator, "mutate", {"op": "explode"})
    assert bad.status_code == 400
    assert "unknown op" in bad.json()["error"]
