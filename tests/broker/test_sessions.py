"""Sessions: takeover, clean start, session expiry, will messages (with delay)."""

from __future__ import annotations

from mqttmesh.protocol.packets import Disconnect, Will
from mqttmesh.protocol.properties import Properties

from .conftest import tick


def watcher(client, topic="will/#"):
    w = client(4)
    w.connect("watcher", keep_alive=0)
    w.subscribe(topic)
    return w


def test_takeover_v5_old_gets_0x8e_session_kept(client, broker) -> None:
    old = client(5)
    old.connect("dup", clean_start=False, properties=Properties(session_expiry_interval=60))
    old.subscribe("t")
    new = client(5)
    ack = new.connect("dup", clean_start=False, properties=Properties(session_expiry_interval=60))
    assert old.take(Disconnect).reason_code == 0x8E  # [MQTT-3.1.4-3]
    assert old.closed
    assert ack.session_present
    pub = client(4)
    pub.connect("pub")
    pub.publish("t", b"x")
    assert len(new.publishes()) == 1  # subscriptions came with the session
    assert broker.statistics().connections == 2


def test_takeover_clean_start_discards_session(client) -> None:
    old = client(4)
    old.connect("dup", clean_start=False)
    old.subscribe("t")
    new = client(4)
    ack = new.connect("dup", clean_start=True)
    assert old.closed and old.received() == []  # 3.1.1: just closed
    assert not ack.session_present  # [MQTT-3.2.2-1]
    pub = client(4)
    pub.connect("pub")
    pub.publish("t", b"x")
    assert new.publishes() == []


def test_takeover_publishes_will_of_old_connection(client) -> None:
    w = watcher(client)
    old = client(4)
    old.connect("dup", will=Will("will/dup", b"bye"))
    new = client(4)
    new.connect("dup")
    assert [p.payload for p in w.publishes()] == [b"bye"]
    assert not new.closed


