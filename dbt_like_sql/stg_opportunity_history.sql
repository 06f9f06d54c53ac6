-- description: One row per live OpportunityHistory record, a snapshot of stage,
--   amount and close date written by Salesforce whenever one of them changes.
--   Stages resolve through the tenant mapping as in stg_opportunity.
-- grain: history_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [history_id]
--   not_null: [history_id, opportunity_id, changed_at, stage_category]
--   accepted_values: {stage_category: [open, won, lost]}
-- unmapped_values:
--   - {object: OpportunityHistory, field: StageName, id_column: history_id,
--      value_column: stage_name, mapped_column: is_stage_mapped}
with fallback as (
    select
        max(case when s.key = 'fallback_stage_category' then s.value end) as category,
        max(case when s.key = 'fallback_stage_order' then cast(s.value as integer) end)
            as stage_order
    from map_settings as s
)
select
    h.id as history_id,
    h.opportunityid as opportunity_id,
    cast(h.createddate as timestamptz) as changed_at,
    h.createdbyid as changed_by_id,
    h.stagename as stage_name,
    coalesce(m.canonical_stage, h.stagename) as canonical_stage,
    coalesce(m.category, f.category) as stage_category,
    coalesce(m.stage_order, f.stage_order) as stage_order,
    m.stage_name is not null as is_stage_mapped,
    cast(h.amount as double) as amount,
    cast(h.prevamount as double) as prev_amount,
    cast(h.closedate as date) as close_date,
    cast(h.prevclosedate as date) as prev_close_date,
    cast(h.probability as double) as probability
from raw_opportunity_history as h
cross join fallback as f
left join map_stage as m on m.stage_name = h.stagename
where h._deleted_at is null
  and not coalesce(h.isdeleted, false)
