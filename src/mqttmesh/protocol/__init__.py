"""mqttmesh.protocol: the sans-IO MQTT 3.1 / 3.1.1 / 5.0 wire layer (packets, codec, topics)."""

from mqttmesh.protocol.codec import (
    MAX_PACKET_SIZE, Decoder, encode, encode_properties, encode_publish,
)
from mqttmesh.protocol.connection import NEED_DATA, MqttConnection
from mqttmesh.protocol.packets import (
    Auth, ConnAck, Connect, Disconnect, Packet, PacketType, PingReq, PingResp, PubAck, PubComp,
    Publish, PubRec, PubRel, QoS, SubAck, Subscribe, Subscription, UnsubAck, Unsubscribe, Will,
)
from mqttmesh.protocol.properties import NO_PROPERTIES, Properties, PropertyId
from mqttmesh.protocol.reason_codes import (
    VALID_REASON_CODES, ConnAckReturnCode, ReasonCode, connack_return_code,
)
from mqttmesh.protocol.topics import (
    is_wildcard, matches, parse_share, validate_topic_filter, validate_topic_name,
)

__all__ = [
    "PacketType", "QoS", "Packet",
    "Will", "Connect", "ConnAck", "Publish", "PubAck", "PubRec", "PubRel", "PubComp",
    "Subscription", "Subscribe", "SubAck", "Unsubscribe", "UnsubAck",
    "PingReq", "PingResp", "Disconnect", "Auth",
    "Properties", "NO_PROPERTIES", "PropertyId",
    "Decoder", "encode", "encode_publish", "encode_properties", "MAX_PACKET_SIZE",
    "ReasonCode", "ConnAckReturnCode", "connack_return_code", "VALID_REASON_CODES",
    "validate_topic_name", "validate_topic_filter", "parse_share", "matches", "is_wildcard",
    "MqttConnection", "NEED_DATA",
]
