"""Salesforce record Ids: key prefixes and the 15-to-18 character checksum."""

from __future__ import annotations

import re

KEY_PREFIXES: dict[str, str] = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Opportunity": "006",
    "OpportunityHistory": "008",
    "Organization": "00D",
    "Task": "00T",
    "Event": "00U",
}

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_ID_PATTERN = re.compile(r"^[a-zA-Z0-9]{15}([A-Z0-5]{3})?$")


def checksum_suffix(id15: str) -> str:
    """Compute the 3-character suffix that makes a 15-character Id case-insensitive.

    Each block of 5 characters contributes one suffix character: bit j is set
    when character j of the block is an upper-case letter.

    >>> checksum_suffix("006000000000001")
    'AAA'
    """
    if len(id15) != 15:
        raise ValueError(
            f"expected a 15-character Id, got {len(id15)} characters: {id15!r}"
        )
    suffix = []
    for block_start in range(0, 15, 5):
        bits = 0
        for j, char in enumerate(id15[block_start : block_start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << j
        suffix.append(_CHECKSUM_ALPHABET[bits])
    return "".join(suffix)


def make_id(sobject: str, sequence: int) -> str:
    """Mint the 18-character Id of record number `sequence` of `sobject`.

    >>> make_id("Opportunity", 1)
    '006000000000001AAA'
    """
    prefix = KEY_PREFIXES[sobject]
    id15 = f"{prefix}{sequence:012d}"
    return id15 + checksum_suffix(id15)


def is_valid_id(value: str) -> bool:
    """Tell whether `value` has the shape of a 15- or 18-character Id with a correct checksum."""
    if not isinstance(value, str) or not _ID_PATTERN.match(value):
        return False
    if len(value) == 15:
        return True
    return checksum_suffix(value[:15]) == value[15:].upper()


def sobject_for_id(value: str) -> str | None:
    """Return the sObject type whose key prefix starts `value`, or None."""
    for sobject, prefix in KEY_PREFIXES.items():
        if value.startswith(prefix):
            return sobject
    return None


def to_18_characters(value: str) -> str:
    """Return the 18-character form of a 15- or 18-character Id.

    >>> to_18_characters("006000000000001")
    '006000000000001AAA'
    """
    if len(value) == 15:
        return value + checksum_suffix(value)
    return value
