"""The connect page over HTTP: CSRF, flow binding, escaping, headers and the mapping editor."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import requests

from routiine_pipeline.control.store import CONNECTED
from web.conftest import csrf_of


def _connect(
    page, session: requests.Session, tenant: str = "acme"
) -> requests.Response:
    """Run the connect form and the emulator's approval with a cookie-keeping HTTP session."""
    token = csrf_of(session, page.url + "/")
    started = session.post(
        page.url + "/connect",
        data={
            "csrf_token": token,
            "tenant_id": tenant,
            "org_type": "production",
            "login_url": page.emulator.url,
        },
        allow_redirects=False,
        timeout=10,
    )
    assert started.status_code == 303
    query = {
        key: values[0]
        for key, values in parse_qs(urlsplit(started.headers["Location"]).query).items()
    }
    approved = session.post(
        page.emulator.url + "/services/oauth2/authorize",
        data={**query, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    return session.get(approved.headers["Location"], allow_redirects=False, timeout=10)


def test_post_without_csrf_rejected(connect_page):
    session = requests.Session()
    session.get(connect_page.url + "/", timeout=10)
    response = session.post(
        connect_page.url + "/connect",
        data={"tenant_id": "acme", "org_type": "production"},
        timeout=10,
    )
    assert response.status_code == 403
    assert "missing or invalid CSRF token" in response.text
    assert connect_page.context.store.list_tenants() == []


def test_post_from_other_origin_rejected(connect_page):
    session = requests.Session()
    token = csrf_of(session, connect_page.url + "/")
    response = session.post(
        connect_page.url + "/connect",
        data={"csrf_token": token, "tenant_id": "acme", "org_type": "production"},
        headers={"Origin": "http://attacker.example"},
        timeout=10,
    )
    assert response.status_code == 403
    assert "another origin (http://attacker.example)" in response.text


def test_callback_from_other_browser_rejected(connect_page):
    victim = requests.Session()
    callback = _connect_until_callback(connect_page, victim)
    attacker = requests.Session()
    response = attacker.get(callback, allow_redirects=False, timeout=10)
    assert response.status_code == 400
    assert "this browser did not start this connection" in response.text
    assert connect_page.context.store.get_tenant("acme").status == "pending_connection"


def _connect_until_callback(page, session) -> str:
    token = csrf_of(session, page.url + "/")
    started = session.post(
        page.url + "/connect",
        data={
            "csrf_token": token,
            "tenant_id": "acme",
            "org_type": "production",
            "login_url": page.emulator.url,
        },
        allow_redirects=False,
        timeout=10,
    )
    query = {
        key: values[0]
        for key, values in parse_qs(urlsplit(started.headers["Location"]).query).items()
    }
    approved = requests.post(
        page.emulator.url + "/services/oauth2/authorize",
        data={**query, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    return approved.headers["Location"]


def test_connect_and_reconnect_over_http(connect_page):
    session = requests.Session()
    done = _connect(connect_page, session)
    assert done.status_code == 303
    assert done.headers["Location"] == "/?notice=Tenant%20acme%20is%20connected."
    store = connect_page.context.store
    store.mark_needs_reauthorization(
        "acme", "Salesforce rejected the refresh token (revoked)"
    )
    page = session.get(connect_page.url + "/", timeout=10).text
    assert "needs_reauthorization" in page
    assert ">Reconnect</button>" in page
    token = csrf_of(session, connect_page.url + "/")
    started = session.post(
        connect_page.url + "/tenants/acme/reconnect",
        data={"csrf_token": token},
        allow_redirects=False,
        timeout=10,
    )
    query = {
        key: values[0]
        for key, values in parse_qs(urlsplit(started.headers["Location"]).query).items()
    }
    approved = session.post(
        connect_page.emulator.url + "/services/oauth2/authorize",
        data={**query, "decision": "allow"},
        allow_redirects=False,
        timeout=10,
    )
    session.get(approved.headers["Location"], timeout=10)
    assert store.get_tenant("acme").status == CONNECTED


def test_output_escaped_and_headers_set(connect_page):
    store = connect_page.context.store
    store.add_tenant(
        "acme", org_type="production", login_url="https://login.salesforce.com"
    )
    store.set_status("acme", "paused", '<script>alert("x")</script>')
    response = requests.get(
        connect_page.url + "/?notice=<img src=x onerror=alert(1)>", timeout=10
    )
    assert "<script>alert" not in response.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text
    assert "<img src=x" not in response.text
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]


def test_hostile_my_domain_from_form(connect_page):
    session = requests.Session()
    token = csrf_of(session, connect_page.url + "/")
    response = session.post(
        connect_page.url + "/connect",
        data={
            "csrf_token": token,
            "tenant_id": "acme",
            "org_type": "my_domain",
            "my_domain": "acme.evil.example",
        },
        allow_redirects=False,
        timeout=10,
    )
    assert response.status_code == 400
    assert "invalid My Domain" in response.text
    assert connect_page.context.store.list_tenants() == []


def test_mapping_editor_checks_describe(connect_page):
    session = requests.Session()
    _connect(connect_page, session)
    store = connect_page.context.store
    mapping = store.mapping("acme").to_dict()
    mapping["fields"]["Opportunity"] = ["Id", "Name", "Bogus__c"]
    token = csrf_of(session, connect_page.url + "/tenants/acme/mapping")
    rejected = session.post(
        connect_page.url + "/tenants/acme/mapping",
        data={"csrf_token": token, "mapping": json.dumps(mapping)},
        timeout=10,
    )
    assert rejected.status_code == 400
    assert (
        "Opportunity.Bogus__c: no such field in the org&#39;s describe of Opportunity"
        in rejected.text
    )
    assert "Bogus__c" not in store.mapping("acme").fields["Opportunity"]

    mapping["fields"]["Opportunity"] = ["Id", "Name", "StageName", "SystemModstamp"]
    saved = session.post(
        connect_page.url + "/tenants/acme/mapping",
        data={"csrf_token": token, "mapping": json.dumps(mapping)},
        allow_redirects=False,
        timeout=10,
    )
    assert saved.status_code == 303
    assert store.mapping("acme").fields["Opportunity"] == [
        "Id",
        "Name",
        "StageName",
        "SystemModstamp",
    ]
    page = session.get(connect_page.url + "/", timeout=10).text
    assert "calls in 24 h" in page


def test_mapping_editor_rejects_bad_json(connect_page):
    session = requests.Session()
    _connect(connect_page, session)
    token = csrf_of(session, connect_page.url + "/tenants/acme/mapping")
    response = session.post(
        connect_page.url + "/tenants/acme/mapping",
        data={"csrf_token": token, "mapping": "{not json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert (
        "the mapping is not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2"
        in response.text
    )
