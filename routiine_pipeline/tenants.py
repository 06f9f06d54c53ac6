"""Tenant lifecycle shared by the CLI and the demo: add, connect, list, remove.

A tenant lives in two places that must agree: the control store (status,
tokens, mapping) and the Dagster instance (its key in the dynamic tenant
partitions). These functions change both.
"""

from __future__ import annotations

import html
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import dagster as dg

from routiine_pipeline import oauth_settings, settings
from routiine_pipeline.control.connect import ConnectError, TenantConnector
from routiine_pipeline.control.store import (
    ControlStore,
    Tenant,
    check_tenant_id,
    open_control_store,
)
from routiine_pipeline.control.vault import TokenVault, load_keys
from routiine_pipeline.defs.partitions import tenant_partitions
from routiine_pipeline.salesforce.oauth import (
    ORG_TYPES,
    check_salesforce_url,
    login_url,
)

log = logging.getLogger(__name__)


def control_store() -> ControlStore:
    return open_control_store(settings.control_store_url())


def connector() -> TenantConnector:
    vault = TokenVault(load_keys(settings.routiine_home()))
    return TenantConnector(
        control_store(),
        vault,
        oauth_settings.oauth_app(),
        allow_loopback=settings.loopback_allowed(),
    )


def add_tenant(
    instance: dg.DagsterInstance,
    tenant_id: str,
    *,
    org_type: str,
    my_domain: str | None = None,
    login: str | None = None,
) -> Tenant:
    """Register a tenant and its Dagster partition; `login` overrides the host (emulator only)."""
    check_tenant_id(tenant_id)
    if org_type not in ORG_TYPES:
        raise ValueError(
            f"unknown org type {org_type!r}: use one of {', '.join(ORG_TYPES)}"
        )
    if my_domain and org_type != "my_domain":
        raise ValueError(
            f"a My Domain ({my_domain!r}) was given for org type {org_type!r}: use org type my_domain, "
            "or leave the domain out"
        )
    domain = None
    if org_type == "my_domain":
        host = login_url(org_type, my_domain)
        domain = host.removeprefix("https://").removesuffix(".my.salesforce.com")
    if login:
        host = check_salesforce_url(login, allow_loopback=settings.loopback_allowed())
    elif org_type != "my_domain":
        host = login_url(org_type)
    tenant = control_store().add_tenant(
        tenant_id, org_type=org_type, login_url=host, my_domain=domain
    )
    instance.add_dynamic_partitions(tenant_partitions.name, [tenant_id])
    log.info("Added tenant %s (%s, login %s)", tenant_id, org_type, host)
    return tenant


def remove_tenant(instance: dg.DagsterInstance, tenant_id: str) -> bool:
    """Revoke the tenant's tokens at Salesforce, then drop its control-store rows and partition.

    Returns whether a token was revoked. The tenant's DuckDB file is left in
    place; its path is logged so an operator can archive or delete it.
    """
    store = control_store()
    store.get_tenant(tenant_id)
    revoked = False
    try:
        revoked = connector().revoke(tenant_id)
    except Exception as error:  # noqa: BLE001 - removal goes on; the operator is told
        log.warning(
            "Tenant %s: token revocation failed (%s); revoke the app's access in Salesforce Setup",
            tenant_id,
            type(error).__name__,
        )
    store.remove_tenant(tenant_id)
    if instance.has_dynamic_partition(tenant_partitions.name, tenant_id):
        instance.delete_dynamic_partition(tenant_partitions.name, tenant_id)
    log.info(
        "Removed tenant %s; its data file stays at %s",
        tenant_id,
        settings.tenant_database_path(tenant_id),
    )
    return revoked


class _CallbackHandler(BaseHTTPRequestHandler):
    server: _CallbackServer

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != self.server.callback_path:
            self.send_error(404)
            return
        params = {key: values[0] for key, values in parse_qs(parts.query).items()}
        if "error" in params:
            self.server.outcome = ConnectError(
                f"Salesforce returned {params['error']}: {params.get('error_description', '')}"
            )
        else:
            try:
                self.server.outcome = self.server.connector.complete(
                    state=params.get("state", ""),
                    code=params.get("code", ""),
                    tenant_id=self.server.tenant_id,
                )
            except ConnectError as error:
                self.server.outcome = error
        ok = isinstance(self.server.outcome, Tenant)
        body = (
            "<h1>Connected</h1><p>You can close this window.</p>"
            if ok
            else f"<h1>Connection failed</h1><p>{html.escape(str(self.server.outcome))}</p>"
        ).encode()
        self.send_response(200 if ok else 400)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        # The callback URL carries the code and state: keep it out of Referer headers and caches.
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.server.done.set()

    def log_message(self, format: str, *args) -> None:
        return


class _CallbackServer(ThreadingHTTPServer):
    def __init__(
        self,
        address,
        connector: TenantConnector,
        callback_path: str,
        tenant_id: str | None,
    ) -> None:
        super().__init__(address, _CallbackHandler)
        self.connector = connector
        self.tenant_id = tenant_id
        self.callback_path = callback_path
        self.outcome: Tenant | Exception | None = None
        self.done = threading.Event()


class LoopbackCallback:
    """Receives the OAuth redirect on the loopback address named by the redirect URI.

    With `tenant_id` set, a callback whose state belongs to another tenant is rejected.
    """

    def __init__(
        self, connector: TenantConnector, tenant_id: str | None = None
    ) -> None:
        parts = urlsplit(connector.app.redirect_uri)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(
                f"the redirect URI {connector.app.redirect_uri} is not a loopback address; "
                "`routiine tenants connect` can only receive callbacks on 127.0.0.1"
            )
        try:
            self.server = _CallbackServer(
                ("127.0.0.1", parts.port or 80), connector, parts.path or "/", tenant_id
            )
        except OSError as error:
            raise ConnectError(
                f"cannot listen on 127.0.0.1:{parts.port or 80} for the OAuth callback ({error.strerror}); "
                "stop what uses that port or set ROUTIINE_SF_REDIRECT_URI to a free loopback port "
                "registered as a callback URL of the connected app"
            ) from None
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackCallback:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, timeout: float) -> Tenant:
        if not self.server.done.wait(timeout):
            raise ConnectError(
                f"no OAuth callback within {timeout:.0f} seconds; run the connect command again"
            )
        if isinstance(self.server.outcome, Exception):
            raise self.server.outcome
        return self.server.outcome
