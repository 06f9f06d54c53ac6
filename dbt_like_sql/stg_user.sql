-- description: One row per Salesforce User (deal owners and activity owners).
--   Deleted rows are left out; inactive users stay, because they still own old deals.
-- grain: user_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [user_id]
--   not_null: [user_id]
select
    u.id as user_id,
    coalesce(u.name, trim(concat_ws(' ', u.firstname, u.lastname))) as user_name,
    u.firstname as first_name,
    u.lastname as last_name,
    u.email as email,
    u.managerid as manager_id,
    u.department as department,
    u.division as division,
    coalesce(u.isactive, false) as is_active
from raw_user as u
where u._deleted_at is null
  and not coalesce(u.isdeleted, false)
