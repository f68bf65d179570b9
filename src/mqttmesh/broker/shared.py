"""SharedGroup: the local members of one shared subscription group and how one is picked.

`$share/G/F` (and `$queue/F`, group ``$queue``) deliver each message to one member of
group G [MQTT-4.8.2]. Strategies (EMQX names): round_robin, random, sticky (keep the last
pick while it stays subscribed and connected), hash_clientid (by publisher client id),
hash_topic (by topic name), local (a random local member: on one node all members are
local). Connected members are preferred; an offline member with a persistent session is
picked (and queues the message) only when no member is connected.
"""

from __future__ import annotations

import random
import zlib

from mqttmesh.broker.message import Message
from mqttmesh.broker.session import Subscription

__all__ = ["SharedGroup"]


class SharedGroup:
    """Members of one group for one real filter on this node."""

    __slots__ = ("name", "members", "_next", "_sticky", "_strategy", "_random")

    def __init__(self, name: str, strategy: str, rng: random.Random) -> None:
        self.name = name
        self.members: dict[str, Subscription] = {}  # client id -> subscription
        self._next = 0
        self._sticky: Subscription | None = None
        self._strategy = strategy
        self._random = rng

    def __len__(self) -> int:
        return len(self.members)

    def add(self, sub: Subscription) -> None:
        self.members[sub.session.client_id] = sub

    def remove(self, client_id: str) -> Subscription | None:
        sub = self.members.pop(client_id, None)
        if sub is self._sticky:
            self._sticky = None
        return sub

    def pick(self, message: Message) -> Subscription | None:
        """The member that gets this message, or None if the group is empty."""
        members = list(self.members.values())
        if not members:
            return None
        online = [m for m in members if m.session.outlet is not None] or members
        strategy = self._strategy
        if strategy == "round_robin":
            n = self._next % len(online)
            self._next = n + 1
            return online[n]
        if strategy == "sticky":
            sticky = self._sticky
            if sticky is None or sticky.session.outlet is None:
                sticky = self._sticky = self._random.choice(online)
            return sticky
        if strategy == "hash_clientid":
            key = (message.sender or "").encode()
            return online[zlib.crc32(key) % len(online)]
        if strategy == "hash_topic":
            return online[zlib.crc32(message.topic.encode()) % len(online)]
        return self._random.choice(online)  # random, local
