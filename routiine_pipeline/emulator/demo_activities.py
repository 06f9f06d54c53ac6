"""Generated records of the demo org: contacts, stage history, calls, emails and meetings.

The source data has no contacts and only an engage date and a close date
per deal, so the rest is generated here. Each deal draws from its own random
stream, seeded from the demo seed and the deal, so one deal's timeline does
not depend on the others.

Times are generated relative to `cutoff`, the start of the cutoff's UTC day.
Everything happens before it except booked meetings, so the records depend
only on the cutoff's date and not on its time of day.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from routiine_pipeline.salesforce.ids import make_id
from routiine_pipeline.salesforce.schema import OPPORTUNITY_STAGES, STANDARD_SCHEMAS

PROBABILITIES: dict[str, float] = dict(
    zip(OPPORTUNITY_STAGES, (10.0, 20.0, 20.0, 75.0, 90.0, 100.0, 0.0))
)
OPEN_STAGES = OPPORTUNITY_STAGES[:5]
CLOSED_STAGES = ("Closed Won", "Closed Lost")

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)

# Mean activity count before the per-deal spread, which multiplies it by
# about 1.2 on average. Won deals are busier than lost ones.
ACTIVITY_MEANS = {"won": 6.0, "lost": 3.5, "open": 4.0}
ACTIVITY_KINDS = ("call", "email", "meeting", "other")
KIND_WEIGHTS = {
    "won": (0.36, 0.36, 0.20, 0.08),
    "lost": (0.42, 0.42, 0.08, 0.08),
    "open": (0.40, 0.40, 0.12, 0.08),
}
# How long ago an open deal was last touched: (profile, weight, min, max).
OPEN_PROFILES = (
    ("active", 0.40, HOUR, 7 * DAY),
    ("cooling", 0.30, 8 * DAY, 21 * DAY),
    ("quiet", 0.30, 22 * DAY, 90 * DAY),
)

CALL_SUBJECTS = ("Discovery call", "Follow-up call", "Pricing call", "Check-in call")
EMAIL_SUBJECTS = (
    "Email: Product overview",
    "Email: Quote attached",
    "Email: Meeting recap",
    "Email: Next steps",
)
MEETING_SUBJECTS = ("Product demo", "Requirements workshop", "Proposal review")
OTHER_SUBJECTS = ("Update account notes", "Prepare quote", "Internal deal review")
MEETING_MINUTES = (30, 45, 60, 90)
FIRST_NAMES = (
    "Alex", "Amira", "Ben", "Carla", "Chen", "Dana", "Diego", "Elena", "Farah",
    "Grace", "Hiro", "Ines", "Jamal", "Julia", "Kofi", "Laura", "Liam", "Maya",
    "Nadia", "Omar", "Priya", "Rosa", "Sam", "Sofia", "Tom", "Yara",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Baker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes",
    "Ito", "Jensen", "Kim", "Larsen", "Mendes", "Novak", "Okafor", "Patel",
    "Quinn", "Rossi", "Silva", "Tanaka", "Underwood", "Weber", "Young", "Zhang",
)  # fmt: skip
CONTACT_TITLES = (
    "CIO", "CTO", "VP Operations", "IT Director", "Procurement Manager",
    "Head of Infrastructure", "Purchasing Lead", "Finance Director",
)  # fmt: skip


@dataclass(frozen=True)
class StageChange:
    """One OpportunityHistory row: the deal's values from `at` on."""

    at: datetime
    stage: str
    amount: float
    close_date: date


@dataclass
class Deal:
    """An opportunity's generated timeline and the people its activities involve."""

    opportunity_id: str
    account_id: str | None
    owner_id: str
    contact_ids: list[str]
    changes: list[StageChange]

    @property
    def created(self) -> datetime:
        return self.changes[0].at

    @property
    def outcome(self) -> str:
        final = self.changes[-1].stage
        return {"Closed Won": "won", "Closed Lost": "lost"}.get(final, "open")


def business_time(day: date, rng: random.Random) -> datetime:
    """Pick a whole-second UTC time between 08:00 and 18:00 on `day`."""
    start = datetime.combine(day, time(8), tzinfo=UTC)
    return start + timedelta(seconds=rng.randrange(10 * 3600))


