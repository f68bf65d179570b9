"""SessionRegistry: client id -> Session on this node; assigned client ids."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mqttmesh.broker.session import Session

if TYPE_CHECKING:
    from mqttmesh.broker.broker import Broker

__all__ = ["SessionRegistry"]


class SessionRegistry:
    """The sessions held by this node, connected or not.

    Takeover (a client id connecting while its session is held) is driven by the Channel:
    it closes the older connection first (which detaches or ends the session), then calls
    `open` to resume or replace what is left [MQTT-3.1.4-3].
    """

    __slots__ = ("_broker", "_sessions", "_ids", "_prefix")

    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self._sessions: dict[str, Session] = {}
        self._ids = itertools.count(1)
        self._prefix = f"mqttmesh-{os.urandom(4).hex()}-"

    def __len__(self) -> int:
        return len(self._sessions)

    def __iter__(self) -> Iterator[Session]:
        return iter(list(self._sessions.values()))

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._sessions

    def get(self, client_id: str) -> Session | None:
        return self._sessions.get(client_id)

    def assign_client_id(self) -> str:
        """A fresh client id for a client that connected with an empty one [MQTT-3.1.3-6]."""
        while True:
            client_id = f"{self._prefix}{next(self._ids)}"
            if client_id not in self._sessions:
                return client_id

    def open(self, client_id: str, clean_start: bool, version: int, now: float) -> tuple[Session, bool]:
        """The session for a new connection and whether it was present (resumed).

        Clean start discards any existing session [MQTT-3.1.2-4]; otherwise an existing
        session is resumed [MQTT-3.1.2-5] and its pending will (delayed) is cancelled
        [MQTT-3.1.3-9].
        """
        session = self._sessions.get(client_id)
        if session is not None and clean_start:
            self._broker.end_session(session, now)
            session = None
        if session is not None:
            session.pending_will = None
            session.will_at = None
            session.expire_at = None
            session.version = version
            return session, True
        session = Session(self._broker, client_id, version)
        self._sessions[client_id] = session
        return session, False

    def remove(self, session: Session) -> None:
        if self._sessions.get(session.client_id) is session:
            del self._sessions[session.client_id]
