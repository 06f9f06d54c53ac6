"""Fixtures of the scale tests: a control store on SQLite or PostgreSQL, a counting emulator, a fleet."""

from __future__ import annotations

import dagster as dg
import pytest

from routiine_pipeline import settings
from routiine_pipeline.control.notify import WEBHOOK_ENV
from routiine_pipeline.control.store import open_control_store
from scale.fleet import build_fleet, start_counting_emulator


@pytest.fixture(params=["sqlite", "postgresql"])
def control_url(request, routiine_home, monkeypatch):
    """The control store's URL, set as the configured one: SQLite under ROUTIINE_HOME, or PostgreSQL."""
    monkeypatch.delenv(WEBHOOK_ENV, raising=False)
    if request.param == "sqlite":
        return settings.control_store_url()
    url = request.getfixturevalue("postgres_url")
    monkeypatch.setenv(settings.CONTROL_URL_ENV, url)
    return url


@pytest.fixture
def emulator():
    server = start_counting_emulator()
    yield server
    server.stop()


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def fleet(control_url, emulator, instance):
    return build_fleet(open_control_store(control_url), instance, emulator.url)
