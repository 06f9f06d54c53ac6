"""Control-store tables (SQLAlchemy Core), shared by SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tenants = sa.Table(
    "tenants",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    # production, sandbox or my_domain; my_domain contains the name before
    # .my.salesforce.com (for example acme or acme--uat.sandbox) for the last.
    sa.Column("org_type", sa.String(16), nullable=False),
    sa.Column("my_domain", sa.String(128)),
    sa.Column("login_url", sa.String(255), nullable=False),
    sa.Column("instance_url", sa.String(255)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("status_reason", sa.Text),
    sa.Column("interval_minutes", sa.Integer, nullable=False, default=15),
    sa.Column("mapping_json", sa.Text),
    # When the last sync run succeeded, shown to users.
    sa.Column("last_sync_at", sa.DateTime(timezone=True)),
    # When the schedule last requested a run; the next is due an interval later.
    sa.Column("last_requested_at", sa.DateTime(timezone=True)),
    sa.Column("connected_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column(
        "tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), primary_key=True
    ),
    sa.Column("access_ciphertext", sa.Text, nullable=False),
    sa.Column("refresh_ciphertext", sa.Text),
    sa.Column("key_id", sa.String(32), nullable=False),
    # Incremented on every write so concurrent refreshes can detect each other.
    sa.Column("version", sa.Integer, nullable=False, default=1),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # The process refreshing the tokens holds this lease, so runs in other
    # processes wait for its result instead of spending a rotated refresh token.
    sa.Column("refresh_lease_owner", sa.String(64)),
    sa.Column("refresh_lease_until", sa.DateTime(timezone=True)),
)

oauth_states = sa.Table(
    "oauth_states",
    metadata,
    sa.Column("state_hash", sa.String(64), primary_key=True),
    sa.Column("tenant_id", sa.String(64), nullable=False),
    sa.Column("verifier_ciphertext", sa.Text, nullable=False),
    sa.Column("redirect_uri", sa.String(512), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
)

api_calls = sa.Table(
    "api_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("phase", sa.String(32)),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("status", sa.Integer),
    sa.Column("org_used", sa.Integer),
    sa.Column("org_max", sa.Integer),
    # Ticks and runs read a tenant's recent rows: its latest reading and its
    # calls of the last 24 hours.
    sa.Index("ix_api_calls_tenant_at", "tenant_id", "at"),
)

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("tenant_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)

# The current holder of each tenant's writer lease (storage/lease.py), named
# in the message a waiting worker logs. The lock itself is a PostgreSQL
# advisory lock, and the next holder replaces a row left by a worker that died.
warehouse_leases = sa.Table(
    "warehouse_leases",
    metadata,
    sa.Column("tenant_id", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255), nullable=False),
    sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
)
