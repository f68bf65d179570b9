"""The $SYS publisher: node facts and broker statistics under ``$SYS/brokers/<node>/``.

Every ``sys_topics.sys_msg_interval`` the node publishes, as EMQX does (QoS 0, not
retained; ``uptime`` and ``datetime`` also every ``sys_topics.sys_heartbeat_interval``): ``version``, ``sysdescr``, ``uptime``, ``datetime``, ``clients/connected``,
``stats/<name>/count`` and ``metrics/<group>/<name>`` from ``broker.statistics()``,
``metrics/messages/dropped/congested`` (QoS 0 dropped by runtime for connections whose write
buffer is full; also included in ``metrics/messages/dropped``), and ``$SYS/brokers`` (the
node names, comma separated). Only runtime reads clocks, so this
lives here rather than in the broker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import logging
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mqttmesh import __version__

if TYPE_CHECKING:
    from mqttmesh.runtime.node import Node

__all__ = ["SysPublisher", "sys_messages", "stat_topics"]

log = logging.getLogger("mqttmesh.runtime.sys")

# BrokerStats field -> EMQX topic suffix.
_KNOWN = {
    "connections": "stats/connections/count",
    "sessions": "stats/sessions/count",
    "subscriptions": "stats/subscriptions/count",
    "subscribers": "stats/subscribers/count",
    "retained": "stats/retained/count",
    "topics": "stats/topics/count",
    "routes": "stats/routes/count",
    "shared_subscriptions": "stats/subscriptions/shared/count",
    "messages_forwarded": "metrics/messages/forward",
    "messages_in": "metrics/messages/received",
    "messages_received": "metrics/messages/received",
    "messages_out": "metrics/messages/sent",
    "messages_sent": "metrics/messages/sent",
    "messages_dropped": "metrics/messages/dropped",
    "bytes_in": "metrics/bytes/received",
    "bytes_received": "metrics/bytes/received",
    "bytes_out": "metrics/bytes/sent",
    "bytes_sent": "metrics/bytes/sent",
}


def _uptime_text(seconds: float) -> str:
    secs = int(seconds)
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} days")
    if hours or days:
        parts.append(f"{hours} hours")
    if minutes or hours or days:
        parts.append(f"{minutes} minutes")
    parts.append(f"{secs} seconds")
    return ", ".join(parts)


def stat_topics(stats: object, dropped_backpressure: int = 0) -> Iterator[tuple[str, str]]:
    """(topic suffix, value) for every numeric field of a BrokerStats."""
    fields: dict[str, Any] = {}
    if dataclasses.is_dataclass(stats) and not isinstance(stats, type):
        fields = {f.name: getattr(stats, f.name) for f in dataclasses.fields(stats)}
    elif isinstance(stats, dict):
        fields = dict(stats)
    seen: set[str] = set()
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if name in ("messages_dropped", "dropped") and dropped_backpressure:
            value += dropped_backpressure
        suffix = _KNOWN.get(name)
        if suffix is None:
            group = "metrics" if name.startswith(("messages", "bytes", "packets")) else "stats"
            suffix = f"{group}/{name.replace('_', '/')}"
            if group == "stats":
                suffix += "/count"
        if suffix in seen:
            continue
        seen.add(suffix)
        yield suffix, str(value)


def sys_messages(node: Node) -> Iterator[tuple[str, str]]:
    """(topic, payload) pairs for one $SYS round."""
    base = f"$SYS/brokers/{node.name}"
    yield "$SYS/brokers", node.name
    yield f"{base}/version", __version__
    yield f"{base}/sysdescr", "mqttmesh"
    yield f"{base}/uptime", _uptime_text(node.uptime())
    yield f"{base}/datetime", datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    stats = None
    try:
        stats = node.broker.statistics()
    except Exception:
        log.exception("broker.statistics() failed")
    connected = getattr(stats, "connections", None)
    if connected is None:
        connected = node.connection_count()
    yield f"{base}/clients/connected", str(connected)
    if stats is not None:
        for suffix, value in stat_topics(stats, node.dropped_backpressure()):
            yield f"{base}/{suffix}", value
    # runtime's own drops: QoS 0 for connections whose write buffer is full (client_link)
    yield f"{base}/metrics/messages/dropped/congested", str(node.dropped_backpressure())


def make_message(topic: str, payload: bytes, node_name: str) -> Any:
    """A broker Message for a $SYS publish (QoS 0, not retained, no sender)."""
    from mqttmesh.broker import Message

    return Message(topic, payload, qos=0, retain=False, sender=None, sender_node=node_name)


def heartbeat_messages(node: Node) -> Iterator[tuple[str, str]]:
    """EMQX's heartbeat topics (``sys_topics.sys_heartbeat_interval``): uptime, datetime."""
    base = f"$SYS/brokers/{node.name}"
    yield f"{base}/uptime", _uptime_text(node.uptime())
    yield f"{base}/datetime", datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


class SysPublisher:
    """Publishes ``sys_messages`` every ``interval`` seconds (first round at start), and the
    heartbeat topics every ``heartbeat`` seconds when that is set."""

    def __init__(self, node: Node, interval: float | None, heartbeat: float | None = None
                 ) -> None:
        self.node = node
        self.interval = max(interval, 0.1) if interval else None
        self.heartbeat = max(heartbeat, 0.1) if heartbeat else None

    def _publish(self, messages: Iterator[tuple[str, str]],
                 loop: asyncio.AbstractEventLoop) -> None:
        broker = self.node.broker
        name = self.node.name
        for topic, payload in messages:
            broker.publish(make_message(topic, payload.encode(), name), loop.time())

    def publish_once(self, loop: asyncio.AbstractEventLoop) -> None:
        self._publish(sys_messages(self.node), loop)

    async def run(self, loop: asyncio.AbstractEventLoop) -> None:
        """Both schedules in one task: sleep until whichever round is due next."""
        interval, heartbeat = self.interval, self.heartbeat
        start = loop.time()
        next_full = start if interval is not None else math.inf
        next_beat = start + heartbeat if heartbeat is not None else math.inf
        while next_full < math.inf or next_beat < math.inf:
            now = loop.time()
            try:
                if interval is not None and now >= next_full:
                    self.publish_once(loop)
                    next_full = now + interval
                    if heartbeat is not None:  # the full round carried a heartbeat too
                        next_beat = max(next_beat, now + heartbeat)
                if heartbeat is not None and now >= next_beat:
                    self._publish(heartbeat_messages(self.node), loop)
                    next_beat = now + heartbeat
            except Exception:
                log.exception("$SYS publish failed")
            await asyncio.sleep(max(min(next_full, next_beat) - loop.time(), 0.0))
