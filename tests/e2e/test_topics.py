"""Topic filters end to end: + and # wildcards (the spec's examples), invalid names/filters."""

from __future__ import annotations

import pytest

from mqttmesh.protocol.packets import ConnAck, Disconnect, SubAck
from tests.helpers import RawClient
from tests.helpers.raw import connect_bytes

# (filter suffix, topic suffix, matches) relative to a unique prefix P: spec §4.7 examples
CASES = [
    ("/sport/tennis/player1/#", "/sport/tennis/player1", True),  # [MQTT-4.7.1-2] parent
    ("/sport/tennis/player1/#", "/sport/tennis/player1/ranking", True),
    ("/sport/tennis/player1/#", "/sport/tennis/player1/score/wimbledon", True),
    ("/sport/tennis/player1/#", "/sport/tennis/player2", False),
    ("/sport/tennis/+", "/sport/tennis/player1", True),
    ("/sport/tennis/+", "/sport/tennis/player1/ranking", False),
    ("/sport/+", "/sport", False),
    ("/sport/+", "/sport/", True),  # an empty level matches +
    ("/+/tennis/#", "/sport/tennis/x/y", True),
    ("/+/+", "/a/b", True),
    ("/+/+", "/a/b/c", False),
    ("/#", "/anything/at/all", True),
    ("/a//b", "/a//b", True),
    ("/a/+/b", "/a//b", True),
    ("/A", "/a", False),  # case sensitive
    ("/a b", "/a b", True),  # spaces allowed
]


def _matching(mqtt, prefix: str, topic_filter: str, topics: list[str]) -> set[str]:
    """Subscribe to the filter and a sentinel, publish every topic, then the sentinel (QoS 1
    keeps order): everything before the sentinel is what matched. No waiting on negatives."""
    sentinel = prefix + "-sentinel"
    sub = mqtt()
    sub.subscribe([(topic_filter, 1), (sentinel, 1)])
    pub = mqtt()
    for t in topics:
        pub.publish(t, t.encode(), qos=1)
    pub.publish(sentinel, b"end", qos=1)
    got = set()
    while True:
        msg = sub.expect()
        if msg.topic == sentinel:
            return got
        got.add(msg.topic)


@pytest.mark.parametrize("filter_suffix,topic_suffix,expected", CASES)
def test_wildcard_matching(mqtt, version, topic, filter_suffix, topic_suffix, expected):
    got = _matching(mqtt, topic, topic + filter_suffix, [topic + topic_suffix])
    assert (topic + topic_suffix in got) is expected


def test_one_subscription_many_topics(mqtt, version, topic):
    topics = [f"{topic}/x/{i}" for i in range(5)] + [f"{topic}/y/0"]
    got = _matching(mqtt, topic, topic + "/x/+", topics)
    assert got == set(topics[:5])


@pytest.mark.parametrize("bad_filter", ["a/#/b", "a/b#", "a+/b", ""])
def test_invalid_filter_refused(node, version, bad_filter):
    # [MQTT-4.7.1-1/2/3] SUBACK failure (0x80 / v5 0x8F) or a disconnect
    encoded = bad_filter.encode()
    body = b"\x00\x07"
    if version == 5:
        body += b"\x00"
    body += len(encoded).to_bytes(2, "big") + encoded + b"\x01"
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"badfilter-{version}-{len(bad_filter)}", version=version))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        raw.send(b"\x82" + bytes([len(body)]) + body)
        result = raw.read_until_close(timeout=1.0)
    packets = result.packets
    if packets and isinstance(packets[0], SubAck):
        assert packets[0].reason_codes[0] >= 0x80
    else:
        assert result.closed, f"neither SUBACK failure nor close: {result}"
        if version == 5 and packets:
            assert isinstance(packets[0], Disconnect) and packets[0].reason_code >= 0x80


@pytest.mark.parametrize("bad_topic", ["a/+", "a/#", "+"])
def test_publish_to_wildcard_topic_closes(node, version, bad_topic):
    # [MQTT-3.3.2-2] a topic name must not contain wildcards: disconnect (v5: 0x90 or 0x82)
    encoded = bad_topic.encode()
    body = len(encoded).to_bytes(2, "big") + encoded + (b"\x00" if version == 5 else b"") + b"x"
    with RawClient(node.port, version=version) as raw:
        raw.send(connect_bytes(f"badtopic-{version}-{len(bad_topic)}", version=version))
        assert isinstance(raw.read_packets(1)[0], ConnAck)
        raw.send(b"\x30" + bytes([len(body)]) + body)
        result = raw.read_until_close(timeout=1.0)
    assert result.closed
    if version == 5 and result.packets:
        assert isinstance(result.packets[0], Disconnect)
        assert result.packets[0].reason_code in (0x90, 0x82, 0x81)
