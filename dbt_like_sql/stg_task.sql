-- description: One row per live Salesforce Task (calls, emails and to-dos), with
--   snake_case columns. Deleted and archived-then-deleted tasks are left out.
-- grain: task_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [task_id]
--   not_null: [task_id]
select
    t.id as task_id,
    t.subject as subject,
    t.whoid as who_id,
    t.whatid as what_id,
    t.accountid as account_id,
    t.ownerid as owner_id,
    cast(t.activitydate as date) as activity_date,
    t.status as status,
    t.type as task_type,
    t.tasksubtype as task_subtype,
    t.calltype as call_type,
    cast(t.calldurationinseconds as bigint) as call_duration_seconds,
    cast(t.completeddatetime as timestamptz) as completed_at,
    coalesce(t.isclosed, false) as is_closed,
    cast(t.createddate as timestamptz) as created_at
from raw_task as t
where t._deleted_at is null
  and not coalesce(t.isdeleted, false)
