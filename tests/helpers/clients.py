"""paho-mqtt clients for tests: every operation waits for the broker's answer, with a timeout.

``Client(port, version=4|5, ...)`` wraps one paho ``Client`` running its network loop in a
thread (auto-reconnect off: a test decides when to reconnect, with a new ``Client``).
Received messages go to a queue: ``expect()`` / ``expect_none()``; the disconnect reason (v5)
is kept for ``wait_disconnected()``.
"""

from __future__ import annotations

import itertools
import queue
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

__all__ = ["Client", "ConnectFailed", "Received", "props", "unique"]

TIMEOUT = 5.0
_counter = itertools.count(1)


def unique(prefix: str = "t") -> str:
    """A process-unique name for client ids and topics."""
    return f"{prefix}-{threading.get_ident() % 10000}-{next(_counter)}-{time.monotonic_ns() % 100000}"


def props(packet_type: int = PacketTypes.PUBLISH, **values: Any) -> Properties:
    """paho Properties from keyword arguments (``MessageExpiryInterval=5``)."""
    p = Properties(packet_type)
    for key, value in values.items():
        setattr(p, key, value)
    return p


class ConnectFailed(AssertionError):
    def __init__(self, reason_code: int, text: str = "") -> None:
        self.reason_code = reason_code
        super().__init__(f"CONNECT refused: {reason_code:#x} {text}")


@dataclass
class Received:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    properties: Any = None
    dup: bool = False
    at: float = field(default_factory=time.monotonic)

    def prop(self, name: str, default: Any = None) -> Any:
        if self.properties is None:
            return default
        return getattr(self.properties, name, default)