def between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    """Pick a whole-second time in [start, end], or `start` when the range is empty."""
    span = int((end - start).total_seconds())
    if span <= 0:
        return start
    return start + timedelta(seconds=rng.randint(0, span))


def random_span(rng: random.Random, low: timedelta, high: timedelta) -> timedelta:
    """Pick a whole-second duration in [low, high]."""
    return timedelta(
        seconds=rng.randint(int(low.total_seconds()), int(high.total_seconds()))
    )


def system_values(created: datetime, by: str, modified: datetime | None = None) -> dict:
    """Return the audit fields of a record that was last edited at `modified`."""
    modified = modified or created
    return {
        "IsDeleted": False,
        "CreatedDate": created,
        "CreatedById": by,
        "LastModifiedDate": modified,
        "LastModifiedById": by,
        "SystemModstamp": modified,
    }


def full_record(sobject: str, values: dict) -> dict:
    """Return a record with every schema field of `sobject`, None where `values` has none.

    Raises KeyError on a field that the schema lacks, so a typo cannot slip
    into the org unnoticed.
    """
    record = dict.fromkeys(STANDARD_SCHEMAS[sobject].field_names)
    unknown = values.keys() - record.keys()
    if unknown:
        raise KeyError(f"{sobject} has no field {sorted(unknown)}")
    record.update(values)
    return record


def email_domain(account_name: str) -> str:
    """Derive a reserved `.example` mail domain, so that no address can reach a real company."""
    return re.sub(r"[^a-z0-9]+", "", account_name.lower()) + ".example"


def build_contacts(
    accounts: list[dict], seed: int
) -> tuple[list[dict], dict[str, list[str]]]:
    """Generate 2-5 contacts per account, because the data has none.

    Returns the records and the Contact Ids of each Account Id.
    """
    rng = random.Random(f"{seed}:contacts")
    contacts, ids = [], {}
    for account in accounts:
        used_names: set[tuple[str, str]] = set()
        for _ in range(rng.randint(2, 5)):
            first_name, last_name = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            while (first_name, last_name) in used_names:
                first_name, last_name = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            used_names.add((first_name, last_name))
            contact_id = make_id("Contact", len(contacts) + 1)
            created = account["CreatedDate"] + random_span(rng, DAY, 14 * DAY)
            email = f"{first_name}.{last_name}@{email_domain(account['Name'])}".lower()
            values = {
                "Id": contact_id,
                "AccountId": account["Id"],
                "FirstName": first_name,
                "LastName": last_name,
                "Email": email,
                "Title": rng.choice(CONTACT_TITLES),
                "OwnerId": account["OwnerId"],
                **system_values(created, account["OwnerId"]),
            }
            contacts.append(full_record("Contact", values))
            ids.setdefault(account["Id"], []).append(contact_id)
    return contacts, ids


def plan_closed_deal(
    rng: random.Random,
    won: bool,
    engaged_at: datetime,
    closed_at: datetime,
    list_price: float,
    close_value: float,
) -> list[StageChange]:
    """Plan the stage history of a won or lost deal.

    A won deal passes most of the middle stages. A lost deal drops out after
    0-3 of them. Before the close the deal carries the product's list price
    and a planned close date near the real one.
    """
    middle = OPEN_STAGES[2:]
    if won:
        middle = tuple(stage for stage in middle if rng.random() < 0.85)
    else:
        middle = middle[: rng.choices(range(4), (0.4, 0.3, 0.2, 0.1))[0]]
    created = engaged_at - rng.randint(1, 14) * DAY
    middle_times = sorted(
        between(rng, engaged_at + MINUTE, closed_at - MINUTE) for _ in middle
    )
    planned = closed_at.date() + rng.randint(-10, 20) * DAY
    planned = max(planned, created.date())
    changes = [
        StageChange(at, stage, list_price, planned)
        for at, stage in zip(
            (created, engaged_at, *middle_times),
            ("Prospecting", "Qualification", *middle),
        )
    ]
    final = CLOSED_STAGES[0] if won else CLOSED_STAGES[1]
    changes.append(StageChange(closed_at, final, close_value, closed_at.date()))
    return changes


