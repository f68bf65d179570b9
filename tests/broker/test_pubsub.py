"""PUBLISH flows: QoS 0/1/2 both directions, inflight window, queue, retry, options."""

from __future__ import annotations

from mqttmesh.protocol.packets import (
    Disconnect, PubAck, PubComp, Publish, PubRec, PubRel, Subscription,
)
from mqttmesh.protocol.properties import Properties
from mqttmesh.testing import BrokerClient

from .conftest import tick


def pair(client, version=4, sub_qos=0, topic="t"):
    sub = client(version)
    sub.connect("sub")
    sub.subscribe(topic, qos=sub_qos)
    pub = client(version)
    pub.connect("pub")
    return pub, sub


def test_qos0_both_versions(client) -> None:
    for version in (3, 4, 5):
        pub, sub = pair(client, version)
        pub.publish("t", b"hello")
        assert sub.publishes() == [Publish("t", b"hello")]
        assert pub.received() == []


def test_qos1_publish_puback_and_delivery(client) -> None:
    pub, sub = pair(client, 4, sub_qos=1)
    pid = pub.publish("t", b"x", qos=1)
    assert pub.take(PubAck) == PubAck(pid)  # [MQTT-4.3.2-2]
    [p] = sub.publishes()
    assert p.qos == 1 and p.packet_id and not p.dup
    sub.send(PubAck(p.packet_id))
    assert not sub.channel.session.inflight


def test_qos_is_downgraded_to_subscription(client) -> None:
    pub, sub = pair(client, 5, sub_qos=0)
    pub.publish("t", b"x", qos=2)
    assert isinstance(pub.take(PubRec), PubRec)
    [p] = sub.publishes()
    assert p.qos == 0


def test_upgrade_qos(make_broker, clock) -> None:
    broker = make_broker(upgrade_qos=True)
    sub = BrokerClient(broker, clock, 4)
    sub.connect("sub")
    sub.subscribe("t", qos=1)
    pub = BrokerClient(broker, clock, 4)
    pub.connect("pub")
    pub.publish("t", b"x", qos=0)
    assert sub.publishes()[0].qos == 1


def test_upgrade_qos_never_downgrades(make_broker, clock) -> None:
    # EMQX: with upgrade_qos the delivered QoS is max(subscription, message), not the
    # subscription's QoS: a QoS 2 message to a QoS 1 subscription still goes out at QoS 2.
    broker = make_broker(upgrade_qos=True)
    sub = BrokerClient(broker, clock, 4)
    sub.connect("sub")
    sub.subscribe("t", qos=1)
    pub = BrokerClient(broker, clock, 4)
    pub.connect("pub")
    pub.publish("t", b"x", qos=2)
    assert sub.publishes()[0].qos == 2


def test_subscribe_qos_capped_by_max_qos_allowed(make_broker, clock) -> None:
    broker = make_broker(max_qos_allowed=1)
    c = BrokerClient(broker, clock, 4)
    c.connect("a")
    assert c.subscribe("t", qos=2).reason_codes == (1,)


def test_qos2_inbound_method_b_exactly_once(client) -> None:
    pub, sub = pair(client, 5, sub_qos=2)
    pid = pub.publish("t", b"x", qos=2)
    assert pub.take(PubRec).packet_id == pid  # [MQTT-4.3.3-8]
    assert len(sub.publishes()) == 1
    # the client resends the PUBLISH (DUP) before PUBREL: acknowledged, not re-dispatched
    pub.publish("t", b"x", qos=2, packet_id=pid, dup=True)
    assert pub.take(PubRec).packet_id == pid
    assert sub.publishes() == []  # [MQTT-4.3.3-9]
    pub.send(PubRel(pid))
    assert pub.take(PubComp) == PubComp(pid)  # [MQTT-4.3.3-11]
    # the packet id is free again: the same id is a new message
    pub.publish("t", b"y", qos=2, packet_id=pid)
    assert [p.payload for p in sub.publishes()] == [b"y"]


def test_pubrel_unknown_packet_id_v5(client) -> None:
    c = client(5)
    c.connect("a")
    c.send(PubRel(77))
    assert c.take(PubComp) == PubComp(77, 0x92)


def test_qos2_outbound_flow(client) -> None:
    pub, sub = pair(client, 5, sub_qos=2)
    pub.publish("t", b"x", qos=2)
    [p] = sub.publishes()
    assert p.qos == 2
    sub.send(PubRec(p.packet_id))
    assert sub.take(PubRel) == PubRel(p.packet_id)  # [MQTT-4.3.3-4]
    session = sub.channel.session
    assert session.inflight[p.packet_id].released
    sub.send(PubComp(p.packet_id))
    assert not session.inflight


