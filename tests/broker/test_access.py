"""Access control wiring (docs/access.md): authentication, PUBLISH / SUBSCRIBE / will ACL."""

from __future__ import annotations

import pytest

from mqttmesh import access
from mqttmesh.broker import Broker, BrokerConfig
from mqttmesh.protocol.packets import Disconnect, PubAck, PubRec, Subscribe, Subscription, Will
from mqttmesh.testing import BrokerClient

ACL = """
{allow, {username, "admin"}, all, ["#"]}.
{allow, all, publish, ["open/#"]}.
{allow, all, subscribe, ["open/#", "$share/g/open/#"]}.
{deny, all}.
"""


def make(clock, deny_action="ignore", anonymous=True) -> Broker:
    users = access.UserStore(iterations=1000)
    users.add_user("alice", "secret")
    users.add_user("root", "toor", is_superuser=True)
    return Broker(
        BrokerConfig(),
        authenticator=access.Authenticator(users, allow_anonymous=anonymous),
        authorizer=access.Authorizer(access.parse_acl(ACL), no_match="deny",
                                     deny_action=deny_action),
    )


def test_authentication(clock) -> None:
    broker = make(clock, anonymous=False)
    assert BrokerClient(broker, clock, 5).connect("a", username="alice",
                                                  password=b"nope").reason_code == 0x86
    assert BrokerClient(broker, clock, 4).connect("a").reason_code == 0x05  # anonymous refused
    assert BrokerClient(broker, clock, 4).connect("a", username="alice",
                                                  password=b"secret").reason_code == 0


@pytest.mark.parametrize("version", [4, 5])
def test_publish_denied_is_dropped_and_acked(clock, version) -> None:
    broker = make(clock)
    sub = BrokerClient(broker, clock, 5)
    sub.connect("sub", username="root", password=b"toor")  # superuser: may subscribe to #
    sub.subscribe("#")
    c = BrokerClient(broker, clock, version)
    c.connect("c", username="alice", password=b"secret")
    c.publish("closed/x", b"1")
    pid1 = c.publish("closed/x", b"2", qos=1)
    pid2 = c.publish("closed/x", b"3", qos=2)
    code = 0x87 if version == 5 else 0
    assert c.take(PubAck) == PubAck(pid1, code)
    assert c.take(PubRec) == PubRec(pid2, code)
    c.publish("open/x", b"ok")
    assert [p.payload for p in sub.publishes()] == [b"ok"]
    assert not c.channel.session.awaiting(pid2)


def test_publish_denied_disconnects(clock) -> None:
    broker = make(clock, deny_action="disconnect")
    c = BrokerClient(broker, clock, 5)
    c.connect("c")
    c.publish("closed/x", b"1")
    assert c.take(Disconnect).reason_code == 0x87
    assert c.closed


def test_subscribe_denied(clock) -> None:
    broker = make(clock)
    c = BrokerClient(broker, clock, 5)
    c.connect("c")
    assert c.subscribe("open/a", "closed/a", "$share/g/open/b").reason_codes == (0, 0x87, 0)
    c4 = BrokerClient(broker, clock, 4)
    c4.connect("c4")
    assert c4.subscribe("closed/a").reason_codes == (0x80,)
    assert broker.statistics().subscriptions == 2


def test_subscribe_denied_disconnects_without_applying(clock) -> None:
    broker = make(clock, deny_action="disconnect")
    c = BrokerClient(broker, clock, 5)
    c.connect("c")
    c.send(Subscribe(1, (Subscription("open/a"), Subscription("closed/a"))))
    assert c.take(Disconnect).reason_code == 0x87
    assert broker.statistics().subscriptions == 0


def test_will_denied_is_dropped(clock) -> None:
    broker = make(clock)
    sub = BrokerClient(broker, clock, 4)
    sub.connect("sub", username="root", password=b"toor")
    sub.subscribe("#")
    bad = BrokerClient(broker, clock, 4)
    bad.connect("bad", will=Will("closed/will", b"x"))
    bad.channel.handle_closed(clock.now)
    good = BrokerClient(broker, clock, 4)
    good.connect("good", will=Will("open/will", b"y"))
    good.channel.handle_closed(clock.now)
    assert [p.payload for p in sub.publishes()] == [b"y"]
