-- description: One row per OpportunityHistory record of a live deal, in time order,
--   with the previous close date and amount beside the new ones. Scoring counts
--   close date pushes and amount changes from it as of any point in time.
-- grain: change_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [change_id]
--   not_null: [change_id, deal_id, changed_at, stage_category]
--   relationships: {deal_id: stg_opportunity.opportunity_id}
with ordered as (
    select
        h.history_id,
        h.opportunity_id,
        h.changed_at,
        h.stage_name,
        h.canonical_stage,
        h.stage_category,
        h.stage_order,
        h.amount,
        h.close_date,
        -- Salesforce fills PrevAmount and PrevCloseDate itself; the row before
        -- covers records written without them.
        coalesce(h.prev_amount, lag(h.amount) over w) as previous_amount,
        coalesce(h.prev_close_date, lag(h.close_date) over w) as previous_close_date,
        lag(h.canonical_stage) over w as previous_stage,
        row_number() over w as change_number
    from stg_opportunity_history as h
    join stg_opportunity as o on o.opportunity_id = h.opportunity_id
    window w as (partition by h.opportunity_id order by h.changed_at, h.history_id)
)
select
    ordered.history_id as change_id,
    ordered.opportunity_id as deal_id,
    ordered.changed_at,
    ordered.change_number,
    ordered.stage_name,
    ordered.canonical_stage,
    ordered.stage_category,
    ordered.stage_order,
    ordered.previous_stage,
    ordered.previous_stage is null
        or ordered.previous_stage <> ordered.canonical_stage as is_stage_change,
    ordered.amount,
    ordered.previous_amount,
    ordered.amount - ordered.previous_amount as amount_change,
    ordered.close_date,
    ordered.previous_close_date,
    coalesce(ordered.close_date > ordered.previous_close_date, false)
        as is_close_date_push,
    coalesce(ordered.close_date < ordered.previous_close_date, false)
        as is_close_date_pull
from ordered
