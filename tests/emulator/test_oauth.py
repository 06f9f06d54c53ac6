"""OAuth web server flow with PKCE, refresh-token policies, rotation and revocation."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from routiine_pipeline.emulator import Clock, EmulatorServer, Org
from tests.emulator.conftest import API, START

CLIENT_ID = "routiine-demo-client"
SECRET = "test-secret"
CALLBACK = "http://127.0.0.1:8000/callback"
VERIFIER = "v" * 43 + "-verifier"
CHALLENGE = (
    base64.urlsafe_b64encode(hashlib.sha256(VERIFIER.encode()).digest())
    .rstrip(b"=")
    .decode()
)


@pytest.fixture
def oauth():
    clock = Clock(START, frozen=True)
    org = Org(clock=clock)
    server = EmulatorServer(org, client_secret=SECRET, auto_approve=True).start()
    yield server
    server.stop()


def authorize(server: EmulatorServer, **overrides: str) -> requests.Response:
    params = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": CALLBACK,
        "state": "xyz",
        "code_challenge": CHALLENGE,
        "code_challenge_method": "S256",
        "scope": "api refresh_token id",
    }
    params.update(overrides)
    return requests.get(
        f"{server.url}/services/oauth2/authorize",
        params=params,
        allow_redirects=False,
        timeout=10,
    )


def callback_params(response: requests.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(CALLBACK + "?")
    return {
        key: values[0] for key, values in parse_qs(urlsplit(location).query).items()
    }


def token(server: EmulatorServer, **form: str) -> requests.Response:
    return requests.post(f"{server.url}/services/oauth2/token", data=form, timeout=10)


def exchange(
    server: EmulatorServer, code: str, verifier: str | None = VERIFIER
) -> requests.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
        "redirect_uri": CALLBACK,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    return token(server, **form)


def refresh(server: EmulatorServer, refresh_token: str) -> requests.Response:
    return token(
        server,
        grant_type="refresh_token",
        refresh_token=refresh_token,
        client_id=CLIENT_ID,
        client_secret=SECRET,
    )


def api_status(server: EmulatorServer, access_token: str) -> int:
    return requests.get(
        f"{server.url}{API}/limits",
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=10,
    ).status_code


def test_code_flow_with_pkce(oauth: EmulatorServer) -> None:
    params = callback_params(authorize(oauth))
    assert params["state"] == "xyz"
    response = exchange(oauth, params["code"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert list(body) == [
        "access_token",
        "refresh_token",
        "signature",
        "scope",
        "instance_url",
        "id",
        "token_type",
        "issued_at",
    ]
    assert body["access_token"].startswith(oauth.org.org_id[:15] + "!")
    assert body["instance_url"] == oauth.url
    assert (
        body["id"]
        == f"{oauth.url}/id/{oauth.org.org_id}/{oauth.org.integration_user_id}"
    )
    assert body["token_type"] == "Bearer"
    assert body["issued_at"] == str(int(START.timestamp() * 1000))
    assert "expires_in" not in body
    assert api_status(oauth, body["access_token"]) == 200
    assert oauth.org.calls["token"] == 1
    assert oauth.org.data_api_calls == 1


def test_code_is_single_use(oauth: EmulatorServer) -> None:
    code = callback_params(authorize(oauth))["code"]
    assert exchange(oauth, code).status_code == 200
    again = exchange(oauth, code)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_code_expires_after_15_minutes(oauth: EmulatorServer) -> None:
    code = callback_params(authorize(oauth))["code"]
    oauth.org.clock.advance(15 * 60 + 1)
    assert exchange(oauth, code).json()["error"] == "invalid_grant"


def test_pkce_verifier_checks(oauth: EmulatorServer) -> None:
    code = callback_params(authorize(oauth))["code"]
    assert (
        exchange(oauth, code, verifier="wrong" * 10).json()["error"]
        == "invalid_request"
    )
    code = callback_params(authorize(oauth))["code"]
    assert exchange(oauth, code, verifier=None).json()["error"] == "invalid_grant"


def test_token_endpoint_client_errors(oauth: EmulatorServer) -> None:
    code = callback_params(authorize(oauth))["code"]
    wrong_client = token(
        oauth,
        grant_type="authorization_code",
        code=code,
        client_id="other",
        client_secret=SECRET,
        redirect_uri=CALLBACK,
    )
    assert wrong_client.json() == {
        "error": "invalid_client_id",
        "error_description": "client identifier invalid",
    }
    wrong_secret = token(
        oauth,
        grant_type="authorization_code",
        code=code,
        client_id=CLIENT_ID,
        client_secret="bad",
        redirect_uri=CALLBACK,
    )
    assert wrong_secret.json() == {
        "error": "invalid_client",
        "error_description": "invalid client credentials",
    }
    assert (
        token(oauth, grant_type="password").json()["error"] == "unsupported_grant_type"
    )
    wrong_redirect = token(
        oauth,
        grant_type="authorization_code",
        code=code,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        redirect_uri="http://127.0.0.1:9/other",
        code_verifier=VERIFIER,
    )
    assert wrong_redirect.status_code == 400
    assert wrong_redirect.json()["error"] == "redirect_uri_mismatch"


def test_basic_auth_client_credentials(oauth: EmulatorServer) -> None:
    code = callback_params(authorize(oauth))["code"]
    response = requests.post(
        f"{oauth.url}/services/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": VERIFIER,
        },
        auth=(CLIENT_ID, SECRET),
        timeout=10,
    )
    assert response.status_code == 200


def test_refresh_without_rotation(oauth: EmulatorServer) -> None:
    grant = exchange(oauth, callback_params(authorize(oauth))["code"]).json()
    refreshed = refresh(oauth, grant["refresh_token"])
    assert refreshed.status_code == 200
    assert "refresh_token" not in refreshed.json()
    assert refresh(oauth, grant["refresh_token"]).status_code == 200
    assert api_status(oauth, refreshed.json()["access_token"]) == 200


def test_refresh_with_rotation(oauth: EmulatorServer) -> None:
    oauth.org.rotate_refresh_tokens = True
    grant = exchange(oauth, callback_params(authorize(oauth))["code"]).json()
    rotated = refresh(oauth, grant["refresh_token"]).json()
    assert rotated["refresh_token"] != grant["refresh_token"]
    stale = refresh(oauth, grant["refresh_token"])
    assert stale.status_code == 400
    assert stale.json() == {
        "error": "invalid_grant",
        "error_description": "expired access/refresh token",
    }
    assert refresh(oauth, rotated["refresh_token"]).status_code == 200


def test_revoke_refresh_token(oauth: EmulatorServer) -> None:
    grant = exchange(oauth, callback_params(authorize(oauth))["code"]).json()
    revoked = requests.post(
        f"{oauth.url}/services/oauth2/revoke",
        data={"token": grant["refresh_token"]},
        timeout=10,
    )
    assert revoked.status_code == 200
    assert refresh(oauth, grant["refresh_token"]).json()["error"] == "invalid_grant"
    assert api_status(oauth, grant["access_token"]) == 401
    unknown = requests.post(
        f"{oauth.url}/services/oauth2/revoke", data={"token": "nope"}, timeout=10
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "unsupported_token_type"


def test_access_token_expiry(oauth: EmulatorServer) -> None:
    grant = exchange(oauth, callback_params(authorize(oauth))["code"]).json()
    oauth.org.clock.advance(2 * 3600 - 1)
    assert api_status(oauth, grant["access_token"]) == 200
    oauth.org.clock.advance(1)
    assert api_status(oauth, grant["access_token"]) == 401
    fresh = refresh(oauth, grant["refresh_token"]).json()["access_token"]
    assert api_status(oauth, fresh) == 200
    oauth.org.expire_access_tokens()
    assert api_status(oauth, fresh) == 401


@pytest.mark.parametrize(
    ("policy", "idle_ok", "expected_after_use"),
    [("expire_after", 200, 400), ("expire_if_unused", 200, 200)],
)
def test_refresh_token_policies(
    oauth: EmulatorServer, policy: str, idle_ok: int, expected_after_use: int
) -> None:
    oauth.org.set_refresh_token_policy(policy, ttl_seconds=3600)
    grant = exchange(oauth, callback_params(authorize(oauth))["code"]).json()
    oauth.org.clock.advance(3000)
    assert refresh(oauth, grant["refresh_token"]).status_code == idle_ok
    oauth.org.clock.advance(3000)
    assert refresh(oauth, grant["refresh_token"]).status_code == expected_after_use
    oauth.org.clock.advance(3601)
    assert refresh(oauth, grant["refresh_token"]).json()["error"] == "invalid_grant"


def test_no_refresh_token_without_scope(oauth: EmulatorServer) -> None:
    params = callback_params(authorize(oauth, scope="api id"))
    body = exchange(oauth, params["code"]).json()
    assert "refresh_token" not in body
    assert body["scope"] == "api id"


def test_authorize_errors_redirect(oauth: EmulatorServer) -> None:
    params = callback_params(authorize(oauth, response_type="token"))
    assert params["error"] == "unsupported_response_type"
    assert params["state"] == "xyz"
    page = authorize(oauth, client_id="unknown")
    assert page.status_code == 400
    assert "invalid_client_id" in page.text
    assert "Location" not in page.headers


def test_consent_page_and_decisions() -> None:
    org = Org(clock=Clock(START, frozen=True))
    with EmulatorServer(org, client_secret=SECRET) as server:
        page = authorize(server)
        assert page.status_code == 200
        assert "Allow" in page.text
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))
        assert fields["client_id"] == CLIENT_ID
        url = f"{server.url}/services/oauth2/authorize"
        allowed = requests.post(
            url, data={**fields, "decision": "allow"}, allow_redirects=False, timeout=10
        )
        assert "code" in callback_params(allowed)
        denied = requests.post(
            url, data={**fields, "decision": "deny"}, allow_redirects=False, timeout=10
        )
        assert callback_params(denied)["error"] == "access_denied"
