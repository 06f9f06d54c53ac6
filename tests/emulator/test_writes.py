"""Write-back paths: sObject Collections, single-record PATCH and composite requests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from routiine_pipeline.salesforce.ids import make_id
from tests.emulator.conftest import API, START, Emulator, opportunity

OPP = {n: make_id("Opportunity", n) for n in range(1, 8)}
COLLECTIONS = f"{API}/composite/sobjects"


@pytest.fixture
def loaded(emulator: Emulator) -> Emulator:
    emulator.org.load(
        {
            "Opportunity": [
                opportunity(n, START - timedelta(days=1)) for n in range(1, 7)
            ]
        }
    )
    emulator.org.delete("Opportunity", OPP[6], at=START - timedelta(hours=1))
    emulator.clock.advance(60)
    return emulator


def score(number: int, value: float, **extra) -> dict:
    return {
        "attributes": {"type": "Opportunity"},
        "id": OPP[number],
        "Momentum_Score__c": value,
        **extra,
    }


def test_collection_update_success(loaded: Emulator) -> None:
    response = loaded.patch(
        COLLECTIONS, {"allOrNone": False, "records": [score(1, 71), score(2, 35.5)]}
    )
    assert response.status_code == 200
    assert response.json() == [
        {"id": OPP[1], "success": True, "errors": []},
        {"id": OPP[2], "success": True, "errors": []},
    ]
    record = loaded.org.get("Opportunity", OPP[1])
    assert record["Momentum_Score__c"] == 71.0
    assert record["SystemModstamp"] == START + timedelta(seconds=60)
    assert record["LastModifiedDate"] == START + timedelta(seconds=60)
    assert record["LastModifiedById"] == loaded.org.integration_user_id
    assert loaded.org.calls["collections"] == 1
    assert loaded.org.data_api_calls == 1
    log = loaded.org.write_log
    assert len(log) == 1
    assert log[0]["path"] == COLLECTIONS
    assert log[0]["body"]["records"][1]["Momentum_Score__c"] == 35.5
    assert log[0]["at"] == START + timedelta(seconds=60)


def test_collection_per_record_faults(loaded: Emulator) -> None:
    org = loaded.org
    lock_message = "unable to obtain exclusive access to this record or 1 records: 001000000000001AAA"
    org.inject_record_fault(OPP[2], "UNABLE_TO_LOCK_ROW", lock_message)
    validation = [
        {
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Close Date cannot be in the past",
            "fields": ["CloseDate"],
        },
        {
            "statusCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION",
            "message": "Next Step is required",
            "fields": ["NextStep"],
        },
    ]
    org.inject_record_fault(OPP[3], errors=validation)
    org.inject_record_fault(
        OPP[4],
        "INSUFFICIENT_ACCESS_OR_READONLY",
        "insufficient access rights on object id",
    )
    records = [
        score(1, 10),
        score(2, 20),
        score(3, 30),
        score(4, 40),
        score(6, 60),
        score(5, 50, IsWon=True),
    ]
    results = loaded.patch(COLLECTIONS, {"allOrNone": False, "records": records}).json()
    assert [result["success"] for result in results] == [
        True,
        False,
        False,
        False,
        False,
        False,
    ]
    assert results[1]["errors"] == [
        {"statusCode": "UNABLE_TO_LOCK_ROW", "message": lock_message, "fields": []}
    ]
    assert results[2]["errors"] == validation
    assert results[3]["errors"][0]["statusCode"] == "INSUFFICIENT_ACCESS_OR_READONLY"
    assert results[4]["errors"] == [
        {
            "statusCode": "ENTITY_IS_DELETED",
            "message": "entity is deleted",
            "fields": [],
        }
    ]
    assert results[5]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert results[5]["errors"][0]["fields"] == ["IsWon"]
    assert org.get("Opportunity", OPP[1])["Momentum_Score__c"] == 10.0
    assert org.get("Opportunity", OPP[2])["Momentum_Score__c"] is None
    # Each planted fault fails one attempt, so a retry of the locked record succeeds.
    retry = loaded.patch(
        COLLECTIONS, {"allOrNone": False, "records": [score(2, 20)]}
    ).json()
    assert retry == [{"id": OPP[2], "success": True, "errors": []}]


def test_collection_unknown_and_read_only_fields(loaded: Emulator) -> None:
    loaded.org.set_field_updateable(
        "Opportunity", "Momentum_Score__c", updateable=False
    )
    records = [
        score(1, 10),
        {"attributes": {"type": "Opportunity"}, "id": OPP[2], "Region__c": "EU"},
    ]
    results = loaded.patch(COLLECTIONS, {"records": records}).json()
    assert results[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert results[0]["errors"][0]["fields"] == ["Momentum_Score__c"]
    assert results[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    describe = loaded.get(f"{API}/sobjects/Opportunity/describe").json()
    field = next(f for f in describe["fields"] if f["name"] == "Momentum_Score__c")
    assert field["updateable"] is False


def test_collection_all_or_none_rolls_back(loaded: Emulator) -> None:
    loaded.org.inject_record_fault(
        OPP[2], "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
    )
    results = loaded.patch(
        COLLECTIONS, {"allOrNone": True, "records": [score(1, 10), score(2, 20)]}
    ).json()
    assert results[0] == {
        "id": OPP[1],
        "success": False,
        "errors": [
            {
                "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
                "fields": [],
            }
        ],
    }
    assert results[1]["errors"][0]["statusCode"] == "UNABLE_TO_LOCK_ROW"
    assert loaded.org.get("Opportunity", OPP[1])["Momentum_Score__c"] is None


def test_collection_over_200_records(loaded: Emulator) -> None:
    records = [score(1, n) for n in range(201)]
    response = loaded.patch(COLLECTIONS, {"allOrNone": False, "records": records})
    assert response.status_code == 400
    assert response.json() == [
        {
            "message": "record limit reached. cannot submit more than 200 records into this call",
            "errorCode": "EXCEEDED_ID_LIMIT",
        }
    ]
    assert loaded.patch(COLLECTIONS, {"records": records[:200]}).status_code == 200


def test_collection_bad_value_type(loaded: Emulator) -> None:
    response = loaded.patch(COLLECTIONS, {"records": [score(1, "high")]})
    assert response.status_code == 400
    assert response.json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_single_record_patch(loaded: Emulator) -> None:
    response = loaded.patch(
        f"{API}/sobjects/Opportunity/{OPP[1]}", {"Momentum_Score__c": 88}
    )
    assert response.status_code == 204
    assert response.content == b""
    assert loaded.org.get("Opportunity", OPP[1])["Momentum_Score__c"] == 88.0
    deleted = loaded.patch(
        f"{API}/sobjects/Opportunity/{OPP[6]}", {"Momentum_Score__c": 1}
    )
    assert deleted.status_code == 404
    assert deleted.json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    missing = loaded.patch(
        f"{API}/sobjects/Opportunity/{make_id('Opportunity', 99)}",
        {"Momentum_Score__c": 1},
    )
    assert missing.status_code == 404
    assert missing.json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]
    too_long = loaded.patch(
        f"{API}/sobjects/Opportunity/{OPP[1]}", {"Next_Best_Action__c": "x" * 256}
    )
    assert too_long.status_code == 400
    assert too_long.json()[0]["errorCode"] == "STRING_TOO_LONG"


def test_stage_change_writes_history(loaded: Emulator) -> None:
    response = loaded.patch(
        f"{API}/sobjects/Opportunity/{OPP[1]}",
        {"StageName": "Closed Won", "Amount": 5000},
    )
    assert response.status_code == 204
    record = loaded.org.get("Opportunity", OPP[1])
    assert record["IsClosed"] is True
    assert record["IsWon"] is True
    history = loaded.query(
        "SELECT OpportunityId, StageName, Amount, PrevAmount FROM OpportunityHistory"
    ).json()
    assert history["records"][0]["OpportunityId"] == OPP[1]
    assert history["records"][0]["StageName"] == "Closed Won"
    assert history["records"][0]["PrevAmount"] == 1000.0


def query_sub(
    reference: str, soql: str = "SELECT Id FROM Opportunity ORDER BY Id"
) -> dict:
    return {"method": "GET", "url": f"{API}/query?q={soql}", "referenceId": reference}


def test_composite_five_queries_one_call(loaded: Emulator) -> None:
    body = {"compositeRequest": [query_sub(f"q{n}") for n in range(5)]}
    response = loaded.post(f"{API}/composite", body)
    assert response.status_code == 200
    entries = response.json()["compositeResponse"]
    assert [entry["referenceId"] for entry in entries] == ["q0", "q1", "q2", "q3", "q4"]
    assert all(entry["httpStatusCode"] == 200 for entry in entries)
    assert entries[0]["body"]["totalSize"] == 5
    assert entries[0]["httpHeaders"] == {}
    assert loaded.org.data_api_calls == 1
    assert loaded.org.calls == {"composite": 1}
    assert response.headers["Sforce-Limit-Info"] == "api-usage=1/15000"


def test_composite_sixth_query_rejected(loaded: Emulator) -> None:
    body = {"compositeRequest": [query_sub(f"q{n}") for n in range(6)]}
    response = loaded.post(f"{API}/composite", body)
    assert response.status_code == 400
    error = response.json()["compositeResponse"][0]["body"][0]
    assert error["errorCode"] == "LIMIT_EXCEEDED"
    # Describe calls do not count toward the limit of 5.
    describes = [
        {
            "method": "GET",
            "url": f"{API}/sobjects/Task/describe",
            "referenceId": f"d{n}",
        }
        for n in range(20)
    ]
    body = {"compositeRequest": [query_sub(f"q{n}") for n in range(5)] + describes}
    assert loaded.post(f"{API}/composite", body).status_code == 200
    body = {
        "compositeRequest": [query_sub(f"q{n}") for n in range(5)]
        + describes
        + [describes[0]]
    }
    assert loaded.post(f"{API}/composite", body).status_code == 400


def test_composite_next_records_url_counts_as_query(loaded: Emulator) -> None:
    first = loaded.query("SELECT Id FROM Opportunity").json()
    body = {"compositeRequest": [query_sub(f"q{n}") for n in range(5)]}
    body["compositeRequest"][4] = {
        "method": "GET",
        "url": f"{API}/query/01g000000000000AAA-1",
        "referenceId": "more",
    }
    entries = loaded.post(f"{API}/composite", body).json()["compositeResponse"]
    assert entries[4]["httpStatusCode"] == 400
    assert entries[4]["body"][0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    assert first["done"] is True


def test_composite_patch_and_reference(loaded: Emulator) -> None:
    body = {
        "allOrNone": False,
        "compositeRequest": [
            query_sub("first", f"SELECT Id FROM Opportunity WHERE Id = '{OPP[3]}'"),
            {
                "method": "PATCH",
                "url": f"{API}/sobjects/Opportunity/@{{first.records[0].Id}}",
                "referenceId": "update",
                "body": {"Momentum_Score__c": 64},
            },
        ],
    }
    entries = loaded.post(f"{API}/composite", body).json()["compositeResponse"]
    assert entries[1] == {
        "body": None,
        "httpHeaders": {},
        "httpStatusCode": 204,
        "referenceId": "update",
    }
    assert loaded.org.get("Opportunity", OPP[3])["Momentum_Score__c"] == 64.0


def test_composite_all_or_none_rollback(loaded: Emulator) -> None:
    patch = {
        "method": "PATCH",
        "referenceId": "ok",
        "url": f"{API}/sobjects/Opportunity/{OPP[1]}",
        "body": {"Momentum_Score__c": 5},
    }
    bad = {
        "method": "PATCH",
        "referenceId": "bad",
        "url": f"{API}/sobjects/Opportunity/{OPP[6]}",
        "body": {"Momentum_Score__c": 5},
    }
    entries = loaded.post(
        f"{API}/composite", {"allOrNone": True, "compositeRequest": [patch, bad]}
    ).json()["compositeResponse"]
    assert entries[0]["body"][0]["errorCode"] == "PROCESSING_HALTED"
    assert entries[1]["body"][0]["errorCode"] == "ENTITY_IS_DELETED"
    assert loaded.org.get("Opportunity", OPP[1])["Momentum_Score__c"] is None
