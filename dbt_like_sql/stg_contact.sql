-- description: One row per live Salesforce Contact, with snake_case columns.
--   Deleted contacts are left out.
-- grain: contact_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [contact_id]
--   not_null: [contact_id]
select
    c.id as contact_id,
    c.accountid as account_id,
    c.firstname as first_name,
    c.lastname as last_name,
    c.email as email,
    c.title as title,
    c.ownerid as owner_id,
    cast(c.createddate as timestamptz) as created_at,
    cast(c.systemmodstamp as timestamptz) as system_modstamp
from raw_contact as c
where c._deleted_at is null
  and not coalesce(c.isdeleted, false)
