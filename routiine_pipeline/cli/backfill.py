"""`routiine backfill TENANT`: extract a tenant's month partitions through Dagster."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from routiine_pipeline.cli.instance import dagster_instance

# Exit status when the API limit stopped the backfill: rerun the same command later.
EXIT_STOPPED = 2


def cmd_backfill(args: argparse.Namespace) -> int:

    from routiine_pipeline.backfill import backfill_tenant, month_keys

    instance = dagster_instance()
    now = datetime.now(UTC)
    months = month_keys(args.from_month, args.to_month, now=now)
    mode = "full refresh" if args.full_refresh else "skipping extracted months"
    print(
        f"Backfilling tenant {args.tenant}: {len(months)} months, {months[0][:7]} to {months[-1][:7]} ({mode})",
        flush=True,
    )
    report = backfill_tenant(
        instance,
        args.tenant,
        months,
        full_refresh=args.full_refresh,
        parallel=args.parallel,
        run_start=now,
        progress=lambda line: print(f"    {line}", flush=True),
    )
    print(
        f"Tenant {args.tenant}: {report.count('extracted')} months extracted, {report.count('skipped')} skipped, "
        f"{report.count('failed')} failed, {report.api_calls} API calls",
        flush=True,
    )
    if report.stopped:
        left = len(months) - len(report.months) + report.count("stopped")
        print(
            f"Stopped at the API limit with {left} month(s) left: {report.stopped}\n"
            f"Committed months stay done. Run the same command again once the org's 24-hour API usage has fallen.",
            flush=True,
        )
        return EXIT_STOPPED
    return 1 if report.count("failed") else 0


def register(commands: argparse._SubParsersAction) -> None:
    backfill = commands.add_parser(
        "backfill",
        help="extract a tenant's history month by month through Dagster (resumable)",
        description=(
            "Run the tenant's month partitions of the raw assets through Dagster on the instance under "
            "DAGSTER_HOME. Months whose raw assets are materialized and whose windows the tenant's file holds "
            "are skipped, so the same "
            "command resumes a backfill that crashed or stopped at the API limit."
        ),
    )
    backfill.add_argument(
        "tenant", help="tenant id, as given to `routiine tenants add`"
    )
    backfill.add_argument(
        "--from",
        dest="from_month",
        metavar="YYYY-MM",
        help="first month (default: the first partition)",
    )
    backfill.add_argument(
        "--to",
        dest="to_month",
        metavar="YYYY-MM",
        help="last month (default: the current month)",
    )
    backfill.add_argument(
        "--full-refresh",
        action="store_true",
        help="read every month again from its start, ignoring watermarks, seals and earlier materializations",
    )
    backfill.add_argument(
        "--parallel",
        type=int,
        default=1,
        metavar="N",
        help="read up to N closed months in one pass, one query per object (default: 1, one pass per month)",
    )
    backfill.set_defaults(handler=cmd_backfill)
