"""mqttmesh.testing: fakes for tests without an event loop (FakeClock, RecordingOutlet)."""

from mqttmesh.testing.fakes import CountingOutlet, FakeClock, RecordingOutlet

__all__ = ["CountingOutlet", "FakeClock", "RecordingOutlet"]
