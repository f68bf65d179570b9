"""mqttmesh.cluster."""
