"""mqttmesh.config."""
