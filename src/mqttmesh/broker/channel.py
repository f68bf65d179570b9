r"""Channel: one client network connection — decode its bytes and act on each packet.

States (ChannelState)::

    CONNECTING --CONNECT accepted--> CONNECTED --DISCONNECT / EOF / error / kick--> CLOSED
        |  \--CONNECT refused, error, idle_timeout-------------------------------> CLOSED
        \--CONNECT, session on another node--> AWAITING_SESSION --import_session /
                                                session_unavailable / 5 s--> CONNECTED

Replies and deliveries are written straight to the connection's Outlet (the documented
fast path of architecture.md); protocol errors raised by the decoder or by the checks
here become CONNACK / DISCONNECT with the error's reason code (MQTT 5) or a plain close
(3.x), and never escape `handle_data`.
"""

from __future__ import annotations

from enum import IntEnum
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mqttmesh import access
from mqttmesh.broker.connect import NEVER_EXPIRES, apply_connect_limits, connack
from mqttmesh.broker.message import Message
from mqttmesh.broker.session import PUBACK, PUBCOMP, PUBREC, Outlet, Session, encode_ack
from mqttmesh.broker.subscribe import send_retained, subscribe, unsubscribe
from mqttmesh.errors import RemoteProtocolError
from mqttmesh.protocol import Decoder, connack_return_code, encode
from mqttmesh.protocol.packets import (
    Auth, ConnAck, Connect, Disconnect, PingReq, PubAck, PubComp, Publish, PubRec, PubRel,
    SubAck, Subscribe, UnsubAck, Unsubscribe, Will,
)
from mqttmesh.protocol.properties import NO_PROPERTIES

if TYPE_CHECKING:
    from mqttmesh.broker.broker import Broker

__all__ = ["Channel", "ChannelState"]

PINGRESP = b"\xd0\x00"



class ChannelState(IntEnum):
    CONNECTING = 0  # until a CONNECT is accepted (or refused)
    CONNECTED = 1  # CONNACK sent
    CLOSED = 2
    AWAITING_SESSION = 3  # CONNECT accepted, its session is being fetched from another node


CONNECTING, CONNECTED, CLOSED, AWAITING_SESSION = ChannelState
SESSION_FETCH_TIMEOUT = 5.0
"""Seconds a CONNECT waits for its session from another node before starting a new one."""


