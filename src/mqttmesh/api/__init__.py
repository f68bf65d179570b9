"""mqttmesh.api: the HTTP API (EMQX v5 shaped) and the web dashboard; calls mgmt only."""

from mqttmesh.api.app import App, ApiError, make_app

__all__ = ["make_app", "App", "ApiError"]