def test_qos2_outbound_pubrec_failure_ends_flow(client) -> None:
    pub, sub = pair(client, 5, sub_qos=2)
    pub.publish("t", b"x", qos=2)
    [p] = sub.publishes()
    sub.send(PubRec(p.packet_id, 0x80))
    assert not sub.channel.session.inflight
    assert sub.received() == []


def test_inflight_window_respected_and_refilled(make_broker, clock) -> None:
    broker = make_broker(max_inflight=3)
    sub = BrokerClient(broker, clock, 4)
    sub.connect("sub")
    sub.subscribe("t", qos=1)
    pub = BrokerClient(broker, clock, 4)
    pub.connect("pub")
    for i in range(5):
        pub.publish("t", str(i).encode(), qos=1)
    first = sub.publishes()
    assert [p.payload for p in first] == [b"0", b"1", b"2"]  # [MQTT-3.3.4-9]
    sub.send(PubAck(first[0].packet_id))
    assert [p.payload for p in sub.publishes()] == [b"3"]
    sub.send(PubAck(first[1].packet_id), PubAck(first[2].packet_id))
    assert [p.payload for p in sub.publishes()] == [b"4"]


def test_v5_receive_maximum_of_client_bounds_window(client) -> None:
    sub = client(5)
    sub.connect("sub", properties=Properties(receive_maximum=2))
    sub.subscribe("t", qos=1)
    pub = client(5)
    pub.connect("pub")
    for i in range(4):
        pub.publish("t", b"%d" % i, qos=1)
    assert len(sub.publishes()) == 2


def test_qos0_is_not_held_by_full_window(make_broker, clock) -> None:
    broker = make_broker(max_inflight=1)
    sub = BrokerClient(broker, clock, 4)
    sub.connect("sub")
    sub.subscribe("t", qos=1)
    pub = BrokerClient(broker, clock, 4)
    pub.connect("pub")
    pub.publish("t", b"a", qos=1)
    pub.publish("t", b"b", qos=1)
    pub.publish("t", b"c", qos=0)
    assert [p.payload for p in sub.publishes()] == [b"a", b"c"]


def test_queue_limit_drops_oldest(make_broker, clock) -> None:
    broker = make_broker(max_inflight=1, max_mqueue_len=2)
    sub = BrokerClient(broker, clock, 4)
    sub.connect("sub")
    sub.subscribe("t", qos=1)
    pub = BrokerClient(broker, clock, 4)
    pub.connect("pub")
    for i in range(5):
        pub.publish("t", b"%d" % i, qos=1)
    [first] = sub.publishes()
    assert first.payload == b"0"
    assert broker.statistics().messages_dropped == 2  # 1 and 2 dropped, 3 and 4 queued
    sub.send(PubAck(first.packet_id))
    [p] = sub.publishes()
    assert p.payload == b"3"
    sub.send(PubAck(p.packet_id))
    assert [p.payload for p in sub.publishes()] == [b"4"]


def test_offline_queue_and_qos0_policy(make_broker, clock) -> None:
    for store_qos0, expected in ((True, [b"q0", b"q1"]), (False, [b"q1"])):
        broker = make_broker(mqueue_store_qos0=store_qos0)
        sub = BrokerClient(broker, clock, 4)
        sub.connect("sub", clean_start=False)
        sub.subscribe("t", qos=1)
        sub.channel.handle_closed(clock.now)
        pub = BrokerClient(broker, clock, 4)
        pub.connect("pub")
        pub.publish("t", b"q0", qos=0)
        pub.publish("t", b"q1", qos=1)
        again = BrokerClient(broker, clock, 4)
        assert again.connect("sub", clean_start=False).session_present  # [MQTT-3.2.2-2]
        assert [p.payload for p in again.publishes()] == expected


def test_retry_on_reconnect_with_dup(broker, clock, client) -> None:
    pub, sub = pair(client, 5, sub_qos=2)
    sub.channel.handle_closed(clock.now)  # clean start, expiry 0: session gone
    sub = client(5)
    sub.connect("sub", clean_start=False, properties=Properties(session_expiry_interval=60))
    sub.subscribe("t", qos=2)
    pub.publish("t", b"one", qos=1)
    pub.publish("t", b"two", qos=2)
    p1, p2 = sub.publishes()
    sub.send(PubRec(p2.packet_id))
    assert sub.take(PubRel)
    sub.channel.handle_closed(clock.now)  # unacked: p1 awaiting PUBACK, p2 awaiting PUBCOMP
    again = client(5)
    ack = again.connect("sub", clean_start=False, properties=Properties(session_expiry_interval=60))
    assert ack.session_present
    [r1] = again.publishes()
    assert (r1.packet_id, r1.payload, r1.dup) == (p1.packet_id, b"one", True)  # [MQTT-4.4.0-1]
    assert again.take(PubRel).packet_id == p2.packet_id


