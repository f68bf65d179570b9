"""mqttmesh.discovery."""
