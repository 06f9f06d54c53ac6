-- description: One row per live Salesforce Account, with snake_case columns.
--   Deleted accounts (tombstoned or IsDeleted) are left out.
-- grain: account_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [account_id]
--   not_null: [account_id]
select
    a.id as account_id,
    a.name as account_name,
    a.industry as industry,
    cast(a.annualrevenue as double) as annual_revenue,
    cast(a.numberofemployees as bigint) as number_of_employees,
    a.billingcountry as billing_country,
    a.parentid as parent_account_id,
    a.ownerid as owner_id,
    cast(a.createddate as timestamptz) as created_at,
    cast(a.systemmodstamp as timestamptz) as system_modstamp
from raw_account as a
where a._deleted_at is null
  and not coalesce(a.isdeleted, false)
