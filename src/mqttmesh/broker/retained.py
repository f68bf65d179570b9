"""RetainedStore: the node's retained messages, by topic name, matched against a filter.

Subscribing needs the reverse of publishing: one filter against every stored topic name.
Topic names are kept in a tree of levels (as well as a dict for exact lookups), so a filter
like ``a/+/c`` walks only the ``a`` subtree instead of scanning every retained topic.
Names starting with ``$`` are not matched by a leading ``+`` / ``#`` [MQTT-4.7.2-1].
Expired messages (MQTT 5 Message Expiry Interval) are dropped when met.
"""

from __future__ import annotations

from collections.abc import Iterator

from mqttmesh.broker.message import Message

__all__ = ["RetainedStore"]


class _Level:
    __slots__ = ("children", "message")

    def __init__(self) -> None:
        self.children: dict[str, _Level] = {}
        self.message: Message | None = None


class RetainedStore:
    """Retained messages by topic name [MQTT-3.3.1-5]."""

    __slots__ = ("_by_topic", "_root")

    def __init__(self) -> None:
        self._by_topic: dict[str, Message] = {}
        self._root = _Level()

    def __len__(self) -> int:
        return len(self._by_topic)

    def __iter__(self) -> Iterator[Message]:
        return iter(list(self._by_topic.values()))

    def get(self, topic: str) -> Message | None:
        return self._by_topic.get(topic)

    def set(self, message: Message) -> None:
        """Store a retained message, replacing the topic's previous one; an empty payload
        deletes it instead [MQTT-3.3.1-5] [MQTT-3.3.1-6] [MQTT-3.3.1-7]."""
        if not message.payload:
            self.delete(message.topic)
            return
        topic = message.topic
        if topic not in self._by_topic:
            node = self._root
            for level in topic.split("/"):
                child = node.children.get(level)
                if child is None:
                    child = node.children[level] = _Level()
                node = child
            node.message = message
        else:
            self._find(topic).message = message  # type: ignore[union-attr]
        self._by_topic[topic] = message

    def delete(self, topic: str) -> bool:
        """Delete the retained message of a topic; True if there was one."""
        if self._by_topic.pop(topic, None) is None:
            return False
        path: list[tuple[_Level, str]] = []
        node = self._root
        for level in topic.split("/"):
            path.append((node, level))
            node = node.children[level]
        node.message = None
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.children or child.message is not None:
                break
            del parent.children[level]
        return True

    def _find(self, topic: str) -> _Level | None:
        node: _Level | None = self._root
        for level in topic.split("/"):
            node = node.children.get(level) if node is not None else None
        return node

    def match(self, topic_filter: str, now: float) -> list[Message]:
        """Retained messages whose topic matches the (valid, non-shared) filter."""
        if "+" not in topic_filter and "#" not in topic_filter:
            msg = self._by_topic.get(topic_filter)
            if msg is None:
                return []
            if msg.expired(now):
                self.delete(msg.topic)
                return []
            return [msg]
        found: list[Message] = []
        self._walk(self._root, topic_filter.split("/"), 0, found)
        alive = []
        for msg in found:
            if msg.expired(now):
                self.delete(msg.topic)
            else:
                alive.append(msg)
        return alive

    def _walk(self, node: _Level, levels: list[str], i: int, out: list[Message]) -> None:
        if i == len(levels):
            if node.message is not None:
                out.append(node.message)
            return
        level = levels[i]
        if level == "#":
            if i > 0 and node.message is not None:  # "a/#" matches "a" [MQTT-4.7.1-2]
                out.append(node.message)
            stack = [
                child for name, child in node.children.items()
                if not (i == 0 and name[:1] == "$")
            ]
            while stack:
                n = stack.pop()
                if n.message is not None:
                    out.append(n.message)
                stack.extend(n.children.values())
        elif level == "+":
            for name, child in node.children.items():
                if i == 0 and name[:1] == "$":  # [MQTT-4.7.2-1]
                    continue
                self._walk(child, levels, i + 1, out)
        else:
            child = node.children.get(level)
            if child is not None:
                self._walk(child, levels, i + 1, out)
