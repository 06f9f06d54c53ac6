"""A loopback emulator of the Salesforce REST API and OAuth endpoints, for tests and demos."""

from routiine_pipeline.emulator.clock import Clock
from routiine_pipeline.emulator.org import Org
from routiine_pipeline.emulator.server import EmulatorServer

__all__ = ["Clock", "EmulatorServer", "Org"]
