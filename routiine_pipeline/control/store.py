"""The control store: state that schedules and sensors read while runs write it.

SQLite under ROUTIINE_HOME by default, PostgreSQL when ROUTIINE_CONTROL_URL
names one. Each method is one short transaction, so a schedule tick never
waits long on a running sync.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import sqlalchemy as sa

from routiine_pipeline.control import (
    budget_tables,  # noqa: F401  (creates the budget tables too)
    tables,
)
from routiine_pipeline.control.engine import add_missing_columns, create_control_engine
from routiine_pipeline.mapping import TenantMapping, default_mapping

log = logging.getLogger(__name__)

CONNECTED = "connected"
NEEDS_REAUTHORIZATION = "needs_reauthorization"
PAUSED = "paused"
PENDING = "pending_connection"
STATUSES = (CONNECTED, NEEDS_REAUTHORIZATION, PAUSED, PENDING)

# Tenant ids become Dagster partition keys and file names: keep them to a safe slug
# (multi-partition keys join dimensions with "|", so that character is excluded too).
_TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

# Tenant ids per IN list, well under SQLite's default limit of 32,766 bound
# parameters per statement (999 before SQLite 3.32).
_IN_LIST_SIZE = 500


def utcnow() -> datetime:
    return datetime.now(UTC)


def check_tenant_id(tenant_id: str) -> str:
    if not _TENANT_ID.match(tenant_id or ""):
        raise ValueError(
            f"invalid tenant id {tenant_id!r}: use 1-63 lower-case letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return tenant_id


@dataclass(frozen=True)
class Tenant:
    """One row of the tenant registry. It contains no tokens, so it is safe to log or render."""

    tenant_id: str
    org_type: str
    my_domain: str | None
    login_url: str
    instance_url: str | None
    status: str
    status_reason: str | None
    interval_minutes: int
    last_sync_at: datetime | None
    last_requested_at: datetime | None
    connected_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TenantNotFoundError(LookupError):
    pass


class ControlStore:
    """Typed access to the control-store tables."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_control_engine(url)
        tables.metadata.create_all(self.engine)
        add_missing_columns(self.engine, [tables.tenants, tables.tokens])
        # create_all skips indexes of tables that already exist.
        for index in tables.api_calls.indexes:
            index.create(self.engine, checkfirst=True)

    # -- tenants --------------------------------------------------------------

    def add_tenant(
        self,
        tenant_id: str,
        *,
        org_type: str,
        login_url: str,
        my_domain: str | None = None,
    ) -> Tenant:
        check_tenant_id(tenant_id)
        now = utcnow()
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(tables.tenants.c.tenant_id).where(
                    tables.tenants.c.tenant_id == tenant_id
                )
            ).first()
            if exists:
                raise ValueError(
                    f"tenant {tenant_id!r} already exists; remove it first or pick another id"
                )
            conn.execute(
                tables.tenants.insert().values(
                    tenant_id=tenant_id,
                    org_type=org_type,
                    my_domain=my_domain,
                    login_url=login_url,
                    status=PENDING,
                    interval_minutes=15,
                    mapping_json=json.dumps(default_mapping().to_dict()),
                    created_at=now,
                    updated_at=now,
                )
            )
        return self.get_tenant(tenant_id)

    def get_tenant(self, tenant_id: str) -> Tenant:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(tables.tenants).where(
                        tables.tenants.c.tenant_id == tenant_id
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise TenantNotFoundError(
                f"tenant {tenant_id!r} not found in the control store; add it with `routiine tenants add`"
            )
        return _tenant_from_row(row)

    def list_tenants(self) -> list[Tenant]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(tables.tenants).order_by(tables.tenants.c.tenant_id)
            ).mappings()
            return [_tenant_from_row(row) for row in rows]

    def remove_tenant(self, tenant_id: str) -> dict[str, int]:
        """Delete the tenant's rows from every control-store table keyed by tenant_id.

        That covers tokens, OAuth states, the API-call ledger, budget settings
        and state, interval history, alerts, write-back retries and
        notifications, and any table added later with a tenant_id column.
        Everything goes in one transaction. Returns the deleted row count per
        table, tables without rows left out.
        """
        deleted = {}
        with self.engine.begin() as conn:
            # Dependent tables first, so that no statement breaks the tokens'
            # foreign key to tenants.
            for table in reversed(tables.metadata.sorted_tables):
                if "tenant_id" not in table.c:
                    continue
                count = conn.execute(
                    table.delete().where(table.c.tenant_id == tenant_id)
                ).rowcount
                if count:
                    deleted[table.name] = count
        return deleted

    def mark_requested(self, tenant_ids: list[str], at: datetime) -> None:
        """Set `last_requested_at` of many tenants in one transaction, one UPDATE per 500 tenants."""
        column = tables.tenants.c
        now = utcnow()
        with self.engine.begin() as conn:
            for start in range(0, len(tenant_ids), _IN_LIST_SIZE):
                chunk = tenant_ids[start : start + _IN_LIST_SIZE]
                conn.execute(
                    tables.tenants.update()
                    .where(column.tenant_id.in_(chunk))
                    .values(last_requested_at=at, updated_at=now)
                )

    def update_tenant(self, tenant_id: str, **values) -> None:
        values["updated_at"] = utcnow()
        with self.engine.begin() as conn:
            result = conn.execute(
                tables.tenants.update()
                .where(tables.tenants.c.tenant_id == tenant_id)
                .values(**values)
            )
        if result.rowcount == 0:
            raise TenantNotFoundError(
                f"tenant {tenant_id!r} not found in the control store"
            )

    def set_status(
        self, tenant_id: str, status: str, reason: str | None = None
    ) -> None:
        if status not in STATUSES:
            raise ValueError(
                f"unknown tenant status {status!r}: use one of {', '.join(STATUSES)}"
            )
        self.update_tenant(tenant_id, status=status, status_reason=reason)

    def mark_needs_reauthorization(self, tenant_id: str, message: str) -> bool:
        """Set `needs_reauthorization` and notify once; return whether this call changed the status.

        The status change and the notification share one conditional update, so
        two runs that hit `invalid_grant` together still send one notification.
        """
        column = tables.tenants.c
        now = utcnow()
        with self.engine.begin() as conn:
            changed = conn.execute(
                tables.tenants.update()
                .where(
                    column.tenant_id == tenant_id,
                    column.status != NEEDS_REAUTHORIZATION,
                )
                .values(
                    status=NEEDS_REAUTHORIZATION, status_reason=message, updated_at=now
                )
            ).rowcount
            if changed:
                conn.execute(
                    tables.notifications.insert().values(
                        tenant_id=tenant_id,
                        at=now,
                        kind=NEEDS_REAUTHORIZATION,
                        message=message,
                    )
                )
        if changed:
            log.warning("Tenant %s needs re-authorization: %s", tenant_id, message)
        return bool(changed)

    def mapping(self, tenant_id: str) -> TenantMapping:
        with self.engine.connect() as conn:
            raw = conn.execute(
                sa.select(tables.tenants.c.mapping_json).where(
                    tables.tenants.c.tenant_id == tenant_id
                )
            ).scalar()
        return TenantMapping.from_dict(json.loads(raw)) if raw else default_mapping()

    def set_mapping(self, tenant_id: str, mapping: TenantMapping) -> None:
        self.update_tenant(tenant_id, mapping_json=json.dumps(mapping.to_dict()))

    # -- API usage and notifications -----------------------------------------

    def record_call(
        self,
        tenant_id: str,
        *,
        kind: str,
        status: int,
        org_used: int | None,
        org_max: int | None,
        run_id: str | None,
        phase: str | None,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                tables.api_calls.insert().values(
                    tenant_id=tenant_id,
                    at=utcnow(),
                    kind=kind,
                    status=status,
                    org_used=org_used,
                    org_max=org_max,
                    run_id=run_id,
                    phase=phase,
                )
            )

    def prune_api_calls(self, tenant_id: str, *, before: datetime) -> int:
        """Delete the tenant's ledger rows older than `before`; return how many."""
        column = tables.api_calls.c
        with self.engine.begin() as conn:
            return conn.execute(
                tables.api_calls.delete().where(
                    column.tenant_id == tenant_id, column.at < before
                )
            ).rowcount

    def calls_by_phase(
        self, tenant_id: str, *, since: datetime | None = None
    ) -> dict[str, int]:
        column = tables.api_calls.c
        condition = column.tenant_id == tenant_id
        if since is not None:
            condition = condition & (column.at >= since)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(column.phase, sa.func.count())
                .where(condition)
                .group_by(column.phase)
            )
            return {phase or "other": count for phase, count in rows}

    def latest_usage(self, tenant_id: str) -> tuple[int, int, datetime] | None:
        column = tables.api_calls.c
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(column.org_used, column.org_max, column.at)
                .where(column.tenant_id == tenant_id, column.org_used.is_not(None))
                .order_by(column.id.desc())
                .limit(1)
            ).first()
        return (row[0], row[1], row[2]) if row else None

    def notify(self, tenant_id: str, kind: str, message: str) -> None:
        log.warning("Notification for tenant %s (%s): %s", tenant_id, kind, message)
        with self.engine.begin() as conn:
            conn.execute(
                tables.notifications.insert().values(
                    tenant_id=tenant_id, at=utcnow(), kind=kind, message=message
                )
            )

    def notifications(self, tenant_id: str) -> list[dict]:
        column = tables.notifications.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(column.at, column.kind, column.message)
                .where(column.tenant_id == tenant_id)
                .order_by(column.id)
            ).mappings()
            return [dict(row) for row in rows]


def _tenant_from_row(row) -> Tenant:
    return Tenant(
        tenant_id=row["tenant_id"],
        org_type=row["org_type"],
        my_domain=row["my_domain"],
        login_url=row["login_url"],
        instance_url=row["instance_url"],
        status=row["status"],
        status_reason=row["status_reason"],
        interval_minutes=row["interval_minutes"],
        last_sync_at=_aware(row["last_sync_at"]),
        last_requested_at=_aware(row["last_requested_at"]),
        connected_at=_aware(row["connected_at"]),
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
    )


def _aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored value is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


@lru_cache(maxsize=8)
def open_control_store(url: str) -> ControlStore:
    """Return one ControlStore (and one connection pool) per URL and process."""
    return ControlStore(url)


def load_tenant_mapping(tenant_id: str) -> TenantMapping:
    """Return the mapping of a tenant from the configured control store."""
    from routiine_pipeline.settings import control_store_url

    return open_control_store(control_store_url()).mapping(tenant_id)
