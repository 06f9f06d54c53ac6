"""Factor values and words for hand-built signals, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from routiine_pipeline.scoring.actions import Recommendation, format_next_best_action
from routiine_pipeline.scoring.factors import (
    amount_change,
    close_date_pushes,
    contact_breadth,
    recency,
    stage_age,
    two_way_engagement,
)
from routiine_pipeline.scoring.signals import DealSignals, StageBenchmark

AS_OF = datetime(2025, 6, 1, tzinfo=UTC)
BASE = DealSignals(
    deal_id="006X",
    name="X",
    account_name=None,
    owner_name=None,
    canonical_stage="Qualification",
    stage_category="open",
    is_open=True,
    amount=1000.0,
    close_date=date(2025, 7, 1),
    created_at=AS_OF - timedelta(days=60),
    stage_entered_at=AS_OF - timedelta(days=20),
    has_stage_history=True,
)


@pytest.mark.parametrize(
    ("last_event_days", "value", "text"),
    [
        (0, 1.0, "Last contact today"),
        (14, 0.0, "Last contact 14 days ago"),
        (28, -0.5, "No contact for 28 days"),
        (None, -0.8975, "No contact logged since the deal was created 60 days ago"),
    ],
)
def test_recency(last_event_days, value, text):
    last = None if last_event_days is None else AS_OF - timedelta(days=last_event_days)
    result = recency(replace(BASE, last_event_at=last), AS_OF)
    assert round(result.normalised, 4) == value
    assert result.text == text


@pytest.mark.parametrize(
    ("contacts", "value", "text"),
    [
        (0, -1.0, "No stakeholder engaged in the last 30 days"),
        (1, -0.3333, "Only 1 stakeholder engaged in the last 30 days"),
        (2, 0.3333, "2 stakeholders engaged in the last 30 days"),
        (5, 1.0, "5 stakeholders engaged in the last 30 days"),
    ],
)
def test_contact_breadth(contacts, value, text):
    result = contact_breadth(replace(BASE, contacts_30d=contacts))
    assert round(result.normalised, 4) == value
    assert result.text == text


@pytest.mark.parametrize(
    ("engaged", "outbound", "value"),
    [(0, 0, 0.0), (1, 9, 0.3333), (4, 0, 1.0), (0, 2, -0.5), (0, 7, -1.0)],
)
def test_two_way_engagement(engaged, outbound, value):
    result = two_way_engagement(
        replace(BASE, engaged_30d=engaged, outbound_30d=outbound)
    )
    assert round(result.normalised, 4) == value


@pytest.mark.parametrize(
    ("pushes", "close", "value", "skipped"),
    [
        (0, date(2025, 7, 1), 0.0, None),
        (2, date(2025, 7, 1), -0.6667, None),
        (5, date(2025, 7, 1), -1.0, None),
        (1, None, None, "close date is missing"),
    ],
)
def test_close_date_pushes(pushes, close, value, skipped):
    result = close_date_pushes(
        replace(BASE, close_date_pushes=pushes, close_date=close)
    )
    assert (None if result.normalised is None else round(result.normalised, 4)) == value
    assert result.skipped_reason == skipped


@pytest.mark.parametrize(
    ("first", "amount", "value", "text"),
    [
        (1000.0, 1250.0, 0.5, "Amount up 25% since first recorded"),
        (1000.0, 400.0, -1.0, "Amount down 60% since first recorded"),
        (None, 1000.0, 0.0, "No earlier amount to compare"),
        (0.0, 1000.0, 0.0, "No earlier amount to compare"),
        (1000.0, None, None, "Not scored: amount is missing"),
    ],
)
def test_amount_change(first, amount, value, text):
    result = amount_change(replace(BASE, first_amount=first, amount=amount))
    assert result.normalised == value
    assert result.text == text


@pytest.mark.parametrize(
    ("benchmark", "value", "skipped"),
    [
        (StageBenchmark(10.0, 3, 5.0, 3), -1.0, None),
        (StageBenchmark(40.0, 3, 5.0, 3), 0.5, None),
        (
            StageBenchmark(40.0, 2, 5.0, 2),
            None,
            "fewer than 3 won deals passed through Qualification",
        ),
        (None, None, "fewer than 3 won deals passed through Qualification"),
    ],
)
def test_stage_age(benchmark, value, skipped):
    result = stage_age(BASE, benchmark, AS_OF)
    assert result.normalised == value
    assert result.skipped_reason == skipped


@pytest.mark.parametrize(
    ("recommendation", "expected"),
    [
        (
            Recommendation("re_engage", "no contact for 40 days"),
            "Re-engage: no contact for 14 days or more.",
        ),
        (
            Recommendation("re_engage", "no contact for 41 days"),
            "Re-engage: no contact for 14 days or more.",
        ),
        (
            Recommendation(
                "advance_stage",
                "30 days in Qualification, longer than the 7-day median of won deals",
            ),
            "Advance the stage: the deal has stayed in its stage longer than won deals usually do.",
        ),
        (
            Recommendation("update_close_date", "the close date is missing"),
            "Update the close date: the close date is missing.",
        ),
    ],
)
def test_next_best_action_stays_stable_as_days_pass(recommendation, expected):
    assert format_next_best_action(recommendation, 12, ["x" * 120]) == expected


def test_next_best_action_fits_255():
    text = format_next_best_action(
        Recommendation("update_close_date", "z" * 400), 12, []
    )
    assert len(text) == 255
    assert text.endswith("...")
    assert len(text) <= 255


def test_next_best_action_truncates_long_reason():
    text = format_next_best_action(Recommendation("keep_momentum", "r" * 400), None, [])
    assert len(text) == 255
    assert text.endswith("...")
