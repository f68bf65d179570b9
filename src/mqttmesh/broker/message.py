"""Message: one accepted application message, shared by every subscriber it is delivered to.

A Message is created once per publish and delivered by reference. For the fan-out hot path
it caches its encoded QoS 0 PUBLISH packet per (protocol version, retain flag), so N QoS 0
subscribers cost one encode and N writes of the same bytes (STYLE rule 16). QoS 1/2
deliveries carry a per-subscriber packet id, so they are encoded per delivery, reusing the
topic bytes and the MQTT 5 property bytes that were encoded once.
"""

from __future__ import annotations

from dataclasses import replace

from mqttmesh.protocol import encode_properties, encode_publish
from mqttmesh.protocol.packets import PacketType
from mqttmesh.protocol.properties import NO_PROPERTIES, Properties

__all__ = ["Message", "varint"]


def varint(n: int) -> bytes:
    """MQTT Variable Byte Integer (§1.5.5)."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


class Message:
    """An application message as routed inside the cluster.

    Attributes:
        topic: the topic name (after topic alias resolution).
        payload: the application payload.
        qos: the QoS it was published with.
        retain: the RETAIN flag it was published with.
        properties: its MQTT 5 properties (NO_PROPERTIES for 3.x publishers). Topic Alias
            and Subscription Identifiers are never forwarded; Message Expiry Interval is
            recomputed from `expiry_at` on every delivery [MQTT-3.3.2-6].
        sender: client id of the publisher, None for messages made by the broker ($SYS).
        sender_node: node name where it was published.
        expiry_at: monotonic time after which it must not be delivered, or None.
        id: a number unique on the node that accepted it.
    """

    __slots__ = (
        "topic", "payload", "qos", "retain", "properties", "sender", "sender_node",
        "expiry_at", "id", "_topic_bytes", "_props_body", "_cache", "_split",
    )

    def __init__(
        self,
        topic: str,
        payload: bytes,
        qos: int = 0,
        retain: bool = False,
        properties: Properties = NO_PROPERTIES,
        sender: str | None = None,
        sender_node: str | None = None,
        expiry_at: float | None = None,
        id: int = 0,
    ) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties
        self.sender = sender
        self.sender_node = sender_node
        self.expiry_at = expiry_at
        self.id = id
        self._topic_bytes: bytes | None = None
        self._props_body: bytes | None = None
        self._cache: dict[int, bytes] | None = None
        self._split: dict[int, tuple[bytes, bytes]] | None = None

    def __repr__(self) -> str:
        return (
            f"Message(topic={self.topic!r}, payload={self.payload[:32]!r}, qos={self.qos}, "
            f"retain={self.retain}, sender={self.sender!r}, id={self.id})"
        )

    def expired(self, now: float) -> bool:
        """True once the Message Expiry Interval has passed."""
        return self.expiry_at is not None and now >= self.expiry_at

    def _base_properties(self) -> bytes:
        body = self._props_body
        if body is None:
            props = self.properties
            if props is NO_PROPERTIES:
                body = b""
            else:
                if (
                    props.topic_alias is not None
                    or props.subscription_identifiers
                    or props.message_expiry_interval is not None
                ):
                    props = replace(
                        props, topic_alias=None, subscription_identifiers=(),
                        message_expiry_interval=None,
                    )
                body = _strip_length(encode_properties(props, PacketType.PUBLISH))
            self._props_body = body
        return body

    def encode(
        self,
        protocol_version: int,
        qos: int,
        retain: bool,
        dup: bool,
        packet_id: int | None,
        subscription_id: int | None,
        now: float,
    ) -> bytes:
        """Encode one PUBLISH of this message for one subscriber.

        A QoS 1/2 PUBLISH whose bytes differ between subscribers only by the packet id
        (no subscription identifier, no expiry to recompute) is built from a cached
        (bytes before the packet id, bytes after it) split of one encoding.
        """
        if (
            packet_id is not None
            and subscription_id is None
            and (protocol_version < 5 or self.expiry_at is None)
        ):
            key = protocol_version * 16 + qos * 4 + dup * 2 + retain
            split = self._split
            if split is None:
                split = self._split = {}
            parts = split.get(key)
            if parts is None:
                data = self._encode(protocol_version, qos, retain, dup, 0, None, now)
                i = 1
                while data[i] & 0x80:
                    i += 1
                cut = i + 3 + len(self._topic_bytes)  # type: ignore[arg-type]
                parts = split[key] = (data[:cut], data[cut + 2:])
            return b"".join((parts[0], packet_id.to_bytes(2, "big"), parts[1]))
        return self._encode(protocol_version, qos, retain, dup, packet_id, subscription_id, now)

    def _encode(
        self,
        protocol_version: int,
        qos: int,
        retain: bool,
        dup: bool,
        packet_id: int | None,
        subscription_id: int | None,
        now: float,
    ) -> bytes:
        topic = self._topic_bytes
        if topic is None:
            topic = self._topic_bytes = self.topic.encode()
        if protocol_version == 5:
            props = self._base_properties()
            if self.expiry_at is not None:
                props += _expiry_property(self.expiry_at, now)
            if subscription_id is not None:
                props += b"\x0b" + varint(subscription_id)
            props = (bytes((len(props),)) if len(props) < 128 else varint(len(props))) + props
        else:
            props = b""
        return encode_publish(
            topic, self.payload, qos, retain, dup, packet_id, props, protocol_version
        )

    def encode_qos0(self, protocol_version: int, retain: bool, now: float) -> bytes:
        """The QoS 0 PUBLISH of this message, encoded once per (version, retain) and cached.

        Only for immediate fan-out: every delivery of one dispatch happens at the same `now`,
        so the recomputed Message Expiry Interval is the same for all of them.
        """
        key = protocol_version * 2 + retain
        cache = self._cache
        if cache is None:
            cache = self._cache = {}
        else:
            data = cache.get(key)
            if data is not None:
                return data
        if protocol_version == 5:
            data = self._encode(5, 0, retain, False, None, None, now)
        else:
            topic = self._topic_bytes
            if topic is None:
                topic = self._topic_bytes = self.topic.encode()
            data = encode_publish(topic, self.payload, 0, retain, False, None, b"", protocol_version)
        cache[key] = data
        return data


def _expiry_property(expiry_at: float, now: float) -> bytes:
    remaining = expiry_at - now
    seconds = int(remaining)
    if seconds < remaining:
        seconds += 1  # round up: never announce 0 for a message that is still alive
    return b"\x02" + max(seconds, 1).to_bytes(4, "big")


def _strip_length(encoded: bytes) -> bytes:
    """encode_properties() returns the property section with its length prefix; drop it."""
    i = 0
    while encoded[i] & 0x80:
        i += 1
    return encoded[i + 1:]
