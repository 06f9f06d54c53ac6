"""The connected app's settings, read from the environment.

ROUTIINE_SF_CLIENT_ID, ROUTIINE_SF_CLIENT_SECRET and ROUTIINE_SF_REDIRECT_URI
name the connected app (or external client app) that customers authorize.
The secret is read when needed and never logged or shown.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from routiine_pipeline.salesforce.oauth import OAuthApp, is_loopback

CLIENT_ID_ENV = "ROUTIINE_SF_CLIENT_ID"
CLIENT_SECRET_ENV = "ROUTIINE_SF_CLIENT_SECRET"
REDIRECT_URI_ENV = "ROUTIINE_SF_REDIRECT_URI"

DEFAULT_CLIENT_ID = "routiine-demo-client"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8717/oauth/callback"


class OAuthConfigError(ValueError):
    """A connected-app setting is missing or invalid; the message names the variable, never the secret."""


def client_id() -> str:
    return os.environ.get(CLIENT_ID_ENV, DEFAULT_CLIENT_ID)


def redirect_uri() -> str:
    return os.environ.get(REDIRECT_URI_ENV, DEFAULT_REDIRECT_URI)


def check_redirect_uri(uri: str) -> str:
    """Return `uri` if it can be a callback URL: HTTPS, or plain HTTP on loopback only.

    The authorization code travels in this URL, so plain HTTP to another host
    would expose it on the network.
    """
    try:
        parts = urlsplit(uri)
        _ = parts.port  # urlsplit parses the port lazily and raises ValueError here when it is invalid
    except ValueError:
        raise OAuthConfigError(
            f"{REDIRECT_URI_ENV}={uri!r} is not a valid URL"
        ) from None
    host = parts.hostname or ""
    if parts.scheme == "https" and host and not parts.username:
        return uri
    if parts.scheme == "http" and is_loopback(host) and not parts.username:
        return uri
    raise OAuthConfigError(
        f"{REDIRECT_URI_ENV}={uri!r} is not a valid callback URL: use https://HOST/PATH, or "
        "http://127.0.0.1:PORT/PATH for a callback on this machine, matching a callback URL of the connected app"
    )


def oauth_app() -> OAuthApp:
    """Build the OAuth app from the environment; raise OAuthConfigError when a setting is missing or invalid."""
    secret = os.environ.get(CLIENT_SECRET_ENV)
    if not secret:
        raise OAuthConfigError(
            f"{CLIENT_SECRET_ENV} is not set: export the consumer secret of the connected app "
            "(the demo sets it for the bundled emulator)"
        )
    identifier = client_id()
    if not identifier.strip():
        raise OAuthConfigError(
            f"{CLIENT_ID_ENV} is empty: export the consumer key of the connected app"
        )
    return OAuthApp(identifier, secret, check_redirect_uri(redirect_uri()))
