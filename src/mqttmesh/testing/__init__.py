"""mqttmesh.testing."""
