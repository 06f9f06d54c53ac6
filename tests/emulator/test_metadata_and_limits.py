"""Describe, /limits, the versions list, the Sforce-Limit-Info header and request-level faults."""

from __future__ import annotations

import time

import pytest
import requests

from tests.emulator.conftest import API, Emulator, start_emulator


def test_describe_opportunity_shape(emulator: Emulator) -> None:
    response = emulator.get(f"{API}/sobjects/Opportunity/describe")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Opportunity"
    assert body["keyPrefix"] == "006"
    assert body["queryable"] is True
    assert body["updateable"] is True
    assert body["urls"]["describe"] == f"{API}/sobjects/Opportunity/describe"
    assert list(body) == sorted(body)
    fields = {field["name"]: field for field in body["fields"]}
    stage = fields["StageName"]
    assert stage["type"] == "picklist"
    assert stage["soapType"] == "xsd:string"
    assert {
        "active": True,
        "defaultValue": False,
        "label": "Closed Won",
        "validFor": None,
        "value": "Closed Won",
    } in stage["picklistValues"]
    assert fields["Days_Open__c"]["calculated"] is True
    assert fields["Days_Open__c"]["updateable"] is False
    assert fields["Momentum_Score__c"]["custom"] is True
    assert fields["Momentum_Score__c"]["updateable"] is True
    assert fields["AccountId"]["referenceTo"] == ["Account"]
    assert fields["AccountId"]["relationshipName"] == "Account"
    for key in (
        "name",
        "label",
        "type",
        "length",
        "precision",
        "scale",
        "updateable",
        "createable",
        "nillable",
        "calculated",
        "custom",
        "filterable",
        "referenceTo",
        "picklistValues",
        "soapType",
    ):
        assert key in stage, key


def test_describe_unknown_object_404(emulator: Emulator) -> None:
    response = emulator.get(f"{API}/sobjects/Lead/describe")
    assert response.status_code == 404
    assert response.json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]


def test_global_describe(emulator: Emulator) -> None:
    body = emulator.get(f"{API}/sobjects/").json()
    assert body["encoding"] == "UTF-8"
    assert body["maxBatchSize"] == 200
    names = [entry["name"] for entry in body["sobjects"]]
    assert names == [
        "Account",
        "Contact",
        "User",
        "Opportunity",
        "OpportunityHistory",
        "Task",
        "Event",
    ]
    assert "fields" not in body["sobjects"][0]


def test_limits_resource(emulator: Emulator) -> None:
    emulator.org.add_other_app_usage(100)
    body = emulator.get(f"{API}/limits").json()
    # This request itself is the 101st call of the rolling day.
    assert body["DailyApiRequests"] == {"Max": 15000, "Remaining": 15000 - 101}
    assert body["DataStorageMB"] == {"Max": 5, "Remaining": 5}


def test_limit_header_on_every_response(emulator: Emulator) -> None:
    responses = [
        emulator.get(f"{API}/limits"),
        emulator.query("SELECT Nope FROM Opportunity"),
        emulator.get(f"{API}/no/such/resource"),
        requests.get(f"{emulator.url}{API}/limits", timeout=10),
    ]
    assert [response.status_code for response in responses] == [200, 400, 404, 401]
    headers = [response.headers.get("Sforce-Limit-Info") for response in responses]
    # The 401 is not counted, but still reports the usage.
    assert headers == [
        "api-usage=1/15000",
        "api-usage=2/15000",
        "api-usage=3/15000",
        "api-usage=3/15000",
    ]


def test_versions_list_needs_no_token(emulator: Emulator) -> None:
    response = requests.get(f"{emulator.url}/services/data/", timeout=10)
    assert response.status_code == 200
    assert "Sforce-Limit-Info" not in response.headers
    versions = response.json()
    assert versions[0] == {
        "label": "Spring '18",
        "url": "/services/data/v42.0",
        "version": "42.0",
    }
    assert versions[-1] == {
        "label": "Winter '25",
        "url": "/services/data/v62.0",
        "version": "62.0",
    }
    assert emulator.org.data_api_calls == 0


def test_old_api_version_not_found(emulator: Emulator) -> None:
    assert emulator.get("/services/data/v41.0/limits").status_code == 404
    assert emulator.get("/services/data/v66.0/limits").status_code == 200


def test_daily_limit_exceeded(clock, org) -> None:
    org.daily_api_limit = 3
    emulator = start_emulator(org, clock)
    try:
        org.add_other_app_usage(2)
        assert emulator.get(f"{API}/limits").status_code == 200
        response = emulator.get(f"{API}/limits")
        assert response.status_code == 403
        assert response.json() == [
            {
                "message": "TotalRequests Limit exceeded.",
                "errorCode": "REQUEST_LIMIT_EXCEEDED",
            }
        ]
        assert response.headers["Sforce-Limit-Info"] == "api-usage=3/3"
        # Usage is a rolling 24-hour window.
        clock.advance(24 * 3600 + 1)
        access, _ = org.issue_tokens(emulator.server.client.client_id)
        assert (
            emulator.get(
                f"{API}/limits", headers={"Authorization": f"Bearer {access}"}
            ).status_code
            == 200
        )
    finally:
        emulator.server.stop()


@pytest.mark.parametrize(
    ("kind", "status", "error_code"),
    [
        ("http_500", 500, "UNKNOWN_EXCEPTION"),
        ("http_503", 503, "SERVER_UNAVAILABLE"),
        ("request_limit", 403, "REQUEST_LIMIT_EXCEEDED"),
        ("invalid_session", 401, "INVALID_SESSION_ID"),
    ],
)
def test_request_fault(
    emulator: Emulator, kind: str, status: int, error_code: str
) -> None:
    emulator.org.inject_fault(kind, path_contains="/limits")
    assert emulator.query("SELECT Id FROM Account").status_code == 200
    response = emulator.get(f"{API}/limits")
    assert response.status_code == status
    assert response.json()[0]["errorCode"] == error_code
    assert emulator.get(f"{API}/limits").status_code == 200


def test_drop_connection_fault(emulator: Emulator) -> None:
    emulator.org.inject_fault("drop_connection", count=1)
    with pytest.raises(requests.ConnectionError):
        emulator.get(f"{API}/limits")
    assert emulator.get(f"{API}/limits").status_code == 200


def test_delay_fault(emulator: Emulator) -> None:
    emulator.org.inject_fault("delay", seconds=0.3)
    started = time.monotonic()
    assert emulator.get(f"{API}/limits").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_unknown_path_404(emulator: Emulator) -> None:
    response = requests.get(f"{emulator.url}/nowhere", timeout=10)
    assert response.status_code == 404
    assert response.json() == [
        {"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}
    ]
