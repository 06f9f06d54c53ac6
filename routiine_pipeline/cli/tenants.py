"""`routiine tenants add | list | remove | connect`."""

from __future__ import annotations

import argparse

from routiine_pipeline.cli.instance import dagster_instance
from routiine_pipeline.salesforce.oauth import ORG_TYPES


def cmd_tenants_add(args: argparse.Namespace) -> int:
    from routiine_pipeline.tenants import add_tenant

    tenant = add_tenant(
        dagster_instance(),
        args.tenant,
        org_type=args.org_type,
        my_domain=args.my_domain,
        login=args.login_url,
    )
    print(
        f"Added tenant {tenant.tenant_id} (login {tenant.login_url}). Next: routiine tenants connect {tenant.tenant_id}"
    )
    return 0


def cmd_tenants_list(args: argparse.Namespace) -> int:
    from routiine_pipeline.tenants import control_store

    tenants = control_store().list_tenants()
    if not tenants:
        print(
            "No tenants. Add one with: routiine tenants add TENANT --org-type production"
        )
        return 0
    print(f"{'tenant':<20} {'status':<24} {'interval':>8}  {'last sync':<20} login")
    for tenant in tenants:
        last = (
            tenant.last_sync_at.strftime("%Y-%m-%d %H:%M")
            if tenant.last_sync_at
            else "never"
        )
        print(
            f"{tenant.tenant_id:<20} {tenant.status:<24} {tenant.interval_minutes:>5} min  {last:<20} {tenant.login_url}"
        )
    return 0


def cmd_tenants_remove(args: argparse.Namespace) -> int:
    from routiine_pipeline.tenants import remove_tenant

    removal = remove_tenant(dagster_instance(), args.tenant, keep_data=args.keep_data)
    if removal.revoked:
        revocation = " and revoked its tokens"
    elif removal.revocation_failed:
        revocation = (
            " but could not revoke its tokens: revoke the connected app's access "
            "in the org's Salesforce Setup"
        )
    else:
        revocation = " (no token to revoke)"
    print(f"Removed tenant {args.tenant}{revocation}")
    if removal.canceled_runs:
        print(
            f"  canceled {len(removal.canceled_runs)} queued runs: "
            + ", ".join(removal.canceled_runs)
        )
    rows = removal.control_rows
    details = ", ".join(f"{table} {count}" for table, count in sorted(rows.items()))
    print(f"  control store: {sum(rows.values())} rows deleted ({details or 'none'})")
    print(
        "  Dagster partition: "
        + ("deleted" if removal.partition_deleted else "none was registered")
    )
    for path in removal.deleted_files:
        print(f"  deleted {path}")
    for path in removal.kept_files:
        print(f"  kept {path}")
    if removal.kept_files:
        print(
            "  Archive or delete the kept files. The id cannot be added again on this "
            "Dagster instance, whose event log keeps the tenant's materializations."
        )
    return 0


def cmd_tenants_connect(args: argparse.Namespace) -> int:
    from routiine_pipeline.tenants import LoopbackCallback, connector

    if args.timeout <= 0:
        raise ValueError(
            f"--timeout must be a positive number of seconds, got {args.timeout:g}"
        )
    tenant_connector = connector()
    with LoopbackCallback(tenant_connector) as callback:
        url = tenant_connector.start(args.tenant)
        print("Open this URL in a browser and approve access:\n")
        print(f"  {url}\n")
        print(
            f"Waiting up to {args.timeout:.0f} s for the callback on {tenant_connector.app.redirect_uri} ...",
            flush=True,
        )
        tenant = callback.wait(timeout=args.timeout)
    print(
        f"Tenant {tenant.tenant_id} is {tenant.status} (instance {tenant.instance_url})"
    )
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    from routiine_pipeline.tenants import REMOVE_LOCK_WAIT_SECONDS

    tenants = commands.add_parser(
        "tenants", help="add, list, connect and remove tenants"
    ).add_subparsers(dest="tenants_command", required=True)
    add = tenants.add_parser("add", help="register a tenant and its Dagster partition")
    add.add_argument("tenant", help="tenant id: lower-case letters, digits, '-' or '_'")
    add.add_argument(
        "--org-type",
        choices=ORG_TYPES,
        default="production",
        help="which login host the org uses",
    )
    add.add_argument(
        "--my-domain", help="My Domain name, for example acme or acme--uat.sandbox"
    )
    add.add_argument(
        "--login-url",
        help="login host override; loopback only with ROUTIINE_ALLOW_LOOPBACK=1",
    )
    add.set_defaults(handler=cmd_tenants_add)
    tenants.add_parser(
        "list",
        help="show tenants with status and last sync",
        description="List the tenants of the control store with status, interval, last sync and login host.",
    ).set_defaults(handler=cmd_tenants_list)
    remove = tenants.add_parser(
        "remove",
        help="revoke tokens and delete the tenant's rows, partition and files",
        description=(
            "Revoke the tenant's tokens at Salesforce, then delete its control-store "
            "rows (tokens, OAuth states, API-call ledger, budget, retries, "
            "notifications), its Dagster partition and its DuckDB file with the "
            "file's .wal and .tmp leftovers. When a run has the file open, it waits "
            f"up to {REMOVE_LOCK_WAIT_SECONDS:g} s for the run to end, and otherwise "
            "exits having changed nothing."
        ),
    )
    remove.add_argument("tenant")
    remove.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the tenant's DuckDB file and its .wal and .tmp leftovers in "
        "ROUTIINE_HOME/tenants, for archiving. Tokens, rows and partition are "
        "still removed",
    )
    remove.set_defaults(handler=cmd_tenants_remove)
    connect = tenants.add_parser(
        "connect", help="authorize a tenant's org through OAuth (callback on loopback)"
    )
    connect.add_argument(
        "tenant", help="id of a tenant added with `routiine tenants add`"
    )
    connect.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds to wait for the OAuth callback (default 300)",
    )
    connect.set_defaults(handler=cmd_tenants_connect)
