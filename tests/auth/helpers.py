"""Shared setup of the auth tests: a running emulator and tenants connected to it through OAuth."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import requests

from routiine_pipeline.control.connect import TenantConnector
from routiine_pipeline.control.store import ControlStore
from routiine_pipeline.control.tokens import StoredTokens
from routiine_pipeline.control.vault import TokenVault, load_keys
from routiine_pipeline.emulator import EmulatorServer, Org
from routiine_pipeline.oauth_settings import DEFAULT_CLIENT_ID
from routiine_pipeline.salesforce.oauth import OAuthApp

# The Dagster definitions read the client id once, at import, so the tests use the default one.
CLIENT_ID = DEFAULT_CLIENT_ID
CLIENT_SECRET = "test-client-secret-7f3a9c"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class AuthSetup:
    """An emulator, the control store and vault under a test's ROUTIINE_HOME, and a connector."""

    org: Org
    server: EmulatorServer
    store: ControlStore
    vault: TokenVault
    app: OAuthApp
    connector: TenantConnector

    def add(self, tenant_id: str) -> None:
        self.store.add_tenant(
            tenant_id, org_type="production", login_url=self.server.url
        )

    def authorize(self, tenant_id: str) -> tuple[str, str]:
        """Start a flow and approve it at the emulator; return the (state, code) of the callback."""
        url = self.connector.start(tenant_id)
        response = requests.post(
            f"{self.server.url}/services/oauth2/authorize",
            data={
                **{k: v[0] for k, v in parse_qs(urlsplit(url).query).items()},
                "decision": "allow",
            },
            allow_redirects=False,
            timeout=10,
        )
        location = parse_qs(urlsplit(response.headers["Location"]).query)
        return location["state"][0], location["code"][0]

    def connect(self, tenant_id: str) -> None:
        self.add(tenant_id)
        state, code = self.authorize(tenant_id)
        self.connector.complete(state=state, code=code, tenant_id=tenant_id)

    def tokens(self, tenant_id: str) -> StoredTokens:
        return StoredTokens(
            self.store, self.vault, self.app, tenant_id, allow_loopback=True
        )

    def token_requests(self) -> int:
        return self.org.usage.calls["token"]


def make_setup(
    org: Org, home, redirect_uri: str, store_url: str | None = None
) -> AuthSetup:
    server = EmulatorServer(
        org, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    ).start()
    store = ControlStore(store_url or f"sqlite:///{home / 'control.db'}")
    vault = TokenVault(load_keys(home))
    app = OAuthApp(CLIENT_ID, CLIENT_SECRET, redirect_uri)
    return AuthSetup(
        org,
        server,
        store,
        vault,
        app,
        TenantConnector(store, vault, app, allow_loopback=True),
    )
