"""Field metadata of the sObjects the pipeline reads and writes.

The emulator serves `describe` from these definitions, and the default
tenant mapping picks its fields from them. Types and flags follow the
names that Salesforce's describe result uses (`type`, `updateable`,
`calculated`, `picklistValues`, `referenceTo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FieldSpec:
    """One field of an sObject, as describe reports it."""

    name: str
    type: str
    label: str = ""
    length: int = 0
    updateable: bool = True
    createable: bool = True
    nillable: bool = True
    calculated: bool = False
    custom: bool = False
    filterable: bool = True
    reference_to: tuple[str, ...] = ()
    picklist_values: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0

    @property
    def soap_type(self) -> str:
        return _SOAP_TYPES.get(self.type, "xsd:string")


@dataclass(frozen=True)
class SObjectSchema:
    """The describe-level metadata of one sObject."""

    name: str
    label: str
    key_prefix: str
    fields: tuple[FieldSpec, ...] = field(default_factory=tuple)

    def field_named(self, name: str) -> FieldSpec | None:
        lowered = name.lower()
        for spec in self.fields:
            if spec.name.lower() == lowered:
                return spec
        return None

    @property
    def field_names(self) -> list[str]:
        return [spec.name for spec in self.fields]


_SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "currency": "xsd:double",
    "double": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


def _system_fields() -> tuple[FieldSpec, ...]:
    """Fields that every synced object carries and only Salesforce writes."""
    read_only = dict(updateable=False, createable=False)
    return (
        FieldSpec("Id", "id", "Record ID", 18, nillable=False, **read_only),
        FieldSpec("IsDeleted", "boolean", "Deleted", nillable=False, **read_only),
        FieldSpec(
            "CreatedDate", "datetime", "Created Date", nillable=False, **read_only
        ),
        FieldSpec(
            "CreatedById",
            "reference",
            "Created By ID",
            18,
            reference_to=("User",),
            **read_only,
        ),
        FieldSpec(
            "LastModifiedDate",
            "datetime",
            "Last Modified Date",
            nillable=False,
            **read_only,
        ),
        FieldSpec(
            "LastModifiedById",
            "reference",
            "Last Modified By ID",
            18,
            reference_to=("User",),
            **read_only,
        ),
        FieldSpec(
            "SystemModstamp", "datetime", "System Modstamp", nillable=False, **read_only
        ),
    )


OPPORTUNITY_STAGES = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
)
TASK_TYPES = ("Call", "Email", "Meeting", "Other")
TASK_SUBTYPES = ("Task", "Email", "ListEmail", "Cadence", "Call")
CALL_TYPES = ("Inbound", "Internal", "Outbound")
TASK_STATUSES = (
    "Not Started",
    "In Progress",
    "Completed",
    "Waiting on someone else",
    "Deferred",
)
EVENT_TYPES = ("Meeting", "Call", "Email", "Other")
INDUSTRIES = (
    "Technology",
    "Medical",
    "Retail",
    "Software",
    "Entertainment",
    "Marketing",
    "Telecommunications",
    "Finance",
    "Employment",
    "Services",
)

ACCOUNT = SObjectSchema(
    "Account",
    "Account",
    "001",
    _system_fields()
    + (
        FieldSpec("Name", "string", "Account Name", 255, nillable=False),
        FieldSpec("Industry", "picklist", "Industry", 255, picklist_values=INDUSTRIES),
        FieldSpec("AnnualRevenue", "currency", "Annual Revenue", precision=18, scale=0),
        FieldSpec("NumberOfEmployees", "int", "Employees", precision=8),
        FieldSpec("BillingCountry", "string", "Billing Country", 80),
        FieldSpec(
            "ParentId", "reference", "Parent Account ID", 18, reference_to=("Account",)
        ),
        FieldSpec("OwnerId", "reference", "Owner ID", 18, reference_to=("User",)),
        FieldSpec("YearStarted", "string", "Year Started", 4),
    ),
)

CONTACT = SObjectSchema(
    "Contact",
    "Contact",
    "003",
    _system_fields()
    + (
        FieldSpec(
            "AccountId", "reference", "Account ID", 18, reference_to=("Account",)
        ),
        FieldSpec("FirstName", "string", "First Name", 40),
        FieldSpec("LastName", "string", "Last Name", 80, nillable=False),
        FieldSpec("Email", "email", "Email", 80),
        FieldSpec("Title", "string", "Title", 128),
        FieldSpec("OwnerId", "reference", "Owner ID", 18, reference_to=("User",)),
    ),
)

USER = SObjectSchema(
    "User",
    "User",
    "005",
    _system_fields()
    + (
        FieldSpec(
            "Name", "string", "Full Name", 121, updateable=False, createable=False
        ),
        FieldSpec("FirstName", "string", "First Name", 40),
        FieldSpec("LastName", "string", "Last Name", 80, nillable=False),
        FieldSpec("Email", "email", "Email", 128),
        FieldSpec("ManagerId", "reference", "Manager ID", 18, reference_to=("User",)),
        FieldSpec("Department", "string", "Department", 80),
        FieldSpec("Division", "string", "Division", 80),
        FieldSpec("IsActive", "boolean", "Active", nillable=False),
    ),
)

OPPORTUNITY = SObjectSchema(
    "Opportunity",
    "Opportunity",
    "006",
    _system_fields()
    + (
        FieldSpec("Name", "string", "Name", 120, nillable=False),
        FieldSpec(
            "AccountId", "reference", "Account ID", 18, reference_to=("Account",)
        ),
        FieldSpec("OwnerId", "reference", "Owner ID", 18, reference_to=("User",)),
        FieldSpec(
            "StageName",
            "picklist",
            "Stage",
            255,
            nillable=False,
            picklist_values=OPPORTUNITY_STAGES,
        ),
        FieldSpec("Amount", "currency", "Amount", precision=18, scale=2),
        FieldSpec("CloseDate", "date", "Close Date", nillable=False),
        FieldSpec("Probability", "percent", "Probability (%)", precision=3, scale=0),
        FieldSpec(
            "IsClosed",
            "boolean",
            "Closed",
            updateable=False,
            createable=False,
            nillable=False,
        ),
        FieldSpec(
            "IsWon",
            "boolean",
            "Won",
            updateable=False,
            createable=False,
            nillable=False,
        ),
        FieldSpec(
            "Type",
            "picklist",
            "Opportunity Type",
            255,
            picklist_values=("New Business", "Existing Business"),
        ),
        FieldSpec(
            "LeadSource",
            "picklist",
            "Lead Source",
            255,
            picklist_values=("Web", "Phone Inquiry", "Partner Referral", "Other"),
        ),
        FieldSpec("NextStep", "string", "Next Step", 255),
        FieldSpec("Product__c", "string", "Product", 80, custom=True),
        FieldSpec("Engage_Date__c", "date", "Engage Date", custom=True),
        FieldSpec(
            "Days_Open__c",
            "double",
            "Days Open",
            calculated=True,
            updateable=False,
            createable=False,
            custom=True,
            precision=18,
        ),
        FieldSpec(
            "Momentum_Score__c",
            "double",
            "Momentum Score",
            custom=True,
            precision=3,
            scale=0,
        ),
        FieldSpec(
            "Next_Best_Action__c", "string", "Next Best Action", 255, custom=True
        ),
    ),
)

OPPORTUNITY_HISTORY = SObjectSchema(
    "OpportunityHistory",
    "Opportunity History",
    "008",
    tuple(
        spec
        for spec in _system_fields()
        if spec.name not in ("LastModifiedDate", "LastModifiedById")
    )
    + (
        FieldSpec(
            "OpportunityId",
            "reference",
            "Opportunity ID",
            18,
            reference_to=("Opportunity",),
            updateable=False,
        ),
        FieldSpec(
            "StageName",
            "picklist",
            "Stage",
            255,
            updateable=False,
            picklist_values=OPPORTUNITY_STAGES,
        ),
        FieldSpec(
            "Amount", "currency", "Amount", updateable=False, precision=18, scale=2
        ),
        FieldSpec("CloseDate", "date", "Close Date", updateable=False),
        FieldSpec(
            "Probability", "percent", "Probability (%)", updateable=False, precision=3
        ),
        FieldSpec(
            "PrevAmount",
            "currency",
            "Previous Amount",
            updateable=False,
            precision=18,
            scale=2,
        ),
        FieldSpec("PrevCloseDate", "date", "Previous Close Date", updateable=False),
    ),
)


def _activity_fields() -> tuple[FieldSpec, ...]:
    """System fields plus the fields that Task and Event share: subject, who, what and owner."""
    return _system_fields() + (
        FieldSpec("Subject", "combobox", "Subject", 255),
        FieldSpec("WhoId", "reference", "Name ID", 18, reference_to=("Contact",)),
        FieldSpec(
            "WhatId",
            "reference",
            "Related To ID",
            18,
            reference_to=("Opportunity", "Account"),
        ),
        FieldSpec(
            "AccountId",
            "reference",
            "Account ID",
            18,
            reference_to=("Account",),
            updateable=False,
            createable=False,
        ),
        FieldSpec("OwnerId", "reference", "Assigned To ID", 18, reference_to=("User",)),
    )


TASK = SObjectSchema(
    "Task",
    "Task",
    "00T",
    _activity_fields()
    + (
        FieldSpec("ActivityDate", "date", "Due Date Only"),
        FieldSpec(
            "Status",
            "picklist",
            "Status",
            255,
            nillable=False,
            picklist_values=TASK_STATUSES,
        ),
        FieldSpec("Type", "picklist", "Type", 255, picklist_values=TASK_TYPES),
        FieldSpec(
            "TaskSubtype",
            "picklist",
            "Task Subtype",
            255,
            updateable=False,
            picklist_values=TASK_SUBTYPES,
        ),
        FieldSpec("CallType", "picklist", "Call Type", 255, picklist_values=CALL_TYPES),
        FieldSpec("CallDurationInSeconds", "int", "Call Duration", precision=9),
        FieldSpec(
            "CompletedDateTime",
            "datetime",
            "Completed Date/Time",
            updateable=False,
            createable=False,
        ),
        FieldSpec(
            "IsClosed",
            "boolean",
            "Closed",
            updateable=False,
            createable=False,
            nillable=False,
        ),
    ),
)

EVENT = SObjectSchema(
    "Event",
    "Event",
    "00U",
    _activity_fields()
    + (
        FieldSpec("StartDateTime", "datetime", "Start Date Time"),
        FieldSpec("EndDateTime", "datetime", "End Date Time"),
        FieldSpec("DurationInMinutes", "int", "Duration", precision=8),
        FieldSpec("Type", "picklist", "Type", 255, picklist_values=EVENT_TYPES),
        FieldSpec(
            "EventSubtype",
            "picklist",
            "Event Subtype",
            255,
            updateable=False,
            picklist_values=("Event",),
        ),
        FieldSpec("IsAllDayEvent", "boolean", "All-Day Event", nillable=False),
    ),
)

STANDARD_SCHEMAS: dict[str, SObjectSchema] = {
    schema.name: schema
    for schema in (
        ACCOUNT,
        CONTACT,
        USER,
        OPPORTUNITY,
        OPPORTUNITY_HISTORY,
        TASK,
        EVENT,
    )
}
