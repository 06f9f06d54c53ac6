import pytest

from routiine_pipeline.salesforce.errors import UnsafeHostError
from routiine_pipeline.salesforce.limits import ApiUsage, parse_limit_info
from routiine_pipeline.salesforce.oauth import PkcePair, check_salesforce_url, login_url

ACCEPTED = [
    ("https://login.salesforce.com", False, "https://login.salesforce.com"),
    ("https://test.salesforce.com/", False, "https://test.salesforce.com"),
    ("https://acme.my.salesforce.com", False, "https://acme.my.salesforce.com"),
    (
        "https://acme--uat.sandbox.my.salesforce.com",
        False,
        "https://acme--uat.sandbox.my.salesforce.com",
    ),
    ("http://127.0.0.1:8765", True, "http://127.0.0.1:8765"),
]

REJECTED = [
    ("http://login.salesforce.com", False),
    ("https://login.salesforce.com.evil.example", False),
    ("https://evil.example/?x=.my.salesforce.com", False),
    ("https://acme.my.salesforce.com@evil.example", False),
    ("https://user:pw@acme.my.salesforce.com", False),
    ("https://acme.my.salesforce.com/services/oauth2/token", False),
    ("http://127.0.0.1:8765", False),
    ("http://169.254.169.254", True),
    ("https://my.salesforce.com.attacker.net", False),
]


@pytest.mark.parametrize(("url", "allow_loopback", "expected"), ACCEPTED)
def test_salesforce_hosts_accepted(url, allow_loopback, expected):
    assert check_salesforce_url(url, allow_loopback=allow_loopback) == expected


@pytest.mark.parametrize(("url", "allow_loopback"), REJECTED)
def test_other_hosts_rejected(url, allow_loopback):
    with pytest.raises(UnsafeHostError):
        check_salesforce_url(url, allow_loopback=allow_loopback)


@pytest.mark.parametrize(
    ("org_type", "my_domain", "expected"),
    [
        ("production", None, "https://login.salesforce.com"),
        ("sandbox", None, "https://test.salesforce.com"),
        ("my_domain", "acme", "https://acme.my.salesforce.com"),
        (
            "my_domain",
            "Acme--UAT.sandbox",
            "https://acme--uat.sandbox.my.salesforce.com",
        ),
        ("my_domain", "acme.my.salesforce.com", "https://acme.my.salesforce.com"),
    ],
)
def test_login_url_by_org_type(org_type, my_domain, expected):
    assert login_url(org_type, my_domain) == expected


@pytest.mark.parametrize(
    "hostile",
    [
        "evil.example/x",
        "acme.evil.example",
        "-acme",
        "acme;rm",
        "acme.my.salesforce.com.evil.example",
        "a" * 41,
        "",
    ],
)
def test_hostile_my_domain_rejected(hostile):
    with pytest.raises((ValueError, UnsafeHostError)):
        login_url("my_domain", hostile)


def test_pkce_challenge_is_s256_of_verifier():
    import base64
    import hashlib

    pair = PkcePair.generate()
    digest = hashlib.sha256(pair.verifier.encode()).digest()
    assert pair.challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert 43 <= len(pair.verifier) <= 128


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("api-usage=18/5000", ApiUsage(18, 5000)),
        ("api-usage=110018/100000; api-bursts=1/750", ApiUsage(110018, 100000)),
        (
            "per-app-api-usage=17/250(appName=x); api-usage=25/15000",
            ApiUsage(25, 15000),
        ),
        (None, None),
        ("garbage", None),
    ],
)
def test_parse_limit_info(header, expected):
    assert parse_limit_info(header) == expected
