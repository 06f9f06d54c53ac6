"""Control-store tables of the API budget, interval history, alerts and write-back retries.

They live on the same `metadata` as the core tables, so `ControlStore`
creates them with everything else.
"""

from __future__ import annotations

import sqlalchemy as sa

from routiine_pipeline.control.tables import metadata

# Per-tenant overrides of the ApiBudget defaults. A NULL column keeps the default.
budget_settings = sa.Table(
    "budget_settings",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("share", sa.Float),
    sa.Column("ceiling", sa.Float),
    sa.Column("run_cap", sa.Integer),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# The budget's current decision per tenant. `mode` is normal, pressure, high or paused.
budget_state = sa.Table(
    "budget_state",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("interval_minutes", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("org_used", sa.Integer),
    sa.Column("org_max", sa.Integer),
    sa.Column("projected", sa.Integer),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
)

interval_history = sa.Table(
    "interval_history",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("from_mode", sa.String(16)),
    sa.Column("to_mode", sa.String(16), nullable=False),
    sa.Column("from_minutes", sa.Integer),
    sa.Column("to_minutes", sa.Integer, nullable=False),
    sa.Column("org_used", sa.Integer),
    sa.Column("org_max", sa.Integer),
    sa.Column("projected", sa.Integer),
    sa.Column("reason", sa.Text, nullable=False),
)

# One row per tenant and cycle that ended with records needing a person's attention.
tenant_alerts = sa.Table(
    "tenant_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("details_json", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

# When each tenant's next write-back retry is due, so the sensor never opens DuckDB or calls Salesforce.
writeback_retries = sa.Table(
    "writeback_retries",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("pending", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
