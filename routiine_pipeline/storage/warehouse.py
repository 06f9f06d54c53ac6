"""Opening a tenant's DuckDB file, with a bounded wait while another process has it open.

DuckDB lets one process at a time open a file read-write. Runs of one tenant
are serialized by a run-queue limit, so a lock held here means a stray
process (a notebook, a crashed worker); the error then names its holder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)


class WarehouseLockedError(RuntimeError):
    """The tenant's DuckDB file stayed locked by another process past the wait budget."""


@contextmanager
def open_database(
    path: Path, *, read_only: bool = False, lock_wait_seconds: float = 30.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open a DuckDB file with the session time zone set to UTC.

    Retries with backoff while another process holds the write lock, then
    raises WarehouseLockedError with DuckDB's message, which names the
    process and its PID.
    """
    deadline = time.monotonic() + lock_wait_seconds
    delay = 0.1
    while True:
        try:
            connection = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as error:
            if "lock" not in str(error).lower():
                raise
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"DuckDB file {path} is locked by another process: {error}. "
                    "Stop that process, or wait for it, then retry the run."
                    # The message already contains DuckDB's; without the chained
                    # cause, a run's failure shows this advice, not only DuckDB's text.
                ) from None
            log.info("DuckDB file %s is locked, retrying in %.1fs", path, delay)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    try:
        # Timestamps are stored as TIMESTAMPTZ; a UTC session keeps every
        # value read back in UTC whatever the machine's zone is.
        connection.execute("SET TimeZone = 'UTC'")
        yield connection
    finally:
        connection.close()
