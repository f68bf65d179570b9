"""Session takeover end to end: a second connection with the same client id kicks the first."""

from __future__ import annotations


def test_older_connection_is_kicked(mqtt, version, topic):
    # [MQTT-3.1.4-3] the server disconnects the existing client with that id
    client_id = f"dup-{topic}"
    old = mqtt(client_id=client_id)
    new = mqtt(client_id=client_id)
    rc = old.wait_disconnected()
    if version == 5:
        assert rc == 0x8E  # Session taken over
    assert new.is_connected
    new.subscribe(topic, qos=1)
    mqtt().publish(topic, b"to the new one", qos=1)
    assert new.expect().payload == b"to the new one"


def test_takeover_keeps_persistent_session(mqtt, version, topic):
    client_id = f"takeover-{topic}"
    opts = {"clean": False, "session_expiry": 300} if version == 5 else {"clean": False}
    old = mqtt(client_id=client_id, **opts)
    old.subscribe(topic, qos=1)
    new = mqtt(client_id=client_id, **opts)
    old.wait_disconnected()
    assert new.session_present is True
    mqtt().publish(topic, b"after takeover", qos=1)
    assert new.expect().payload == b"after takeover"
    old.expect_none(0.2)


def test_takeover_loses_no_qos1_message(mqtt, version, topic):
    client_id = f"noloss-{topic}"
    opts = {"clean": False, "session_expiry": 300} if version == 5 else {"clean": False}
    old = mqtt(client_id=client_id, **opts)
    old.subscribe(topic, qos=1)
    pub = mqtt()
    for i in range(20):
        pub.publish(topic, str(i).encode(), qos=1, wait=False)
    new = mqtt(client_id=client_id, **opts)
    old.wait_disconnected()
    for i in range(20, 40):
        pub.publish(topic, str(i).encode(), qos=1)
    received = {int(m.payload) for m in old.drain()}
    deadline_msgs = []
    while len(received | {int(m.payload) for m in deadline_msgs}) < 40:
        deadline_msgs.append(new.expect())
    assert received | {int(m.payload) for m in deadline_msgs} == set(range(40))


def test_clean_takeover_drops_old_session(mqtt, version, topic):
    client_id = f"cleantake-{topic}"
    opts = {"clean": False, "session_expiry": 300} if version == 5 else {"clean": False}
    old = mqtt(client_id=client_id, **opts)
    old.subscribe(topic, qos=1)
    new = mqtt(client_id=client_id)
    old.wait_disconnected()
    assert new.session_present is False
    mqtt().publish(topic, b"x", qos=1)
    new.expect_none(0.3)
