"""mqttmesh.testing: fakes for tests without an event loop (FakeClock, outlets, BrokerClient)."""

from mqttmesh.testing.client import BrokerClient
from mqttmesh.testing.fakes import CountingOutlet, FakeClock, RecordingOutlet

__all__ = ["BrokerClient", "CountingOutlet", "FakeClock", "RecordingOutlet"]
