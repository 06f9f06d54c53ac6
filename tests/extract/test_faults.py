"""Faults during a query: the window restarts from its committed watermark, within bounds.

Faults are planted in the emulator and hit real HTTP requests. A fault on the
Composite call itself (5xx, dropped connection, a response slower than the read
timeout) is retried by the client before the window restarts. A fault inside a
Composite subresponse (an expired query locator) restarts the window at once.
A skipped page fails the window without moving its watermark.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from emulated_org import START, emulated_org, record, utc

from routiine_pipeline.defs.extract import call_event_metadata
from routiine_pipeline.extract.windows import ExtractSettings
from routiine_pipeline.salesforce.retry import RetryPolicy

OPPORTUNITY = "Opportunity"
SETTINGS = ExtractSettings(lag=timedelta(0), restart_backoff=0.01)
FIRST_STAMP = utc(2024, 3, 1, 8, 0)
NEWEST_STAMP = utc(2024, 3, 1, 9, 14, 59)
LOWER_BOUND = "SystemModstamp >= 2024-03-01T07:55:00Z"


def _client(env):
    client = env.client()
    client.retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    # Generous enough for a 2,000-record page on a busy 2-core machine; the
    # injected delay below is longer still.
    client.timeout = (5.0, 3.0)
    return client


def _prepare(env) -> None:
    """Commit one record, so the window has a watermark, then add 4,500 newer ones (three pages)."""
    env.org.load({OPPORTUNITY: [record(OPPORTUNITY, 1, FIRST_STAMP)]})
    assert env.extract(START, settings=SETTINGS)[OPPORTUNITY].error is None
    env.org.load(
        {
            OPPORTUNITY: [
                record(
                    OPPORTUNITY, n, utc(2024, 3, 1, 9, 0) + timedelta(seconds=n % 900)
                )
                for n in range(2, 4_502)
            ]
        }
    )
    env.org.soql_log.clear()


@pytest.mark.parametrize(
    ("kind", "path", "count", "seconds", "calls", "retries", "restarts", "ok"),
    [
        ("http_500", "/composite", 2, 0.0, 5, 2, 0, True),
        ("http_500", "/composite", 3, 0.0, 6, 2, 1, True),
        ("http_503", "/composite", 9, 0.0, 9, 6, 2, False),
        ("drop_connection", "/composite", 1, 0.0, 4, 1, 0, True),
        ("drop_connection", "/composite", 3, 0.0, 6, 2, 1, True),
        ("delay", "/composite", 1, 5.0, 4, 1, 0, True),
        ("invalid_query_locator", "/query/", 1, 0.0, 5, 0, 1, True),
        ("invalid_query_locator", "/query/", 2, 0.0, 7, 0, 2, True),
        ("invalid_query_locator", "/query/", 3, 0.0, 6, 0, 2, False),
    ],
)
def test_fault_restarts_window(
    tmp_path, kind, path, count, seconds, calls, retries, restarts, ok
):
    with emulated_org(tmp_path) as env:
        _prepare(env)
        env.org.inject_fault(kind, path_contains=path, count=count, seconds=seconds)
        client = _client(env)
        before = env.calls()

        outcome = env.extract(START, settings=SETTINGS, client=client)[OPPORTUNITY]

        assert env.calls() - before == calls
        assert sum(1 for event in client.events if event.kind == "retry") == retries
        assert outcome.restarts == restarts
        # Every attempt, first or restarted, sends the same query from the committed watermark.
        sent = {soql for soql, _ in env.org.soql_log}
        assert len(sent) == (0 if kind == "http_503" else 1)
        assert all(LOWER_BOUND in soql for soql in sent)
        if ok:
            assert outcome.error is None
            assert outcome.received == 4_501
            assert env.watermark(OPPORTUNITY).watermark == NEWEST_STAMP
            assert env.rows(
                "SELECT count(*), count(DISTINCT id) FROM raw_opportunity"
            ) == [(4_501, 4_501)]
        else:
            assert f"gave up after {restarts} restarts" in outcome.error
            assert env.watermark(OPPORTUNITY).watermark == FIRST_STAMP


def test_skipped_page_keeps_watermark(tmp_path):
    with emulated_org(tmp_path) as env:
        _prepare(env)
        env.org.inject_fault("skip_page", path_contains="/query/")

        outcome = env.extract(START, settings=SETTINGS)[OPPORTUNITY]

        assert outcome.error == (
            "tenant acme, Opportunity: received 4000 records but the query reported totalSize 4501; a page "
            "went missing, so the watermark stays where it was and the next pass reads the window again "
            "(tenant acme, sObject Opportunity)"
        )
        assert outcome.done is False
        assert env.watermark(OPPORTUNITY).watermark == FIRST_STAMP

        again = env.extract(START, settings=SETTINGS)[OPPORTUNITY]
        assert again.error is None
        assert again.received == 4_501
        assert env.watermark(OPPORTUNITY).watermark == NEWEST_STAMP


def test_other_objects_finish_when_one_fails(tmp_path):
    with emulated_org(tmp_path) as env:
        _prepare(env)
        env.org.load({"Account": [record("Account", 1, utc(2024, 3, 1, 9, 0))]})
        env.org.inject_fault("invalid_query_locator", path_contains="/query/", count=3)

        outcomes = env.extract(
            START,
            sobjects=("Account", OPPORTUNITY),
            settings=SETTINGS,
            client=_client(env),
        )

        assert outcomes["Account"].error is None
        assert outcomes["Account"].received == 1
        assert outcomes[OPPORTUNITY].error is not None
        assert env.watermark("Account").watermark == utc(2024, 3, 1, 9, 0)


def test_call_events_in_metadata(tmp_path):
    with emulated_org(tmp_path) as env:
        _prepare(env)
        env.org.inject_fault("http_500", path_contains="/composite", count=1)
        client = _client(env)
        env.org.expire_access_tokens()

        env.extract(START, settings=SETTINGS, client=client)
        metadata = call_event_metadata(client.events)

        assert metadata["call_retries"] == 1
        assert metadata["token_refreshes"] == 1
        assert [text.split(":")[0] for text in metadata["call_events"].data] == [
            "refresh",
            "retry",
        ]
