"""mqttmesh.cluster.wire."""