def test_v311_persistent_session_expires_after_config(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    broker = make_broker(session_expiry_interval=100)
    c = BrokerClient(broker, clock, 4)
    c.connect("p", clean_start=False)
    c.subscribe("t")
    c.channel.handle_closed(clock.now)
    assert broker.statistics().sessions == 1
    tick(broker, clock, 99)
    assert broker.statistics().sessions == 1
    tick(broker, clock, 2)
    assert broker.statistics().sessions == 0
    assert broker.statistics().subscriptions == 0


def test_clean_session_ends_at_disconnect(client, broker, clock) -> None:
    c = client(4)
    c.connect("p", clean_start=True)
    c.subscribe("t")
    c.send(Disconnect())
    assert c.closed
    assert broker.statistics().sessions == 0


def test_v5_session_expiry_interval(client, broker, clock) -> None:
    c = client(5)
    c.connect("p", clean_start=False, properties=Properties(session_expiry_interval=10))
    c.channel.handle_closed(clock.now)
    tick(broker, clock, 9)
    assert broker.sessions.get("p") is not None
    tick(broker, clock, 2)
    assert broker.sessions.get("p") is None


def test_v5_disconnect_updates_session_expiry(client, broker, clock) -> None:
    c = client(5)
    c.connect("p", properties=Properties(session_expiry_interval=10))
    c.send(Disconnect(0, Properties(session_expiry_interval=0)))
    assert broker.sessions.get("p") is None  # ended at once
    c = client(5)
    c.connect("q", properties=Properties(session_expiry_interval=10))
    c.send(Disconnect(0, Properties(session_expiry_interval=100)))
    tick(broker, clock, 50)
    assert broker.sessions.get("q") is not None


def test_v5_disconnect_cannot_set_expiry_when_connect_had_zero(client) -> None:
    c = client(5)
    c.connect("p")
    c.send(Disconnect(0, Properties(session_expiry_interval=30)))
    assert c.take(Disconnect).reason_code == 0x82  # [MQTT-3.14.2-2]
    assert c.closed


def test_session_present_zero_without_session(client) -> None:
    c = client(5)
    assert not c.connect("fresh", clean_start=False).session_present  # [MQTT-3.2.2-3]


def test_no_will_on_normal_disconnect(client) -> None:
    w = watcher(client)
    c = client(5)
    c.connect("c", will=Will("will/c", b"bye"))
    c.send(Disconnect())
    assert w.publishes() == []  # [MQTT-3.14.4-3]


def test_will_on_unclean_close(client, clock) -> None:
    w = watcher(client)
    c = client(4)
    c.connect("c", will=Will("will/c", b"bye", qos=1, retain=True))
    c.channel.handle_data(b"", clock.now)  # EOF
    [p] = w.publishes()
    assert (p.topic, p.payload) == ("will/c", b"bye")  # [MQTT-3.1.2-8]


def test_will_retain_is_stored(client, broker, clock) -> None:
    c = client(4)
    c.connect("c", will=Will("will/c", b"bye", retain=True))
    c.channel.handle_closed(clock.now)
    assert broker.retained.get("will/c").payload == b"bye"


def test_v5_disconnect_with_will_0x04(client) -> None:
    w = watcher(client)
    c = client(5)
    c.connect("c", will=Will("will/c", b"bye"))
    c.send(Disconnect(0x04))
    assert [p.payload for p in w.publishes()] == [b"bye"]


def test_will_delay_then_published(client, broker, clock) -> None:
    w = watcher(client)
    c = client(5)
    c.connect("c", properties=Properties(session_expiry_interval=100),
              will=Will("will/c", b"late", properties=Properties(will_delay_interval=10)))
    c.channel.handle_closed(clock.now)
    tick(broker, clock, 9)
    assert w.publishes() == []
    tick(broker, clock, 2)
    [p] = w.publishes()
    assert p.payload == b"late"
    assert p.properties.will_delay_interval is None


def test_will_delay_cancelled_by_reconnect(client, broker, clock) -> None:
    w = watcher(client)
    props = Properties(session_expiry_interval=100)
    c = client(5)
    c.connect("c", clean_start=False, properties=props,
              will=Will("will/c", b"late", properties=Properties(will_delay_interval=10)))
    c.channel.handle_closed(clock.now)
    tick(broker, clock, 5)
    again = client(5)
    assert again.connect("c", clean_start=False, properties=props).session_present
    tick(broker, clock, 20)
    assert w.publishes() == []  # [MQTT-3.1.3-9]


def test_will_published_at_session_end_if_earlier(client, broker, clock) -> None:
    w = watcher(client)
    c = client(5)
    c.connect("c", properties=Properties(session_expiry_interval=5),
              will=Will("will/c", b"end", properties=Properties(will_delay_interval=60)))
    c.channel.handle_closed(clock.now)
    tick(broker, clock, 4)
    assert w.publishes() == []
    tick(broker, clock, 2)
    assert [p.payload for p in w.publishes()] == [b"end"]


def test_will_delay_with_zero_session_expiry_published_at_once(client, clock) -> None:
    w = watcher(client)
    c = client(5)
    c.connect("c", will=Will("will/c", b"now", properties=Properties(will_delay_interval=60)))
    c.channel.handle_closed(clock.now)
    assert [p.payload for p in w.publishes()] == [b"now"]


def test_will_qos_above_maximum_refused(make_broker, clock) -> None:
    from mqttmesh.testing import BrokerClient

    broker = make_broker(max_qos_allowed=1)
    c = BrokerClient(broker, clock, 5)
    assert c.connect("c", will=Will("w", b"x", qos=2)).reason_code == 0x9B  # [MQTT-3.2.2-12]


def test_kick_admin(client, broker, clock) -> None:
    c = client(5)
    c.connect("c")
    assert broker.kick("c", clock.now)
    assert c.take(Disconnect).reason_code == 0x98
    assert not broker.kick("nobody", clock.now)
