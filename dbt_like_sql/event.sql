-- description: One row per communication. It covers Tasks whose Type and TaskSubtype
--   map to call or email (or meeting) through map_task_kind, and every Event as the
--   tenant's event kind. Tasks with no matching mapping, such as Type 'Other'
--   to-dos, are left out. deal_id is set when WhatId is a live Opportunity.
-- grain: event_id
-- materialized: table
-- partitioned_by: tenant
-- blocking: true
-- columns:
--   event_id: "Task or Event Id"
--   source_object: "Task or Event"
--   kind: "Task: the map_task_kind match; Event: map_settings.event_kind (default meeting)"
--   deal_id: "WhatId when it is a live Opportunity (prefix 006), else NULL"
--   account_id: "Task/Event AccountId, else a WhatId with prefix 001, else the deal's account"
--   contact_id: "WhoId when it is a Contact (prefix 003); Lead ids give NULL"
--   owner_id: "OwnerId and Subject"
--   subject: "OwnerId and Subject"
--   occurred_at: "Task: CompletedDateTime, else ActivityDate at 12:00 UTC, else CreatedDate. Event: StartDateTime, else CreatedDate"
--   direction: "calls: CallType Inbound or Internal, else outbound; emails: inbound when Type or TaskSubtype matches the inbound email pattern, else outbound; meetings: two_way; other kinds: unknown"
--   duration_seconds: "CallDurationInSeconds; for Events DurationInMinutes x 60 or End - Start"
--   is_open_task: "a Task not yet completed (neither IsClosed nor CompletedDateTime); false for Events"
-- tests:
--   unique: [event_id]
--   not_null: [event_id, source_object, kind, occurred_at, direction]
--   accepted_values: {source_object: [Task, Event], direction: [inbound, outbound, internal, two_way, unknown]}
--   relationships: {deal_id: deal.deal_id}
with settings as (
    select
        max(case when s.key = 'event_kind' then s.value end) as event_kind,
        max(case when s.key = 'inbound_email_pattern' then s.value end)
            as inbound_email_pattern
    from map_settings as s
),
task_kind_match as (
    -- The most specific pattern wins: an exact Type beats an exact TaskSubtype,
    -- which beats a wildcard; the kind name breaks remaining ties.
    select
        t.task_id,
        k.kind,
        row_number() over (
            partition by t.task_id
            order by
                (case when k.type_pattern = '*' then 0 else 2 end)
                + (case when k.subtype_pattern = '*' then 0 else 1 end) desc,
                k.kind
        ) as match_rank
    from stg_task as t
    join map_task_kind as k
        on (k.type_pattern = '*' or k.type_pattern = t.task_type)
        and (k.subtype_pattern = '*' or k.subtype_pattern = t.task_subtype)
),
activity as (
    select
        t.task_id as event_id,
        'Task' as source_object,
        k.kind,
        t.what_id,
        t.who_id,
        t.account_id,
        t.owner_id,
        t.subject,
        coalesce(
            t.completed_at,
            timezone('UTC', t.activity_date + interval 12 hour),
            t.created_at
        ) as occurred_at,
        case
            when k.kind = 'call' then case t.call_type
                when 'Inbound' then 'inbound'
                when 'Internal' then 'internal'
                else 'outbound'
            end
            when k.kind = 'email' then case
                when regexp_matches(
                    concat_ws(' ', t.task_type, t.task_subtype),
                    s.inbound_email_pattern,
                    'i'
                ) then 'inbound'
                else 'outbound'
            end
            when k.kind = 'meeting' then 'two_way'
            else 'unknown'
        end as direction,
        t.call_duration_seconds as duration_seconds,
        not (t.is_closed or t.completed_at is not null) as is_open_task
    from stg_task as t
    join task_kind_match as k on k.task_id = t.task_id and k.match_rank = 1
    cross join settings as s
    union all
    select
        e.event_id,
        'Event' as source_object,
        s.event_kind as kind,
        e.what_id,
        e.who_id,
        e.account_id,
        e.owner_id,
        e.subject,
        coalesce(e.start_at, e.created_at) as occurred_at,
        case when s.event_kind = 'meeting' then 'two_way' else 'unknown' end
            as direction,
        coalesce(e.duration_minutes * 60, epoch(e.end_at - e.start_at)) as duration_seconds,
        false as is_open_task
    from stg_event as e
    cross join settings as s
)
select
    a.event_id,
    a.source_object,
    a.kind,
    d.deal_id,
    coalesce(
        a.account_id,
        case when starts_with(a.what_id, '001') then a.what_id end,
        d.account_id
    ) as account_id,
    case when starts_with(a.who_id, '003') then a.who_id end as contact_id,
    a.owner_id,
    a.subject,
    a.occurred_at,
    a.direction,
    cast(a.duration_seconds as bigint) as duration_seconds,
    a.is_open_task
from activity as a
left join deal as d
    on starts_with(a.what_id, '006') and d.deal_id = a.what_id
