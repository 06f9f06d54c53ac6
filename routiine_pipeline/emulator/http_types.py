"""Plain request and response values passed between the HTTP layer and the route handlers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json;charset=UTF-8"


@dataclass
class Request:
    method: str
    path: str  # without the query string, percent-decoding not applied
    query: dict[str, str]  # decoded form-style, so a raw "+" becomes a space
    headers: dict[str, str]  # lower-cased names
    body: bytes = b""
    target: str = ""  # the raw request target: path plus query string

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json_body(self) -> Any:
        """Decode the body as JSON, or raise ValueError with the parser's message."""
        try:
            return json.loads(self.body.decode("utf-8") or "null")
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(str(error)) from error


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # The decoded JSON body, kept so that composite can embed subrequest results.
    payload: Any = None
    drop_connection: bool = False


def json_response(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )
    all_headers = {"Content-Type": JSON_CONTENT_TYPE}
    all_headers.update(headers or {})
    return Response(status, body, all_headers, payload)


def error_response(
    status: int, error_code: str, message: str, fields: list[str] | None = None
) -> Response:
    """Build a request-level error: a JSON array of {message, errorCode[, fields]}."""
    error: dict[str, Any] = {"message": message, "errorCode": error_code}
    if fields is not None:
        error["fields"] = fields
    return json_response(status, [error])


def empty_response(status: int = 204) -> Response:
    return Response(status)


def not_found() -> Response:
    return json_response(
        404,
        [
            {
                "errorCode": "NOT_FOUND",
                "message": "The requested resource does not exist",
            }
        ],
    )
