-- description: One row per live Salesforce Opportunity, with its stage resolved
--   through the tenant mapping. A StageName missing from map_stage gets the
--   tenant's fallback category and order, and is_stage_mapped is false.
-- grain: opportunity_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [opportunity_id]
--   not_null: [opportunity_id, stage_category, stage_order]
--   accepted_values: {stage_category: [open, won, lost]}
-- unmapped_values:
--   - {object: Opportunity, field: StageName, id_column: opportunity_id,
--      value_column: stage_name, mapped_column: is_stage_mapped}
with fallback as (
    select
        max(case when s.key = 'fallback_stage_category' then s.value end) as category,
        max(case when s.key = 'fallback_stage_order' then cast(s.value as integer) end)
            as stage_order
    from map_settings as s
)
select
    o.id as opportunity_id,
    o.name as name,
    o.accountid as account_id,
    o.ownerid as owner_id,
    o.stagename as stage_name,
    coalesce(m.canonical_stage, o.stagename) as canonical_stage,
    coalesce(m.category, f.category) as stage_category,
    coalesce(m.stage_order, f.stage_order) as stage_order,
    m.stage_name is not null as is_stage_mapped,
    cast(o.amount as double) as amount,
    cast(o.closedate as date) as close_date,
    cast(o.probability as double) as probability,
    coalesce(o.isclosed, false) as is_closed,
    coalesce(o.iswon, false) as is_won,
    o.type as opportunity_type,
    o.leadsource as lead_source,
    o.nextstep as next_step,
    o.product__c as product,
    cast(o.engage_date__c as date) as engage_date,
    cast(o.momentum_score__c as double) as sf_momentum_score,
    o.next_best_action__c as sf_next_best_action,
    cast(o.createddate as timestamptz) as created_at,
    cast(o.lastmodifieddate as timestamptz) as last_modified_at,
    o.lastmodifiedbyid as last_modified_by_id,
    cast(o.systemmodstamp as timestamptz) as system_modstamp
from raw_opportunity as o
cross join fallback as f
left join map_stage as m on m.stage_name = o.stagename
where o._deleted_at is null
  and not coalesce(o.isdeleted, false)
