from __future__ import annotations

import pytest
from sf_world import start_world


@pytest.fixture
def world(routiine_home):
    running = start_world()
    yield running
    running.server.stop()
