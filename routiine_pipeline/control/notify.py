"""Customer notifications: stored per tenant, and POSTed to a webhook when one is configured.

Set ROUTIINE_NOTIFY_WEBHOOK to an http(s) URL to receive each notification
as JSON: {"tenant", "kind", "message", "at", "details"}. Delivery failures
are logged and never raised, because a notification must not fail a run.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

from routiine_pipeline.control import budget_tables, tables
from routiine_pipeline.control.store import ControlStore, utcnow

log = logging.getLogger(__name__)

WEBHOOK_ENV = "ROUTIINE_NOTIFY_WEBHOOK"
WEBHOOK_TIMEOUT_SECONDS = 5.0


def webhook_url() -> str | None:
    """Return the configured webhook URL, or None when unset or not http(s)."""
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        log.error(
            "%s is not an http(s) URL (scheme %r); notifications are stored but not sent",
            WEBHOOK_ENV,
            parts.scheme,
        )
        return None
    return url


@dataclass(frozen=True)
class Notification:
    tenant: str
    kind: str
    message: str
    at: datetime
    details: dict[str, Any]


def notify(
    store: ControlStore,
    tenant: str,
    kind: str,
    message: str,
    *,
    at: datetime | None = None,
    details: dict[str, Any] | None = None,
    conn: sa.Connection | None = None,
) -> Notification:
    """Store a notification and send it to the webhook.

    With `conn` the row joins the caller's transaction, and the caller sends it
    with `deliver` after committing, so a rolled-back change sends no notification.
    """
    note = Notification(tenant, kind, message, at or utcnow(), dict(details or {}))
    row = tables.notifications.insert().values(
        tenant_id=tenant, at=note.at, kind=kind, message=message
    )
    if conn is not None:
        conn.execute(row)
        return note
    with store.engine.begin() as own:
        own.execute(row)
    deliver(note)
    return note


def deliver(note: Notification) -> bool:
    """Log the notification and POST it to the webhook; return whether the webhook accepted it."""
    log.warning(
        "Notification for tenant %s (%s): %s", note.tenant, note.kind, note.message
    )
    url = webhook_url()
    if url is None:
        return False
    body = {
        "tenant": note.tenant,
        "kind": note.kind,
        "message": note.message,
        "at": note.at.isoformat(),
        "details": note.details,
    }
    # Webhook URLs often embed a secret, so logs name the host only.
    host = urlsplit(url).hostname
    try:
        response = requests.post(
            url,
            data=json.dumps(body, default=str),
            timeout=WEBHOOK_TIMEOUT_SECONDS,
            headers={"Content-Type": "application/json"},
        )
    except requests.RequestException as error:
        log.error(
            "Webhook delivery to %s failed for tenant %s (%s): %s",
            host,
            note.tenant,
            note.kind,
            type(error).__name__,
        )
        return False
    if response.status_code >= 300:
        log.error(
            "Webhook at %s returned HTTP %d for tenant %s (%s)",
            host,
            response.status_code,
            note.tenant,
            note.kind,
        )
        return False
    return True


def record_alert(
    store: ControlStore,
    tenant: str,
    *,
    kind: str,
    run_id: str | None,
    details: list[dict[str, Any]],
    message: str,
    at: datetime | None = None,
) -> Notification:
    """Store one grouped alert on the tenant's status and notify it once."""
    at = at or utcnow()
    with store.engine.begin() as conn:
        conn.execute(
            budget_tables.tenant_alerts.insert().values(
                tenant_id=tenant,
                at=at,
                kind=kind,
                run_id=run_id,
                records=len(details),
                details_json=json.dumps(details, default=str),
                message=message,
            )
        )
        note = notify(
            store, tenant, kind, message, at=at, details={"records": details}, conn=conn
        )
    deliver(note)
    return note


def tenant_status(store: ControlStore, tenant: str) -> dict[str, Any]:
    """Return the tenant's status with its budget mode, latest alert and pending write-back retries."""
    record = store.get_tenant(tenant)
    with store.engine.connect() as conn:
        state = (
            conn.execute(
                sa.select(budget_tables.budget_state).where(
                    budget_tables.budget_state.c.tenant_id == tenant
                )
            )
            .mappings()
            .first()
        )
        alert = (
            conn.execute(
                sa.select(budget_tables.tenant_alerts)
                .where(budget_tables.tenant_alerts.c.tenant_id == tenant)
                .order_by(budget_tables.tenant_alerts.c.id.desc())
                .limit(1)
            )
            .mappings()
            .first()
        )
        retries = (
            conn.execute(
                sa.select(budget_tables.writeback_retries).where(
                    budget_tables.writeback_retries.c.tenant_id == tenant
                )
            )
            .mappings()
            .first()
        )
    return {
        "tenant": tenant,
        "status": record.status,
        "status_reason": record.status_reason,
        "interval_minutes": record.interval_minutes,
        "budget_mode": state["mode"] if state else "normal",
        "budget_reason": state["reason"] if state else None,
        "latest_alert": dict(alert) if alert else None,
        "pending_writeback_retries": retries["pending"] if retries else 0,
    }