def test_retry_interval_v3_only(make_broker, clock) -> None:
    for version, resent in ((4, True), (5, False)):
        broker = make_broker(retry_interval=10)
        sub = BrokerClient(broker, clock, version)
        sub.connect("sub", keep_alive=0)
        sub.subscribe("t", qos=1)
        pub = BrokerClient(broker, clock, version)
        pub.connect("pub", keep_alive=0)
        pub.publish("t", b"x", qos=1)
        [p] = sub.publishes()
        tick(broker, clock, 11)
        again = sub.publishes()
        if resent:
            assert [(q.packet_id, q.dup) for q in again] == [(p.packet_id, True)]
        else:
            assert again == []  # MQTT 5 resends only on reconnect [MQTT-4.4.0-1]


def test_receive_maximum_exceeded_0x93(make_broker, clock) -> None:
    broker = make_broker(max_awaiting_rel=2)
    c = BrokerClient(broker, clock, 5)
    assert c.connect("a").properties.receive_maximum == 2
    c.publish("t", b"1", qos=2)
    c.publish("t", b"2", qos=2)
    c.publish("t", b"3", qos=2)  # a third QoS 2 without PUBREL
    assert c.take(Disconnect).reason_code == 0x93  # [MQTT-3.3.4-7]
    assert c.closed


def test_await_rel_timeout_forgets_packet_id(make_broker, clock) -> None:
    broker = make_broker(await_rel_timeout=5, max_awaiting_rel=1)
    c = BrokerClient(broker, clock, 5)
    c.connect("a", keep_alive=0)
    c.publish("t", b"1", qos=2)
    tick(broker, clock, 6)
    assert c.channel.session.awaiting_count() == 0
    c.publish("t", b"2", qos=2)
    assert not c.closed


def test_topic_alias_client_to_server(client) -> None:
    pub, sub = pair(client, 5, topic="long/topic/name")
    pub.publish("long/topic/name", b"1", properties=Properties(topic_alias=3))
    pub.publish("", b"2", properties=Properties(topic_alias=3))  # [MQTT-3.3.2-12]
    got = sub.publishes()
    assert [(p.topic, p.payload) for p in got] == [("long/topic/name", b"1"), ("long/topic/name", b"2")]
    assert all(p.properties.topic_alias is None for p in got)  # aliases are per connection


def test_topic_alias_unknown_or_out_of_range(make_broker, clock) -> None:
    broker = make_broker(max_topic_alias=5)
    c = BrokerClient(broker, clock, 5)
    c.connect("a")
    c.publish("t", b"x", properties=Properties(topic_alias=6))
    assert c.take(Disconnect).reason_code == 0x94  # [MQTT-3.3.2-9]
    c = BrokerClient(broker, clock, 5)
    c.connect("b")
    c.publish("", b"x", properties=Properties(topic_alias=2))
    assert c.take(Disconnect).reason_code == 0x82


def test_subscription_identifiers(client) -> None:
    sub = client(5)
    sub.connect("sub")
    sub.subscribe("a/+", properties=Properties(subscription_identifiers=(7,)))
    sub.subscribe("a/b")
    pub = client(5)
    pub.connect("pub")
    pub.publish("a/b", b"x")
    ids = sorted(p.properties.subscription_identifiers for p in sub.publishes())
    assert ids == [(), (7,)]  # [MQTT-3.3.4-3] one copy per subscription, with its identifier


def test_no_local(client) -> None:
    c = client(5)
    c.connect("me")
    c.subscribe(Subscription("t", 0, no_local=True), Subscription("u", 0))
    c.publish("t", b"own")
    c.publish("u", b"own")
    assert [p.topic for p in c.publishes()] == ["u"]  # [MQTT-3.8.3-3]


def test_ignore_loop_deliver(make_broker, clock) -> None:
    broker = make_broker(ignore_loop_deliver=True)
    c = BrokerClient(broker, clock, 4)
    c.connect("me")
    c.subscribe("t")
    c.publish("t", b"own")
    assert c.publishes() == []


