"""Building the connect page from the environment and serving it with uvicorn on loopback."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import uvicorn

from routiine_pipeline import tenants as tenant_lifecycle
from routiine_pipeline.budget import BudgetGuard, BudgetPolicy
from routiine_pipeline.control.connect import TenantConnector
from routiine_pipeline.control.store import ControlStore
from routiine_pipeline.control.tokens import StoredTokens
from routiine_pipeline.salesforce.client import SalesforceClient
from routiine_pipeline.salesforce.errors import (
    ReauthorizationRequiredError,
    SalesforceApiError,
)
from routiine_pipeline.salesforce.oauth import check_salesforce_url, is_loopback
from routiine_pipeline.web.app import WebContext, create_app
from routiine_pipeline.web.security import FlowBinding

log = logging.getLogger(__name__)


class ServeConfigError(ValueError):
    """`routiine serve` cannot run with these settings; the message names the value and the fix."""


def describe_loader(store: ControlStore, connector: TenantConnector):
    """Return a function that fetches describe results from a tenant's org, counted in the API ledger."""

    def load(tenant_id: str, sobjects: list[str]) -> dict[str, dict[str, Any] | None]:
        tenant = store.get_tenant(tenant_id)
        if not tenant.instance_url:
            raise ReauthorizationRequiredError(
                f"tenant {tenant_id} is not connected yet: connect it before editing its mapping",
                tenant=tenant_id,
            )
        tokens = StoredTokens(
            store,
            connector.vault,
            connector.app,
            tenant_id,
            allow_loopback=connector.allow_loopback,
        )
        client = SalesforceClient(
            instance_url=check_salesforce_url(
                tenant.instance_url, allow_loopback=connector.allow_loopback
            ),
            tokens=tokens,
            guard=BudgetGuard(
                store, tenant_id, BudgetPolicy(), run_id=None, phase="mapping"
            ),
            tenant=tenant_id,
        )
        results: dict[str, dict[str, Any] | None] = {}
        for sobject in sobjects:
            try:
                results[sobject] = client.describe(sobject)
            except SalesforceApiError as error:
                if error.status != 404:
                    raise
                results[sobject] = None
        return results

    return load


def build_context(instance: dg.DagsterInstance | None = None) -> WebContext:
    store = tenant_lifecycle.control_store()
    connector = tenant_lifecycle.connector()
    return WebContext(
        store=store,
        connector=connector,
        instance=instance or dg.DagsterInstance.get(),
        load_describes=describe_loader(store, connector),
        binding=FlowBinding(),
    )


def check_listen_address(host: str, port: int, redirect_uri: str) -> None:
    """Reject a non-loopback host, and a port that the redirect URI does not point back to."""
    if not is_loopback(host):
        # NOTE: the page has no login of its own, so it must not listen where others can reach it.
        raise ServeConfigError(
            f"--host {host} is not a loopback address: the connect page has no login, so it listens on "
            "127.0.0.1, localhost or ::1 only; put an authenticating reverse proxy in front to expose it"
        )
    if not 1 <= port <= 65535:
        raise ServeConfigError(f"--port {port} is out of range: use 1-65535")
    parts = urlsplit(redirect_uri)
    if is_loopback(parts.hostname or "") and (parts.port or 80) != port:
        raise ServeConfigError(
            f"the redirect URI {redirect_uri} points to port {parts.port or 80}, not --port {port}: "
            f"serve on port {parts.port or 80}, or set ROUTIINE_SF_REDIRECT_URI to "
            f"http://127.0.0.1:{port}{parts.path or '/'} and register it as a callback URL of the connected app"
        )


def uvicorn_server(context: WebContext, host: str, port: int) -> uvicorn.Server:
    # The access log is off: callback URLs carry the authorization code and the state.
    config = uvicorn.Config(
        create_app(context),
        host=host,
        port=port,
        access_log=False,
        log_level="warning",
        server_header=False,
    )
    return uvicorn.Server(config)
