"""BrokerClient: a test client that drives one broker Channel with encoded packets."""

from __future__ import annotations

import itertools
from typing import Any

from mqttmesh.protocol import encode
from mqttmesh.protocol.packets import (
    ConnAck, Connect, Packet, Publish, SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe,
)
from mqttmesh.protocol.properties import NO_PROPERTIES, Properties
from mqttmesh.testing.fakes import FakeClock, RecordingOutlet

__all__ = ["BrokerClient"]


class BrokerClient:
    """Client side of one connection to a `mqttmesh.broker.Broker`, no sockets, no loop.

    Packets are encoded with the protocol codec and fed to the channel at `clock.now`;
    what the broker wrote is decoded in client role.
    """

    def __init__(
        self, broker: Any, clock: FakeClock, version: int = 4, peer: str = "127.0.0.1:50000",
        listener: str = "tcp:default",
    ) -> None:
        self.broker = broker
        self.clock = clock
        self.version = version
        self.outlet = RecordingOutlet(version)
        self.channel = broker.open_channel(self.outlet, peer, listener, clock.now)
        self._ids = itertools.count(1)
        self._inbox: list[Packet] = []

    @property
    def closed(self) -> bool:
        return self.outlet.closed

    def send(self, *packets: Packet) -> None:
        for packet in packets:
            self.channel.handle_data(encode(packet, self.version), self.clock.now)

    def send_raw(self, data: bytes) -> None:
        self.channel.handle_data(data, self.clock.now)

    def received(self) -> list[Packet]:
        """Every packet the broker wrote that was not yet taken."""
        out = self._inbox + self.outlet.packets()
        self._inbox = []
        return out

    def take(self, cls: type) -> Any:
        """The first not-yet-taken packet of that type (others stay in the inbox)."""
        self._inbox += self.outlet.packets()
        for i, packet in enumerate(self._inbox):
            if isinstance(packet, cls):
                return self._inbox.pop(i)
        raise AssertionError(f"no {cls.__name__} received; have {self._inbox!r}")

    def publishes(self) -> list[Publish]:
        """Take every PUBLISH received so far."""
        self._inbox += self.outlet.packets()
        pubs = [p for p in self._inbox if isinstance(p, Publish)]
        self._inbox = [p for p in self._inbox if not isinstance(p, Publish)]
        return pubs

    def connect(
        self, client_id: str = "client", clean_start: bool = True, keep_alive: int = 60,
        **fields: Any,
    ) -> ConnAck:
        self.send(Connect(client_id, self.version, "MQTT" if self.version > 3 else "MQIsdp",
                          clean_start, keep_alive, **fields))
        return self.take(ConnAck)  # type: ignore[no-any-return]

    def subscribe(
        self, *filters: str | Subscription, qos: int = 0, properties: Properties = NO_PROPERTIES,
    ) -> SubAck:
        subs = tuple(f if isinstance(f, Subscription) else Subscription(f, qos) for f in filters)
        self.send(Subscribe(next(self._ids), subs, properties))
        return self.take(SubAck)  # type: ignore[no-any-return]

    def unsubscribe(self, *filters: str) -> UnsubAck:
        self.send(Unsubscribe(next(self._ids), tuple(filters)))
        return self.take(UnsubAck)  # type: ignore[no-any-return]

    def publish(
        self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False,
        packet_id: int | None = None, properties: Properties = NO_PROPERTIES, dup: bool = False,
    ) -> int | None:
        if qos and packet_id is None:
            packet_id = next(self._ids)
        self.send(Publish(topic, payload, qos, retain, dup, packet_id, properties))
        return packet_id
