"""Tokenizer for the emulator's SOQL subset, and the errors every SOQL stage raises.

Errors carry Salesforce's errorCode and message layout (the query excerpt, a
caret line, then the row and column), because clients parse them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from routiine_pipeline.emulator.values import parse_datetime

KEYWORDS = {
    "SELECT",
    "FROM",
    "WHERE",
    "ORDER",
    "BY",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "LIMIT",
    "OFFSET",
    "AND",
    "OR",
    "NOT",
    "IN",
    "TRUE",
    "FALSE",
    "NULL",
}
COMPARISON_OPERATORS = {"=", "!=", "<>", "<", "<=", ">", ">="}

# Salesforce documents whole-second datetime literals; the .SSS form is also accepted here
# because Salesforce's own output uses it. Other fractions, such as microseconds, are rejected.
_DATETIME_LITERAL = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3})?(Z|[+-]\d{2}:\d{2}|[+-]\d{4})"
)
_DATETIME_LIKE = re.compile(r"\d{4}-\d{2}-\d{2}T[^\s,()]*")
_DATE_LITERAL = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w:.])")
_NUMBER = re.compile(r"-?\d+(\.\d+)?(?![\w.])")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class SoqlError(Exception):
    """A query rejected the way Salesforce rejects it, with its errorCode and message."""

    def __init__(self, error_code: str, message: str) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message


def located_error(error_code: str, soql: str, position: int, detail: str) -> SoqlError:
    """Build an error whose message shows the query excerpt with a caret under `position`."""
    start = max(0, position - 60)
    excerpt = soql[start : position + 60].replace("\n", " ")
    caret = " " * (position - start) + "^"
    message = f"\n{excerpt}\n{caret}\nERROR at Row:1:Column:{position + 1}\n{detail}"
    return SoqlError(error_code, message)


@dataclass(frozen=True)
class Token:
    kind: str  # KEYWORD, IDENT, STRING, NUMBER, DATE, DATETIME, OP, "(", ")", ",", EOF
    text: str
    position: int
    value: Any = None


def tokenize(soql: str) -> list[Token]:
    """Split `soql` into tokens, raising MALFORMED_QUERY on text that no token matches."""
    tokens: list[Token] = []
    position = 0
    while position < len(soql):
        char = soql[position]
        if char.isspace():
            position += 1
            continue
        if char == "'":
            token, position = _read_string(soql, position)
            tokens.append(token)
            continue
        if char.isdigit() or (
            char == "-" and soql[position + 1 : position + 2].isdigit()
        ):
            token = _read_number_or_date(soql, position)
            tokens.append(token)
            position += len(token.text)
            continue
        identifier = _IDENTIFIER.match(soql, position)
        if identifier:
            text = identifier.group()
            kind = "KEYWORD" if text.upper() in KEYWORDS else "IDENT"
            tokens.append(Token(kind, text, position))
            position = identifier.end()
            continue
        operator = soql[position : position + 2]
        if operator in ("!=", "<>", "<=", ">="):
            tokens.append(Token("OP", operator, position))
            position += 2
            continue
        if char in "=<>":
            tokens.append(Token("OP", char, position))
        elif char in "(),":
            tokens.append(Token(char, char, position))
        else:
            raise located_error(
                "MALFORMED_QUERY", soql, position, f"unexpected token: '{char}'"
            )
        position += 1
    tokens.append(Token("EOF", "", len(soql)))
    return tokens


def _read_string(soql: str, start: int) -> tuple[Token, int]:
    chars: list[str] = []
    position = start + 1
    while position < len(soql):
        char = soql[position]
        if char == "\\":
            escaped = soql[position + 1 : position + 2]
            if not escaped:
                break
            chars.append(_STRING_ESCAPES.get(escaped, escaped))
            position += 2
            continue
        if char == "'":
            text = soql[start : position + 1]
            return Token("STRING", text, start, "".join(chars)), position + 1
        chars.append(char)
        position += 1
    raise located_error("MALFORMED_QUERY", soql, start, "unterminated string literal")


def _read_number_or_date(soql: str, start: int) -> Token:
    datetime_like = _DATETIME_LIKE.match(soql, start)
    if datetime_like:
        text = datetime_like.group()
        if not _DATETIME_LITERAL.fullmatch(text):
            raise located_error(
                "MALFORMED_QUERY", soql, start, f"unexpected token: '{text}'"
            )
        try:
            value = parse_datetime(text)
        except ValueError:
            raise located_error(
                "MALFORMED_QUERY", soql, start, f"unexpected token: '{text}'"
            )
        return Token("DATETIME", text, start, value)
    date_match = _DATE_LITERAL.match(soql, start)
    if date_match:
        text = date_match.group()
        try:
            return Token("DATE", text, start, date.fromisoformat(text))
        except ValueError:
            raise located_error(
                "MALFORMED_QUERY", soql, start, f"unexpected token: '{text}'"
            )
    number = _NUMBER.match(soql, start)
    if not number:
        text = re.match(r"[^\s,()]+", soql[start:]).group()
        raise located_error(
            "MALFORMED_QUERY", soql, start, f"unexpected token: '{text}'"
        )
    text = number.group()
    value: float | int = float(text) if "." in text else int(text)
    return Token("NUMBER", text, start, value)
