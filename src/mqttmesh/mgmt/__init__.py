"""mqttmesh.mgmt."""
