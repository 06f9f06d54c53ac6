"""Parser for the subset of SOQL that the pipeline sends.

Grammar::

    SELECT COUNT() | field, ... FROM object
      [WHERE condition] [ORDER BY field [ASC|DESC] [NULLS FIRST|LAST], ...]
      [LIMIT n] [OFFSET n]

A condition is `field op literal`, `field [NOT] IN (literal, ...)`, `NOT`, or
a parenthesised group. Like Salesforce, AND and OR cannot be mixed at one
level without parentheses. `soql_eval` checks the result against the
object's fields and runs it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from routiine_pipeline.emulator.soql_lexer import (
    COMPARISON_OPERATORS,
    SoqlError,
    Token,
    located_error,
    tokenize,
)

__all__ = ["ParsedQuery", "SoqlError", "parse_soql"]

MAX_SOQL_LENGTH = 100_000
# NOTE: Salesforce documents no WHERE length cap for REST queries. 4,000 characters is the
# conservative cap that client-library maintainers quote, and the pipeline must respect it.
MAX_WHERE_LENGTH = 4_000
MAX_OFFSET = 2_000


@dataclass(frozen=True)
class Literal:
    kind: str  # STRING, NUMBER, DATE, DATETIME, BOOLEAN, NULL
    value: str | float | int | bool | date | datetime | None
    position: int


@dataclass(frozen=True)
class Comparison:
    field: str
    position: int
    operator: str  # one of COMPARISON_OPERATORS, "IN" or "NOT IN"
    literals: tuple[Literal, ...]


@dataclass(frozen=True)
class BooleanGroup:
    operator: str  # AND or OR
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class Negation:
    child: Condition


Condition = Comparison | BooleanGroup | Negation


@dataclass(frozen=True)
class OrderItem:
    field: str
    position: int
    descending: bool = False
    nulls_last: bool = False


@dataclass
class ParsedQuery:
    """The syntax of one SELECT, with field names as written and their positions."""

    text: str
    sobject: str
    sobject_position: int
    fields: list[tuple[str, int]] = field(default_factory=list)
    is_count: bool = False
    where: Condition | None = None
    order_by: list[OrderItem] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None


def parse_soql(soql: str) -> ParsedQuery:
    """Parse `soql`, or raise SoqlError (MALFORMED_QUERY and similar) when it is not valid."""
    if len(soql) > MAX_SOQL_LENGTH:
        raise SoqlError(
            "MALFORMED_QUERY",
            f"SOQL statements can not be longer than {MAX_SOQL_LENGTH} characters",
        )
    return _Parser(soql, tokenize(soql)).parse()


class _Parser:
    def __init__(self, soql: str, tokens: list[Token]) -> None:
        self.soql = soql
        self.tokens = tokens
        self.index = 0

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "EOF":
            self.index += 1
        return token

    def unexpected(self, token: Token) -> SoqlError:
        text = token.text or "<EOF>"
        return located_error(
            "MALFORMED_QUERY", self.soql, token.position, f"unexpected token: '{text}'"
        )

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token.kind == "KEYWORD" and token.text.upper() in words

    def expect_keyword(self, word: str) -> Token:
        token = self.next()
        if token.kind != "KEYWORD" or token.text.upper() != word:
            raise self.unexpected(token)
        return token

    def expect(self, kind: str) -> Token:
        token = self.next()
        if token.kind != kind:
            raise self.unexpected(token)
        return token

    def parse(self) -> ParsedQuery:
        self.expect_keyword("SELECT")
        fields: list[tuple[str, int]] = []
        is_count = False
        first = self.peek()
        if (
            first.kind == "IDENT"
            and first.text.upper() == "COUNT"
            and self.tokens[self.index + 1].kind == "("
        ):
            self.next()
            self.expect("(")
            self.expect(")")
            is_count = True
        else:
            while True:
                name = self.expect("IDENT")
                fields.append((name.text, name.position))
                if self.peek().kind != ",":
                    break
                self.next()
        self.expect_keyword("FROM")
        sobject = self.expect("IDENT")
        query = ParsedQuery(self.soql, sobject.text, sobject.position, fields, is_count)
        if self.at_keyword("WHERE"):
            where_token = self.next()
            query.where = self.parse_condition()
            where_start = where_token.position + len(where_token.text)
            where_length = len(self.soql[where_start : self.peek().position].strip())
            if where_length > MAX_WHERE_LENGTH:
                raise SoqlError(
                    "MALFORMED_QUERY",
                    f"WHERE clause is {where_length} characters long; the maximum is {MAX_WHERE_LENGTH}",
                )
        if self.at_keyword("ORDER"):
            self.next()
            self.expect_keyword("BY")
            query.order_by = self.parse_order_by()
        if self.at_keyword("LIMIT"):
            self.next()
            query.limit = self.parse_count()
        if self.at_keyword("OFFSET"):
            self.next()
            token = self.peek()
            query.offset = self.parse_count()
            if query.offset > MAX_OFFSET:
                raise located_error(
                    "NUMBER_OUTSIDE_VALID_RANGE",
                    self.soql,
                    token.position,
                    f"Maximum SOQL offset allowed is {MAX_OFFSET}",
                )
        token = self.peek()
        if token.kind != "EOF":
            raise self.unexpected(token)
        return query

    def parse_count(self) -> int:
        token = self.next()
        if (
            token.kind != "NUMBER"
            or not isinstance(token.value, int)
            or token.value < 0
        ):
            raise self.unexpected(token)
        return token.value

    def parse_order_by(self) -> list[OrderItem]:
        items: list[OrderItem] = []
        while True:
            name = self.expect("IDENT")
            descending = False
            if self.at_keyword("ASC", "DESC"):
                descending = self.next().text.upper() == "DESC"
            # Salesforce puts nulls first in ascending order and last in descending order.
            nulls_last = descending
            if self.at_keyword("NULLS"):
                self.next()
                if not self.at_keyword("FIRST", "LAST"):
                    raise self.unexpected(self.peek())
                nulls_last = self.next().text.upper() == "LAST"
            items.append(OrderItem(name.text, name.position, descending, nulls_last))
            if self.peek().kind != ",":
                return items
            self.next()

    def parse_condition(self) -> Condition:
        first = self.parse_operand()
        if not self.at_keyword("AND", "OR"):
            return first
        operator = self.peek().text.upper()
        children = [first]
        while self.at_keyword("AND", "OR"):
            token = self.next()
            if token.text.upper() != operator:
                # SOQL needs parentheses to mix AND and OR, so "a AND b OR c" is rejected.
                raise self.unexpected(token)
            children.append(self.parse_operand())
        return BooleanGroup(operator, tuple(children))

    def parse_operand(self) -> Condition:
        if self.peek().kind == "(":
            self.next()
            condition = self.parse_condition()
            self.expect(")")
            return condition
        if self.at_keyword("NOT"):
            self.next()
            return Negation(self.parse_operand())
        return self.parse_comparison()

    def parse_comparison(self) -> Comparison:
        name = self.expect("IDENT")
        token = self.next()
        if token.kind == "OP" and token.text in COMPARISON_OPERATORS:
            return Comparison(
                name.text, name.position, token.text, (self.parse_literal(),)
            )
        operator = None
        if token.kind == "KEYWORD" and token.text.upper() == "IN":
            operator = "IN"
        elif (
            token.kind == "KEYWORD"
            and token.text.upper() == "NOT"
            and self.at_keyword("IN")
        ):
            self.next()
            operator = "NOT IN"
        if operator is None:
            raise self.unexpected(token)
        self.expect("(")
        literals = [self.parse_literal()]
        while self.peek().kind == ",":
            self.next()
            literals.append(self.parse_literal())
        self.expect(")")
        return Comparison(name.text, name.position, operator, tuple(literals))

    def parse_literal(self) -> Literal:
        token = self.next()
        if token.kind in ("STRING", "NUMBER", "DATE", "DATETIME"):
            return Literal(token.kind, token.value, token.position)
        if token.kind == "KEYWORD":
            word = token.text.upper()
            if word in ("TRUE", "FALSE"):
                return Literal("BOOLEAN", word == "TRUE", token.position)
            if word == "NULL":
                return Literal("NULL", None, token.position)
        raise self.unexpected(token)