def test_retain_as_published(client) -> None:
    sub = client(5)
    sub.connect("sub")
    sub.subscribe(Subscription("rap", 0, retain_as_published=True), Subscription("plain", 0))
    pub = client(5)
    pub.connect("pub")
    pub.publish("rap", b"x", retain=True)
    pub.publish("plain", b"x", retain=True)
    got = {p.topic: p.retain for p in sub.publishes()}
    assert got == {"rap": True, "plain": False}  # [MQTT-3.3.1-12] [MQTT-3.3.1-13]


def test_v311_live_delivery_clears_retain(client) -> None:
    pub, sub = pair(client, 4)
    pub.publish("t", b"x", retain=True)
    assert sub.publishes()[0].retain is False  # [MQTT-3.3.1-9] (3.1.1)


def test_message_expiry(make_broker, clock) -> None:
    broker = make_broker()
    sub = BrokerClient(broker, clock, 5)
    props = Properties(session_expiry_interval=100)
    sub.connect("sub", clean_start=False, properties=props)
    sub.subscribe("t", qos=1)
    sub.channel.handle_closed(clock.now)
    pub = BrokerClient(broker, clock, 5)
    pub.connect("pub", keep_alive=0)
    pub.publish("t", b"short", qos=1, properties=Properties(message_expiry_interval=5))
    pub.publish("t", b"long", qos=1, properties=Properties(message_expiry_interval=10))
    clock.advance(6)
    again = BrokerClient(broker, clock, 5)
    again.connect("sub", clean_start=False, properties=props)
    [p] = again.publishes()
    assert p.payload == b"long"
    assert p.properties.message_expiry_interval == 4  # [MQTT-3.3.2-6] remaining time


def test_live_delivery_keeps_expiry_interval(client) -> None:
    pub, sub = pair(client, 5)
    pub.publish("t", b"x", properties=Properties(message_expiry_interval=30, content_type="text/plain"))
    [p] = sub.publishes()
    assert p.properties.message_expiry_interval == 30
    assert p.properties.content_type == "text/plain"  # [MQTT-3.3.2-20] forwarded unaltered


def test_v5_properties_dropped_for_v3_subscriber(client) -> None:
    sub = client(4)
    sub.connect("sub")
    sub.subscribe("t")
    pub = client(5)
    pub.connect("pub")
    pub.publish("t", b"x", properties=Properties(user_properties=(("k", "v"),)))
    assert sub.publishes() == [Publish("t", b"x")]


def test_client_maximum_packet_size_drops(client, broker) -> None:
    sub = client(5)
    sub.connect("sub", properties=Properties(maximum_packet_size=20))
    sub.subscribe("t")
    pub = client(5)
    pub.connect("pub")
    pub.publish("t", b"x" * 30)
    pub.publish("t", b"small")
    assert [p.payload for p in sub.publishes()] == [b"small"]  # [MQTT-3.1.2-25]
    assert broker.statistics().messages_dropped == 1


def test_overlapping_subscriptions_get_one_copy_each(client) -> None:
    sub = client(4)
    sub.connect("sub")
    sub.subscribe("a/#", "a/b", qos=1)
    pub = client(4)
    pub.connect("pub")
    pub.publish("a/b", b"x")
    assert len(sub.publishes()) == 2


def test_unsubscribe_reason_codes(client) -> None:
    c = client(5)
    c.connect("a")
    c.subscribe("a/b")
    ack = c.unsubscribe("a/b", "not/there")
    assert ack.reason_codes == (0, 0x11)  # [MQTT-3.11.3-1]
    pub = client(5)
    pub.connect("pub")
    pub.publish("a/b", b"x")
    assert c.publishes() == []  # [MQTT-3.10.4-1]


def test_bad_filters_suback_0x8f_and_0x80(client) -> None:
    c = client(5)
    c.connect("a")
    ack = c.subscribe("ok/+", "a/#/b", "$share/g", "a+/b")
    assert ack.reason_codes == (0, 0x8F, 0x8F, 0x8F)
    c4 = client(4)
    c4.connect("b")
    assert c4.subscribe("a/#/b", "x").reason_codes == (0x80, 0)  # [MQTT-3.9.3-2]


def test_max_subscriptions_quota(make_broker, clock) -> None:
    broker = make_broker(max_subscriptions=2)
    c = BrokerClient(broker, clock, 5)
    c.connect("a")
    assert c.subscribe("a", "b", "c").reason_codes == (0, 0, 0x97)
    assert c.subscribe("a", qos=1).reason_codes == (1,)  # replacing is not a new one


def test_resubscribe_replaces_options(client) -> None:
    pub, sub = pair(client, 4, sub_qos=0)
    sub.subscribe("t", qos=1)  # [MQTT-3.8.4-3]
    pub.publish("t", b"x", qos=1)
    [p] = sub.publishes()
    assert p.qos == 1
