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

    revoked = remove_tenant(dagster_instance(), args.tenant)
    print(
        f"Removed tenant {args.tenant}"
        + (" and revoked its tokens" if revoked else " (no token to revoke)")
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
        "remove", help="revoke tokens and remove the tenant and its partitions"
    )
    remove.add_argument("tenant")
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
