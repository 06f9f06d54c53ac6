from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The tenant-and-emulator helper lives beside the write-back tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "writeback"))

from sf_world import start_world  # noqa: E402


@pytest.fixture
def world(routiine_home):
    running = start_world()
    yield running
    running.server.stop()
