"""mqttmesh.broker."""