def plan_open_deal(
    rng: random.Random,
    stage: str,
    created: datetime,
    engaged_at: datetime | None,
    cutoff: datetime,
    list_price: float,
) -> list[StageChange]:
    """Plan the stage history of an open deal, with some recent amount changes and close-date pushes.

    The deal ends at `list_price` and at a close date 7-90 days after the
    cutoff. About 15% of deals changed their amount in the last 45 days and
    about 25% pushed their close date in the last 30 days, once or twice.
    """
    path = OPEN_STAGES[: OPEN_STAGES.index(stage) + 1]
    stage_times = [created]
    if engaged_at is not None and len(path) > 1:
        later = (between(rng, engaged_at + MINUTE, cutoff - HOUR) for _ in path[2:])
        stage_times += [engaged_at, *sorted(later)]
    close_date = cutoff.date() + rng.randint(7, 90) * DAY
    recent_start = max(created + MINUTE, cutoff - 30 * DAY)

    amount_changed_at = None
    first_amount = list_price
    if rng.random() < 0.15:
        amount_start = max(created + MINUTE, cutoff - 45 * DAY)
        amount_changed_at = between(rng, amount_start, cutoff - HOUR)
        first_amount = round(list_price * rng.choice((0.8, 0.9, 1.1, 1.25)), 2)

    # Only deals older than 60 days push, so no planned close date precedes creation.
    push_count = rng.choices((0, 1, 2), (0.75, 0.175, 0.075))[0]
    if created > cutoff - 60 * DAY:
        push_count = 0
    pushes = sorted(
        (between(rng, recent_start, cutoff - HOUR), rng.randint(7, 30) * DAY)
        for _ in range(push_count)
    )

    def values_at(at: datetime) -> StageChange:
        current = path[sum(1 for t in stage_times if t <= at) - 1]
        pending = sum(
            (days for pushed_at, days in pushes if pushed_at > at), timedelta(0)
        )
        amount = (
            first_amount if amount_changed_at and at < amount_changed_at else list_price
        )
        return StageChange(at, current, amount, close_date - pending)

    change_times = stage_times + [pushed_at for pushed_at, _ in pushes]
    if amount_changed_at is not None:
        change_times.append(amount_changed_at)
    return [values_at(at) for at in sorted(set(change_times))]


def history_values(deal: Deal) -> list[dict]:
    """Turn a deal's stage changes into OpportunityHistory values, without Ids."""
    rows = []
    previous: StageChange | None = None
    for change in deal.changes:
        rows.append(
            {
                "IsDeleted": False,
                "CreatedDate": change.at,
                "CreatedById": deal.owner_id,
                "SystemModstamp": change.at,
                "OpportunityId": deal.opportunity_id,
                "StageName": change.stage,
                "Amount": change.amount,
                "CloseDate": change.close_date,
                "Probability": PROBABILITIES[change.stage],
                "PrevAmount": previous.amount if previous else None,
                "PrevCloseDate": previous.close_date if previous else None,
            }
        )
        previous = change
    return rows


def poisson(rng: random.Random, mean: float) -> int:
    """Draw from a Poisson distribution by Knuth's method, which is fine for small means."""
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def activity_times(
    deal: Deal, cutoff: datetime, rng: random.Random
) -> tuple[list[datetime], datetime | None]:
    """Pick the times of a deal's past activities, and of its next meeting if one is booked.

    Half of the activities follow a stage change within 3 days, the rest fall
    anywhere in the deal's life. An open deal's last touch lies 1 hour to
    90 days before the cutoff (see OPEN_PROFILES). Active deals get a burst in
    the last 14 days, and about 30% of active or cooling deals have a meeting
    booked 1-13 days after the cutoff.
    """
    outcome = deal.outcome
    profile = None
    if outcome == "open":
        weights = [weight for _, weight, _, _ in OPEN_PROFILES]
        profile, _, min_gap, max_gap = rng.choices(OPEN_PROFILES, weights)[0]
        last = max(cutoff - random_span(rng, min_gap, max_gap), deal.created)
    else:
        last = deal.changes[-1].at

    mean = min(ACTIVITY_MEANS[outcome] * rng.lognormvariate(0, 0.6), 40.0)
    earlier_changes = [change.at for change in deal.changes if change.at < last]
    times = []
    for _ in range(poisson(rng, mean)):
        if earlier_changes and rng.random() < 0.5:
            change_at = rng.choice(earlier_changes)
            times.append(min(change_at + random_span(rng, MINUTE, 3 * DAY), last))
        else:
            times.append(between(rng, deal.created, last))

    booked_at = None
    if profile is not None:
        times.append(last)
        if profile == "active":
            burst_start = max(deal.created, cutoff - 14 * DAY)
            times += [between(rng, burst_start, last) for _ in range(rng.randint(1, 3))]
        if profile != "quiet" and rng.random() < 0.3:
            booked_at = business_time(cutoff.date() + rng.randint(1, 13) * DAY, rng)
    return sorted(times), booked_at


