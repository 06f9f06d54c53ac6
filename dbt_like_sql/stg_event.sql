-- description: One row per live Salesforce Event (calendar meetings), with
--   snake_case columns. Deleted events are left out.
-- grain: event_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [event_id]
--   not_null: [event_id]
select
    e.id as event_id,
    e.subject as subject,
    e.whoid as who_id,
    e.whatid as what_id,
    e.accountid as account_id,
    e.ownerid as owner_id,
    cast(e.startdatetime as timestamptz) as start_at,
    cast(e.enddatetime as timestamptz) as end_at,
    cast(e.durationinminutes as bigint) as duration_minutes,
    e.type as event_type,
    e.eventsubtype as event_subtype,
    coalesce(e.isalldayevent, false) as is_all_day,
    cast(e.createddate as timestamptz) as created_at
from raw_event as e
where e._deleted_at is null
  and not coalesce(e.isdeleted, false)
