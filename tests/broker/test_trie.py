"""TopicTrie: filter matching on the spec's examples (§4.7)."""

from __future__ import annotations

import random

import pytest

from mqttmesh.broker.trie import TopicTrie


def matches(topic_filter: str, topic: str) -> bool:
    trie: TopicTrie[str] = TopicTrie()
    trie.insert(topic_filter, topic_filter)
    return trie.match(topic) == [topic_filter]


@pytest.mark.parametrize(
    "topic_filter,topic,expected",
    [
        # [MQTT-4.7.1-2] multi-level wildcard, spec examples
        ("sport/tennis/player1/#", "sport/tennis/player1", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/ranking", True),
        ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", True),
        ("sport/#", "sport", True),
        ("#", "sport/tennis", True),
        ("#", "/", True),
        # single-level wildcard
        ("sport/tennis/+", "sport/tennis/player1", True),
        ("sport/tennis/+", "sport/tennis/player2", True),
        ("sport/tennis/+", "sport/tennis/player1/ranking", False),
        ("sport/+", "sport", False),
        ("sport/+", "sport/", True),
        ("+/+", "/finance", True),
        ("/+", "/finance", True),
        ("+", "/finance", False),
        ("+/tennis/#", "sport/tennis/player1", True),
        ("+/#", "a", True),
        # exact filters
        ("a/b", "a/b", True),
        ("a/b", "a/b/c", False),
        ("a/b", "a", False),
        ("A/b", "a/b", False),
        # [MQTT-4.7.2-1] $-topics and leading wildcards
        ("#", "$SYS/broker/clients", False),
        ("+/monitor/Clients", "$SYS/monitor/Clients", False),
        ("$SYS/#", "$SYS/monitor/Clients", True),
        ("$SYS/monitor/+", "$SYS/monitor/Clients", True),
        ("$SYS/+/Clients", "$SYS/monitor/Clients", True),
        ("a/#", "a/$x", True),
    ],
)
def test_spec_examples(topic_filter: str, topic: str, expected: bool) -> None:
    assert matches(topic_filter, topic) is expected


def test_many_filters_each_matched_once() -> None:
    trie: TopicTrie[str] = TopicTrie()
    filters = ["a/b/c", "a/+/c", "a/#", "#", "+/b/+", "a/b/#", "+/+/+", "a/b/c/#", "x/y"]
    for f in filters:
        trie.insert(f, f)
    assert sorted(trie.match("a/b/c")) == sorted(
        ["a/b/c", "a/+/c", "a/#", "#", "+/b/+", "a/b/#", "+/+/+", "a/b/c/#"]
    )
    assert sorted(trie.match("x/y")) == ["#", "x/y"]
    assert len(trie) == len(filters)
    assert set(trie) == set(filters)


def test_remove_prunes_and_keeps_others() -> None:
    trie: TopicTrie[str] = TopicTrie()
    for f in ["a/+/c", "a/+/#", "a/b"]:
        trie.insert(f, f)
    assert trie.remove("a/+/c") == "a/+/c"
    assert trie.remove("a/+/c") is None
    assert sorted(trie.match("a/x/c")) == ["a/+/#"]
    assert trie.remove("a/+/#") == "a/+/#"
    assert trie.match("a/x/c") == []
    assert trie._root.children == {}  # wildcard part pruned
    assert trie.match("a/b") == ["a/b"]
    assert trie.remove("a/b") == "a/b"
    assert len(trie) == 0


def _reference_match(topic_filter: str, topic: str) -> bool:
    fl, tl = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and fl[0] in ("+", "#"):
        return False
    for i, f in enumerate(fl):
        if f == "#":
            return True
        if i >= len(tl):
            return False
        if f != "+" and f != tl[i]:
            return False
    return len(fl) == len(tl)


def test_random_filters_agree_with_reference() -> None:
    rng = random.Random(7)
    levels = ["a", "b", "$c", ""]
    for _ in range(300):
        f_levels = [rng.choice(levels + ["+"]) for _ in range(rng.randint(1, 4))]
        if rng.random() < 0.3:
            f_levels.append("#")
        topic_filter = "/".join(f_levels)
        topic = "/".join(rng.choice(levels) for _ in range(rng.randint(1, 5)))
        assert matches(topic_filter, topic) is _reference_match(topic_filter, topic), (
            topic_filter, topic,
        )
