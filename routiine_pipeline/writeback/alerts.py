"""One grouped alert per tenant and write-back cycle for records that need attention."""

from __future__ import annotations

from datetime import datetime

from routiine_pipeline.control.notify import Notification, record_alert
from routiine_pipeline.control.store import ControlStore

ALERT_KIND = "writeback_failures"
# The message lists this many records in full; the stored details keep all of them.
MAX_LISTED = 20


def alert_message(tenant: str, alerts: list[dict]) -> str:
    """Write the alert text with Salesforce's exact status code, message and fields per error."""
    lines = [
        f"Write-back for tenant {tenant}: {len(alerts)} Opportunity record(s) could not be updated."
    ]
    for alert in alerts[:MAX_LISTED]:
        errors = "; ".join(
            f"{error.get('statusCode')}: {error.get('message')} (fields: {', '.join(error.get('fields') or []) or 'none'})"
            for error in alert["errors"]
        )
        lines.append(f"- {alert['record_id']} ({alert['outcome']}): {errors}")
    if len(alerts) > MAX_LISTED:
        lines.append(
            f"- and {len(alerts) - MAX_LISTED} more; the stored alert lists every record"
        )
    return "\n".join(lines)


def send_cycle_alert(
    store: ControlStore,
    tenant: str,
    alerts: list[dict],
    *,
    run_id: str | None,
    at: datetime | None = None,
) -> Notification | None:
    """Store and send one alert listing every record of this cycle that needs attention."""
    if not alerts:
        return None
    return record_alert(
        store,
        tenant,
        kind=ALERT_KIND,
        run_id=run_id,
        details=alerts,
        message=alert_message(tenant, alerts),
        at=at,
    )
