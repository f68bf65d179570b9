"""mqttmesh.cluster.wire: framing (codec) and the versioned peer messages (v1, v2)."""

from mqttmesh.cluster.wire import v1, v2
from mqttmesh.cluster.wire.codec import (
    MAX_FRAME,
    PRE_AUTH_MAX_FRAME,
    FrameDecoder,
    FrameError,
    encode_frame,
)

__all__ = ["v1", "v2", "FrameDecoder", "FrameError", "encode_frame", "MAX_FRAME",
           "PRE_AUTH_MAX_FRAME"]
