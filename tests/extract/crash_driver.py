"""Run one extract pass in its own process, so a test can kill it with SIGKILL.

Usage: python crash_driver.py URL DATABASE RUN_START
The access token comes from ROUTIINE_TEST_ACCESS_TOKEN, never from the
command line. ROUTIINE_CRASH_POINT and ROUTIINE_CRASH_AFTER choose where the
process kills itself (see routiine_pipeline.extract.crashpoints). Exits 0
when every sObject finished, 1 when one of them reported an error.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path

from routiine_pipeline.extract.cycle import ExtractPass
from routiine_pipeline.extract.plan import plan_fields
from routiine_pipeline.extract.windows import ExtractSettings, MonthWindow
from routiine_pipeline.mapping import EXTRACT_OBJECTS, default_fields
from routiine_pipeline.salesforce.client import SalesforceClient
from routiine_pipeline.storage.warehouse import open_database

TOKEN_ENV = "ROUTIINE_TEST_ACCESS_TOKEN"
WINDOWS = ("2024-02-01", "2024-03-01")


class FixedToken:
    """The one access token the test issued, which outlives the run, so no refresh happens."""

    def __init__(self, token: str) -> None:
        self.token = token

    def access_token(self) -> str:
        return self.token

    def refresh(self, rejected_token: str) -> str:
        raise RuntimeError(
            "the access token was rejected; the test issues tokens that outlive the run"
        )


def main(argv: list[str]) -> int:
    url, database, run_start = argv
    logging.basicConfig(level=logging.WARNING)
    client = SalesforceClient(
        instance_url=url, tokens=FixedToken(os.environ[TOKEN_ENV]), tenant="acme"
    )
    plans = [plan_fields(name, default_fields(name), None) for name in EXTRACT_OBJECTS]
    with open_database(Path(database)) as conn:
        extract = ExtractPass(
            client,
            conn,
            tenant="acme",
            settings=ExtractSettings(),
            run_start=datetime.fromisoformat(run_start),
        )
        outcomes = extract.run(plans, [MonthWindow.from_key(key) for key in WINDOWS])
    failed = {
        name: outcome.error
        for name, outcome in outcomes.items()
        if outcome.error or not outcome.done
    }
    if failed:
        print(f"sObjects failed: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
