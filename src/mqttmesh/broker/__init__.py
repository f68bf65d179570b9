"""mqttmesh.broker: one node's sans-IO pub/sub engine (channels, sessions, routing, retained)."""

from mqttmesh.broker.broker import AuthenticateHook, Broker
from mqttmesh.broker.channel import Channel, ChannelState
from mqttmesh.broker.config import BrokerConfig
from mqttmesh.broker.dispatch import ClusterHooks
from mqttmesh.broker.message import Message
from mqttmesh.broker.migration import SessionState
from mqttmesh.broker.retained import RetainedStore
from mqttmesh.broker.session import Outlet, Session, Subscription
from mqttmesh.broker.stats import BrokerStats
from mqttmesh.broker.trie import TopicTrie

__all__ = [
    "AuthenticateHook", "Broker", "BrokerConfig", "BrokerStats", "Channel", "ChannelState",
    "ClusterHooks", "Message", "Outlet", "RetainedStore", "Session", "SessionState", "Subscription",
    "TopicTrie",
]
