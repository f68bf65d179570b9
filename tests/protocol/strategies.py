"""Hypothesis strategies for every MQTT packet, per protocol version and sender."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from mqttmesh.protocol import (
    NO_PROPERTIES, Auth, ConnAck, Connect, Disconnect, PingReq, PingResp, Properties, PubAck,
    PubComp, Publish, PubRec, PubRel, SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe,
    Will,
)
from mqttmesh.protocol.reason_codes import VALID_REASON_CODES
from mqttmesh.protocol._props import BIN, BYTE, PAIR, PROPERTY_TABLE, STR, U16, U32, VBI, WILL

text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
               max_size=12)
topic_names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00+#"),
                      min_size=1, max_size=12)
u16 = st.integers(0, 65535)
nonzero_u16 = st.integers(1, 65535)
u32 = st.integers(0, 2**32 - 1)

_SPECIAL: dict[str, Any] = {
    "receive_maximum": nonzero_u16,
    "topic_alias": nonzero_u16,
    "maximum_packet_size": st.integers(1, 2**32 - 1),
}
_BY_KIND: dict[int, Any] = {
    BYTE: st.integers(0, 1), U16: u16, U32: u32, STR: text, BIN: st.binary(max_size=12),
}


def properties(packet_type: int, from_server: bool) -> st.SearchStrategy[Properties]:
    """Properties allowed in ``packet_type`` (or WILL), with valid values."""
    fields: dict[str, Any] = {}
    for name, kind, allowed in PROPERTY_TABLE.values():
        if packet_type not in allowed:
            continue
        if kind == PAIR:
            fields[name] = st.lists(st.tuples(text, text), max_size=3).map(tuple)
        elif kind == VBI:
            if packet_type == 3 and not from_server:
                continue  # [MQTT-3.3.4-6]
            ids = st.integers(1, 268_435_455)
            size = 3 if packet_type == 3 else 1
            fields[name] = st.lists(ids, max_size=size).map(tuple)
        else:
            fields[name] = st.none() | _SPECIAL.get(name, _BY_KIND[kind])

    def fix(p: Properties) -> Properties:
        if p.authentication_data is not None and p.authentication_method is None:
            return Properties(**{**{f: getattr(p, f) for f in p.__slots__},  # type: ignore[attr-defined]
                                 "authentication_data": None})
        return p

    return st.fixed_dictionaries({}, optional=fields).map(lambda kw: fix(Properties(**kw)))


def _props(v: int, ptype: int, from_server: bool) -> st.SearchStrategy[Properties]:
    return properties(ptype, from_server) if v == 5 else st.just(NO_PROPERTIES)


pids = nonzero_u16


@st.composite
def connects(draw: Any, v: int) -> Connect:
    clean = draw(st.booleans())
    if v == 3:
        client_id = draw(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                                 min_size=1, max_size=23))
    elif v == 4 and not clean:
        client_id = draw(text.filter(bool))
    else:
        client_id = draw(text)
    will = None
    if draw(st.booleans()):
        will = Will(draw(topic_names), draw(st.binary(max_size=12)), draw(st.integers(0, 2)),
                    draw(st.booleans()), draw(_props(v, WILL, False)))
    username = draw(st.none() | text)
    password = draw(st.none() | st.binary(max_size=12))
    if v < 5 and username is None:
        password = None
    return Connect(client_id, v, "MQIsdp" if v == 3 else "MQTT", clean, draw(u16), will,
                   username, password, draw(_props(v, 1, False)))


@st.composite
def publishes(draw: Any, v: int, from_server: bool) -> Publish:
    qos = draw(st.integers(0, 2))
    props = draw(_props(v, 3, from_server))
    topic = draw(topic_names | st.just("")) if props.topic_alias else draw(topic_names)
    return Publish(topic, draw(st.binary(max_size=40)), qos, draw(st.booleans()),
                   draw(st.booleans()) if qos else False, draw(pids) if qos else None, props)


@st.composite
def subscribes(draw: Any, v: int) -> Subscribe:
    subs = []
    for _ in range(draw(st.integers(1, 3))):
        f = draw(text)
        if v < 5:
            subs.append(Subscription(f, draw(st.integers(0, 2))))
        else:
            no_local = draw(st.booleans()) and not f.startswith("$share/")
            subs.append(Subscription(f, draw(st.integers(0, 2)), no_local, draw(st.booleans()),
                                     draw(st.integers(0, 2))))
    return Subscribe(draw(pids), tuple(subs), draw(_props(v, 8, False)))


def _reason(v: int, ptype: int) -> st.SearchStrategy[int]:
    return st.sampled_from(sorted(VALID_REASON_CODES[ptype])) if v == 5 else st.just(0)


def client_packets(v: int) -> st.SearchStrategy[Any]:
    """Packets a client sends after its CONNECT."""
    acks = [st.builds(cls, pids, _reason(v, cls.TYPE), _props(v, cls.TYPE, False))
            for cls in (PubAck, PubRec, PubRel, PubComp)]
    options = [
        publishes(v, False), subscribes(v), *acks,
        st.builds(Unsubscribe, pids, st.lists(text, min_size=1, max_size=3).map(tuple),
                  _props(v, 10, False)),
        st.just(PingReq()),
        st.builds(Disconnect, _reason(v, 14), _props(v, 14, False)),
    ]
    if v == 5:
        options.append(st.builds(Auth, _reason(v, 15), _props(v, 15, False)))
    return st.one_of(options)


def server_packets(v: int) -> st.SearchStrategy[Any]:
    """Packets a server sends."""
    acks = [st.builds(cls, pids, _reason(v, cls.TYPE), _props(v, cls.TYPE, True))
            for cls in (PubAck, PubRec, PubRel, PubComp)]
    codes = (st.sampled_from(sorted(VALID_REASON_CODES[9])) if v == 5
             else st.sampled_from([0, 1, 2, 0x80]))
    unsub_codes = st.sampled_from(sorted(VALID_REASON_CODES[11]))
    options = [
        st.builds(ConnAck, st.booleans(),
                  st.sampled_from(sorted(VALID_REASON_CODES[2])) if v == 5 else st.integers(0, 5),
                  _props(v, 2, True)),
        publishes(v, True), *acks,
        st.builds(SubAck, pids, st.lists(codes, min_size=1, max_size=4).map(tuple),
                  _props(v, 9, True)),
        st.builds(UnsubAck, pids,
                  st.lists(unsub_codes, max_size=4).map(tuple) if v == 5 else st.just(()),
                  _props(v, 11, True)),
        st.just(PingResp()),
        st.builds(Disconnect, _reason(v, 14), _props(v, 14, True)),
    ]
    if v == 5:
        options.append(st.builds(Auth, _reason(v, 15), _props(v, 15, True)))
    return st.one_of(options)
