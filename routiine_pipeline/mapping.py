"""A tenant's mapping: which fields are read, and what picklist values mean.

The default mapping fits a Salesforce org with the standard sales process
(and the bundled demo org). Each tenant can override it; the extract and
the SQL models read the tenant's mapping, never hard-coded names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from routiine_pipeline.salesforce.schema import STANDARD_SCHEMAS

# Objects in extraction order: parents before children, so a cycle that stops
# early has never committed a child whose parent it has not seen.
EXTRACT_OBJECTS: tuple[str, ...] = (
    "User",
    "Account",
    "Contact",
    "Opportunity",
    "OpportunityHistory",
    "Task",
    "Event",
)

# Routiine-owned Opportunity fields: the only fields the write-back may send.
WRITEBACK_FIELDS: tuple[str, ...] = ("Momentum_Score__c", "Next_Best_Action__c")

# Deal columns whose Opportunity source field a tenant may replace, with the
# standard field the SQL models read when the mapping names no other one.
DEAL_SOURCE_DEFAULTS: dict[str, str] = {
    "stage_name": "StageName",
    "amount": "Amount",
    "close_date": "CloseDate",
    "owner_id": "OwnerId",
    "opportunity_type": "Type",
    "lead_source": "LeadSource",
    "product": "Product__c",
    "engage_date": "Engage_Date__c",
}

# The Opportunity field that record type filters read.
RECORD_TYPE_FIELD = "RecordTypeId"


@dataclass(frozen=True)
class StageCategory:
    """Meaning of one StageName value: open, won or lost, and its place in the sales process."""

    category: str
    order: int


@dataclass
class TenantMapping:
    """The fields read per sObject and the meaning of stage and activity picklist values."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    stages: dict[str, StageCategory] = field(default_factory=dict)
    stage_aliases: dict[str, str] = field(default_factory=dict)
    # (Type, TaskSubtype) of a Task, either part may be "*", mapped to an event kind.
    task_kinds: dict[str, str] = field(default_factory=dict)
    event_kind: str = "meeting"
    fallback_stage_category: StageCategory = field(
        default_factory=lambda: StageCategory("open", 1)
    )
    # Deal column to the Opportunity field it is read from, where the tenant
    # uses another field than DEAL_SOURCE_DEFAULTS names (a custom amount field).
    deal_sources: dict[str, str] = field(default_factory=dict)
    # RecordTypeIds of the Opportunities that feed `deal`; empty includes all.
    record_types: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def deal_source(self, column: str) -> str:
        """Return the Opportunity field that feeds a deal column, for this tenant.

        Args:
            column: A key of DEAL_SOURCE_DEFAULTS, for example "amount".

        Returns:
            The tenant's field, or the standard one when the mapping names none.
        """
        return self.deal_sources.get(column, DEAL_SOURCE_DEFAULTS[column])

    @classmethod
    def from_dict(cls, raw: dict) -> TenantMapping:
        default = default_mapping()
        return cls(
            fields={k: list(v) for k, v in raw.get("fields", default.fields).items()},
            stages={
                name: StageCategory(**value)
                for name, value in raw.get(
                    "stages", default.to_dict()["stages"]
                ).items()
            },
            stage_aliases=dict(raw.get("stage_aliases", {})),
            task_kinds=dict(raw.get("task_kinds", default.task_kinds)),
            event_kind=raw.get("event_kind", default.event_kind),
            fallback_stage_category=StageCategory(
                **raw.get(
                    "fallback_stage_category", asdict(default.fallback_stage_category)
                )
            ),
            deal_sources=dict(raw.get("deal_sources", {})),
            record_types=list(raw.get("record_types", [])),
        )


def default_fields(sobject: str) -> list[str]:
    """Return every field of an sObject except formula fields.

    Formula (calculated) fields are left out on purpose: a change of their
    value does not move SystemModstamp, so an incremental read would store
    stale values and never notice.
    """
    schema = STANDARD_SCHEMAS[sobject]
    return [spec.name for spec in schema.fields if not spec.calculated]


def default_mapping() -> TenantMapping:
    """Build the mapping of an org that uses Salesforce's standard sales process."""
    stages = {
        "Prospecting": StageCategory("open", 1),
        "Qualification": StageCategory("open", 2),
        "Needs Analysis": StageCategory("open", 3),
        "Proposal/Price Quote": StageCategory("open", 4),
        "Negotiation/Review": StageCategory("open", 5),
        "Closed Won": StageCategory("won", 6),
        "Closed Lost": StageCategory("lost", 6),
    }
    task_kinds = {
        "Call|*": "call",
        "*|Call": "call",
        "Email|*": "email",
        "*|Email": "email",
        "*|ListEmail": "email",
        "Meeting|*": "meeting",
    }
    return TenantMapping(
        fields={sobject: default_fields(sobject) for sobject in EXTRACT_OBJECTS},
        stages=stages,
        task_kinds=task_kinds,
    )
