"""Control routes under /_emulator/ for tests and scripts in other processes.

They take and return JSON, need no token and are not counted as API calls.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from routiine_pipeline.emulator.http_types import Request, Response, json_response
from routiine_pipeline.emulator.values import encode_value, parse_datetime

if TYPE_CHECKING:
    from routiine_pipeline.emulator.org import Org

logger = logging.getLogger(__name__)


def _bad_request(message: str) -> Response:
    return json_response(400, {"error": message})


def _encode(record: dict[str, Any]) -> dict[str, Any]:
    return {name: encode_value(value) for name, value in record.items()}


def _optional_time(body: dict[str, Any], name: str) -> datetime | None:
    text = body.get(name)
    return parse_datetime(text) if text else None


def handle_admin(org: Org, request: Request, action: str) -> Response:
    """Serve /_emulator/{action}. Errors come back as 400 {"error": message}."""
    try:
        body = request.json_body() if request.method == "POST" else None
        if request.method == "POST" and not isinstance(body, dict):
            return _bad_request("the request body must be a JSON object")
        return _dispatch(org, request, action, body or {})
    except (KeyError, ValueError, TypeError) as error:
        logger.info("Admin request %s %s failed: %s", request.method, action, error)
        return _bad_request(str(error))


def _dispatch(
    org: Org, request: Request, action: str, body: dict[str, Any]
) -> Response:
    method = request.method
    if method == "GET" and action == "stats":
        return json_response(200, org.stats())
    if method == "GET" and action == "write-log":
        entries = [dict(entry, at=encode_value(entry["at"])) for entry in org.write_log]
        return json_response(200, entries)
    if method == "GET" and action.startswith("records/"):
        include_deleted = (
            request.query.get("include_deleted", "false").lower() == "true"
        )
        rows = org.records(action.split("/", 1)[1], include_deleted=include_deleted)
        return json_response(200, [_encode(row) for row in rows])
    if method != "POST":
        return json_response(
            404, {"error": f"no admin route {method} /_emulator/{action}"}
        )
    if action == "clock":
        return _clock(org, body)
    if action == "fault":
        org.inject_fault(
            body["kind"],
            path_contains=body.get("path_contains"),
            count=body.get("count", 1),
            seconds=float(body.get("seconds", 0)),
        )
    elif action == "record-fault":
        org.inject_record_fault(
            body["record_id"],
            body.get("status_code"),
            body.get("message"),
            body.get("fields", []),
            int(body.get("count", 1)),
            errors=body.get("errors"),
        )
    elif action == "clear-faults":
        org.clear_faults()
    elif action == "mutate":
        return _mutate(org, body)
    elif action == "expire-tokens":
        return json_response(200, {"expired": org.expire_access_tokens()})
    elif action == "field":
        if "visible" in body:
            org.set_field_visibility(
                body["sobject"], body["field"], bool(body["visible"])
            )
        if "updateable" in body:
            org.set_field_updateable(
                body["sobject"], body["field"], bool(body["updateable"])
            )
    elif action == "other-app-usage":
        org.add_other_app_usage(int(body["calls"]))
    else:
        return json_response(404, {"error": f"no admin route POST /_emulator/{action}"})
    return json_response(200, {"ok": True})


def _clock(org: Org, body: dict[str, Any]) -> Response:
    """Apply {"set": iso, "advance": seconds, "freeze": bool} in that order."""
    if body.get("set"):
        org.clock.set(parse_datetime(body["set"]))
    if body.get("advance"):
        org.clock.advance(float(body["advance"]))
    if body.get("freeze") is True:
        org.clock.freeze()
    elif body.get("freeze") is False:
        org.clock.unfreeze()
    return json_response(
        200, {"now": encode_value(org.clock.now()), "frozen": org.clock.frozen}
    )


def _mutate(org: Org, body: dict[str, Any]) -> Response:
    """Apply {op, sobject, id, values, at, system_only, stamp}. The op is insert, update, delete, undelete, purge or late_commit."""
    op = body.get("op")
    sobject = body.get("sobject")
    at = _optional_time(body, "at")
    values = body.get("values") or {}
    if op == "insert":
        return json_response(200, {"id": org.insert(sobject, values, at=at)})
    if op == "update":
        org.update(
            sobject,
            body["id"],
            values,
            at=at,
            system_only=bool(body.get("system_only", False)),
        )
    elif op == "delete":
        org.delete(sobject, body["id"], at=at)
    elif op == "undelete":
        org.undelete(sobject, body["id"], at=at)
    elif op == "purge":
        return json_response(200, {"purged": org.purge_recycle_bin(sobject, at=at)})
    elif op == "late_commit":
        return json_response(
            200,
            {
                "id": org.late_commit(
                    sobject, values, stamp=parse_datetime(body["stamp"])
                )
            },
        )
    else:
        return _bad_request(
            f"unknown op {op!r}; expected insert, update, delete, undelete, purge or late_commit"
        )
    return json_response(200, {"ok": True})
