"""mqttmesh.api."""
