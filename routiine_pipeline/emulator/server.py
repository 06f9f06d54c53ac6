"""The emulator's HTTP server: Salesforce's REST paths on a loopback port."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from routiine_pipeline.emulator.faults import REQUEST_FAULT_KINDS
from routiine_pipeline.emulator.http_types import (
    Request,
    Response,
    error_response,
    json_response,
    not_found,
)
from routiine_pipeline.emulator.org import Org
from routiine_pipeline.emulator.routes_admin import handle_admin
from routiine_pipeline.emulator.routes_bulk import handle_bulk
from routiine_pipeline.emulator.routes_data import classify_call, route_data_request
from routiine_pipeline.emulator.routes_oauth import (
    OAuthClient,
    handle_authorize,
    handle_revoke,
    handle_token,
)

logger = logging.getLogger(__name__)

# Salesforce rejects a request whose URI and headers exceed 16,384 bytes. Only the URI is checked here.
MAX_URI_BYTES = 16_384
MIN_API_VERSION = 42
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
_DATA_PATH = re.compile(r"^/services/data/v(\d+)\.0(/.*)?$")
_LOCATOR_PATH = re.compile(r"^/services/data/v\d+\.0/query(All)?/[^/]+$")
_RELEASES = ("Winter", "Spring", "Summer")
# Faults that end a request before it is counted as an API call.
_UNCOUNTED_FAULTS = {"invalid_session", "request_limit"}


def release_label(major: int) -> str:
    """Name the release of API version `major`, for example 62 -> "Winter '25" (three releases a year)."""
    offset = major - 59  # 59.0 is Winter '24
    return f"{_RELEASES[offset % 3]} '{24 + offset // 3:02d}"


class EmulatorServer:
    """Serves one `Org` over HTTP with Salesforce's OAuth and REST API paths.

    Accepts any API version vNN.0 with NN >= 42. Binds only to loopback
    addresses. Port 0 picks a free port, which `url` then reports.
    """

    def __init__(
        self,
        org: Org,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_version: str = "62.0",
        client_id: str = "routiine-demo-client",
        client_secret: str = "routiine-demo-secret",
        auto_approve: bool = False,
        page_size: int = 2_000,
        redirect_uris: tuple[str, ...] | None = None,
    ) -> None:
        if host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"the emulator binds only to loopback addresses {sorted(LOOPBACK_HOSTS)}, got {host!r}"
            )
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self.org = org
        self.host = host
        self.port = port
        self.api_version = api_version
        self.client = OAuthClient(client_id, client_secret, redirect_uris)
        self.auto_approve = auto_approve
        self.page_size = page_size
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> EmulatorServer:
        if self._httpd is not None:
            return self
        server_class = _IPv6Server if ":" in self.host else _IPv4Server
        self._httpd = server_class((self.host, self.port), _Handler)
        self._httpd.emulator = self
        self.port = self._httpd.server_address[1]
        # A short poll interval lets stop() return quickly, which keeps test fixtures fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="salesforce-emulator",
            daemon=True,
        )
        self._thread.start()
        logger.info("Salesforce emulator listening on %s", self.url)
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None
        logger.info("Salesforce emulator stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # -- request handling --------------------------------------------------------

    def handle(self, request: Request) -> Response:
        """Route one HTTP request to its handler and return the response to send."""
        if len(request.target.encode("utf-8")) > MAX_URI_BYTES:
            return Response(
                414, b"URI Too Long", {"Content-Type": "text/plain;charset=UTF-8"}
            )
        path = request.path
        if path.startswith("/_emulator/"):
            return handle_admin(
                self.org, request, path[len("/_emulator/") :].strip("/")
            )
        if path == "/services/oauth2/authorize" and request.method in ("GET", "POST"):
            self.org.usage.record("authorize", counted=False)
            return handle_authorize(self.org, self.client, request, self.auto_approve)
        if path == "/services/oauth2/token" and request.method == "POST":
            self.org.usage.record("token", counted=False)
            return handle_token(self.org, self.client, request, self.url)
        if path == "/services/oauth2/revoke" and request.method == "POST":
            self.org.usage.record("revoke", counted=False)
            return handle_revoke(self.org, request)
        if path in ("/services/data", "/services/data/") and request.method == "GET":
            # The versions list needs no token, is not counted and carries no limit header.
            self.org.usage.record("versions", counted=False)
            return json_response(200, self._versions())
        if path.startswith("/services/data/"):
            response = self._handle_data(request)
            response.headers["Sforce-Limit-Info"] = self.org.usage.header_value()
            return response
        return not_found()

    def _handle_data(self, request: Request) -> Response:
        token = _bearer_token(request)
        if token is None or not self.org.tokens.is_valid_access_token(token):
            return error_response(
                401, "INVALID_SESSION_ID", "Session expired or invalid"
            )
        match = _DATA_PATH.match(request.path)
        if match is None or int(match.group(1)) < MIN_API_VERSION:
            return not_found()
        version, rest = f"{match.group(1)}.0", match.group(2) or "/"
        kinds = set(REQUEST_FAULT_KINDS) - {"skip_page"}
        if not _LOCATOR_PATH.match(request.path):
            kinds.discard("invalid_query_locator")
        fault = self.org.faults.take_request_fault(request.target, kinds)
        if fault is not None and fault.kind == "invalid_session":
            return error_response(
                401, "INVALID_SESSION_ID", "Session expired or invalid"
            )
        if (
            fault is not None and fault.kind == "request_limit"
        ) or self.org.usage.exhausted:
            return error_response(
                403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded."
            )
        self.org.usage.record(classify_call(request.method, rest), counted=True)
        if fault is not None:
            if fault.kind == "drop_connection":
                return Response(0, drop_connection=True)
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "http_500":
                return error_response(
                    500,
                    "UNKNOWN_EXCEPTION",
                    "An unexpected error occurred. Please include this ErrorId if you contact support: 1234567890-12345 (-1234567890)",
                )
            elif fault.kind == "http_503":
                return error_response(
                    503,
                    "SERVER_UNAVAILABLE",
                    "Server temporarily unavailable; please try again later.",
                )
            elif fault.kind == "invalid_query_locator":
                return error_response(
                    400, "INVALID_QUERY_LOCATOR", "invalid query locator"
                )
        if rest.startswith("/jobs/"):
            return handle_bulk(self.org, request, version, rest)
        return route_data_request(self.org, request, version, rest, self.page_size)

    def _versions(self) -> list[dict[str, str]]:
        newest = int(float(self.api_version))
        return [
            {
                "label": release_label(major),
                "url": f"/services/data/v{major}.0",
                "version": f"{major}.0",
            }
            for major in range(MIN_API_VERSION, newest + 1)
        ]


def _bearer_token(request: Request) -> str | None:
    authorization = request.header("Authorization") or ""
    scheme, _, token = authorization.partition(" ")
    # Older Salesforce documentation shows the "OAuth" scheme, which Salesforce still accepts.
    if scheme.lower() in ("bearer", "oauth") and token.strip():
        return token.strip()
    return None


class _IPv4Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: EmulatorServer


class _IPv6Server(_IPv4Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _IPv4Server

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = do_GET

    def _serve(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        request = Request(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            target=self.path,
        )
        try:
            response = self.server.emulator.handle(request)
        except Exception:
            logger.exception("Emulator failed on %s %s", self.command, split.path)
            response = error_response(
                500,
                "UNKNOWN_EXCEPTION",
                "An unexpected error occurred in the emulator.",
            )
        # Query strings of OAuth paths carry codes and states, so they are never logged.
        shown = (
            split.path
            if split.path.startswith("/services/oauth2/") or not split.query
            else f"{split.path}?{split.query[:80]}"
        )
        if response.drop_connection:
            logger.debug("%s %s -> connection dropped", self.command, shown)
            self.close_connection = True
            return
        logger.debug("%s %s -> %d", self.command, shown, response.status)
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence http.server's stderr access log, because `_serve` logs each request at DEBUG."""
