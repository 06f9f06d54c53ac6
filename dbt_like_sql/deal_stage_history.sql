-- description: One row per stage a deal has entered (a stage visit), from
--   OpportunityHistory. It records when the deal entered and left the stage,
--   how many days it stayed, the close date and amount on entry with their
--   previous values, and how often the close date moved later during the visit.
-- grain: stage_visit_id
-- materialized: table
-- partitioned_by: tenant
-- tests:
--   unique: [stage_visit_id]
--   not_null: [stage_visit_id, deal_id, entered_at, stage_category]
--   accepted_values: {stage_category: [open, won, lost]}
--   relationships: {deal_id: stg_opportunity.opportunity_id}
with visits as (
    select
        c.change_id,
        c.deal_id,
        c.stage_name,
        c.canonical_stage,
        c.stage_category,
        c.stage_order,
        c.changed_at as entered_at,
        lead(c.changed_at) over w as left_at,
        lag(c.canonical_stage) over w as previous_stage,
        lag(c.stage_order) over w as previous_stage_order,
        row_number() over w as visit_number,
        c.close_date,
        c.previous_close_date,
        c.amount,
        c.previous_amount
    from deal_change as c
    where c.is_stage_change
    window w as (partition by c.deal_id order by c.changed_at, c.change_id)
),
moves as (
    select
        v.change_id,
        count(*) filter (where c.is_close_date_push) as close_date_pushes,
        arg_max(c.close_date, c.change_number) as close_date_at_exit,
        arg_max(c.amount, c.change_number) as amount_at_exit
    from visits as v
    join deal_change as c
        on c.deal_id = v.deal_id
        and c.changed_at >= v.entered_at
        and (v.left_at is null or c.changed_at < v.left_at)
    group by v.change_id
)
select
    v.change_id as stage_visit_id,
    v.deal_id,
    v.visit_number,
    v.stage_name,
    v.canonical_stage,
    v.stage_category,
    v.stage_order,
    v.previous_stage,
    v.stage_order > v.previous_stage_order as is_forward_move,
    v.entered_at,
    v.left_at,
    v.left_at is null as is_current,
    case
        when v.left_at is not null then epoch(v.left_at - v.entered_at) / 86400.0
    end as days_in_stage,
    v.close_date,
    v.previous_close_date,
    v.amount,
    v.previous_amount,
    coalesce(m.close_date_pushes, 0) as close_date_pushes,
    m.close_date_at_exit,
    m.amount_at_exit
from visits as v
left join moves as m on m.change_id = v.change_id
