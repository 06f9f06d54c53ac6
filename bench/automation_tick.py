"""Time the model automation sensor's evaluation at many tenants.

Registers N tenant partitions on a temporary Dagster instance (SQLite). It
then evaluates the automation conditions of the models and the score the way
the daemon does, four times. The ticks come with nothing changed, after raw
materializations of every month for K tenants (their backfill), after the
requested models are materialized, and after one month of one tenant (a
sync). It prints the time and the run requests of each tick.

    python bench/automation_tick.py                    # 1,000 tenants, 10 backfilled
    python bench/automation_tick.py --tenants 200 --changed 5 --json /tmp/tick.json

Raw materializations are reported without runs, so the figures are those of
the evaluation alone, not of the runs it requests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import dagster as dg


def _record_raw(instance: dg.DagsterInstance, tenant: str, months: list[str]) -> None:
    from routiine_pipeline.defs.extract import RAW_ASSET_KEYS

    for key in RAW_ASSET_KEYS.values():
        for month in months:
            partition = dg.MultiPartitionKey({"tenant": tenant, "month": month})
            instance.report_runless_asset_event(
                dg.AssetMaterialization(key, partition=partition)
            )


def _tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor, label: str):
    started = time.perf_counter()
    result = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=cursor
    )
    seconds = time.perf_counter() - started
    tenants = set()
    for key in defs.resolve_all_asset_keys():
        tenants.update(result.get_requested_partitions(key))
    print(
        f"{label:<40} {seconds:6.2f} s  {result.total_requested:5d} asset partitions "
        f"requested for {len(tenants)} tenants"
    )
    return result, {
        "tick": label,
        "seconds": round(seconds, 3),
        "asset_partitions_requested": result.total_requested,
        "tenants_requested": len(tenants),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenants", type=int, default=1000, help="tenant partitions")
    parser.add_argument(
        "--changed",
        type=int,
        default=10,
        help="tenants whose every month is backfilled",
    )
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    if not 0 < args.changed <= args.tenants:
        parser.error("--changed must be between 1 and --tenants")

    os.environ.setdefault("ROUTIINE_SF_CLIENT_SECRET", "benchmark-only")
    os.environ["ROUTIINE_HOME"] = tempfile.mkdtemp(prefix="automation_tick_home_")
    from routiine_pipeline.definitions import defs
    from routiine_pipeline.defs.partitions import month_partitions, tenant_partitions

    months = month_partitions.get_partition_keys()
    tenants = [f"tenant-{number:05d}" for number in range(args.tenants)]
    ticks = []
    with tempfile.TemporaryDirectory(prefix="automation_tick_") as folder:
        with dg.instance_for_test(temp_dir=folder) as instance:
            instance.add_dynamic_partitions(tenant_partitions.name, tenants)
            result, figures = _tick(defs, instance, None, "nothing changed")
            ticks.append(figures)
            for tenant in tenants[: args.changed]:
                _record_raw(instance, tenant, months)
            result, figures = _tick(
                defs, instance, result.cursor, f"{args.changed} tenants backfilled"
            )
            ticks.append(figures)
            for key in defs.resolve_all_asset_keys():
                for partition in result.get_requested_partitions(key):
                    instance.report_runless_asset_event(
                        dg.AssetMaterialization(key, partition=partition)
                    )
            result, figures = _tick(
                defs, instance, result.cursor, "models materialized"
            )
            ticks.append(figures)
            _record_raw(instance, tenants[0], months[-1:])
            _, figures = _tick(defs, instance, result.cursor, "one tenant synced")
            ticks.append(figures)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "tenants": args.tenants,
                    "months": len(months),
                    "machine": {
                        "cpus": os.cpu_count(),
                        "python": platform.python_version(),
                    },
                    "load_average_at_end": os.getloadavg(),
                    "ticks": ticks,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
