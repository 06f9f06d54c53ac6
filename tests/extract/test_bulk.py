"""Bulk API 2.0 query jobs: the emulator's routes, the client and the pass's switch to Bulk.

Everything runs over HTTP against the emulator and commits into a real DuckDB file.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import requests
from emulated_org import MARCH, START, emulated_org, record, record_id, utc

from routiine_pipeline.emulator.routes_bulk import bulk_jobs
from routiine_pipeline.extract.bulk import BulkSettings
from routiine_pipeline.extract.cycle import ExtractPass
from routiine_pipeline.extract.plan import plan_fields
from routiine_pipeline.extract.records import records_from_csv
from routiine_pipeline.extract.windows import ExtractSettings
from routiine_pipeline.mapping import default_fields
from routiine_pipeline.salesforce import errors
from routiine_pipeline.salesforce.bulk import BulkQueryApi, PollPolicy
from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS
from routiine_pipeline.storage.warehouse import open_database

OPPORTUNITY = "Opportunity"
API = "/services/data/v62.0"
NO_WAIT = PollPolicy(first_delay=0.0, max_delay=0.0, max_wait=5.0)
QUICK = ExtractSettings(lag=timedelta(0), restart_backoff=0.0, bulk_threshold=2_500)


def _opportunities(count: int, stamp=utc(2024, 3, 1, 9, 0)) -> list[dict]:
    return [
        record(OPPORTUNITY, n, stamp + timedelta(seconds=n % 600))
        for n in range(1, count + 1)
    ]


def _run(env, *, settings=QUICK, max_records=1_000, client=None):
    plans = [plan_fields(OPPORTUNITY, default_fields(OPPORTUNITY), None)]
    with open_database(env.database) as conn:
        extract = ExtractPass(
            client or env.client(),
            conn,
            tenant="acme",
            settings=settings,
            run_start=START,
            bulk=BulkSettings(max_records=max_records, poll=NO_WAIT),
        )
        return extract.run(plans, [MARCH])[OPPORTUNITY]


def _session(env) -> requests.Session:
    session = requests.Session()
    token = env.org.issue_tokens(env.server.client.client_id)[0]
    session.headers["Authorization"] = f"Bearer {token}"
    env.sessions.append(session)
    return session


def test_job_info_has_salesforce_shape(tmp_path):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: _opportunities(3)})
        session = _session(env)
        created = session.post(
            env.url + f"{API}/jobs/query",
            json={"operation": "queryAll", "query": "SELECT Id FROM Opportunity"},
        )
        assert created.status_code == 200
        info = created.json()
        assert info["id"].startswith("750")
        assert len(info["id"]) == 18
        assert info["operation"] == "queryAll"
        assert info["object"] == "Opportunity"
        assert info["state"] == "UploadComplete"
        assert info["contentType"] == "CSV"
        assert info["apiVersion"] == 62.0
        assert info["lineEnding"] == "LF"
        assert info["columnDelimiter"] == "COMMA"
        assert info["createdDate"] == "2024-03-01T10:00:00.000+0000"

        early = session.get(env.url + f"{API}/jobs/query/{info['id']}/results")
        assert early.status_code == 412
        assert early.json()[0]["errorCode"] == "JOB_NOT_COMPLETE"

        polled = session.get(env.url + f"{API}/jobs/query/{info['id']}").json()
        assert polled["state"] == "JobComplete"
        assert polled["numberRecordsProcessed"] == 3
        assert env.org.calls["bulk_create"] == 1
        assert env.org.calls["bulk_poll"] == 1
        assert env.org.calls["bulk_results"] == 1


def test_csv_results_paged_by_locator(tmp_path):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: _opportunities(5)})
        session = _session(env)
        job = session.post(
            env.url + f"{API}/jobs/query",
            json={
                "operation": "query",
                "query": "SELECT Id, Amount, IsClosed, CloseDate, SystemModstamp, "
                "NextStep FROM Opportunity ORDER BY Id",
            },
        ).json()
        session.get(env.url + f"{API}/jobs/query/{job['id']}")
        first = session.get(
            env.url + f"{API}/jobs/query/{job['id']}/results", params={"maxRecords": 2}
        )
        assert first.headers["Content-Type"] == "text/csv"
        assert first.headers["Sforce-NumberOfRecords"] == "2"
        assert first.headers["Sforce-Locator"] == "Mg"
        assert first.text.splitlines() == [
            '"Id","Amount","IsClosed","CloseDate","SystemModstamp","NextStep"',
            f'"{record_id(OPPORTUNITY, 1)}","1000.0","false","2024-06-30","2024-03-01T09:00:01.000Z",""',
            f'"{record_id(OPPORTUNITY, 2)}","2000.0","false","2024-06-30","2024-03-01T09:00:02.000Z",""',
        ]
        locators, counts = [], []
        locator = first.headers["Sforce-Locator"]
        while locator != "null":
            chunk = session.get(
                env.url + f"{API}/jobs/query/{job['id']}/results",
                params={"maxRecords": 2, "locator": locator},
            )
            counts.append(chunk.headers["Sforce-NumberOfRecords"])
            locator = chunk.headers["Sforce-Locator"]
            locators.append(locator)
        assert counts == ["2", "1"]
        assert locators == ["NA", "null"]


def test_csv_converted_like_rest_rows():
    fields = [
        STANDARD_SCHEMAS[OPPORTUNITY].field_named(name)
        for name in (
            "Id",
            "Amount",
            "IsClosed",
            "CloseDate",
            "SystemModstamp",
            "NextStep",
        )
    ]
    text = '"Id","Amount","IsClosed","CloseDate","SystemModstamp","NextStep"\n"006000000000001AAA","1500.5","true","2024-06-30","2024-03-01T09:00:01.000Z","say ""hi"",\nbye"\n'
    assert records_from_csv(text, fields) == [
        {
            "Id": "006000000000001AAA",
            "Amount": "1500.5",
            "IsClosed": True,
            "CloseDate": "2024-06-30",
            "SystemModstamp": "2024-03-01T09:00:01.000Z",
            "NextStep": 'say "hi",\nbye',
        }
    ]


@pytest.mark.parametrize(
    ("records", "threshold", "max_records", "method", "chunks", "bulk_calls"),
    [
        (2_400, 2_500, 1_000, "rest", 0, 0),
        (2_600, 2_500, 1_000, "bulk", 3, 5),
        (2_600, 2_500, 10_000, "bulk", 1, 3),
        (2_600, 0, 1_000, "rest", 0, 0),
    ],
)
def test_large_window_read_through_bulk(
    tmp_path, records, threshold, max_records, method, chunks, bulk_calls
):
    settings = ExtractSettings(
        lag=timedelta(0), restart_backoff=0.0, bulk_threshold=threshold
    )
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: _opportunities(records)})
        env.org.delete(
            OPPORTUNITY, record_id(OPPORTUNITY, 7), at=utc(2024, 3, 1, 9, 30)
        )

        outcome = _run(env, settings=settings, max_records=max_records)

        assert outcome.error is None
        assert outcome.read_method == method
        assert len(outcome.bulk_jobs) == (1 if method == "bulk" else 0)
        assert outcome.received == records
        assert outcome.deleted == 1
        bulk = sum(
            env.org.calls.get(kind, 0)
            for kind in ("bulk_create", "bulk_poll", "bulk_results")
        )
        assert bulk == bulk_calls
        assert env.org.calls.get("bulk_results", 0) == chunks
        assert env.rows("SELECT count(*), count(_deleted_at) FROM raw_opportunity") == [
            (records, 1)
        ]
        assert env.watermark(OPPORTUNITY).watermark == utc(2024, 3, 1, 9, 30)


def test_bulk_rows_equal_rest_rows(tmp_path):
    rows = {}
    for method, threshold in (("rest", 0), ("bulk", 2_500)):
        (tmp_path / method).mkdir()
        with emulated_org(tmp_path / method) as env:
            records = _opportunities(2_600)
            records[0].update(
                NextStep='line one\nline "two", end',
                IsClosed=True,
                CloseDate=date(2024, 1, 2),
            )
            env.org.load({OPPORTUNITY: records})
            outcome = _run(
                env,
                settings=ExtractSettings(lag=timedelta(0), bulk_threshold=threshold),
            )
            assert outcome.read_method == method
            rows[method] = env.rows(
                "SELECT * EXCLUDE (_extracted_at) FROM raw_opportunity ORDER BY id"
            )
    assert len(rows["bulk"]) == 2_600
    assert rows["bulk"] == rows["rest"]


@pytest.mark.parametrize(
    ("fault", "path", "count", "restarts", "jobs"),
    [
        ("http_500", "/results", 3, 1, 2),
        ("drop_connection", "/jobs/query/", 1, 0, 1),
        ("failed_job", None, 1, 1, 2),
    ],
)
def test_bulk_fault_restarts_job(tmp_path, fault, path, count, restarts, jobs):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: _opportunities(2_600)})
        if fault == "failed_job":
            bulk_jobs(env.org).fail_next = count
        else:
            env.org.inject_fault(fault, path_contains=path, count=count)

        outcome = _run(env)

        assert outcome.error is None
        assert outcome.restarts == restarts
        assert len(outcome.bulk_jobs) == jobs
        assert outcome.received == 2_600
        assert env.rows("SELECT count(*) FROM raw_opportunity") == [(2_600,)]
        assert env.watermark(OPPORTUNITY).watermark is not None


def test_failed_jobs_leave_watermark(tmp_path):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: _opportunities(2_600)})
        bulk_jobs(env.org).fail_next = 3

        outcome = _run(env)

        assert outcome.error is not None
        assert "JOB_FAILED" in outcome.error
        assert "gave up after 2 restarts" in outcome.error
        assert len(outcome.bulk_jobs) == 3
        assert env.watermark(OPPORTUNITY) is None


def test_poll_waits_for_completion(tmp_path):
    with emulated_org(tmp_path) as env:
        env.org.load({OPPORTUNITY: _opportunities(4)})
        bulk_jobs(env.org).polls_to_complete = 3
        pauses: list[float] = []
        api = BulkQueryApi(env.client(), sleep=pauses.append)
        job = api.create_query_job("SELECT Id FROM Opportunity")
        done = api.wait_for_job(
            job.id, PollPolicy(first_delay=0.5, max_delay=10.0, max_wait=60.0)
        )
        assert done.state == "JobComplete"
        assert done.records_processed == 4
        assert pauses == [0.5, 1.0]
        assert env.org.calls["bulk_poll"] == 3


def test_poll_gives_up_after_max_wait(tmp_path):
    with emulated_org(tmp_path) as env:
        bulk_jobs(env.org).polls_to_complete = 100
        api = BulkQueryApi(env.client(), sleep=lambda seconds: None)
        job = api.create_query_job("SELECT Id FROM Opportunity")
        with pytest.raises(errors.BulkJobError, match="did not finish within 3 s"):
            api.wait_for_job(
                job.id, PollPolicy(first_delay=1.0, max_delay=1.0, max_wait=3.0)
            )
        assert env.org.calls["bulk_poll"] == 4
