"""Malformed and protocol-violating input, as raw byte streams a client sends to a node.

Each `Case` is one byte stream and the error it must cause:

    Case(name, version, hex_in, expected, connack=None, after_connect=True, rule="")

- ``name``: unique, ``<class>/<detail>``, e.g. ``flags/PUBACK/0x41``.
- ``version``: 3 (MQTT 3.1), 4 (3.1.1) or 5 (5.0): the protocol the stream speaks.
- ``hex_in``: the whole stream, in hex. When ``after_connect`` is true it starts with a valid
  CONNECT (clean start, keep alive 60, client id ``"c"``; no will, user name or properties)
  followed by exactly one bad packet; otherwise the bad packet is the first one (a bad
  CONNECT, or a packet that is not a CONNECT at all).
- ``expected``: the reason code `mqttmesh.protocol.Decoder` raises (RemoteProtocolError's
  ``reason_code``): 0x81 Malformed Packet, 0x82 Protocol Error, 0x84 Unsupported Protocol
  Version, 0x85 Client Identifier not valid, 0x90 Topic Name invalid, 0x94 Topic Alias invalid.
- ``connack``: only when ``after_connect`` is false: the CONNACK code the server sends before
  closing (MQTT 5: the reason code; 3.1/3.1.1: the return code), None = close without CONNACK.
- ``rule``: the spec's rule id or section, for humans.

What a node must do (the TCP replay): after a valid CONNECT it answers CONNACK 0; on the bad
packet an MQTT 5 node sends DISCONNECT with ``expected`` and closes; a 3.1 / 3.1.1 node just
closes. For a bad CONNECT it sends CONNACK ``connack`` (if not None) and closes.

This module depends on nothing but the standard library: the bytes are built here by hand,
not by the codec under test.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Case", "CASES", "connect_bytes"]


@dataclass(frozen=True)
class Case:
    name: str
    version: int
    hex_in: str
    expected: int
    connack: int | None = None
    after_connect: bool = True
    rule: str = ""

    @property
    def data(self) -> bytes:
        return bytes.fromhex(self.hex_in)


# -- byte builders --------------------------------------------------------------------------

def vbi(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(v: bytes | str) -> bytes:
    b = v.encode() if isinstance(v, str) else v
    return len(b).to_bytes(2, "big") + b


def pkt(b0: int, body: bytes) -> bytes:
    return bytes((b0,)) + vbi(len(body)) + body


def props(*items: bytes) -> bytes:
    body = b"".join(items)
    return vbi(len(body)) + body


def connect_body(v: int, client_id: bytes = b"c", *, flags: int | None = None,
                 cprops: bytes = b"\x00", will: tuple[bytes, bytes, bytes] | None = None,
                 username: bytes | None = None, password: bytes | None = None,
                 name: bytes | None = None, level: int | None = None) -> bytes:
    """CONNECT body; ``will`` = (will properties block, topic, payload)."""
    if flags is None:
        flags = 0x02 | (0x04 if will else 0) | (0x80 if username is not None else 0)
        flags |= 0x40 if password is not None else 0
    body = s(name if name is not None else (b"MQIsdp" if v == 3 else b"MQTT"))
    body += bytes((level if level is not None else v, flags)) + b"\x00\x3c"
    if v == 5:
        body += cprops
    body += s(client_id)
    if will:
        body += (will[0] if v == 5 else b"") + s(will[1]) + s(will[2])
    if username is not None:
        body += s(username)
    if password is not None:
        body += s(password)
    return body


def connect_bytes(v: int, client_id: bytes = b"c", **kw: object) -> bytes:
    return pkt(0x10, connect_body(v, client_id, **kw))  # type: ignore[arg-type]


def publish(v: int, topic: bytes = b"t", payload: bytes = b"x", qos: int = 1, pid: int = 1,
            pprops: bytes = b"\x00", b0: int | None = None) -> bytes:
    body = s(topic) + (pid.to_bytes(2, "big") if qos else b"") + (pprops if v == 5 else b"")
    return pkt(b0 if b0 is not None else 0x30 | qos << 1, body + payload)


def subscribe(v: int, filt: bytes = b"a/b", opts: int = 1, pid: int = 1,
              sprops: bytes = b"\x00") -> bytes:
    return pkt(0x82, pid.to_bytes(2, "big") + (sprops if v == 5 else b"") + s(filt)
               + bytes((opts,)))


def unsubscribe(v: int, filt: bytes = b"a/b", pid: int = 1, uprops: bytes = b"\x00") -> bytes:
    return pkt(0xA2, pid.to_bytes(2, "big") + (uprops if v == 5 else b"") + s(filt))


def ack(b0: int, v: int, pid: int = 1, aprops: bytes | None = None) -> bytes:
    body = pid.to_bytes(2, "big")
    if v == 5 and aprops is not None:
        body += b"\x00" + aprops
    return pkt(b0, body)


VERSIONS = (3, 4, 5)
CASES: list[Case] = []


def add(name: str, v: int, stream: bytes, expected: int, rule: str = "", *,
        bad_connect: bool = False, connack: int | None = -1) -> None:
    """Add a case; ``stream`` is the bad packet (prefixed by a valid CONNECT unless
    ``bad_connect``). For bad CONNECTs connack defaults to ``expected`` on MQTT 5, None else."""
    if bad_connect:
        if connack == -1:
            connack = expected if v == 5 else None
        CASES.append(Case(f"{name}/v{v}", v, stream.hex(), expected, connack, False, rule))
    else:
        CASES.append(Case(f"{name}/v{v}", v, (connect_bytes(v) + stream).hex(), expected,
                          None, True, rule))


# -- fixed header ---------------------------------------------------------------------------
# Correctly flagged minimal packets a client sends, per type (first byte's low nibble 0).
def _client_packets(v: int) -> dict[str, bytes]:
    d = {
        "CONNECT": connect_bytes(v),
        "PUBACK": ack(0x40, v), "PUBREC": ack(0x50, v), "PUBREL": ack(0x62, v),
        "PUBCOMP": ack(0x70, v), "SUBSCRIBE": subscribe(v), "UNSUBSCRIBE": unsubscribe(v),
        "PINGREQ": b"\xc0\x00", "DISCONNECT": b"\xe0\x00",
    }
    if v == 5:
        d["AUTH"] = b"\xf0\x00"
    return d


for v in VERSIONS:
    rule = "[MQTT-2.1.3-1]" if v == 5 else "[MQTT-2.2.2-2]"
    for ptype, raw in _client_packets(v).items():
        good = raw[0] & 0x0F
        for flags in range(16) if v > 3 else ():  # MQTT 3.1 reserved no flag values
            if flags == good:
                continue
            bad = bytes((raw[0] & 0xF0 | flags,)) + raw[1:]
            add(f"flags/{ptype}/0x{bad[0]:02X}", v, bad, 0x81, rule,
                bad_connect=ptype == "CONNECT")
    add("remaining-length/5-bytes", v, b"\x30\xff\xff\xff\xff\x01", 0x81, "[MQTT-1.5.5-1]")
    add("remaining-length/5-bytes-ping", v, b"\xc0\x80\x80\x80\x80\x00", 0x81, "[MQTT-1.5.5-1]")
    add("type/reserved-0", v, b"\x00\x00", 0x81, "§2.1.2")
    if v < 5:
        add("type/AUTH-before-v5", v, b"\xf0\x00", 0x81, "3.1.1 §2.2.1 reserved")
    # packets only a server sends [MQTT-3.2.0-?] / roles of §2.1.2
    server_only = {"CONNACK": pkt(0x20, b"\x00\x00" + (b"\x00" if v == 5 else b"")),
                   "SUBACK": pkt(0x90, b"\x00\x01" + (b"\x00" if v == 5 else b"") + b"\x00"),
                   "UNSUBACK": pkt(0xB0, b"\x00\x01" + (b"\x00\x00" if v == 5 else b"")),
                   "PINGRESP": b"\xd0\x00"}
    for ptype, raw in server_only.items():
        add(f"role/server-only/{ptype}", v, raw, 0x82, "§2.1.2 direction")
    # the first packet must be CONNECT [MQTT-3.1.0-1]; only one CONNECT [MQTT-3.1.0-2]
    for ptype, raw in _client_packets(v).items():
        if ptype != "CONNECT":
            add(f"order/first-packet-{ptype}", v, raw, 0x82, "[MQTT-3.1.0-1]",
                bad_connect=True, connack=None)
    add("order/first-packet-PUBLISH", v, publish(v), 0x82, "[MQTT-3.1.0-1]", bad_connect=True,
        connack=None)
    add("order/second-CONNECT", v, connect_bytes(v), 0x82, "[MQTT-3.1.0-2]")

# -- lengths: fields past the end, trailing bytes -------------------------------------------
for v in VERSIONS:
    ok = connect_body(v)
    for cut in range(len(ok)):
        # every proper prefix of a valid CONNECT body is short of its fields; the version is
        # only known (and an MQTT 5 CONNACK sendable) once the protocol level was read
        level_known = cut >= len(s(b"MQIsdp" if v == 3 else b"MQTT")) + 1
        add(f"length/CONNECT-cut-{cut}", v, pkt(0x10, ok[:cut]), 0x81, "§1.5",
            bad_connect=True, connack=0x81 if v == 5 and level_known else None)
    add("length/CONNECT-trailing", v, pkt(0x10, ok + b"\x00"), 0x81, "§3.1",
        bad_connect=True)
    add("length/CONNECT-username-missing", v, pkt(0x10, connect_body(v, flags=0x82)), 0x81,
        "[MQTT-3.1.2-19]", bad_connect=True)
    add("length/CONNECT-password-missing", v, pkt(0x10, connect_body(v, flags=0xC2) + s("u")),
        0x81, "[MQTT-3.1.2-21]", bad_connect=True)
    add("length/CONNECT-will-missing", v, pkt(0x10, connect_body(v, flags=0x06)), 0x81,
        "[MQTT-3.1.2-9]", bad_connect=True)
    add("length/PUBLISH-topic-past-end", v, pkt(0x32, b"\x00\x0aabc"), 0x81, "§1.5.4")
    add("length/PUBLISH-no-topic-length", v, pkt(0x30, b"\x00"), 0x81, "§3.3.2.1")
    add("length/PUBLISH-empty-body", v, pkt(0x30, b""), 0x81, "§3.3.2.1")
    add("length/PUBLISH-qos1-no-packet-id", v, pkt(0x32, s("t")), 0x81, "§3.3.2.2")
    add("length/PUBLISH-qos2-half-packet-id", v, pkt(0x34, s("t") + b"\x01"), 0x81, "§3.3.2.2")
    for name, b0 in (("PUBACK", 0x40), ("PUBREC", 0x50), ("PUBREL", 0x62), ("PUBCOMP", 0x70)):
        add(f"length/{name}-empty", v, pkt(b0, b""), 0x81, "§2.2.1")
        add(f"length/{name}-1-byte", v, pkt(b0, b"\x01"), 0x81, "§2.2.1")
        if v < 5:
            add(f"length/{name}-trailing", v, pkt(b0, b"\x00\x01\x00"), 0x81, "3.1.1 §3.4.1")
        else:
            add(f"length/{name}-props-past-end", v, pkt(b0, b"\x00\x01\x00\x05\x1f"), 0x81,
                "§2.2.2.1")
            add(f"length/{name}-trailing", v, pkt(b0, b"\x00\x01\x00\x00\x00"), 0x81, "§3.4")
    add("length/SUBSCRIBE-no-options", v,
        pkt(0x82, b"\x00\x01" + (b"\x00" if v == 5 else b"") + s("a/b")), 0x81, "§3.8.3")
    add("length/SUBSCRIBE-filter-past-end", v,
        pkt(0x82, b"\x00\x01" + (b"\x00" if v == 5 else b"") + b"\x00\x09a/b"), 0x81, "§1.5.4")
    add("length/SUBSCRIBE-half-packet-id", v, pkt(0x82, b"\x01"), 0x81, "§2.2.1")
    add("length/SUBSCRIBE-trailing-byte", v, pkt(0x82, subscribe(v)[2:] + b"\x00"), 0x81,
        "§3.8.3")
    add("length/UNSUBSCRIBE-filter-past-end", v,
        pkt(0xA2, b"\x00\x01" + (b"\x00" if v == 5 else b"") + b"\x00\x09a/b"), 0x81, "§1.5.4")
    add("length/UNSUBSCRIBE-trailing-byte", v, pkt(0xA2, unsubscribe(v)[2:] + b"\x00"), 0x81,
        "§3.10.3")
    add("length/PINGREQ-trailing", v, pkt(0xC0, b"\x00"), 0x81, "§3.12")
    if v < 5:
        add("length/DISCONNECT-trailing", v, pkt(0xE0, b"\x00"), 0x81, "3.1.1 §3.14")
    else:
        add("length/DISCONNECT-props-past-end", v, pkt(0xE0, b"\x00\x03\x11"), 0x81, "§3.14")
        add("length/DISCONNECT-trailing", v, pkt(0xE0, b"\x00\x00\x00"), 0x81, "§3.14")
        add("length/AUTH-props-past-end", v, pkt(0xF0, b"\x18\x03"), 0x81, "§3.15")
        add("length/PUBLISH-props-past-end", v, pkt(0x30, s("t") + b"\x09\x01"), 0x81,
            "§2.2.2.1")
        add("length/CONNECT-props-past-end", v, pkt(0x10, connect_body(v, cprops=b"\x40")),
            0x81, "§2.2.2.1", bad_connect=True)
        add("length/CONNECT-will-props-past-end", v,
            pkt(0x10, connect_body(v, will=(b"\x40", b"w", b"x"))), 0x81, "§3.1.3.2",
            bad_connect=True)
        add("length/property-length-5-bytes", v, pkt(0x30, s("t") + b"\xff\xff\xff\xff\x01"),
            0x81, "[MQTT-1.5.5-1]")
        add("length/property-value-past-block", v,
            pkt(0x30, s("t") + props(b"\x02\x00\x00") + b"\x00\x00"), 0x81, "§2.2.2.2")

# -- PUBLISH fixed header and topic name ----------------------------------------------------
for v in VERSIONS:
    for b0 in (0x36, 0x37, 0x3E, 0x3F):
        add(f"publish/qos3/0x{b0:02X}", v, publish(v, b0=b0), 0x81, "[MQTT-3.3.1-4]")
    for b0 in (0x38, 0x39):
        add(f"publish/dup-qos0/0x{b0:02X}", v, publish(v, qos=0, b0=b0),
            0x81 if v == 5 else 0x82, "[MQTT-3.3.1-2]")
    for topic in ("+", "#", "a/+", "a/#", "+/a", "#/a", "a+b", "a#b", "a/+/b"):
        add(f"publish/wildcard-topic/{topic}", v, publish(v, topic=topic.encode()), 0x90,
            "[MQTT-3.3.2-2]")
    add("publish/empty-topic", v, publish(v, topic=b""), 0x82,
        "§3.3.2.1" if v == 5 else "[MQTT-4.7.3-1]")
    add("publish/empty-topic-qos0", v, publish(v, topic=b"", qos=0), 0x82, "[MQTT-4.7.3-1]")

# -- packet identifier 0 [MQTT-2.2.1-3] / [MQTT-2.3.1-1] ------------------------------------
for v in VERSIONS:
    rule = "[MQTT-2.2.1-3]" if v == 5 else "[MQTT-2.3.1-1]"
    add("packet-id-0/PUBLISH-qos1", v, publish(v, qos=1, pid=0), 0x81, rule)
    add("packet-id-0/PUBLISH-qos2", v, publish(v, qos=2, pid=0), 0x81, rule)
    for name, b0 in (("PUBACK", 0x40), ("PUBREC", 0x50), ("PUBREL", 0x62), ("PUBCOMP", 0x70)):
        add(f"packet-id-0/{name}", v, ack(b0, v, pid=0), 0x81, rule)
    add("packet-id-0/SUBSCRIBE", v, subscribe(v, pid=0), 0x81, rule)
    add("packet-id-0/UNSUBSCRIBE", v, unsubscribe(v, pid=0), 0x81, rule)

# -- SUBSCRIBE / UNSUBSCRIBE payloads -------------------------------------------------------
for v in VERSIONS:
    add("subscribe/no-filters", v, pkt(0x82, b"\x00\x01" + (b"\x00" if v == 5 else b"")), 0x82,
        "[MQTT-3.8.3-2]" if v == 5 else "[MQTT-3.8.3-3]")
    add("unsubscribe/no-filters", v, pkt(0xA2, b"\x00\x01" + (b"\x00" if v == 5 else b"")),
        0x82, "[MQTT-3.10.3-2]")
    add("subscribe/qos3", v, subscribe(v, opts=3), 0x81, "§3.8.3.1")
    if v < 5:
        for bit in range(2, 8):
            add(f"subscribe/reserved-bit-{bit}", v, subscribe(v, opts=1 | 1 << bit), 0x81,
                "[MQTT-3-8.3-4]")
    else:
        for opts in (0x40, 0x80, 0xC0, 0xC1, 0x7D):
            add(f"subscribe/reserved-bits-0x{opts:02X}", v, subscribe(v, opts=opts), 0x81,
                "[MQTT-3.8.3-5]")
        add("subscribe/retain-handling-3", v, subscribe(v, opts=0x30), 0x82, "§3.8.3.1")
        add("subscribe/no-local-shared", v, subscribe(v, b"$share/g/a", opts=0x04), 0x82,
            "[MQTT-3.8.3-4]")
        add("subscribe/second-filter-bad-options", v,
            pkt(0x82, b"\x00\x01\x00" + s("a") + b"\x00" + s("b") + b"\x80"), 0x81,
            "[MQTT-3.8.3-5]")

# -- CONNECT variable header ----------------------------------------------------------------
# An unknown protocol name / level: the version is unknown, so the CONNACK (if any) is in the
# 3.1.1 format; these cases are listed once, as version 4.
for name, level in ((b"MQTT", 3), (b"MQTT", 6), (b"MQTT", 0), (b"MQTT", 2), (b"MQTT", 0x85),
                    (b"MQTT", 0xFF), (b"MQIsdp", 4), (b"MQIsdp", 5), (b"MQIsdp", 1)):
    add(f"connect/protocol-level/{name.decode()}-{level}", 4,
        pkt(0x10, connect_body(4, name=name, level=level)), 0x84, "[MQTT-3.1.2-2]",
        bad_connect=True, connack=0x01)
for name in (b"MQTX", b"mqtt", b"MQ", b"", b"MQTTT", b"MQIsdP", b"MQTT "):
    for level in (3, 4, 5):
        add(f"connect/protocol-name/{name.decode() or 'empty'}-{level}", 4,
            pkt(0x10, connect_body(4, name=name, level=level)), 0x84, "[MQTT-3.1.2-1]",
            bad_connect=True, connack=None)
for v in VERSIONS:
    w = (b"\x00", b"w", b"x")
    add("connect/reserved-flag", v, pkt(0x10, connect_body(v, flags=0x03)), 0x81,
        "[MQTT-3.1.2-3]", bad_connect=True)
    add("connect/reserved-flag-with-will", v, pkt(0x10, connect_body(v, flags=0x07, will=w)),
        0x81, "[MQTT-3.1.2-3]", bad_connect=True)
    for flags, what in ((0x0A, "qos1"), (0x12, "qos2"), (0x1A, "qos3"), (0x22, "retain"),
                        (0x3A, "qos3-retain")):
        add(f"connect/will-flag-0-{what}", v, pkt(0x10, connect_body(v, flags=flags)), 0x81,
            "[MQTT-3.1.2-11]", bad_connect=True)
    add("connect/will-qos3", v, pkt(0x10, connect_body(v, flags=0x1E, will=w)), 0x81,
        "[MQTT-3.1.2-12]" if v == 5 else "[MQTT-3.1.2-14]", bad_connect=True)
    add("connect/will-qos3-retain", v, pkt(0x10, connect_body(v, flags=0x3E, will=w)), 0x81,
        "[MQTT-3.1.2-12]" if v == 5 else "[MQTT-3.1.2-14]", bad_connect=True)
    for topic in (b"a/+", b"#", b""):
        add(f"connect/will-topic/{topic.decode() or 'empty'}", v,
            pkt(0x10, connect_body(v, will=(b"\x00", topic, b"x"))), 0x90, "[MQTT-3.3.2-2]",
            bad_connect=True)
    if v < 5:
        add("connect/password-without-username", v, pkt(0x10, connect_body(v, password=b"p")),
            0x81, "[MQTT-3.1.2-22]", bad_connect=True)
    if v == 4:
        add("connect/empty-client-id-persistent", v,
            pkt(0x10, connect_body(v, b"", flags=0x00)), 0x85, "[MQTT-3.1.3-8]",
            bad_connect=True, connack=0x02)
    if v == 3:
        add("connect/empty-client-id", v, pkt(0x10, connect_body(v, b"")), 0x85, "3.1 §3.1",
            bad_connect=True, connack=0x02)
        add("connect/client-id-24-chars", v, pkt(0x10, connect_body(v, b"c" * 24)), 0x85,
            "3.1 §3.1", bad_connect=True, connack=0x02)

# -- UTF-8 Encoded Strings [MQTT-1.5.4-1] [MQTT-1.5.4-2] / [MQTT-1.5.3-1] [MQTT-1.5.3-2] ---
BAD_UTF8 = {
    "lone-continuation": b"a\x80b",
    "overlong-2": b"\xc0\xaf",
    "overlong-nul": b"\xc0\x80",
    "overlong-3": b"\xe0\x80\xaf",
    "overlong-4": b"\xf0\x80\x80\xaf",
    "surrogate-high": b"\xed\xa0\x80",
    "surrogate-low": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\xbd\xed\xb2\xa9",
    "truncated-2": b"a\xc3",
    "truncated-3": b"\xe2\x82",
    "truncated-4": b"\xf0\x9f\x98",
    "byte-fe": b"\xfe",
    "byte-ff": b"\xff",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "5-byte-form": b"\xf8\x88\x80\x80\x80",
    "nul": b"a\x00b",
}


def _string_fields(v: int) -> dict[str, tuple[object, bool]]:
    """field name -> (bad string -> packet bytes, is it a CONNECT)."""
    f: dict[str, tuple[object, bool]] = {
        "CONNECT.client_id": (lambda b: connect_bytes(v, b), True),
        "CONNECT.will_topic": (lambda b: connect_bytes(v, will=(b"\x00", b, b"x")), True),
        "CONNECT.username": (lambda b: connect_bytes(v, username=b), True),
        "PUBLISH.topic": (lambda b: publish(v, topic=b), False),
        "PUBLISH-qos0.topic": (lambda b: publish(v, topic=b, qos=0), False),
        "SUBSCRIBE.filter": (lambda b: subscribe(v, b), False),
        "UNSUBSCRIBE.filter": (lambda b: unsubscribe(v, b), False),
    }
    if v == 5:
        def prop_str(pid: int, b: bytes) -> bytes:
            return props(bytes((pid,)) + s(b))

        f.update({
            "CONNECT.user_property.key": (lambda b: connect_bytes(
                v, cprops=props(b"\x26" + s(b) + s("v"))), True),
            "CONNECT.user_property.value": (lambda b: connect_bytes(
                v, cprops=props(b"\x26" + s("k") + s(b))), True),
            "CONNECT.authentication_method": (lambda b: connect_bytes(
                v, cprops=prop_str(0x15, b)), True),
            "WILL.content_type": (lambda b: connect_bytes(
                v, will=(prop_str(0x03, b), b"w", b"x")), True),
            "WILL.response_topic": (lambda b: connect_bytes(
                v, will=(prop_str(0x08, b), b"w", b"x")), True),
            "PUBLISH.content_type": (lambda b: publish(v, pprops=prop_str(0x03, b)), False),
            "PUBLISH.response_topic": (lambda b: publish(v, pprops=prop_str(0x08, b)), False),
            "PUBLISH.user_property.key": (lambda b: publish(
                v, pprops=props(b"\x26" + s(b) + s("v"))), False),
            "PUBLISH.user_property.value": (lambda b: publish(
                v, pprops=props(b"\x26" + s("k") + s(b))), False),
            "PUBACK.reason_string": (lambda b: ack(0x40, v, aprops=prop_str(0x1F, b)), False),
            "SUBSCRIBE.user_property": (lambda b: subscribe(
                v, sprops=props(b"\x26" + s(b) + s("v"))), False),
            "UNSUBSCRIBE.user_property": (lambda b: unsubscribe(
                v, uprops=props(b"\x26" + s("k") + s(b))), False),
            "DISCONNECT.reason_string": (lambda b: pkt(0xE0, b"\x00" + prop_str(0x1F, b)),
                                         False),
            "AUTH.reason_string": (lambda b: pkt(0xF0, b"\x18" + props(
                b"\x15" + s("m") + b"\x1f" + s(b))), False),
        })
    return f


for v in VERSIONS:
    for field, (build, is_connect) in _string_fields(v).items():
        for kind, bad in BAD_UTF8.items():
            if v == 5:
                rule = "[MQTT-1.5.4-2]" if kind == "nul" else "[MQTT-1.5.4-1]"
            else:
                rule = "[MQTT-1.5.3-2]" if kind == "nul" else "[MQTT-1.5.3-1]"
            add(f"utf8/{field}/{kind}", v, build(bad), 0x81, rule,  # type: ignore[operator]
                bad_connect=is_connect)

# -- MQTT 5 properties (§2.2.2.2) -----------------------------------------------------------
_U16, _U32 = b"\x00\x0a", b"\x00\x00\x03\xe8"
SAMPLE = {  # property id -> a valid value
    0x01: b"\x01", 0x02: _U32, 0x03: s("c"), 0x08: s("r"), 0x09: s(b"\x01"), 0x0B: b"\x05",
    0x11: _U32, 0x12: s("id"), 0x13: _U16, 0x15: s("m"), 0x16: s(b"\x01"), 0x17: b"\x01",
    0x18: _U32, 0x19: b"\x01", 0x1A: s("ri"), 0x1C: s("sr"), 0x1F: s("why"), 0x21: _U16,
    0x22: _U16, 0x23: _U16, 0x24: b"\x01", 0x25: b"\x01", 0x26: s("k") + s("v"), 0x27: _U32,
    0x28: b"\x01", 0x29: b"\x01", 0x2A: b"\x01",
}
CONTEXTS = {  # where a client puts properties -> (allowed ids, builder, is it a CONNECT)
    "CONNECT": ({0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27},
                lambda blk: connect_bytes(5, cprops=blk), True),
    "WILL": ({0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26},
             lambda blk: connect_bytes(5, will=(blk, b"w", b"x")), True),
    "PUBLISH": ({0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26},
                lambda blk: publish(5, pprops=blk), False),
    "PUBACK": ({0x1F, 0x26}, lambda blk: ack(0x40, 5, aprops=blk), False),
    "PUBREC": ({0x1F, 0x26}, lambda blk: ack(0x50, 5, aprops=blk), False),
    "PUBREL": ({0x1F, 0x26}, lambda blk: ack(0x62, 5, aprops=blk), False),
    "PUBCOMP": ({0x1F, 0x26}, lambda blk: ack(0x70, 5, aprops=blk), False),
    "SUBSCRIBE": ({0x0B, 0x26}, lambda blk: subscribe(5, sprops=blk), False),
    "UNSUBSCRIBE": ({0x26}, lambda blk: unsubscribe(5, uprops=blk), False),
    "DISCONNECT": ({0x11, 0x1C, 0x1F, 0x26}, lambda blk: pkt(0xE0, b"\x00" + blk), False),
    "AUTH": ({0x15, 0x16, 0x1F, 0x26}, lambda blk: pkt(0xF0, b"\x18" + blk), False),
}
UNKNOWN_IDS = [0x00, 0x04, 0x05, 0x06, 0x07, 0x0A, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x14, 0x1B,
               0x1D, 0x1E, 0x20, 0x2B, 0x2C, 0x40, 0x7F, 0x80, 0xFF]


def _p(pid: int, value: bytes | None = None) -> bytes:
    return bytes((pid,)) + (SAMPLE[pid] if value is None else value)


for ctx, (allowed, build, is_connect) in CONTEXTS.items():
    for pid in SAMPLE:
        if pid not in allowed:
            add(f"property/not-allowed/{ctx}/0x{pid:02X}", 5, build(props(_p(pid))),
                0x81, "§2.2.2.2", bad_connect=is_connect)
        elif pid != 0x26:
            add(f"property/duplicate/{ctx}/0x{pid:02X}", 5, build(props(_p(pid) + _p(pid))),
                0x82, "§2.2.2.2", bad_connect=is_connect)
    if ctx in ("CONNECT", "PUBLISH", "SUBSCRIBE", "WILL"):
        for pid in UNKNOWN_IDS:
            add(f"property/unknown/{ctx}/0x{pid:02X}", 5, build(props(bytes((pid, 1)))), 0x81,
                "§2.2.2.2", bad_connect=is_connect)

_C, _W = CONTEXTS["CONNECT"][1], CONTEXTS["WILL"][1]
_BAD_VALUES = [  # (name, stream, expected, rule, is it a CONNECT)
    ("CONNECT.receive_maximum-0", _C(props(_p(0x21, b"\x00\x00"))), 0x82, "§3.1.2.11.3", True),
    ("CONNECT.maximum_packet_size-0", _C(props(_p(0x27, b"\x00" * 4))), 0x82, "§3.1.2.11.4",
     True),
    ("CONNECT.request_problem_information-2", _C(props(_p(0x17, b"\x02"))), 0x82,
     "§3.1.2.11.7", True),
    ("CONNECT.request_response_information-2", _C(props(_p(0x19, b"\x02"))), 0x82,
     "§3.1.2.11.6", True),
    ("CONNECT.request_response_information-255", _C(props(_p(0x19, b"\xff"))), 0x82,
     "§3.1.2.11.6", True),
    ("CONNECT.authentication_data-without-method", _C(props(_p(0x16))), 0x82,
     "§3.1.2.11.10", True),
    ("WILL.payload_format_indicator-2", _W(props(_p(0x01, b"\x02"))), 0x82, "§3.1.3.2.3", True),
    ("PUBLISH.payload_format_indicator-2", publish(5, pprops=props(_p(0x01, b"\x02"))), 0x82,
     "§3.3.2.3.2", False),
    ("PUBLISH.payload_format_indicator-255", publish(5, pprops=props(_p(0x01, b"\xff"))), 0x82,
     "§3.3.2.3.2", False),
    ("PUBLISH.topic_alias-0", publish(5, pprops=props(_p(0x23, b"\x00\x00"))), 0x94,
     "§3.3.2.3.4", False),
    ("PUBLISH.topic_alias-0-empty-topic", publish(5, b"", pprops=props(_p(0x23, b"\x00\x00"))),
     0x94, "§3.3.2.3.4", False),
    ("PUBLISH.subscription_identifier-from-client", publish(5, pprops=props(_p(0x0B))), 0x82,
     "[MQTT-3.3.4-6]", False),
    ("PUBLISH.property-length-past-packet", publish(5, payload=b"", pprops=b"\x05"), 0x81,
     "§2.2.2.1", False),
    ("SUBSCRIBE.subscription_identifier-0", subscribe(5, sprops=props(_p(0x0B, b"\x00"))), 0x82,
     "§3.8.2.1.2", False),
    ("SUBSCRIBE.subscription_identifier-5-bytes",
     subscribe(5, sprops=props(_p(0x0B, b"\x80\x80\x80\x80\x01"))), 0x81, "[MQTT-1.5.5-1]",
     False),
    ("SUBSCRIBE.subscription_identifier-truncated", subscribe(5, sprops=props(_p(0x0B, b"\x80"))),
     0x81, "§1.5.5", False),
    ("AUTH.authentication_data-without-method", pkt(0xF0, b"\x18" + props(_p(0x16))), 0x82,
     "§3.15.2.2", False),
    ("PUBLISH.user_property-missing-value", publish(5, pprops=props(b"\x26" + s("k"))), 0x81,
     "§1.5.7", False),
    ("PUBLISH.u32-truncated", publish(5, pprops=props(b"\x02\x00\x00")), 0x81, "§1.5.3", False),
    ("PUBLISH.u16-truncated", publish(5, pprops=props(b"\x23\x00")), 0x81, "§1.5.2", False),
    ("PUBLISH.byte-missing", publish(5, pprops=props(b"\x01")), 0x81, "§1.5.1", False),
    ("PUBLISH.binary-past-block", publish(5, pprops=props(b"\x09\x00\x09")), 0x81, "§1.5.6",
     False),
]
for _name, _stream, _expected, _rule, _is_connect in _BAD_VALUES:
    add(f"property/value/{_name}", 5, _stream, _expected, _rule,
        bad_connect=_is_connect)

# -- MQTT 5 reason codes a packet does not define: Protocol Error --------------------------
_INVALID_REASONS = {
    "PUBACK": (0x40, [0x01, 0x04, 0x11, 0x81, 0x92, 0xFF]),  # [MQTT-3.4.2-1]
    "PUBREC": (0x50, [0x01, 0x04, 0x11, 0x81, 0x92, 0xFF]),  # [MQTT-3.5.2-1]
    "PUBREL": (0x62, [0x01, 0x10, 0x80, 0x91, 0xFF]),  # [MQTT-3.6.2-1]
    "PUBCOMP": (0x70, [0x01, 0x10, 0x80, 0x91, 0xFF]),  # [MQTT-3.7.2-1]
    "DISCONNECT": (0xE0, [0x01, 0x05, 0x10, 0x84, 0x85, 0x86, 0x91, 0xA3, 0xFF]),
    "AUTH": (0xF0, [0x01, 0x17, 0x1A, 0x80, 0x8C, 0xFF]),  # [MQTT-3.15.2-1]
}
for _ptype, (_b0, _codes) in _INVALID_REASONS.items():
    for _code in _codes:
        _body = (b"\x00\x01" if _b0 < 0x80 else b"") + bytes((_code,))
        add(f"reason-code/{_ptype}/0x{_code:02X}", 5, pkt(_b0, _body), 0x82,
            f"§2.4 {_ptype} reason codes")
        add(f"reason-code/{_ptype}-with-props/0x{_code:02X}", 5, pkt(_b0, _body + b"\x00"),
            0x82, f"§2.4 {_ptype} reason codes")
