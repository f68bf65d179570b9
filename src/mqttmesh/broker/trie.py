"""TopicTrie: the subscription index, topic filter -> value, matched against topic names.

Theory of operation
-------------------
A publish asks "which filters match this topic name?" millions of times a second, so the
index is split in two:

* **Exact filters** (no ``+`` / ``#``) live in a plain dict keyed by the filter string: a topic
  name matches an exact filter iff the strings are equal [MQTT-4.7.3-4], so one dict lookup
  finds it. A deployment where every subscriber uses an exact filter never touches the trie.
* **Wildcard filters** live in a trie of topic levels. Each node has ``children`` (level ->
  node, where ``+`` is stored as the child named "+"), ``value`` (the filter ending at this
  node) and ``hash_value`` (the filter ``<path>/#`` ending here). Matching walks the topic's
  levels breadth first, following the literal child and the ``+`` child at each level and
  collecting every ``hash_value`` passed; ``#`` also matches its parent level, so the nodes
  reached after the last level yield both their ``value`` and their ``hash_value``
  [MQTT-4.7.1-2].
* Topic names starting with ``$`` are not matched by a filter starting with a wildcard
  [MQTT-4.7.2-1]: at level 0 the ``+`` child and the root's ``hash_value`` are skipped.

Every node is reached along one path only, so a filter is yielded at most once per match.
Nothing is cached: the index is the only state, updated in place on insert / remove (empty
nodes are pruned on remove).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["TopicTrie", "is_wildcard"]

V = TypeVar("V")


def is_wildcard(topic_filter: str) -> bool:
    """True if the filter contains ``+`` or ``#``."""
    return "+" in topic_filter or "#" in topic_filter


class _Node(Generic[V]):
    __slots__ = ("children", "value", "hash_value")

    def __init__(self) -> None:
        self.children: dict[str, _Node[V]] = {}
        self.value: V | None = None
        self.hash_value: V | None = None


class TopicTrie(Generic[V]):
    """Maps valid topic filters to values; `match(topic)` returns the values of matching filters."""

    __slots__ = ("_exact", "_wild", "_root")

    def __init__(self) -> None:
        self._exact: dict[str, V] = {}
        self._wild: dict[str, V] = {}
        self._root: _Node[V] = _Node()

    def __len__(self) -> int:
        return len(self._exact) + len(self._wild)

    def __iter__(self) -> Iterator[str]:
        yield from self._exact
        yield from self._wild

    def __contains__(self, topic_filter: object) -> bool:
        return topic_filter in self._exact or topic_filter in self._wild

    def get(self, topic_filter: str) -> V | None:
        """The value stored for exactly this filter, or None."""
        v = self._exact.get(topic_filter)
        if v is None:
            v = self._wild.get(topic_filter)
        return v

    def items(self) -> Iterator[tuple[str, V]]:
        yield from self._exact.items()
        yield from self._wild.items()

    def insert(self, topic_filter: str, value: V) -> None:
        """Store (or replace) the value of a filter; the filter must already be valid."""
        if not is_wildcard(topic_filter):
            self._exact[topic_filter] = value
            return
        self._wild[topic_filter] = value
        node = self._root
        levels = topic_filter.split("/")
        if levels[-1] == "#":
            for level in levels[:-1]:
                child = node.children.get(level)
                if child is None:
                    child = node.children[level] = _Node()
                node = child
            node.hash_value = value
            return
        for level in levels:
            child = node.children.get(level)
            if child is None:
                child = node.children[level] = _Node()
            node = child
        node.value = value

    def remove(self, topic_filter: str) -> V | None:
        """Remove a filter; returns its value, or None if it was not stored."""
        if not is_wildcard(topic_filter):
            return self._exact.pop(topic_filter, None)
        value = self._wild.pop(topic_filter, None)
        if value is None:
            return None
        levels = topic_filter.split("/")
        is_hash = levels[-1] == "#"
        if is_hash:
            levels.pop()
        path: list[tuple[_Node[V], str]] = []
        node = self._root
        for level in levels:
            path.append((node, level))
            node = node.children[level]
        if is_hash:
            node.hash_value = None
        else:
            node.value = None
        # prune empty nodes bottom-up
        for parent, level in reversed(path):
            child = parent.children[level]
            if child.children or child.value is not None or child.hash_value is not None:
                break
            del parent.children[level]
        return value

    def match(self, topic: str) -> list[V]:
        """Values of every filter matching the topic name (each filter at most once)."""
        v = self._exact.get(topic)
        result: list[V] = [] if v is None else [v]
        if not self._wild:
            return result
        dollar = topic[:1] == "$"
        nodes = [self._root]
        first = True
        for level in topic.split("/"):
            nxt = []
            for node in nodes:
                if node.hash_value is not None and not (first and dollar):  # [MQTT-4.7.2-1]
                    result.append(node.hash_value)
                children = node.children
                if children:
                    child = children.get(level)
                    if child is not None:
                        nxt.append(child)
                    if not (first and dollar):
                        child = children.get("+")
                        if child is not None:
                            nxt.append(child)
            if not nxt:
                return result
            nodes = nxt
            first = False
        for node in nodes:
            if node.value is not None:
                result.append(node.value)
            if node.hash_value is not None:  # "a/#" matches "a" [MQTT-4.7.1-2]
                result.append(node.hash_value)
        return result
