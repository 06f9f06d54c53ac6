"""Record updates: PATCH /sobjects/{type}/{id} and PATCH /composite/sobjects (sObject Collections)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from routiine_pipeline.emulator.http_types import (
    Request,
    Response,
    empty_response,
    error_response,
    json_response,
    not_found,
)
from routiine_pipeline.emulator.values import coerce_value
from routiine_pipeline.salesforce.ids import is_valid_id

if TYPE_CHECKING:
    from routiine_pipeline.emulator.org import Org

logger = logging.getLogger(__name__)

MAX_COLLECTION_RECORDS = 200
ROLLED_BACK = {
    "statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "message": "Record rolled back because not all records were valid and the request was using AllOrNone header",
    "fields": [],
}
# HTTP status of a single-record PATCH that fails with this code. Other codes give 400.
_SINGLE_RECORD_STATUS = {"ENTITY_IS_DELETED": 404, "NOT_FOUND": 404}


def _error(
    status_code: str, message: str, fields: list[str] | None = None
) -> dict[str, Any]:
    return {"statusCode": status_code, "message": message, "fields": fields or []}


def check_update(
    org: Org, sobject: str | None, record_id: Any, values: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Validate one record update as Salesforce would, and return (SaveResult errors, stored values).

    Raises ValueError when a value has the wrong JSON type, which Salesforce
    reports for the whole request as JSON_PARSER_ERROR.
    """
    if not sobject:
        return [_error("INVALID_TYPE", "Must send a concrete entity type.")], {}
    try:
        schema = org.schema(sobject)
    except KeyError:
        return [
            _error("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        ], {}
    if not record_id:
        return [_error("MISSING_ARGUMENT", "Id not specified in an update call")], {}
    if (
        not isinstance(record_id, str)
        or not is_valid_id(record_id)
        or not record_id.startswith(schema.key_prefix)
    ):
        return [
            _error(
                "MALFORMED_ID",
                f"{schema.label} ID: id value of incorrect type: {record_id}",
                ["Id"],
            )
        ], {}
    record = org.get(schema.name, record_id)
    if record is None and org.is_purged(record_id):
        return [_error("ENTITY_IS_DELETED", "entity is deleted")], {}
    if record is None:
        return [_error("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")], {}
    if record["IsDeleted"]:
        return [_error("ENTITY_IS_DELETED", "entity is deleted")], {}
    planted = org.faults.take_record_errors(record_id)
    if planted is not None:
        return planted, {}
    errors: list[dict[str, Any]] = []
    read_only: list[str] = []
    stored: dict[str, Any] = {}
    for name, value in values.items():
        spec = schema.field_named(name)
        if spec is None or not org.is_field_visible(schema.name, spec.name):
            errors.append(
                _error(
                    "INVALID_FIELD",
                    f"No such column '{name}' on sobject of type {schema.name}",
                    [name],
                )
            )
            continue
        if not org.is_field_updateable(schema.name, spec.name):
            read_only.append(spec.name)
            continue
        stored[spec.name] = coerce_value(spec, value)
        text = stored[spec.name]
        if isinstance(text, str) and spec.length and len(text) > spec.length:
            message = f"{spec.label or spec.name}: data value too large: {text} (max length={spec.length})"
            errors.append(_error("STRING_TOO_LONG", message, [spec.name]))
    if read_only:
        message = (
            f"Unable to create/update fields: {', '.join(read_only)}. Please check the security settings "
            "of this field and verify that it is read/write for your profile or permission set."
        )
        errors.append(_error("INVALID_FIELD_FOR_INSERT_UPDATE", message, read_only))
    return errors, stored


def apply_update(
    org: Org, sobject: str, record_id: str, stored: dict[str, Any]
) -> None:
    """Write a validated update as the integration user, which moves LastModifiedDate and SystemModstamp."""
    org.update(sobject, record_id, stored, by=org.integration_user_id)


def handle_patch_record(
    org: Org, request: Request, sobject: str, record_id: str
) -> Response:
    """PATCH /sobjects/{type}/{id}: 204 with an empty body on success."""
    try:
        values = request.json_body()
    except ValueError as error:
        return error_response(
            400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {error}"
        )
    org.log_write("PATCH", request.path, values)
    if not isinstance(values, dict):
        return error_response(
            400,
            "JSON_PARSER_ERROR",
            "The request body must be a JSON object of field values",
        )
    try:
        schema = org.schema(sobject)
    except KeyError:
        return not_found()
    if org.get(schema.name, record_id) is None and not org.is_purged(record_id):
        return not_found()
    values = {name: value for name, value in values.items() if name != "attributes"}
    with org.lock:
        try:
            errors, stored = check_update(org, schema.name, record_id, values)
        except ValueError as error:
            return error_response(400, "JSON_PARSER_ERROR", str(error))
        if errors:
            status = _SINGLE_RECORD_STATUS.get(errors[0]["statusCode"], 400)
            body = [
                {
                    "message": e["message"],
                    "errorCode": e["statusCode"],
                    "fields": e["fields"],
                }
                for e in errors
            ]
            return json_response(status, body)
        apply_update(org, schema.name, record_id, stored)
    return empty_response(204)


def handle_collection_update(org: Org, request: Request) -> Response:
    """PATCH /composite/sobjects: up to 200 records, one SaveResult each, in request order."""
    try:
        body = request.json_body()
    except ValueError as error:
        return error_response(
            400, "JSON_PARSER_ERROR", f"The request body is not valid JSON: {error}"
        )
    org.log_write("PATCH", request.path, body)
    records = body.get("records") if isinstance(body, dict) else None
    if not isinstance(records, list) or not all(
        isinstance(record, dict) for record in records
    ):
        return error_response(
            400,
            "JSON_PARSER_ERROR",
            'The request body needs a "records" list of objects',
        )
    if len(records) > MAX_COLLECTION_RECORDS:
        return error_response(
            400,
            "EXCEEDED_ID_LIMIT",
            "record limit reached. cannot submit more than 200 records into this call",
        )
    all_or_none = bool(body.get("allOrNone", False))
    # NOTE: Salesforce also splits a mixed-type list into at most 10 chunks, which is not enforced here.
    with org.lock:
        checked = []
        for record in records:
            attributes = record.get("attributes") or {}
            values = {
                name: value
                for name, value in record.items()
                if name not in ("attributes", "id", "Id")
            }
            record_id = record.get("id") or record.get("Id")
            try:
                errors, stored = check_update(
                    org, attributes.get("type"), record_id, values
                )
            except ValueError as error:
                return error_response(400, "JSON_PARSER_ERROR", str(error))
            checked.append((attributes.get("type"), record_id, errors, stored))
        any_failed = any(errors for _, _, errors, _ in checked)
        results = []
        for sobject, record_id, errors, stored in checked:
            if errors:
                results.append({"id": record_id, "success": False, "errors": errors})
            elif all_or_none and any_failed:
                results.append(
                    {"id": record_id, "success": False, "errors": [dict(ROLLED_BACK)]}
                )
            else:
                apply_update(org, org.schema(sobject).name, record_id, stored)
                results.append({"id": record_id, "success": True, "errors": []})
    if any_failed:
        logger.info(
            "Collection update: %d of %d records failed",
            sum(1 for r in results if r["errors"]),
            len(results),
        )
    return json_response(200, results)
