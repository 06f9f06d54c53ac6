"""The connect page's Starlette application.

Routes: the tenant list with the connect form (GET /), starting a flow
(POST /connect and POST /tenants/{id}/reconnect), the OAuth callback (the
path of the redirect URI), and the mapping editor (GET and POST
/tenants/{id}/mapping). No route renders a token: pages show Tenant rows,
which hold none, and API usage figures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote, urlsplit

import dagster as dg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from routiine_pipeline import tenants as tenant_lifecycle
from routiine_pipeline.control.connect import ConnectError, TenantConnector
from routiine_pipeline.control.store import (
    ControlStore,
    Tenant,
    TenantNotFoundError,
    utcnow,
)
from routiine_pipeline.salesforce.errors import SalesforceError
from routiine_pipeline.web import security
from routiine_pipeline.web.mapping_check import (
    DescribeLoader,
    MappingError,
    check_mapping,
)
from routiine_pipeline.web.templates import render

log = logging.getLogger(__name__)

ORG_LABELS = {
    "production": "Production",
    "sandbox": "Sandbox",
    "my_domain": "My Domain",
}


@dataclass
class WebContext:
    """Dependencies of the routes: the control store, the OAuth connector, Dagster and describe access."""

    store: ControlStore
    connector: TenantConnector
    instance: dg.DagsterInstance
    load_describes: DescribeLoader
    binding: security.FlowBinding

    @property
    def emulator_mode(self) -> bool:
        return self.connector.allow_loopback

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.connector.app.redirect_uri).scheme == "https"


def create_app(context: WebContext) -> Starlette:
    """Build the application; the callback route takes the path of the connected app's redirect URI."""
    callback_path = urlsplit(context.connector.app.redirect_uri).path or "/"

    async def index(request: Request) -> Response:
        return _page(
            request,
            context,
            "index.html",
            rows=_rows(context),
            notice=request.query_params.get("notice"),
        )

    async def connect(request: Request) -> Response:
        form = await request.form()
        security.check_csrf(request, form.get(security.CSRF_FIELD))
        tenant_id = str(form.get("tenant_id", "")).strip()
        try:
            context.store.get_tenant(tenant_id)
        except TenantNotFoundError:
            tenant_lifecycle.add_tenant(
                context.instance,
                tenant_id,
                org_type=str(form.get("org_type", "production")),
                my_domain=str(form.get("my_domain", "")).strip() or None,
                login=(str(form.get("login_url", "")).strip() or None)
                if context.emulator_mode
                else None,
            )
        return _start_flow(context, tenant_id)

    async def reconnect(request: Request) -> Response:
        form = await request.form()
        security.check_csrf(request, form.get(security.CSRF_FIELD))
        return _start_flow(context, request.path_params["tenant_id"])

    async def callback(request: Request) -> Response:
        params = request.query_params
        if "error" in params:
            message = f"Salesforce returned {params['error']}: {params.get('error_description', '')}"
            log.warning("OAuth callback with an error: %s", message)
            return _message(request, context, "Connection failed", message, status=400)
        state = params.get("state", "")
        tenant_id = context.binding.tenant_for(
            request.cookies.get(security.FLOW_COOKIE), state
        )
        if tenant_id is None:
            log.warning(
                "OAuth callback with a state this browser did not start; rejected"
            )
            return _message(
                request,
                context,
                "Connection failed",
                "this browser did not start this connection (or the server restarted since): start it again "
                "from the tenant list",
                status=400,
            )
        try:
            tenant = context.connector.complete(
                state=state, code=params.get("code", ""), tenant_id=tenant_id
            )
        except ConnectError as error:
            log.warning("OAuth callback for tenant %s rejected: %s", tenant_id, error)
            return _message(
                request, context, "Connection failed", str(error), status=400
            )
        response = RedirectResponse(
            f"/?notice={quote(f'Tenant {tenant.tenant_id} is {tenant.status}.')}", 303
        )
        response.delete_cookie(security.FLOW_COOKIE, path="/")
        return response

    async def mapping_page(request: Request) -> Response:
        tenant_id = request.path_params["tenant_id"]
        context.store.get_tenant(tenant_id)
        text = json.dumps(context.store.mapping(tenant_id).to_dict(), indent=2)
        return _page(
            request,
            context,
            "mapping.html",
            tenant_id=tenant_id,
            mapping_json=text,
            notice=request.query_params.get("notice"),
        )

    async def save_mapping(request: Request) -> Response:
        tenant_id = request.path_params["tenant_id"]
        context.store.get_tenant(tenant_id)
        form = await request.form()
        security.check_csrf(request, form.get(security.CSRF_FIELD))
        text = str(form.get("mapping", ""))
        try:
            mapping = check_mapping(text, tenant_id, context.load_describes)
        except (MappingError, SalesforceError) as error:
            log.warning("Tenant %s: mapping rejected: %s", tenant_id, error)
            return _page(
                request,
                context,
                "mapping.html",
                tenant_id=tenant_id,
                mapping_json=text,
                error=str(error),
                status=400,
            )
        context.store.set_mapping(tenant_id, mapping)
        log.info("Tenant %s: mapping saved from the connect page", tenant_id)
        return RedirectResponse(
            f"/tenants/{tenant_id}/mapping?notice=Mapping+saved.", 303
        )

    async def not_found(request: Request, error: Exception) -> Response:
        log.info("%s %s: %s", request.method, request.url.path, error)
        return _message(request, context, "Not found", str(error), status=404)

    async def bad_request(request: Request, error: Exception) -> Response:
        log.warning("%s %s rejected: %s", request.method, request.url.path, error)
        return _message(request, context, "Request rejected", str(error), status=400)

    async def forbidden(request: Request, error: Exception) -> Response:
        log.warning("%s %s rejected: %s", request.method, request.url.path, error)
        return _message(request, context, "Request rejected", str(error), status=403)

    async def add_headers(request: Request, call_next) -> Response:
        return security.add_security_headers(
            await call_next(request), emulator_mode=context.emulator_mode
        )

    return Starlette(
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=add_headers)],
        routes=[
            Route("/", index),
            Route("/connect", connect, methods=["POST"]),
            Route("/tenants/{tenant_id}/reconnect", reconnect, methods=["POST"]),
            Route("/tenants/{tenant_id}/mapping", mapping_page),
            Route("/tenants/{tenant_id}/mapping", save_mapping, methods=["POST"]),
            Route(callback_path, callback),
        ],
        exception_handlers={
            TenantNotFoundError: not_found,
            ValueError: bad_request,
            SalesforceError: bad_request,
            security.CsrfError: forbidden,
        },
    )


