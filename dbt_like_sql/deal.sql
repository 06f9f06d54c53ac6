-- description: One row per live Salesforce Opportunity (a deal), with its account
--   and owner names, the stage category from the tenant mapping, when it entered
--   its current stage, and the Routiine values currently stored in Salesforce.
-- grain: deal_id
-- materialized: table
-- partitioned_by: tenant
-- blocking: true
-- columns:
--   deal_id: "Opportunity Id and Name"
--   name: "Opportunity Id and Name"
--   account_id: "AccountId and the live account's Name (NULL if the account is deleted)"
--   account_name: "AccountId and the live account's Name (NULL if the account is deleted)"
--   owner_id: "OwnerId and the user's Name"
--   owner_name: "OwnerId and the user's Name"
--   stage_name: "StageName as stored in Salesforce"
--   canonical_stage: "the stage an alias points to, or stage_name"
--   stage_category: "from map_stage, or the fallback"
--   stage_order: "from map_stage, or the fallback"
--   is_stage_mapped: "false when the fallback was used"
--   amount: "current values; amount and close date may be NULL"
--   close_date: "current values; amount and close date may be NULL"
--   probability: "current values; amount and close date may be NULL"
--   created_at: "CreatedDate"
--   is_closed: "Salesforce's IsClosed and IsWon"
--   is_won: "Salesforce's IsClosed and IsWon"
--   engage_date: "Engage_Date__c and Product__c"
--   product: "Engage_Date__c and Product__c"
--   last_stage_change_at: "when the deal entered its current stage: the current visit in deal_stage_history, or created_at when history has no row for that stage"
--   has_stage_history: "false when last_stage_change_at fell back to created_at"
--   close_date_push_count: "history rows that moved the close date later"
--   lead_source: "LeadSource and Type"
--   opportunity_type: "LeadSource and Type"
--   sf_momentum_score: "Momentum_Score__c and Next_Best_Action__c as Salesforce holds them now"
--   sf_next_best_action: "Momentum_Score__c and Next_Best_Action__c as Salesforce holds them now"
--   last_modified_at: "for telling the write-back's own edits apart"
--   last_modified_by_id: "for telling the write-back's own edits apart"
-- tests:
--   unique: [deal_id]
--   not_null: [deal_id, stage_category, stage_order, created_at]
--   accepted_values: {stage_category: [open, won, lost]}
--   relationships: {account_id: stg_account.account_id, owner_id: stg_user.user_id}
-- unmapped_values:
--   - {object: Opportunity, field: StageName, id_column: deal_id,
--      value_column: stage_name, mapped_column: is_stage_mapped}
with current_visit as (
    select
        h.deal_id,
        h.canonical_stage,
        h.entered_at
    from deal_stage_history as h
    where h.is_current
),
pushes as (
    select
        c.deal_id,
        count(*) filter (where c.is_close_date_push) as close_date_push_count
    from deal_change as c
    group by c.deal_id
)
select
    o.opportunity_id as deal_id,
    o.name,
    o.account_id,
    a.account_name,
    o.owner_id,
    u.user_name as owner_name,
    o.stage_name,
    o.canonical_stage,
    o.stage_category,
    o.stage_order,
    o.is_stage_mapped,
    o.amount,
    o.close_date,
    o.probability,
    o.created_at,
    o.is_closed,
    o.is_won,
    o.engage_date,
    -- Without a history row for the current stage, the deal is taken to have
    -- been in it since creation; docs/models.md explains the bias.
    coalesce(
        case when v.canonical_stage = o.canonical_stage then v.entered_at end,
        o.created_at
    ) as last_stage_change_at,
    v.canonical_stage is not null and v.canonical_stage = o.canonical_stage
        as has_stage_history,
    coalesce(p.close_date_push_count, 0) as close_date_push_count,
    o.product,
    o.lead_source,
    o.opportunity_type,
    o.sf_momentum_score,
    o.sf_next_best_action,
    o.last_modified_at,
    o.last_modified_by_id
from stg_opportunity as o
left join stg_account as a on a.account_id = o.account_id
left join stg_user as u on u.user_id = o.owner_id
left join current_visit as v on v.deal_id = o.opportunity_id
left join pushes as p on p.deal_id = o.opportunity_id
