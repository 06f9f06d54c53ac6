"""POST /composite: up to 25 subrequests in one API call, optionally all-or-none."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from routiine_pipeline.emulator.http_types import Request, Response, json_response

if TYPE_CHECKING:
    from routiine_pipeline.emulator.org import Org

logger = logging.getLogger(__name__)

MAX_SUBREQUESTS = 25
MAX_QUERY_SUBREQUESTS = (
    5  # query, queryAll, nextRecordsUrl and sObject Collections operations
)
_DATA_URL = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")
_REFERENCE = re.compile(r"@\{([A-Za-z0-9_]+)\.([^}]+)\}")
HALTED_MESSAGE = "The transaction was rolled back since another operation in the same transaction failed."


def _limit_error(message: str) -> Response:
    # Salesforce's observed over-limit body is this error inside a compositeResponse entry.
    # NOTE: the message for more than 5 query operations is not confirmed. The LIMIT_EXCEEDED
    # code and the 25-operation text follow an observed response.
    entry = {
        "body": [{"errorCode": "LIMIT_EXCEEDED", "message": message}],
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": None,
    }
    return json_response(400, {"compositeResponse": [entry]})


def _malformed(message: str) -> Response:
    return json_response(400, [{"message": message, "errorCode": "JSON_PARSER_ERROR"}])


def handle_composite(
    org: Org, request: Request, version: str, page_size: int
) -> Response:
    from routiine_pipeline.emulator.routes_data import (
        is_query_operation,
        route_data_request,
    )

    try:
        body = request.json_body()
    except ValueError as error:
        return _malformed(f"The request body is not valid JSON: {error}")
    subrequests = body.get("compositeRequest") if isinstance(body, dict) else None
    if not isinstance(subrequests, list) or not subrequests:
        return _malformed('The request body needs a non-empty "compositeRequest" list')
    parsed: list[tuple[dict[str, Any], str, str]] = []
    for sub in subrequests:
        if not isinstance(sub, dict) or not all(
            isinstance(sub.get(key), str) for key in ("method", "url", "referenceId")
        ):
            return _malformed(
                "Each subrequest needs string method, url and referenceId values"
            )
        match = _DATA_URL.match(urlsplit(sub["url"]).path)
        if match is None:
            return _malformed(
                f"Subrequest url must start with /services/data/vNN.0/: {sub['url']}"
            )
        parsed.append((sub, match.group(1), match.group(2) or "/"))
    if len(parsed) > MAX_SUBREQUESTS:
        return _limit_error(
            f"The request can’t contain more than {MAX_SUBREQUESTS} operations."
        )
    queries = sum(
        1 for sub, _, rest in parsed if is_query_operation(sub["method"].upper(), rest)
    )
    if queries > MAX_QUERY_SUBREQUESTS:
        return _limit_error(
            f"The request can’t contain more than {MAX_QUERY_SUBREQUESTS} query or sObject Collections operations."
        )
    all_or_none = bool(body.get("allOrNone", False))
    results: list[dict[str, Any]] = []
    outputs: dict[str, Any] = {}
    with org.lock:
        # Hold the org lock for the whole request, so an all-or-none rollback cannot undo other clients' writes.
        state = org.snapshot_state() if all_or_none else None
        first_failure: int | None = None
        for index, (sub, sub_version, rest) in enumerate(parsed):
            if first_failure is not None and all_or_none:
                results.append(_halted(sub["referenceId"]))
                continue
            response = _run_subrequest(
                org, sub, sub_version, rest, outputs, page_size, route_data_request
            )
            outputs[sub["referenceId"]] = response.payload
            entry = {
                "body": response.payload,
                "httpHeaders": {},
                "httpStatusCode": response.status,
                "referenceId": sub["referenceId"],
            }
            results.append(entry)
            if response.status >= 400 and first_failure is None:
                first_failure = index
        if first_failure is not None and state is not None:
            org.restore_state(state)
            results = [
                entry if index == first_failure else _halted(entry["referenceId"])
                for index, entry in enumerate(results)
            ]
    return json_response(200, {"compositeResponse": results})


def _halted(reference_id: str) -> dict[str, Any]:
    body = [{"errorCode": "PROCESSING_HALTED", "message": HALTED_MESSAGE}]
    return {
        "body": body,
        "httpHeaders": {},
        "httpStatusCode": 400,
        "referenceId": reference_id,
    }


def _run_subrequest(
    org: Org,
    sub: dict[str, Any],
    version: str,
    rest: str,
    outputs: dict[str, Any],
    page_size: int,
    route: Callable[[Org, Request, str, str, int], Response],
) -> Response:
    try:
        url = _resolve_references(sub["url"], outputs)
        body = sub.get("body")
        if body is not None:
            body = json.loads(_resolve_references(json.dumps(body), outputs))
    except KeyError as error:
        message = f"Invalid reference specified. No value for {error.args[0]} found in {sub['referenceId']}"
        return json_response(
            400, [{"errorCode": "PROCESSING_HALTED", "message": message}]
        )
    split = urlsplit(url)
    match = _DATA_URL.match(split.path)
    if match is not None:
        rest = match.group(2) or "/"
    if rest.rstrip("/") == "/composite":
        return json_response(
            400,
            [
                {
                    "errorCode": "INVALID_INPUT",
                    "message": "A composite request cannot contain another composite request",
                }
            ],
        )
    request = Request(
        method=sub["method"].upper(),
        path=split.path,
        query=dict(parse_qsl(split.query, keep_blank_values=True)),
        headers={
            name.lower(): value
            for name, value in (sub.get("httpHeaders") or {}).items()
        },
        body=json.dumps(body).encode("utf-8") if body is not None else b"",
        target=url,
    )
    return route(org, request, version, rest, page_size)


def _resolve_references(text: str, outputs: dict[str, Any]) -> str:
    """Replace @{referenceId.path} with values from earlier subrequest results, or raise KeyError naming a missing one."""

    def lookup(match: re.Match[str]) -> str:
        reference, path = match.group(1), match.group(2)
        if reference not in outputs:
            raise KeyError(f"{reference}.{path}")
        value: Any = outputs[reference]
        for step in re.findall(r"[^.\[\]]+|\[\d+\]", path):
            try:
                value = value[int(step[1:-1])] if step.startswith("[") else value[step]
            except (KeyError, IndexError, TypeError):
                raise KeyError(f"{reference}.{path}") from None
        return str(value)

    return _REFERENCE.sub(lookup, text)
