"""mqttmesh.mgmt: operations used by the cli and the api."""

from mqttmesh.mgmt import admin, cluster, ops
from mqttmesh.mgmt.admin import AdminError, AdminStore

__all__ = ["admin", "cluster", "ops", "AdminError", "AdminStore"]
