"""The OAuth web-server flow against the emulator: state, PKCE, host checks and what gets stored."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from routiine_pipeline.control import tables
from routiine_pipeline.control.connect import ConnectError, hash_state
from routiine_pipeline.control.store import CONNECTED, PENDING, utcnow
from routiine_pipeline.control.vault import VaultError
from routiine_pipeline.salesforce.errors import UnsafeHostError
from routiine_pipeline.salesforce.oauth import login_url


def _token_rows(setup) -> list[dict]:
    with setup.store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(tables.tokens)).mappings()]


def test_connect_stores_encrypted_tokens(setup):
    setup.connect("alpha")
    tenant = setup.store.get_tenant("alpha")
    assert tenant.status == CONNECTED
    assert tenant.instance_url == setup.server.url
    assert tenant.connected_at is not None
    row = _token_rows(setup)[0]
    access = setup.tokens("alpha").access_token()
    assert access in setup.org.tokens._access
    assert access not in row["access_ciphertext"]
    assert row["access_ciphertext"].startswith(f"v1:{setup.vault.current_key_id}:")


def test_authorize_url_carries_pkce_and_state(setup):
    setup.add("alpha")
    query = parse_qs(urlsplit(setup.connector.start("alpha")).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert len(query["state"][0]) >= 43
    assert query["redirect_uri"] == [setup.app.redirect_uri]
    with setup.store.engine.connect() as conn:
        stored = (
            conn.execute(sa.select(tables.oauth_states.c.state_hash)).scalars().all()
        )
    assert stored == [hash_state(query["state"][0])]


def test_state_reuse_rejected(setup):
    setup.add("alpha")
    state, code = setup.authorize("alpha")
    setup.connector.complete(state=state, code=code, tenant_id="alpha")
    first = setup.tokens("alpha").access_token()
    with pytest.raises(ConnectError, match="already used"):
        setup.connector.complete(state=state, code=code, tenant_id="alpha")
    assert setup.tokens("alpha").access_token() == first


def test_expired_state_rejected(setup):
    setup.add("alpha")
    state, code = setup.authorize("alpha")
    with setup.store.engine.begin() as conn:
        conn.execute(
            tables.oauth_states.update().values(
                expires_at=utcnow() - timedelta(seconds=1)
            )
        )
    with pytest.raises(ConnectError, match="expired"):
        setup.connector.complete(state=state, code=code, tenant_id="alpha")
    assert _token_rows(setup) == []
    assert setup.store.get_tenant("alpha").status == PENDING


def test_state_of_other_tenant_rejected(setup):
    setup.add("alpha")
    setup.add("beta")
    state, code = setup.authorize("alpha")
    with pytest.raises(ConnectError, match="belongs to another tenant than beta"):
        setup.connector.complete(state=state, code=code, tenant_id="beta")
    assert _token_rows(setup) == []
    # The state is spent: it cannot be replayed for its own tenant either.
    with pytest.raises(ConnectError, match="already used"):
        setup.connector.complete(state=state, code=code, tenant_id="alpha")


def test_unknown_state_rejected(setup):
    setup.add("alpha")
    _, code = setup.authorize("alpha")
    with pytest.raises(ConnectError, match="unknown OAuth state"):
        setup.connector.complete(state="forged-state", code=code)
    assert _token_rows(setup) == []


def test_pkce_verifier_mismatch_stores_nothing(setup):
    setup.add("alpha")
    state_one, code_one = setup.authorize("alpha")
    state_two, _ = setup.authorize("alpha")
    column = tables.oauth_states.c
    with setup.store.engine.begin() as conn:
        other = conn.execute(
            sa.select(column.verifier_ciphertext).where(
                column.state_hash == hash_state(state_two)
            )
        ).scalar_one()
        conn.execute(
            tables.oauth_states.update()
            .where(column.state_hash == hash_state(state_one))
            .values(verifier_ciphertext=other)
        )
    with pytest.raises(ConnectError, match="invalid_request"):
        setup.connector.complete(state=state_one, code=code_one, tenant_id="alpha")
    assert _token_rows(setup) == []


def test_ciphertext_swap_between_tenants(setup):
    setup.connect("alpha")
    setup.add("beta")
    access = setup.tokens("alpha").access_token()
    row = _token_rows(setup)[0]
    with setup.store.engine.begin() as conn:
        conn.execute(tables.tokens.insert().values({**row, "tenant_id": "beta"}))
    with pytest.raises(VaultError) as raised:
        setup.tokens("beta").access_token()
    message = str(raised.value)
    assert "tenant 'beta'" in message
    assert "another tenant" in message
    assert access not in message
    assert row["access_ciphertext"] not in message


class _HostileTokenEndpoint(BaseHTTPRequestHandler):
    """A token endpoint that responds to every code exchange with a chosen instance_url."""

    instance_url = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps(
            {
                "access_token": "00D!stolen-access",
                "refresh_token": "5Aep-stolen",
                "instance_url": self.instance_url,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:
        return


@pytest.mark.parametrize(
    "instance_url",
    [
        "https://attacker.example",
        "https://acme.my.salesforce.com.attacker.example",
        "http://169.254.169.254",
        "https://user@acme.my.salesforce.com",
        "https://acme.my.salesforce.com/steal?x=1",
        "http://acme.my.salesforce.com",
    ],
)
def test_hostile_instance_url_rejected(setup, instance_url):
    handler = type("Handler", (_HostileTokenEndpoint,), {"instance_url": instance_url})
    hostile = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=hostile.serve_forever, daemon=True)
    thread.start()
    try:
        setup.store.add_tenant(
            "alpha",
            org_type="production",
            login_url=f"http://127.0.0.1:{hostile.server_port}",
        )
        state = parse_qs(urlsplit(setup.connector.start("alpha")).query)["state"][0]
        with pytest.raises(ConnectError, match="nothing was stored") as raised:
            setup.connector.complete(state=state, code="any-code", tenant_id="alpha")
    finally:
        hostile.shutdown()
        hostile.server_close()
    assert "stolen" not in str(raised.value)
    assert _token_rows(setup) == []
    tenant = setup.store.get_tenant("alpha")
    assert tenant.status == PENDING
    assert tenant.instance_url is None


@pytest.mark.parametrize(
    "login",
    [
        "https://login.salesforce.com.evil.example",
        "https://evil.example",
        "https://login.salesforce.com@evil.example",
        "http://evil.example\\@127.0.0.1:1",
        "http://test.salesforce.com",
    ],
)
def test_spoofed_login_host_gets_no_state(setup, login):
    setup.store.add_tenant("alpha", org_type="production", login_url=login)
    with pytest.raises(UnsafeHostError, match="refusing to send credentials"):
        setup.connector.start("alpha")
    with setup.store.engine.connect() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(tables.oauth_states)
            ).scalar_one()
            == 0
        )


@pytest.mark.parametrize(
    ("org_type", "my_domain", "host"),
    [
        ("production", None, "https://login.salesforce.com/services/oauth2/authorize?"),
        ("sandbox", None, "https://test.salesforce.com/services/oauth2/authorize?"),
        (
            "my_domain",
            "acme",
            "https://acme.my.salesforce.com/services/oauth2/authorize?",
        ),
        (
            "my_domain",
            "acme--uat.sandbox",
            "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/authorize?",
        ),
    ],
)
def test_authorize_host_follows_org_type(setup, org_type, my_domain, host):
    setup.store.add_tenant(
        "alpha",
        org_type=org_type,
        login_url=login_url(org_type, my_domain),
        my_domain=my_domain,
    )
    assert setup.connector.start("alpha").startswith(host)


@pytest.mark.parametrize(
    "hostile",
    [
        "evil.example",
        "acme.my.salesforce.com.evil.example",
        "acme.my.salesforce.com@evil.example",
        "acme/../../evil",
        "acme:443",
        "\u0430cme",  # Cyrillic a
        "\u212acme",  # Kelvin sign, lower-cases to an ASCII k
        "acme\r\nHost: evil.example",
        "https://evil.example",
        "javascript:alert(1)",
        "acme--.sandbox",
        "acme.evil",
    ],
)
def test_hostile_my_domain_rejected(hostile):
    with pytest.raises((ValueError, UnsafeHostError)) as raised:
        login_url("my_domain", hostile)
    assert "invalid My Domain" in str(
        raised.value
    ) or "refusing to send credentials" in str(raised.value)
