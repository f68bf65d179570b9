"""mqttmesh.runtime."""