class Channel:
    """One MQTT connection of the broker (runtime feeds it bytes)."""

    __slots__ = (
        "broker", "outlet", "peer", "listener", "decoder", "state", "session", "version",
        "client_id", "keep_alive", "last_activity", "opened_at", "will", "aliases",
        "_timer_at", "_pending", "client_info", "authz_cache",
    )

    def __init__(self, broker: Broker, outlet: Outlet, peer: str, listener: str, now: float) -> None:
        self.broker = broker
        self.outlet = outlet
        self.peer = peer
        self.listener = listener
        self.decoder = Decoder("server", max_packet_size=broker.config.max_packet_size)
        self.state = CONNECTING
        self.session: Session | None = None
        self.version = 0
        self.client_id: str | None = None
        self.keep_alive = 0.0
        self.last_activity = now
        self.opened_at = now
        self.will: Will | None = None
        self.aliases: dict[int, str] | None = None
        self._timer_at: float | None = None
        self._pending: tuple[Connect, str | None, list[Any], float] | None = None
        self.client_info: access.ClientInfo | None = None  # set when there is an authorizer
        self.authz_cache: access.AuthzCache | None = None

    def __repr__(self) -> str:
        return f"Channel({self.client_id!r}, {self.peer}, {self.state.name})"

    @property
    def closed(self) -> bool:
        return self.state is CLOSED

    # -- input ------------------------------------------------------------------------------

    def handle_data(self, data: bytes, now: float) -> None:
        """Bytes from the network (b"" = EOF, an unclean close)."""
        state = self.state
        if state is CLOSED:
            return
        if not data:
            self._close(now, publish_will=True)
            return
        self.last_activity = now
        self.broker.counters.bytes_received += len(data)
        try:
            packets = self.decoder.feed(data)
        except RemoteProtocolError as exc:
            valid = getattr(exc, "packets", None)  # decoded before the bad one: act on them
            if valid:
                if state is AWAITING_SESSION:
                    self._pending[2].extend(valid)  # type: ignore[index]
                else:
                    self._run(iter(valid), now)
            if self.state is not CLOSED:
                self._protocol_error(exc, now)
            return
        if state is AWAITING_SESSION:
            self._pending[2].extend(packets)  # type: ignore[index]
            return
        self._run(iter(packets), now)

    def _run(self, packets: Iterator[Any], now: float) -> None:
        try:
            for packet in packets:
                if packet.__class__ is Publish:
                    self._on_publish(packet, now)
                else:
                    _HANDLERS[packet.__class__](self, packet, now)
                if self.state is not CONNECTED:
                    if self.state is AWAITING_SESSION:
                        self._pending[2].extend(packets)  # type: ignore[index]
                    return
        except RemoteProtocolError as exc:
            self._protocol_error(exc, now)

    def handle_closed(self, now: float) -> None:
        """The network connection is gone (if we did not close it: an unclean close)."""
        self._close(now, publish_will=True)

    def kick(self, reason_code: int, now: float) -> None:
        """Close from the server side: MQTT 5 gets DISCONNECT with the reason code first
        (0x8E session taken over, 0x8B server shutting down, 0x98 administrative)."""
        if self.state is CLOSED:
            return
        if self.state is CONNECTED and self.version == 5:
            self._write(encode(Disconnect(reason_code), 5))
        self._close(now, publish_will=True)

    # -- output -----------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        self.outlet.write(data)
        self.broker.counters.bytes_sent += len(data)

    def _close(self, now: float, publish_will: bool) -> None:
        if self.state is CLOSED:
            return
        was = self.state
        self.state = CLOSED
        self.outlet.close()
        broker = self.broker
        broker.channels.discard(self)
        if was is AWAITING_SESSION:
            self._pending = None
            if broker.waiting.get(self.client_id) is self:  # type: ignore[arg-type]
                del broker.waiting[self.client_id]  # type: ignore[arg-type]
        if was is CONNECTED:
            broker.connections -= 1
            session = self.session
            will, self.will = self.will, None
            authz = broker.authorizer
            if (
                will is not None and publish_will and authz is not None
                and not authz.authorize(self.client_info, access.Action.PUBLISH,  # type: ignore[arg-type]
                                        will.topic, will.qos, will.retain, self.authz_cache)
            ):
                will = None  # not authorized: the will is dropped
            if session is not None and session.channel is self:
                broker.detach(session, will if publish_will else None, now)

    def _protocol_error(self, exc: RemoteProtocolError, now: float) -> None:
        code = exc.reason_code
        if self.state is CONNECTING or self.state is AWAITING_SESSION:
            version = self.decoder.protocol_version or getattr(exc, "protocol_version", None)
            if version == 5:
                code = getattr(exc, "connack_code", None) or code
                self._write(encode(ConnAck(False, code), 5))
            else:
                v3_code = getattr(exc, "connack_code", None)
                if v3_code is not None:
                    self._write(bytes((0x20, 2, 0, v3_code)))
            self._close(now, publish_will=False)
            return
        if self.version == 5:
            self._write(encode(Disconnect(code), 5))
        self._close(now, publish_will=True)

    # -- CONNECT / DISCONNECT ---------------------------------------------------------------

    def _refuse(self, reason_code: int, now: float) -> None:
        """CONNACK with a failure code, then close [MQTT-3.2.2-7]."""
        if self.version == 5:
            self._write(encode(ConnAck(False, reason_code), 5))
        else:
            self._write(bytes((0x20, 2, 0, connack_return_code(reason_code))))
        self._close(now, publish_will=False)

    def _on_connect(self, p: Connect, now: float) -> None:
        if self.state is not CONNECTING:
            raise RemoteProtocolError("second CONNECT", 0x82)  # [MQTT-3.1.0-2]
        broker = self.broker
        config = broker.config
        v = self.version = p.protocol_version
        props = p.properties
        if v == 5 and props.authentication_method is not None:
            return self._refuse(0x8C, now)  # enhanced authentication is not supported
        client_id = p.client_id
        assigned = None
        if len(client_id) > config.max_clientid_len:
            return self._refuse(0x85, now)
        if not client_id:
            if v < 5 and not p.clean_start:
                return self._refuse(0x85, now)  # [MQTT-3.1.3-8] -> 0x02
            client_id = assigned = broker.sessions.assign_client_id()  # [MQTT-3.1.3-6]
        will = p.will
        if will is not None:
            if will.qos > config.max_qos_allowed:
                return self._refuse(0x9B, now)  # [MQTT-3.2.2-12]
            if will.retain and not config.retain_available:
                return self._refuse(0x9A, now)  # [MQTT-3.2.2-13]
        superuser = False
        if broker.authenticator is not None:
            result = broker.authenticator.authenticate(
                p.client_id, p.username, p.password, self.peer
            )
            if not result.ok:
                return self._refuse(result.reason_code, now)  # 0x86 / 0x87 (3.1.1: 4 / 5)
            superuser = result.is_superuser
        if broker.authenticate is not None:
            code = broker.authenticate(p)
            if code:
                return self._refuse(code, now)
        self.client_id = client_id
        if broker.authorizer is not None:
            self.client_info = access.ClientInfo(
                client_id, p.username, access.peer_host(self.peer), superuser
            )
            self.authz_cache = broker.authorizer.new_cache()
        connecting = broker.session_connecting
        if connecting is not None and connecting(client_id, p.clean_start):
            # the cluster fetches this client's session from another node; packets that
            # follow the CONNECT wait with it until `resume_connect`
            self.state = AWAITING_SESSION
            self._pending = (p, assigned, [], now + SESSION_FETCH_TIMEOUT)
            previous = broker.waiting.get(client_id)
            broker.waiting[client_id] = self
            if previous is not None:
                previous._close(now, publish_will=False)
            broker.schedule(self, now + SESSION_FETCH_TIMEOUT)
            return None
        return self._accept(p, client_id, assigned, now)

    def resume_connect(self, now: float) -> None:
        """Finish a CONNECT that was waiting for its session (imported or not coming)."""
        pending = self._pending
        if self.state is not AWAITING_SESSION or pending is None:
            return
        p, assigned, held, _ = pending
        self._pending = None
        self.state = CONNECTING
        try:
            self._accept(p, self.client_id, assigned, now)  # type: ignore[arg-type]
        except RemoteProtocolError as exc:
            self._protocol_error(exc, now)
            return
        if self.state is CONNECTED and held:
            self._run(iter(held), now)

    def _accept(self, p: Connect, client_id: str, assigned: str | None, now: float) -> None:
        broker = self.broker
        config = broker.config
        v = self.version
        will = p.will
        existing = broker.sessions.get(client_id)
        if existing is not None and existing.channel is not None:
            existing.channel.kick(0x8E, now)  # [MQTT-3.1.4-3] takeover
        session, present = broker.sessions.open(client_id, p.clean_start, v, now)
        apply_connect_limits(session, p, config)
        keep_alive = p.keep_alive
        if v == 5 and config.server_keepalive is not None:
            keep_alive = config.server_keepalive  # [MQTT-3.2.2-21]
        self.keep_alive = keep_alive * config.keepalive_multiplier
        self.session = session
        self.will = will
        self.state = CONNECTED
        session.channel = self
        session.outlet = self.outlet
        broker.connections += 1
        self._write(connack(config, self.version, present, assigned))
        if present:
            session.resume(now)
        deadline = self._next_deadline(now)
        if deadline is not None:
            broker.schedule(self, deadline)

    def _on_disconnect(self, p: Disconnect, now: float) -> None:
        publish_will = False
        if self.version == 5:
            session = self.session
            assert session is not None
            expiry = p.properties.session_expiry_interval
            if expiry is not None:
                if session.expiry_interval == 0 and expiry != 0:
                    raise RemoteProtocolError("session expiry set on DISCONNECT", 0x82)  # [MQTT-3.14.2-2]
                session.expiry_interval = float("inf") if expiry == NEVER_EXPIRES else expiry
            publish_will = p.reason_code == 0x04  # disconnect with will message
        self._close(now, publish_will)  # [MQTT-3.14.4-3] normal DISCONNECT: will discarded

    def _on_auth(self, p: Auth, now: float) -> None:
        raise RemoteProtocolError("AUTH not supported", 0x8C)

    def _on_pingreq(self, p: PingReq, now: float) -> None:
        self._write(PINGRESP)  # [MQTT-3.12.4-1]

    # -- PUBLISH and its acknowledgements ---------------------------------------------------

    def _on_publish(self, p: Publish, now: float) -> None:
        # hot path: the decoder already refused wildcards in the topic name [MQTT-3.3.2-2]
        # and an empty topic without a topic alias [MQTT-4.7.3-1]
        session = self.session
        if session is None:
            raise RemoteProtocolError("PUBLISH before CONNECT", 0x82)
        broker = self.broker
        config = broker.config
        topic = p.topic
        props = p.properties
        qos = p.qos
        expiry_at = None
        if props is not NO_PROPERTIES:
            if props.topic_alias is not None:
                topic = self._resolve_alias(topic, props.topic_alias)
            if props.message_expiry_interval is not None:
                expiry_at = now + props.message_expiry_interval
        if qos > config.max_qos_allowed:
            raise RemoteProtocolError("QoS not supported", 0x9B)  # [MQTT-3.2.2-11]
        if p.retain and not config.retain_available:
            raise RemoteProtocolError("retain not supported", 0x9A)  # [MQTT-3.2.2-14]
        if topic.count("/") >= config.max_topic_levels:
            raise RemoteProtocolError("too many topic levels", 0x90)
        pid = p.packet_id
        if qos == 2:
            if session.awaiting(pid):  # type: ignore[arg-type]
                self._write(encode_ack(PUBREC, pid))  # type: ignore[arg-type]
                return  # a resend: acknowledged again, not dispatched again [MQTT-4.3.3-9]
            if session.awaiting_count() >= config.max_awaiting_rel:
                raise RemoteProtocolError("receive maximum exceeded", 0x93)  # [MQTT-3.3.4-7]
        authz = broker.authorizer
        if authz is not None and not authz.authorize(
            self.client_info, access.Action.PUBLISH, topic, qos, p.retain,  # type: ignore[arg-type]
            self.authz_cache,
        ):
            return self._publish_denied(authz, qos, pid, now)
        message = Message(
            topic, p.payload, qos, p.retain, props, self.client_id, config.node_name,
            expiry_at, next(broker._ids),
        )
        counters = broker.counters
        counters.messages_received += 1
        counters.received_qos[qos] += 1
        broker.publish(message, now)
        if qos == 1:
            self._write(encode_ack(PUBACK, pid))  # type: ignore[arg-type]  [MQTT-4.3.2-2]
        elif qos == 2:
            session.await_rel(pid, now)  # type: ignore[arg-type]
            self._write(encode_ack(PUBREC, pid))  # type: ignore[arg-type]  [MQTT-4.3.3-8]
            broker.schedule(self, now + config.await_rel_timeout)

    def _publish_denied(
        self, authz: access.Authorizer, qos: int, pid: int | None, now: float
    ) -> None:
        """Not authorized: drop it; acknowledge with 0x87 (v5) or normally (3.1.1, which
        has no way to refuse [MQTT-3.3.5-2]), or disconnect per `deny_action`."""
        self.broker.counters.messages_dropped += 1
        if authz.deny_action is access.DenyAction.DISCONNECT:
            self.kick(0x87, now)
            return
        code = 0x87 if self.version == 5 else 0
        if qos == 1:
            self._write(encode_ack(PUBACK, pid, code))  # type: ignore[arg-type]
        elif qos == 2:
            self._write(encode_ack(PUBREC, pid, code))  # type: ignore[arg-type]

    def _resolve_alias(self, topic: str, alias: int) -> str:
        """Client -> server Topic Alias: set the mapping, or use it when the topic is empty."""
        if alias == 0 or alias > self.broker.config.max_topic_alias:
            raise RemoteProtocolError("topic alias invalid", 0x94)  # [MQTT-3.3.2-9]
        if topic:
            if self.aliases is None:
                self.aliases = {}
            self.aliases[alias] = topic  # [MQTT-3.3.2-12]
            return topic
        topic = (self.aliases or {}).get(alias, "")
        if not topic:
            raise RemoteProtocolError("unknown topic alias", 0x82)
        return topic

    def _on_puback(self, p: PubAck, now: float) -> None:
        self.session.on_puback(p.packet_id, now)  # type: ignore[union-attr]

    def _on_pubrec(self, p: PubRec, now: float) -> None:
        self.session.on_pubrec(p.packet_id, p.reason_code, now)  # type: ignore[union-attr]

    def _on_pubrel(self, p: PubRel, now: float) -> None:
        found = self.session.release(p.packet_id)  # type: ignore[union-attr]
        code = 0 if found or self.version < 5 else 0x92  # packet identifier not found
        self._write(encode_ack(PUBCOMP, p.packet_id, code))  # [MQTT-4.3.3-11]

    def _on_pubcomp(self, p: PubComp, now: float) -> None:
        self.session.on_pubcomp(p.packet_id, now)  # type: ignore[union-attr]

    # -- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------------------------

    def _on_subscribe(self, p: Subscribe, now: float) -> None:
        session = self.session
        assert session is not None
        result = subscribe(self.broker, session, p, self.version, self.client_info,
                           self.authz_cache)
        if result is None:  # a filter was not authorized and deny_action = disconnect
            self.kick(0x87, now)
            return
        codes, accepted = result
        suback = encode(SubAck(p.packet_id, tuple(codes)), self.version)
        barrier = self.broker.routes_barrier
        if accepted and barrier is not None:
            # Hold the SUBACK until every running node routes the new filters, so that a
            # publish anywhere right after it reaches this subscriber (docs/cluster.md).
            # Messages may arrive before the SUBACK meanwhile (§3.8.4 permits it); the
            # retained messages follow the SUBACK, checked against the subscribe time.
            def release() -> None:
                if self.state is CONNECTED and self.session is session:
                    self._write(suback)  # [MQTT-3.8.4-1]
                    send_retained(self.broker, session, accepted, now)

            if barrier(release):
                return
        self._write(suback)  # [MQTT-3.8.4-1]
        send_retained(self.broker, session, accepted, now)

    def _on_unsubscribe(self, p: Unsubscribe, now: float) -> None:
        session = self.session
        assert session is not None
        codes = unsubscribe(self.broker, session, p)
        self._write(encode(UnsubAck(p.packet_id, tuple(codes)), self.version))  # [MQTT-3.10.4-4]

    # -- timers -----------------------------------------------------------------------------

    def _next_deadline(self, now: float) -> float | None:
        deadlines = []
        if self.keep_alive:
            deadlines.append(self.last_activity + self.keep_alive)
        session = self.session
        if session is not None:
            if self.version < 5:
                retry = session.retry(now)
                if retry is not None:
                    deadlines.append(retry)
            rel = session.expire_awaiting_rel(now)
            if rel is not None:
                deadlines.append(rel)
        return min(deadlines) if deadlines else None

    def on_timer(self, now: float) -> float | None:
        """Connect (idle) timeout, keep alive, MQTT 3.x retry, await_rel timeout."""
        state = self.state
        if state is CONNECTING:
            deadline = self.opened_at + self.broker.config.idle_timeout
            if now >= deadline:
                self._close(now, publish_will=False)
                return None
            return deadline
        if state is CLOSED:
            return None
        if state is AWAITING_SESSION:
            deadline = self._pending[3]  # type: ignore[index]
            if now >= deadline:  # the session did not come: start without it
                if self.broker.waiting.get(self.client_id) is self:  # type: ignore[arg-type]
                    del self.broker.waiting[self.client_id]  # type: ignore[arg-type]
                self.resume_connect(now)
                return self._next_deadline(now) if self.state is CONNECTED else None
            return deadline
        if self.keep_alive and now >= self.last_activity + self.keep_alive:
            # [MQTT-3.1.2-24] no packet within 1.5 x keep alive: close as a network failure
            self.kick(0x8D, now)
            return None
        return self._next_deadline(now)


_HANDLERS: dict[type, Any] = {
    Connect: Channel._on_connect,
    Disconnect: Channel._on_disconnect,
    PubAck: Channel._on_puback,
    PubRec: Channel._on_pubrec,
    PubRel: Channel._on_pubrel,
    PubComp: Channel._on_pubcomp,
    Subscribe: Channel._on_subscribe,
    Unsubscribe: Channel._on_unsubscribe,
    PingReq: Channel._on_pingreq,
    Auth: Channel._on_auth,
}
