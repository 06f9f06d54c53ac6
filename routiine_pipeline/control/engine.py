"""The control store's SQLAlchemy engine: SQLite tuned for concurrent readers, or PostgreSQL.

Schedules and sensors read the control store while runs write to it. SQLite
runs in WAL mode so a reader sees the last committed state instead of
waiting for a writer, and every connection waits up to BUSY_TIMEOUT_SECONDS
for a competing writer before it raises "database is locked".
"""

from __future__ import annotations

import logging

import sqlalchemy as sa

log = logging.getLogger(__name__)

BUSY_TIMEOUT_SECONDS = 30


def create_control_engine(url: str) -> sa.Engine:
    """Create the engine for `url`, with WAL mode and a busy timeout on SQLite."""
    if not url.startswith("sqlite"):
        parsed = sa.make_url(url)
        if parsed.drivername in ("postgres", "postgresql"):
            # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the project installs psycopg2.
            parsed = parsed.set(drivername="postgresql+psycopg2")
        return sa.create_engine(parsed, future=True, pool_pre_ping=True)
    engine = sa.create_engine(
        url, connect_args={"timeout": BUSY_TIMEOUT_SECONDS}, future=True
    )

    @sa.event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.close()

    return engine


def add_missing_columns(engine: sa.Engine, tables: list[sa.Table]) -> list[str]:
    """Add columns that `tables` define but an older control store lacks; return their names.

    Only nullable columns without server defaults are added, which is all that
    later versions of these tables introduced, so no existing row needs a value.
    """
    inspector = sa.inspect(engine)
    added = []
    with engine.begin() as conn:
        for table in tables:
            if not inspector.has_table(table.name):
                continue
            present = {column["name"] for column in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name in present or not column.nullable:
                    continue
                column_type = column.type.compile(dialect=engine.dialect)
                conn.execute(
                    sa.text(
                        f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {column_type}'
                    )
                )
                added.append(f"{table.name}.{column.name}")
    if added:
        log.info("Control store upgraded: added columns %s", ", ".join(added))
    return added
