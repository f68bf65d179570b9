"""mqttmesh.mgmt: operations used by the cli and the api."""

from mqttmesh.mgmt import cluster

__all__ = ["cluster"]
