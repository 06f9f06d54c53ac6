"""The connected app's settings, read from the environment.

ROUTIINE_SF_CLIENT_ID, ROUTIINE_SF_CLIENT_SECRET and ROUTIINE_SF_REDIRECT_URI
name the connected app (or external client app) that customers authorize.
The secret is read when needed and never logged or shown.
"""

from __future__ import annotations

import os

from routiine_pipeline.salesforce.oauth import OAuthApp

CLIENT_ID_ENV = "ROUTIINE_SF_CLIENT_ID"
CLIENT_SECRET_ENV = "ROUTIINE_SF_CLIENT_SECRET"
REDIRECT_URI_ENV = "ROUTIINE_SF_REDIRECT_URI"

DEFAULT_CLIENT_ID = "routiine-demo-client"
DEFAULT_REDIRECT_URI = "http://127.0.0.1:8717/oauth/callback"


def client_id() -> str:
    return os.environ.get(CLIENT_ID_ENV, DEFAULT_CLIENT_ID)


def redirect_uri() -> str:
    return os.environ.get(REDIRECT_URI_ENV, DEFAULT_REDIRECT_URI)


def oauth_app() -> OAuthApp:
    """Build the OAuth app from the environment; raise a clear error when the secret is missing."""
    secret = os.environ.get(CLIENT_SECRET_ENV)
    if not secret:
        raise RuntimeError(
            f"{CLIENT_SECRET_ENV} is not set: export the consumer secret of the connected app "
            "(the demo sets it for the bundled emulator)"
        )
    return OAuthApp(client_id(), secret, redirect_uri())
