"""mqttmesh.cli."""