def _start_flow(context: WebContext, tenant_id: str) -> Response:
    authorization = context.connector.begin(tenant_id)
    response = RedirectResponse(authorization.url, 303)
    # SameSite=Lax: the cookie must come back on the top-level redirect from Salesforce.
    response.set_cookie(
        security.FLOW_COOKIE,
        context.binding.cookie_value(tenant_id, authorization.state),
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=context.secure_cookies,
        path="/",
    )
    log.info("Tenant %s: OAuth flow started from the connect page", tenant_id)
    return response


@dataclass(frozen=True)
class _Row:
    tenant: Tenant
    org_label: str
    last_sync: str
    usage: str


def _rows(context: WebContext) -> list[_Row]:
    rows = []
    since = utcnow() - timedelta(hours=24)
    for tenant in context.store.list_tenants():
        label = ORG_LABELS.get(tenant.org_type, tenant.org_type)
        if tenant.my_domain:
            label += f" ({tenant.my_domain})"
        calls = sum(
            context.store.calls_by_phase(tenant.tenant_id, since=since).values()
        )
        latest = context.store.latest_usage(tenant.tenant_id)
        usage = f"{calls} calls in 24 h"
        if latest:
            usage += f"; org {latest[0]:,}/{latest[1]:,}"
        last = (
            tenant.last_sync_at.strftime("%Y-%m-%d %H:%M UTC")
            if tenant.last_sync_at
            else "never"
        )
        rows.append(_Row(tenant, label, last, usage))
    return rows


def _page(
    request: Request, context: WebContext, template: str, *, status: int = 200, **values
) -> Response:
    token = security.csrf_token(request)
    body = render(template, csrf=token, emulator_mode=context.emulator_mode, **values)
    response = HTMLResponse(body, status_code=status)
    security.set_csrf_cookie(response, token, secure=context.secure_cookies)
    return response


def _message(
    request: Request, context: WebContext, title: str, message: str, *, status: int
) -> Response:
    return _page(
        request, context, "message.html", title=title, error=message, status=status
    )