def deal_activities(
    deal: Deal, cutoff: datetime, rng: random.Random
) -> list[tuple[str, dict]]:
    """Generate a deal's Tasks and Events as (sObject, values) pairs, without Ids."""
    times, booked_at = activity_times(deal, cutoff, rng)
    weights = KIND_WEIGHTS[deal.outcome]
    activities = []
    for index, at in enumerate(times):
        if deal.outcome == "open" and index == len(times) - 1:
            # An open deal's last touch is a call, email or meeting, so that its
            # recency profile sets the time of its last communication.
            kind = rng.choices(ACTIVITY_KINDS[:3], weights[:3])[0]
        else:
            kind = rng.choices(ACTIVITY_KINDS, weights)[0]
        if kind == "meeting":
            duration = timedelta(minutes=rng.choice(MEETING_MINUTES))
            start = min(at, cutoff - duration)
            created = max(deal.created, start - random_span(rng, HOUR, 5 * DAY))
            activities.append(
                ("Event", meeting_values(deal, start, created, duration, rng))
            )
        else:
            activities.append(("Task", task_values(deal, kind, at, rng)))
    if booked_at is not None:
        duration = timedelta(minutes=rng.choice(MEETING_MINUTES))
        activities.append(
            ("Event", meeting_values(deal, booked_at, times[-1], duration, rng))
        )
    return activities


def task_values(deal: Deal, kind: str, at: datetime, rng: random.Random) -> dict:
    """Build a completed call, email or other Task that was logged when it happened."""
    subjects = {"call": CALL_SUBJECTS, "email": EMAIL_SUBJECTS, "other": OTHER_SUBJECTS}
    task_type, subtype = {
        "call": ("Call", "Call"),
        "email": ("Email", "Email"),
        "other": ("Other", "Task"),
    }[kind]
    has_contact = kind != "other" and bool(deal.contact_ids)
    values = {
        "Subject": rng.choice(subjects[kind]),
        "WhoId": rng.choice(deal.contact_ids) if has_contact else None,
        "WhatId": deal.opportunity_id,
        "AccountId": deal.account_id,
        "OwnerId": deal.owner_id,
        "ActivityDate": at.date(),
        "Status": "Completed",
        "Type": task_type,
        "TaskSubtype": subtype,
        "CompletedDateTime": at,
        "IsClosed": True,
        **system_values(at, deal.owner_id),
    }
    if kind == "call":
        seconds = rng.lognormvariate(math.log(300), 0.8)
        values["CallType"] = "Outbound" if rng.random() < 0.7 else "Inbound"
        values["CallDurationInSeconds"] = int(min(max(seconds, 30), 3600))
    return values


def meeting_values(
    deal: Deal,
    start: datetime,
    created: datetime,
    duration: timedelta,
    rng: random.Random,
) -> dict:
    """Build a meeting Event that was booked at `created`."""
    return {
        "Subject": rng.choice(MEETING_SUBJECTS),
        "WhoId": rng.choice(deal.contact_ids) if deal.contact_ids else None,
        "WhatId": deal.opportunity_id,
        "AccountId": deal.account_id,
        "OwnerId": deal.owner_id,
        "StartDateTime": start,
        "EndDateTime": start + duration,
        "DurationInMinutes": int(duration.total_seconds() // 60),
        "Type": "Meeting",
        "EventSubtype": "Event",
        "IsAllDayEvent": False,
        **system_values(created, deal.owner_id),
    }
