"""mqttmesh.protocol."""