def _rc(reason_code: Any) -> int:
    if reason_code is None:
        return 0
    value = getattr(reason_code, "value", reason_code)
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class Client:
    """One paho-mqtt connection. See the module docstring."""

    def __init__(
        self,
        port: int,
        version: int = 4,
        client_id: str | None = None,
        host: str = "127.0.0.1",
        clean: bool = True,
        keepalive: int = 60,
        session_expiry: int | None = None,
        transport: str = "tcp",
        ws_path: str = "/mqtt",
        ca_cert: str | None = None,
        client_cert: tuple[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        will: dict[str, Any] | None = None,
        connect_properties: dict[str, Any] | None = None,
    ) -> None:
        self.port = port
        self.host = host
        self.version = version
        self.client_id = unique("c") if client_id is None else client_id
        self.clean = clean
        self.keepalive = keepalive
        self.session_expiry = session_expiry
        self.connect_properties = dict(connect_properties or {})
        protocol = MQTTProtocolVersion.MQTTv5 if version == 5 else MQTTProtocolVersion.MQTTv311
        self.paho = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if version == 5 else clean,
            protocol=protocol,
            transport=transport,  # type: ignore[arg-type]
            reconnect_on_failure=False,
        )
        if transport == "websockets":
            self.paho.ws_set_options(path=ws_path)
        if ca_cert is not None:
            certfile, keyfile = client_cert if client_cert else (None, None)
            self.paho.tls_set(ca_certs=ca_cert, certfile=certfile, keyfile=keyfile,
                              cert_reqs=ssl.CERT_REQUIRED)
        if username is not None:
            self.paho.username_pw_set(username, password)
        if will is not None:
            self.paho.will_set(**will)
        self.messages: queue.Queue[Received] = queue.Queue()
        self.connack: tuple[int, bool, Any] | None = None
        self.disconnect_rc: int | None = None
        self.disconnect_properties: Any = None
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._acks: dict[int, tuple[list[int], Any]] = {}
        self._ack_events: dict[int, threading.Event] = {}
        self._lock = threading.Lock()
        p = self.paho
        p.on_connect = self._on_connect
        p.on_disconnect = self._on_disconnect
        p.on_message = self._on_message
        p.on_subscribe = self._on_subscribe
        p.on_unsubscribe = self._on_unsubscribe

    # -- callbacks (paho thread) --------------------------------------------------------------
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connack = (_rc(reason_code), bool(flags.session_present), properties)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.disconnect_rc = _rc(reason_code)
        self.disconnect_properties = properties
        self._disconnected.set()
        self._connected.set()  # unblock a connect() waiting on a refused CONNECT

    def _on_message(self, client, userdata, msg) -> None:
        self.messages.put(Received(
            topic=msg.topic, payload=bytes(msg.payload), qos=msg.qos, retain=bool(msg.retain),
            properties=getattr(msg, "properties", None), dup=bool(msg.dup),
        ))

    def _ack(self, mid: int, codes: list[int], properties: Any) -> None:
        with self._lock:
            self._acks[mid] = (codes, properties)
            event = self._ack_events.setdefault(mid, threading.Event())
        event.set()

    def _on_subscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        self._ack(mid, [_rc(rc) for rc in reason_code_list], properties)

    def _on_unsubscribe(self, client, userdata, mid, reason_code_list, properties) -> None:
        self._ack(mid, [_rc(rc) for rc in (reason_code_list or [])], properties)

    def _wait_ack(self, mid: int, timeout: float) -> tuple[list[int], Any]:
        with self._lock:
            event = self._ack_events.setdefault(mid, threading.Event())
        if not event.wait(timeout):
            raise AssertionError(f"no SUBACK/UNSUBACK for mid {mid} within {timeout}s")
        with self._lock:
            self._ack_events.pop(mid, None)
            return self._acks.pop(mid)

    # -- operations -----------------------------------------------------------------------------
    def connect(self, timeout: float = TIMEOUT, check: bool = True) -> Client:
        """Connect and wait for CONNACK. ``check``: raise ConnectFailed if refused."""
        properties = None
        if self.version == 5:
            properties = Properties(PacketTypes.CONNECT)
            if self.session_expiry is not None:
                properties.SessionExpiryInterval = self.session_expiry
            for key, value in self.connect_properties.items():
                setattr(properties, key, value)
            self.paho.connect(
                self.host, self.port, self.keepalive, clean_start=self.clean,
                properties=properties,
            )
        else:
            self.paho.connect(self.host, self.port, self.keepalive)
        self.paho.loop_start()
        if not self._connected.wait(timeout):
            self.close()
            raise AssertionError(f"no CONNACK within {timeout}s")
        if self.connack is None:
            raise ConnectFailed(self.disconnect_rc or -1, "connection closed before CONNACK")
        if check and self.connack[0] != 0:
            self.close()
            raise ConnectFailed(self.connack[0])
        return self

    @property
    def session_present(self) -> bool:
        assert self.connack is not None
        return self.connack[1]

    @property
    def connack_properties(self) -> Any:
        assert self.connack is not None
        return self.connack[2]

    def subscribe(
        self,
        topic: str | list[tuple[str, Any]],
        qos: int = 0,
        timeout: float = TIMEOUT,
        no_local: bool = False,
        retain_as_published: bool = False,
        retain_handling: int = 0,
        subscription_id: int | None = None,
    ) -> list[int]:
        """Subscribe and return the SUBACK reason codes / granted QoS."""
        properties = None
        if subscription_id is not None:
            properties = props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=subscription_id)
        if isinstance(topic, list):
            result, mid = self.paho.subscribe(topic, properties=properties)
        elif self.version == 5:
            options = SubscribeOptions(
                qos=qos, noLocal=no_local, retainAsPublished=retain_as_published,
                retainHandling=retain_handling,
            )
            result, mid = self.paho.subscribe(topic, options=options, properties=properties)
        else:
            result, mid = self.paho.subscribe(topic, qos)
        assert result == paho.MQTT_ERR_SUCCESS, f"subscribe not sent: {result}"
        assert mid is not None
        codes, _ = self._wait_ack(mid, timeout)
        return codes

    def unsubscribe(self, topic: str, timeout: float = TIMEOUT) -> list[int]:
        result, mid = self.paho.unsubscribe(topic)
        assert result == paho.MQTT_ERR_SUCCESS and mid is not None
        codes, _ = self._wait_ack(mid, timeout)
        return codes

    def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        qos: int = 0,
        retain: bool = False,
        properties: Properties | None = None,
        wait: bool = True,
        timeout: float = TIMEOUT,
        **props_kw: Any,
    ) -> paho.MQTTMessageInfo:
        """Publish; with ``wait`` block until sent (QoS 0) or acknowledged (QoS 1/2)."""
        if props_kw:
            assert properties is None
            properties = props(PacketTypes.PUBLISH, **props_kw)
        info = self.paho.publish(topic, payload, qos, retain, properties)
        if wait:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"publish to {topic} not completed within {timeout}s"
        return info

    def expect(self, timeout: float = TIMEOUT, topic: str | None = None) -> Received:
        """The next message (optionally skipping others until one on ``topic``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                msg = self.messages.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise AssertionError(
                    f"{self.client_id}: no message{' on ' + topic if topic else ''} "
                    f"within {timeout}s"
                ) from None
            if topic is None or msg.topic == topic:
                return msg

    def expect_many(self, count: int, timeout: float = TIMEOUT) -> list[Received]:
        deadline = time.monotonic() + timeout
        return [self.expect(max(deadline - time.monotonic(), 0.001)) for _ in range(count)]

    def expect_none(self, within: float = 0.5) -> None:
        """Assert nothing arrives within ``within`` seconds."""
        try:
            msg = self.messages.get(timeout=within)
        except queue.Empty:
            return
        raise AssertionError(f"{self.client_id}: unexpected message {msg}")

    def drain(self) -> list[Received]:
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait_disconnected(self, timeout: float = TIMEOUT) -> int | None:
        """Wait until the connection is gone; returns the reason code (v5) if any."""
        if not self._disconnected.wait(timeout):
            raise AssertionError(f"{self.client_id}: still connected after {timeout}s")
        return self.disconnect_rc

    @property
    def is_connected(self) -> bool:
        return self.paho.is_connected()

    def disconnect(self, reason_code: int | None = None, properties: Any = None,
                   timeout: float = TIMEOUT) -> None:
        """Clean DISCONNECT (v5: with ``reason_code``), then stop the loop."""
        rc = None
        if reason_code is not None and self.version == 5:
            from paho.mqtt.reasoncodes import ReasonCode
            rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reason_code)
        self.paho.disconnect(reasoncode=rc, properties=properties)
        self._disconnected.wait(timeout)
        self.paho.loop_stop()

    def drop(self) -> None:
        """Close the socket without DISCONNECT (an abnormal loss: the will fires)."""
        sock = self.paho.socket()
        if sock is not None:
            try:
                import socket as _socket
                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
        self._disconnected.wait(TIMEOUT)
        self.paho.loop_stop()

    def close(self) -> None:
        """Teardown: disconnect if still connected, stop the loop thread."""
        try:
            if self.paho.is_connected():
                self.paho.disconnect()
                self._disconnected.wait(1.0)
        finally:
            self.paho.loop_stop()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
