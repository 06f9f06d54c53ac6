"""Fixtures of the auth tests: emulator-mode environment and a running emulator with a connector."""

from __future__ import annotations

import pytest

from auth.helpers import CLIENT_ID, CLIENT_SECRET, free_port, make_setup
from routiine_pipeline.emulator import Clock, Org


@pytest.fixture
def redirect_uri() -> str:
    return f"http://127.0.0.1:{free_port()}/oauth/callback"


@pytest.fixture
def emulator_env(routiine_home, redirect_uri, monkeypatch):
    """Switch on emulator mode and name the test's connected app in the environment."""
    monkeypatch.setenv("ROUTIINE_ALLOW_LOOPBACK", "1")
    monkeypatch.setenv("ROUTIINE_SF_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("ROUTIINE_SF_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("ROUTIINE_SF_REDIRECT_URI", redirect_uri)
    return routiine_home


@pytest.fixture
def org() -> Org:
    return Org(clock=Clock())


@pytest.fixture
def setup(org, emulator_env, redirect_uri):
    running = make_setup(org, emulator_env, redirect_uri)
    yield running
    running.server.stop()
