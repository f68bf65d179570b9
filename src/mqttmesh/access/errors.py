"""Errors raised by mqttmesh.access (both are MqttMeshError, so callers may catch broadly)."""

from __future__ import annotations

from mqttmesh.errors import MqttMeshError

__all__ = ["AclParseError", "UserStoreError"]


class AclParseError(MqttMeshError):
    """An ACL file could not be read: bad term syntax or a rule that does not compile.

    The message always names the source and the line, e.g.
    ``etc/acl.conf:3: unknown action 'pubsub2'``.

    Args:
        message: what is wrong, one line.
        line: 1-based line of the offending token or term.
        source: the file name (or ``"<acl>"`` for text given directly).
    """

    def __init__(self, message: str, line: int, source: str = "<acl>") -> None:
        self.line = line
        self.source = source
        self.reason = message
        super().__init__(f"{source}:{line}: {message}")


class UserStoreError(MqttMeshError):
    """A user store operation was refused (unknown / duplicate user, bad file, bad input)."""
