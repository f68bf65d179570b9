"""The one exception hierarchy of mqttmesh.

    MqttMeshError
    ├── ConfigError                 bad config value; names the key and the value
    ├── ProtocolError               MQTT wire/protocol violation; carries reason_code
    │   ├── LocalProtocolError      we were asked to send something invalid
    │   └── RemoteProtocolError     the peer sent something invalid
    ├── ClusterError                cluster operation refused (join/leave/...); one-line message
    │   └── HandshakeError          link authentication failed (wrong cookie, bad frame)
    └── DiscoveryError              a discovery backend failed
"""

from __future__ import annotations

__all__ = [
    "MqttMeshError",
    "ConfigError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "ClusterError",
    "HandshakeError",
    "DiscoveryError",
]


class MqttMeshError(Exception):
    """Base of every error mqttmesh raises on purpose."""


class ConfigError(MqttMeshError):
    """A configuration value is missing or invalid.

    Args:
        key: dotted config path, e.g. ``node.name``.
        value: the offending value as given.
        reason: a short human sentence.
    """

    def __init__(self, key: str, value: object, reason: str) -> None:
        self.key = key
        self.value = value
        self.reason = reason
        super().__init__(f"invalid value for {key}: {value!r}: {reason}")


class ProtocolError(MqttMeshError):
    """An MQTT protocol violation.

    Args:
        message: human description.
        reason_code: the MQTT 5 reason code to send (0x80 unspecified, 0x81 malformed,
            0x82 protocol error, 0x95 packet too large, ...). For MQTT 3.1.1 the connection
            is simply closed (or a CONNACK return code is derived from it).
    """

    def __init__(self, message: str, reason_code: int = 0x81) -> None:
        self.reason_code = reason_code
        super().__init__(message)


class LocalProtocolError(ProtocolError):
    """We tried to produce an invalid packet."""


class RemoteProtocolError(ProtocolError):
    """The peer sent an invalid packet."""


class ClusterError(MqttMeshError):
    """A cluster operation was refused; the message is one line for `ctl`."""


class HandshakeError(ClusterError):
    """Authentication of a link between nodes failed."""


class DiscoveryError(MqttMeshError):
    """A discovery backend could not answer."""
