"""Topic names and topic filters (MQTT 5 §4.7): validation, shared subscriptions, matching."""

from __future__ import annotations

from mqttmesh.errors import RemoteProtocolError

__all__ = ["validate_topic_name", "validate_topic_filter", "parse_share", "matches",
           "is_wildcard"]

TOPIC_NAME_INVALID = 0x90
TOPIC_FILTER_INVALID = 0x8F


def validate_topic_name(name: str) -> None:
    """Check a topic name as used in PUBLISH.

    Raises:
        RemoteProtocolError(0x90): empty [MQTT-4.7.3-1], a wildcard [MQTT-4.7.0-1]
            [MQTT-3.3.2-2], U+0000 [MQTT-4.7.3-2], or longer than 65,535 bytes [MQTT-4.7.3-3].
    """
    if not name:
        raise RemoteProtocolError("empty topic name", TOPIC_NAME_INVALID)
    if "+" in name or "#" in name:
        raise RemoteProtocolError("wildcard in topic name", TOPIC_NAME_INVALID)
    if "\x00" in name:
        raise RemoteProtocolError("U+0000 in topic name", TOPIC_NAME_INVALID)
    if len(name) > 16383 and len(name.encode("utf-8", "surrogatepass")) > 65535:
        raise RemoteProtocolError("topic name longer than 65535 bytes", TOPIC_NAME_INVALID)


def is_wildcard(topic_filter: str) -> bool:
    """True if the filter holds ``+`` or ``#``."""
    return "+" in topic_filter or "#" in topic_filter


def validate_topic_filter(topic_filter: str, max_levels: int = 128) -> None:
    """Check a topic filter as used in SUBSCRIBE / UNSUBSCRIBE (a share prefix is allowed).

    Raises:
        RemoteProtocolError(0x8F): empty [MQTT-4.7.3-1]; ``#`` not alone in the last level
            [MQTT-4.7.1-1]; ``+`` not alone in its level [MQTT-4.7.1-2]... ; U+0000; more
            than ``max_levels`` levels; an invalid ``$share`` / ``$queue`` prefix.
    """
    _, real = parse_share(topic_filter)
    _validate_plain_filter(real, max_levels)


def _validate_plain_filter(topic_filter: str, max_levels: int) -> None:
    if not topic_filter:
        raise RemoteProtocolError("empty topic filter", TOPIC_FILTER_INVALID)
    if "\x00" in topic_filter:
        raise RemoteProtocolError("U+0000 in topic filter", TOPIC_FILTER_INVALID)
    if topic_filter.count("/") >= max_levels:
        raise RemoteProtocolError(f"topic filter has more than {max_levels} levels",
                                  TOPIC_FILTER_INVALID)
    if "+" not in topic_filter and "#" not in topic_filter:
        return
    levels = topic_filter.split("/")
    last = len(levels) - 1
    for i, level in enumerate(levels):
        if len(level) == 1:
            if level == "#" and i != last:
                raise RemoteProtocolError("'#' must be the last level", TOPIC_FILTER_INVALID)
        elif "+" in level or "#" in level:
            raise RemoteProtocolError(f"wildcard inside level {level!r}", TOPIC_FILTER_INVALID)


def parse_share(topic_filter: str) -> tuple[str | None, str]:
    """Split a shared subscription into ``(group, real filter)``; ``(None, f)`` if not shared.

    ``$share/GROUP/FILTER`` [MQTT-4.8.2-1] [MQTT-4.8.2-2]; ``$queue/FILTER`` (EMQX) gives
    the group ``"$queue"``.

    Raises:
        RemoteProtocolError(0x8F): an empty or wildcard share name, or no filter.
    """
    if topic_filter.startswith("$queue/"):
        real = topic_filter[7:]
        if not real:
            raise RemoteProtocolError("$queue/ without a topic filter", TOPIC_FILTER_INVALID)
        return "$queue", real
    if not topic_filter.startswith("$share"):
        return None, topic_filter
    if topic_filter == "$share" or topic_filter[6] != "/":
        if topic_filter == "$share":
            raise RemoteProtocolError("$share without a group", TOPIC_FILTER_INVALID)
        return None, topic_filter  # e.g. "$shared/x": an ordinary $ filter
    group, sep, real = topic_filter[7:].partition("/")
    if not group or "+" in group or "#" in group:
        raise RemoteProtocolError(f"invalid share name {group!r}", TOPIC_FILTER_INVALID)
    if not sep or not real:
        raise RemoteProtocolError("shared subscription without a topic filter",
                                  TOPIC_FILTER_INVALID)  # [MQTT-4.8.2-2]
    return group, real


def matches(topic_filter: str, topic: str) -> bool:
    """True if the topic name matches the (non-shared) topic filter (MQTT 5 §4.7).

    A filter starting with a wildcard does not match a topic starting with ``$``
    [MQTT-4.7.2-1]. ``#`` also matches the parent level ("sport/#" matches "sport").
    Iterative, so any depth is fine.
    """
    if "+" not in topic_filter and "#" not in topic_filter:
        return topic_filter == topic
    if topic[:1] == "$" and topic_filter[:1] in ("+", "#"):
        return False
    flevels = topic_filter.split("/")
    tlevels = topic.split("/")
    nt = len(tlevels)
    for i, level in enumerate(flevels):
        if level == "#":
            return True
        if i >= nt:
            return False
        if level != "+" and level != tlevels[i]:
            return False
    return len(flevels) == nt
